"""``pycontain exec``: run a command in a running container.

API calls:
    POST /containers/{name}/exec  {"Cmd", "Env", "WorkingDir", "User", "AttachStdin",
                                   "AttachStdout", "AttachStderr", "Tty", "ConsoleSize"}
                                                                   -> {"Id"}
    POST /exec/{id}/start         {"Detach"}   -> the multiplexed output until the end
                                  (-i/-t: hijacked, our stdin and terminal: interactive.py)
    POST /exec/{id}/resize?h=&w=               (-t: our window size, on SIGWINCH)
    GET  /exec/{id}/json                       -> {"ExitCode", ...}

Exit code: the process's; 126/127 (with the daemon's one-line error) when it cannot
be started, as ``run``'s.
"""

from __future__ import annotations

import sys

from pycontain.cli.common import Context, Verb, quote_path
from pycontain.cli.flags import LIST, VALUE, Command, Flag, Options
from pycontain.cli.run import env_entry, start_failure_code
from pycontain.cli.stream import copy_multiplexed
from pycontain.errors import DaemonUnreachable, PycontainError

__all__ = ["VERBS"]

EXEC = Command(
    "exec", "CONTAINER COMMAND [ARG...]", "Execute a command in a running container",
    (Flag("detach", "d", help="Detached mode: run command in the background"),
     Flag("interactive", "i", help="Keep STDIN open even if not attached"),
     Flag("tty", "t", help="Allocate a pseudo-TTY"),
     Flag("detach-keys", kind=VALUE, help="Override the key sequence for detaching a "
          "container"),
     Flag("env", "e", LIST, "Set environment variables", metavar="list"),
     Flag("workdir", "w", VALUE, "Working directory inside the container"),
     Flag("user", "u", VALUE, "Username or UID (format: <name|uid>[:<group|gid>])")),
    min_args=2, interspersed=False,
)


def cmd_exec(ctx: Context, opts: Options) -> int:
    container, *command = opts.args
    detach, tty = opts.flag("detach"), opts.flag("tty")
    stdin = opts.flag("interactive") and not detach
    if stdin and tty and not sys.stdin.isatty():
        ctx.error("the input device is not a TTY")
        return 1
    body = {
        "Cmd": command,
        "Env": [e for entry in opts.texts("env") for e in env_entry(entry)],
        "WorkingDir": opts.text("workdir"),
        "User": opts.text("user"),
        "AttachStdin": stdin, "AttachStdout": not detach, "AttachStderr": not detach,
        "Tty": tty, "DetachKeys": opts.text("detach-keys"),
    }
    if tty:
        from pycontain.cli.interactive import terminal_size

        body["ConsoleSize"] = list(terminal_size())
    created = ctx.client.json("POST", f"/containers/{quote_path(container)}/exec", body=body)
    path = f"/exec/{quote_path(created['Id'])}"
    try:
        if (stdin or tty) and not detach:
            return _interactive(ctx, path, tty, stdin, opts.text("detach-keys"))
        reply = ctx.client.request("POST", f"{path}/start", body={"Detach": detach})
    except DaemonUnreachable:
        raise
    except PycontainError as exc:
        if exc.http_status != PycontainError.http_status:  # not a failed start: 404, 409
            raise
        ctx.daemon_error(exc)
        return _exit_code(ctx, path) or start_failure_code(exc.message)
    if detach:
        return 0
    copy_multiplexed(reply.iter_chunks(), *ctx.binary_streams())
    return _exit_code(ctx, path)


def _interactive(ctx: Context, path: str, tty: bool, stdin: bool, detach_keys: str) -> int:
    """The hijacked start: our stdin (and terminal) joined to the process."""
    from pycontain.cli.interactive import run_attached

    connection = ctx.client.hijack(f"{path}/start", body={"Detach": False, "Tty": tty})
    detached = run_attached(connection, ctx.client, path, tty, stdin, detach_keys,
                            *ctx.binary_streams())
    return 0 if detached else _exit_code(ctx, path)


def _exit_code(ctx: Context, path: str) -> int:
    code = (ctx.client.json("GET", f"{path}/json") or {}).get("ExitCode")
    return int(code) if code is not None else 0


VERBS = {"exec": Verb(EXEC, cmd_exec)}
