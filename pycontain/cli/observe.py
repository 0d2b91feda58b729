"""Verbs that look at containers and images: logs, top, inspect.

API calls:
    logs     GET /containers/{name}/logs?stdout=1&stderr=1[&follow=1][&tail=N][&timestamps=1]
             [&since=UNIX][&until=UNIX]
    top      GET /containers/{name}/top                    -> {"Titles", "Processes"}
    inspect  GET /containers/{name}/json, else GET /images/{name}/json
"""

from __future__ import annotations

import json
import time
from typing import Any

from pycontain.cli.common import Context, Verb, one_line, quote_path
from pycontain.cli.events import parse_time
from pycontain.cli.flags import VALUE, Command, Flag, Options
from pycontain.cli.render import tabulate
from pycontain.cli.stream import copy_multiplexed
from pycontain.errors import DaemonUnreachable, NotFound, PycontainError

__all__ = ["VERBS"]

LOGS = Command(
    "logs", "CONTAINER", "Fetch the logs of a container",
    (Flag("follow", "f", help="Follow log output"),
     Flag("tail", "n", VALUE, 'Number of lines to show from the end of the logs (default "all")'),
     Flag("timestamps", "t", help="Show timestamps"),
     Flag("since", kind=VALUE, help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) "
          "or relative (e.g. 42m for 42 minutes)"),
     Flag("until", kind=VALUE, help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) "
          "or relative (e.g. 42m for 42 minutes)")),
    min_args=1, max_args=1,
)
TOP = Command("top", "CONTAINER", "Display the running processes of a container",
              min_args=1, max_args=1)
PORT = Command("port", "CONTAINER [PRIVATE_PORT[/PROTO]]",
               "List port mappings or a specific mapping for the container",
               min_args=1, max_args=2)
INSPECT = Command(
    "inspect", "NAME|ID [NAME|ID...]", "Return low-level information on containers or images",
    (Flag("format", "f", VALUE, "Format output using a custom template"),
     Flag("type", kind=VALUE, help="Return JSON for specified type (container|image)")),
    min_args=1,
)


def cmd_logs(ctx: Context, opts: Options) -> int:
    query: dict[str, Any] = {"stdout": True, "stderr": True}
    if opts.flag("follow"):
        query["follow"] = True
    if opts.given("tail"):
        query["tail"] = opts.text("tail")
    if opts.flag("timestamps"):
        query["timestamps"] = True
    now = time.time()
    for flag in ("since", "until"):
        if opts.given(flag):
            query[flag] = f"{parse_time(opts.text(flag), now):.9f}"
    reply = ctx.client.request("GET", f"/containers/{quote_path(opts.args[0])}/logs", query=query)
    copy_multiplexed(reply.iter_chunks(), *ctx.binary_streams())
    return 0


def cmd_top(ctx: Context, opts: Options) -> int:
    reply = ctx.client.json("GET", f"/containers/{quote_path(opts.args[0])}/top") or {}
    rows = [reply.get("Titles") or [], *(reply.get("Processes") or [])]
    ctx.out.write(tabulate([[str(cell) for cell in row] for row in rows], minwidth=20))
    return 0


def _lookup(ctx: Context, name: str, kind: str) -> Any:
    """The inspect JSON of ``name``; NotFound naming what was looked for."""
    path = quote_path(name)
    if kind in ("", "container"):
        try:
            return ctx.client.json("GET", f"/containers/{path}/json")
        except NotFound:
            if kind:
                raise PycontainError(f"No such container: {name}") from None
    try:
        return ctx.client.json("GET", f"/images/{path}/json")
    except NotFound:
        what = "image" if kind else "object"
        raise PycontainError(f"No such {what}: {name}") from None


def cmd_inspect(ctx: Context, opts: Options) -> int:
    kind = opts.text("type")
    if kind not in ("", "container", "image"):
        ctx.error(f'"{kind}" is not a valid value for --type')
        return 1
    template = None
    if opts.given("format"):
        from pycontain.cli.template import Template

        try:
            template = Template(opts.text("format"))
        except ValueError as exc:
            ctx.error(f"template parsing error: {exc}")
            return 1
    found, failed = [], False
    for name in opts.args:
        try:
            found.append(_lookup(ctx, name, kind))
        except DaemonUnreachable:
            raise
        except PycontainError as exc:
            ctx.error(f"Error: {one_line(exc.message)}")
            failed = True
    if template is None:
        ctx.line(json.dumps(found, indent=4, ensure_ascii=False))
        return 1 if failed else 0
    for item in found:
        try:
            ctx.line(template.render(item))
        except ValueError as exc:
            ctx.error(str(exc))
            return 1
    return 1 if failed else 0


def cmd_port(ctx: Context, opts: Options) -> int:
    """``80/tcp -> 0.0.0.0:8080`` per published port (inspect's NetworkSettings.Ports)."""
    name = opts.args[0]
    info = ctx.client.json("GET", f"/containers/{quote_path(name)}/json") or {}
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    wanted = opts.args[1] if len(opts.args) > 1 else None
    if wanted is not None and "/" not in wanted:
        wanted += "/tcp"
    shown = 0
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        if wanted is not None and key != wanted:
            continue
        for binding in ports[key] or []:
            address = f"{binding.get('HostIp') or '0.0.0.0'}:{binding.get('HostPort')}"
            ctx.line(address if wanted else f"{key} -> {address}")
            shown += 1
    if wanted is not None and not shown:
        ctx.error(f"Error: No public port '{wanted}' published for {name}")
        return 1
    return 0


VERBS = {
    "port": Verb(PORT, cmd_port),
    "logs": Verb(LOGS, cmd_logs),
    "top": Verb(TOP, cmd_top),
    "inspect": Verb(INSPECT, cmd_inspect),
}
