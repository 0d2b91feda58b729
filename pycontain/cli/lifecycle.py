"""Verbs that move existing containers through their lifecycle.

API calls (each name in turn; a failure is printed and the others still run):
    stop     POST   /containers/{name}/stop[?t=N]
    kill     POST   /containers/{name}/kill[?signal=SIG]
    restart  POST   /containers/{name}/restart[?t=N]
    rm       DELETE /containers/{name}[?force=1][&v=1]
    wait     POST   /containers/{name}/wait            -> {"StatusCode": n}
    pause    POST   /containers/{name}/pause
    unpause  POST   /containers/{name}/unpause
"""

from __future__ import annotations

from typing import Any

from pycontain.cli.common import Context, Verb, each, quote_path
from pycontain.cli.flags import VALUE, Command, Flag, Options, to_int

__all__ = ["VERBS"]

_MANY = "CONTAINER [CONTAINER...]"
_TIME = Flag("time", "t", VALUE, "Seconds to wait before killing the container", "int", to_int)

STOP = Command("stop", _MANY, "Stop one or more running containers", (_TIME,), min_args=1)
RESTART = Command("restart", _MANY, "Restart one or more containers", (_TIME,), min_args=1)
KILL = Command(
    "kill", _MANY, "Kill one or more running containers",
    (Flag("signal", "s", VALUE, "Signal to send to the container"),), min_args=1,
)
RM = Command(
    "rm", _MANY, "Remove one or more containers",
    (Flag("force", "f", help="Force the removal of a running container (uses SIGKILL)"),
     Flag("volumes", "v", help="Remove anonymous volumes associated with the container")),
    min_args=1,
)
WAIT = Command("wait", _MANY, "Block until one or more containers stop, then print their "
               "exit codes", min_args=1)
PAUSE = Command("pause", _MANY, "Pause all processes within one or more containers",
                min_args=1)
UNPAUSE = Command("unpause", _MANY, "Unpause all processes within one or more containers",
                  min_args=1)


def _post(ctx: Context, name: str, action: str, query: dict[str, Any] | None = None) -> str:
    ctx.client.request("POST", f"/containers/{quote_path(name)}/{action}", query=query)
    return name


def _timeout(opts: Options) -> dict[str, Any] | None:
    seconds = opts.number("time")
    return None if seconds is None else {"t": seconds}


def cmd_stop(ctx: Context, opts: Options) -> int:
    return each(ctx, opts.args, lambda name: _post(ctx, name, "stop", _timeout(opts)))


def cmd_restart(ctx: Context, opts: Options) -> int:
    return each(ctx, opts.args, lambda name: _post(ctx, name, "restart", _timeout(opts)))


def cmd_kill(ctx: Context, opts: Options) -> int:
    query = {"signal": opts.text("signal")} if opts.given("signal") else None
    return each(ctx, opts.args, lambda name: _post(ctx, name, "kill", query))


def cmd_pause(ctx: Context, opts: Options) -> int:
    return each(ctx, opts.args, lambda name: _post(ctx, name, "pause"))


def cmd_unpause(ctx: Context, opts: Options) -> int:
    return each(ctx, opts.args, lambda name: _post(ctx, name, "unpause"))


def cmd_rm(ctx: Context, opts: Options) -> int:
    query = {"force": opts.flag("force") or None, "v": opts.flag("volumes") or None}

    def remove(name: str) -> str:
        ctx.client.request("DELETE", f"/containers/{quote_path(name)}", query=query)
        return name

    return each(ctx, opts.args, remove)


def cmd_wait(ctx: Context, opts: Options) -> int:
    def wait(name: str) -> str:
        reply = ctx.client.json("POST", f"/containers/{quote_path(name)}/wait") or {}
        return str(reply.get("StatusCode", 0))

    return each(ctx, opts.args, wait)


VERBS = {
    "stop": Verb(STOP, cmd_stop),
    "restart": Verb(RESTART, cmd_restart),
    "kill": Verb(KILL, cmd_kill),
    "rm": Verb(RM, cmd_rm),
    "wait": Verb(WAIT, cmd_wait),
    "pause": Verb(PAUSE, cmd_pause),
    "unpause": Verb(UNPAUSE, cmd_unpause),
}
