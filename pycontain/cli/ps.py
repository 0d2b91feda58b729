"""``ps``: list containers, rendered client-side exactly as Docker does.

API call:
    GET /containers/json[?all=1][&limit=N][&filters={"status":["exited"],...}]
"""

from __future__ import annotations

import time
from typing import Any

from pycontain.cli.common import Context, Verb
from pycontain.cli.flags import LIST, VALUE, Command, Flag, Options, to_int
from pycontain.cli.render import PS_DEFAULT_FORMAT, PS_HEADERS, format_rows, ps_fields
from pycontain.errors import InvalidArgument

__all__ = ["VERBS", "filters_query"]


def _filter(text: str) -> str:
    if "=" not in text:
        raise InvalidArgument("bad format of filter (expected name=value)")
    return text


PS = Command(
    "ps", "", "List containers",
    (Flag("all", "a", help="Show all containers (default shows just running)"),
     Flag("quiet", "q", help="Only display container IDs"),
     Flag("last", "n", VALUE, "Show n last created containers (includes all states)", "int",
          to_int),
     Flag("latest", "l", help="Show the latest created container (includes all states)"),
     Flag("no-trunc", help="Don't truncate output"),
     Flag("filter", "f", LIST, "Filter output based on conditions provided", "filter",
          _filter),
     Flag("format", kind=VALUE, help="Format output using a custom template: 'table', "
          "'table TEMPLATE', 'json' or a Go template")),
    max_args=0,
)


def filters_query(filters: list[str]) -> dict[str, list[str]]:
    """``["status=exited", "name=x"]`` -> Docker's filters JSON ``{"status": ["exited"], ...}``."""
    grouped: dict[str, list[str]] = {}
    for item in filters:
        key, _, value = item.partition("=")
        grouped.setdefault(key.strip().lower(), []).append(value)
    return grouped


def _query(opts: Options) -> dict[str, Any]:
    limit = opts.number("last") or 0
    if opts.flag("latest") and limit <= 0:
        limit = 1
    query: dict[str, Any] = {}
    if opts.flag("all") or limit > 0:
        query["all"] = True
    if limit > 0:
        query["limit"] = limit
    if opts.texts("filter"):
        query["filters"] = filters_query(opts.texts("filter"))
    return query


def cmd_ps(ctx: Context, opts: Options) -> int:
    fmt = opts.text("format")
    if opts.flag("quiet"):
        if fmt:
            ctx.error("WARNING: Ignoring custom format, because both --format and --quiet "
                      "are set.")
        fmt = "{{.ID}}"
    query = _query(opts)
    containers = ctx.client.json("GET", "/containers/json", query=query) or []
    if "limit" in query:
        containers = containers[: query["limit"]]
    now = time.time()
    trunc = not opts.flag("no-trunc")
    rows = [ps_fields(c, now, trunc) for c in containers]
    try:
        ctx.out.write(format_rows(fmt, rows, PS_HEADERS, PS_DEFAULT_FORMAT))
    except ValueError as exc:
        ctx.error(str(exc))
        return 1
    return 0


VERBS = {"ps": Verb(PS, cmd_ps)}
