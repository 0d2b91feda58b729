"""Pure rendering helpers: durations, statuses, tables, ``ps``/``images`` rows.

Standard library only and free of I/O, so that the daemon can import
``human_duration`` and ``container_status_text`` to compute a container's
``Status`` exactly as Docker words it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "container_status_text",
    "created_at_text",
    "ellipsis",
    "go_quote",
    "human_duration",
    "image_rows",
    "ps_fields",
    "split_repo_tag",
    "tabulate",
    "truncate_id",
]

_MINUTE = 60
_HOUR = 3600


def human_duration(seconds: float) -> str:
    """go-units' HumanDuration: ``"Less than a second"`` ... ``"3 years"``."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < _MINUTE:
        return f"{whole} seconds"
    minutes = int(seconds / _MINUTE)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / _HOUR + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / _HOUR) // 24 // 365} years"


def container_status_text(
    state: str, started_at: float, finished_at: float, exit_code: int, now: float
) -> str:
    """Docker's human ``Status`` of a container (the STATUS column of ``ps``).

    ``state`` is the lifecycle status (created, running, paused, restarting,
    removing, exited, dead); times are seconds since the epoch, 0 for never.
    """
    if state == "running":
        return f"Up {human_duration(now - started_at)}"
    if state == "paused":
        return f"Up {human_duration(now - started_at)} (Paused)"
    if state == "restarting":
        return f"Restarting ({exit_code}) {human_duration(now - finished_at)} ago"
    if state == "removing":
        return "Removal In Progress"
    if state == "dead":
        return "Dead"
    if not started_at:
        return "Created"
    if not finished_at:
        return ""
    return f"Exited ({exit_code}) {human_duration(now - finished_at)} ago"


def tabulate(rows: Iterable[Sequence[str]], minwidth: int = 10, padding: int = 3) -> str:
    """Lay out cells as Go's text/tabwriter does with ' ' padding and no flags.

    Each row is a line whose cells were tab-separated; as in tabwriter, the last
    cell of a line does not belong to a column (it is printed as is), and a
    column's width is the widest cell of its block of consecutive lines plus
    ``padding``, at least ``minwidth``.
    """
    lines = [list(row) for row in rows]
    out: list[str] = [""] * len(lines)
    _format_block(lines, out, 0, len(lines), 0, minwidth, padding)
    return "".join(text + "\n" for text in out)


def _format_block(
    lines: list[list[str]], out: list[str], first: int, end: int, column: int,
    minwidth: int, padding: int,
) -> None:
    """Width of ``column`` for each block of lines that have a cell there (recursive)."""
    line = first
    while line < end:
        if column >= len(lines[line]) - 1:
            out[line] += lines[line][column] if column < len(lines[line]) else ""
            line += 1
            continue
        block_end = line
        width = minwidth
        while block_end < end and column < len(lines[block_end]) - 1:
            width = max(width, len(lines[block_end][column]) + padding)
            block_end += 1
        for index in range(line, block_end):
            out[index] += lines[index][column].ljust(width)
        _format_block(lines, out, line, block_end, column + 1, minwidth, padding)
        line = block_end


def truncate_id(value: str) -> str:
    """Docker's TruncateID: drop an ``algo:`` prefix and keep 12 characters."""
    return value.partition(":")[2][:12] if ":" in value else value[:12]


def ellipsis(text: str, width: int) -> str:
    """Cut ``text`` to ``width`` characters, the last one being ``…``."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f",
            "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(text: str) -> str:
    """Go's strconv.Quote: double quotes, escapes for quotes and unprintables."""
    parts = ['"']
    for char in text:
        if char in _ESCAPES:
            parts.append(_ESCAPES[char])
        elif char.isprintable():
            parts.append(char)
        elif ord(char) < 0x80:
            parts.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            parts.append(f"\\u{ord(char):04x}")
        else:
            parts.append(f"\\U{ord(char):08x}")
    parts.append('"')
    return "".join(parts)


def created_at_text(created: float) -> str:
    """Go's time.Time.String() in local time: ``2026-11-28 00:02:45 +0000 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(created))


def since_text(created: float, now: float) -> str:
    """``"3 seconds ago"``."""
    return f"{human_duration(now - created)} ago"


def split_repo_tag(reference: str) -> tuple[str, str]:
    """``localhost:5000/x:1`` -> (``localhost:5000/x``, ``1``); no tag -> ``<none>``."""
    repo, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, "<none>"
    return repo, tag


# ---- ps ---------------------------------------------------------------------

PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Names": "NAMES",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}

PS_DEFAULT_FORMAT = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)


def _names(names: Sequence[str], trunc: bool) -> str:
    bare = [name.removeprefix("/") for name in names]
    if trunc:  # links ("/other/alias") are hidden unless --no-trunc
        bare = [name for name in bare if "/" not in name]
    return ",".join(bare)


def _image(image: str, image_id: str, trunc: bool) -> str:
    if not image:
        return "<no image>"
    if not trunc:
        return image
    if image.startswith("sha256:") or (image_id and truncate_id(image) == truncate_id(image_id)):
        return truncate_id(image)
    return image.partition("@")[0]


def _ports(ports: Sequence[Mapping[str, Any]]) -> str:
    shown = []
    for port in ports:
        private = f"{port.get('PrivatePort', '')}/{port.get('Type', 'tcp')}"
        public = port.get("PublicPort")
        shown.append(f"{port.get('IP', '0.0.0.0')}:{public}->{private}" if public else private)
    return ", ".join(shown)


def ps_fields(container: Mapping[str, Any], now: float, trunc: bool = True) -> dict[str, str]:
    """The fields ``ps --format`` offers for one /containers/json entry, as Docker renders them.

    Keys are in sorted order so that ``{{json .}}`` prints like Docker's.
    """
    command = str(container.get("Command") or "")
    created = float(container.get("Created") or 0)
    labels = container.get("Labels") or {}
    mounts = container.get("Mounts") or []
    networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
    mount_names = [str(m.get("Name")) for m in mounts if m.get("Name")]
    return {
        "Command": go_quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": created_at_text(created),
        "ID": truncate_id(str(container.get("Id", ""))) if trunc else str(container.get("Id", "")),
        "Image": _image(str(container.get("Image") or ""), str(container.get("ImageID") or ""),
                        trunc),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "LocalVolumes": str(sum(1 for m in mounts if m.get("Driver") == "local")),
        "Mounts": ",".join(ellipsis(n, 15) if trunc else n for n in mount_names),
        "Names": _names(container.get("Names") or [], trunc),
        "Networks": ",".join(sorted(networks)),
        "Ports": _ports(container.get("Ports") or []),
        "RunningFor": since_text(created, now),
        "Size": "0B",
        "State": str(container.get("State") or ""),
        "Status": str(container.get("Status") or ""),
    }


# ---- images -----------------------------------------------------------------

IMAGES_HEADER = ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")


def image_rows(image: Mapping[str, Any], now: float) -> list[tuple[str, str, str, str, str]]:
    """One ``docker images`` row per tag of a /images/json entry (``<none>`` when untagged)."""
    from pycontain.units import format_size_decimal

    created = int(image.get("Created") or 0)
    since = since_text(created, now) if created else "N/A"
    size = format_size_decimal(int(image.get("Size") or 0))
    short = truncate_id(str(image.get("Id", "")))
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    pairs = [split_repo_tag(t) for t in tags] or [("<none>", "<none>")]
    return [(repo, tag, short, since, size) for repo, tag in pairs]


# ---- --format ---------------------------------------------------------------


def tabulate_text(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """``tabulate`` for text whose lines end in newlines and whose cells are tab-separated."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tabulate([line.split("\t") for line in lines], minwidth, padding)


def format_rows(
    fmt: str, rows: Sequence[Mapping[str, Any]], headers: Mapping[str, str], default: str
) -> str:
    """Render rows with a ``--format`` value, as Docker's formatter does.

    ``""``/``"table"`` mean ``default``; ``"json"`` means ``{{json .}}``; a
    ``table`` prefix adds a header row (``headers`` maps field to title) and lays
    the cells out with tabwriter; ``\\t`` and ``\\n`` in the template are escapes.
    ValueError for a bad template or an unknown field.
    """
    from pycontain.cli.template import Template

    if fmt in ("", "table"):
        fmt = default
    elif fmt == "json":
        fmt = "{{json .}}"
    table = fmt.startswith("table")
    if table:
        fmt = fmt[len("table") :]
    fmt = fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    template = Template(fmt)
    body = "".join(template.render(row, strict=True) + "\n" for row in rows)
    if not table:
        return body
    return tabulate_text(template.render(headers, header=True) + "\n" + body)
