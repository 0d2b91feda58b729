"""``events``: the daemon's container events, as they happen.

API call:
    events   GET /events[?since=UNIX][&until=UNIX][&filters={"event":["die"],...}]
             a stream of JSON lines in Docker's event shape
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import datetime
from typing import Any

from pycontain.cli.common import Context, Verb
from pycontain.cli.flags import LIST, VALUE, Command, Flag, Options
from pycontain.errors import InvalidArgument
from pycontain.timefmt import rfc3339_nano

__all__ = ["VERBS", "parse_time"]

EVENTS = Command(
    "events", "", "Get real time events from the server",
    (Flag("filter", "f", LIST, "Filter output based on conditions provided", metavar="filter"),
     Flag("format", kind=VALUE, help="Format output using a custom template"),
     Flag("since", kind=VALUE, help="Show all events created since timestamp"),
     Flag("until", kind=VALUE, help="Stream events until this timestamp")),
    max_args=0,
)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_time(text: str, now: float) -> float:
    """Docker's --since/--until: Unix seconds, RFC 3339 (``2026-11-28T01:02:03Z``, a
    fraction and an offset allowed), or a duration before now ("10m", "1.5h")."""
    try:
        return float(text)
    except ValueError:
        pass
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    match = _DURATION.match(text)
    if match is None:
        raise InvalidArgument(f"invalid time {text!r}: use Unix seconds or a duration like 10m")
    return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _default_line(event: dict[str, Any]) -> str:
    attributes = event.get("Actor", {}).get("Attributes", {})
    details = ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
    return (f"{rfc3339_nano(int(event.get('timeNano', 0)))} {event.get('Type', 'container')} "
            f"{event.get('Action', '')} {event.get('id', '')} ({details})")


def cmd_events(ctx: Context, opts: Options) -> int:
    now = time.time()
    query: dict[str, Any] = {}
    for flag in ("since", "until"):
        if opts.given(flag):
            query[flag] = f"{parse_time(opts.text(flag), now):.9f}"
    filters: dict[str, list[str]] = {}
    for expr in opts.texts("filter"):
        key, sep, value = expr.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {expr}")
        filters.setdefault(key, []).append(value)
    if filters:
        query["filters"] = filters
    template = None
    if opts.given("format") and opts.text("format") != "json":
        from pycontain.cli.template import Template

        template = Template(opts.text("format").replace("\\t", "\t").replace("\\n", "\n"))
    reply = ctx.client.request("GET", "/events", query=query)
    for raw in reply.iter_lines():
        event = json.loads(raw)
        if template is not None:
            ctx.line(template.render(event))
        elif opts.given("format"):
            ctx.line(json.dumps(event))
        else:
            ctx.line(_default_line(event))
        ctx.out.flush()
    return 0


VERBS = {"events": Verb(EVENTS, cmd_events)}
