"""``login`` and ``logout``: registry credentials checked by the daemon, kept by the client.

API calls:
    login   POST /auth   body: {"username", "password", "serveraddress"}
            -> {"Status": "Login Succeeded", "IdentityToken": ""}; 401 when refused
    logout  (none: the entry is removed from the credentials file, cli/credentials.py)

As ``docker login``: the password comes from ``-p``, from ``--password-stdin`` or, on a
terminal, from a prompt; with neither flag, credentials already stored are tried first.
Nothing is stored unless the registry accepted it.
"""

from __future__ import annotations

import sys

from pycontain.cli.common import Context, Verb
from pycontain.cli.credentials import DOCKER_HUB_KEY, CredentialStore, server_key
from pycontain.cli.flags import VALUE, Command, Flag, Options
from pycontain.errors import PycontainError, Unauthorized

__all__ = ["VERBS"]

LOGIN = Command(
    "login", "[SERVER]",
    "Log in to a registry.\nIf no server is specified, the default is docker.io.",
    (Flag("username", "u", VALUE, "Username"),
     Flag("password", "p", VALUE, "Password"),
     Flag("password-stdin", help="Take the password from stdin")),
    max_args=1,
)
LOGOUT = Command(
    "logout", "[SERVER]",
    "Log out from a registry.\nIf no server is specified, the default is docker.io.",
    max_args=1,
)


class _LocalFailure(Exception):
    """A login that ends before asking the daemon; the message is printed as is."""


def cmd_login(ctx: Context, opts: Options) -> int:
    store = CredentialStore.default()
    try:
        key = server_key(opts.args[0] if opts.args else DOCKER_HUB_KEY)
        username, password = _flags_credentials(ctx, opts)
        stored = store.get(key) if not (username or password) else None
    except (_LocalFailure, PycontainError) as exc:
        ctx.error(str(exc))
        return 1
    if stored is not None:
        ctx.line("Authenticating with existing credentials...")
        try:
            return _login(ctx, store, key, *stored)
        except Unauthorized as exc:
            if not ctx.interactive():
                raise
            ctx.error(f"Login did not succeed, error: {exc.message}")
    try:
        username, password = _ask(ctx, username, password, stored[0] if stored else "")
    except _LocalFailure as exc:
        ctx.error(str(exc))
        return 1
    return _login(ctx, store, key, username, password)


def _flags_credentials(ctx: Context, opts: Options) -> tuple[str, str]:
    username, password = opts.text("username").strip(), opts.text("password")
    if opts.flag("password-stdin"):
        if opts.given("password"):
            raise _LocalFailure("--password and --password-stdin are mutually exclusive")
        if not username:
            raise _LocalFailure("Must provide --username with --password-stdin")
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
        if not password:
            raise _LocalFailure("Error: Password Required")
    elif opts.given("password"):
        ctx.error("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    return username, password


def _ask(ctx: Context, username: str, password: str, known_user: str) -> tuple[str, str]:
    """What the flags left out, asked on the terminal (never when stdin is not one);
    ``known_user`` is offered as the default user name."""
    if username and password:
        return username, password
    if not ctx.interactive():
        raise _LocalFailure("Error: Cannot perform an interactive login from a non TTY device")
    if not username:
        ctx.out.write(f"Username ({known_user}): " if known_user else "Username: ")
        ctx.out.flush()
        username = sys.stdin.readline().strip() or known_user
    if not username:
        raise _LocalFailure("Error: Non-null Username Required")
    if not password:
        import getpass

        password = getpass.getpass("Password: ")
    if not password:
        raise _LocalFailure("Error: Password Required")
    return username, password


def _login(ctx: Context, store: CredentialStore, key: str, username: str, password: str) -> int:
    """POST /auth; store the credentials once the registry accepted them."""
    reply = ctx.client.json("POST", "/auth", body={
        "username": username, "password": password, "serveraddress": key}) or {}
    try:
        store.store(key, username, password)
    except PycontainError as exc:
        ctx.error(f"Error saving credentials: {exc.message}")
        return 1
    ctx.error(f"WARNING! Your password is stored unencrypted in {store.path}.")
    ctx.line(str(reply.get("Status") or "Login Succeeded"))
    return 0


def cmd_logout(ctx: Context, opts: Options) -> int:
    try:
        key = server_key(opts.args[0] if opts.args else DOCKER_HUB_KEY)
        removed = CredentialStore.default().erase(key)
    except PycontainError as exc:
        ctx.error(exc.message)
        return 1
    ctx.line(f"Removing login credentials for {key}" if removed else f"Not logged in to {key}")
    return 0


VERBS = {
    "login": Verb(LOGIN, cmd_login),
    "logout": Verb(LOGOUT, cmd_logout),
}
