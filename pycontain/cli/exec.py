"""``pycontain exec``: run a command in a running container (no terminal, no stdin yet).

API calls:
    POST /containers/{name}/exec  {"Cmd", "Env", "WorkingDir", "User", "AttachStdout",
                                   "AttachStderr"}                 -> {"Id"}
    POST /exec/{id}/start         {"Detach"}   -> the multiplexed output until the end
    GET  /exec/{id}/json                       -> {"ExitCode", ...}

Exit code: the process's; 126/127 (with the daemon's one-line error) when it cannot
be started, as ``run``'s.
"""

from __future__ import annotations

from pycontain.cli.common import Context, Verb, quote_path
from pycontain.cli.flags import LIST, VALUE, Command, Flag, Options
from pycontain.cli.run import env_entry, start_failure_code
from pycontain.cli.stream import copy_multiplexed
from pycontain.errors import DaemonUnreachable, PycontainError

__all__ = ["VERBS"]

EXEC = Command(
    "exec", "CONTAINER COMMAND [ARG...]", "Execute a command in a running container",
    (Flag("detach", "d", help="Detached mode: run command in the background"),
     Flag("env", "e", LIST, "Set environment variables", metavar="list"),
     Flag("workdir", "w", VALUE, "Working directory inside the container"),
     Flag("user", "u", VALUE, "Username or UID (format: <name|uid>[:<group|gid>])")),
    min_args=2, interspersed=False,
)


def cmd_exec(ctx: Context, opts: Options) -> int:
    container, *command = opts.args
    detach = opts.flag("detach")
    created = ctx.client.json("POST", f"/containers/{quote_path(container)}/exec", body={
        "Cmd": command,
        "Env": [e for entry in opts.texts("env") for e in env_entry(entry)],
        "WorkingDir": opts.text("workdir"),
        "User": opts.text("user"),
        "AttachStdin": False, "AttachStdout": not detach, "AttachStderr": not detach,
        "Tty": False,
    })
    path = f"/exec/{quote_path(created['Id'])}"
    try:
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


def _exit_code(ctx: Context, path: str) -> int:
    code = (ctx.client.json("GET", f"{path}/json") or {}).get("ExitCode")
    return int(code) if code is not None else 0


VERBS = {"exec": Verb(EXEC, cmd_exec)}
