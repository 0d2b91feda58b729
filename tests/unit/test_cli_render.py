"""pycontain.cli.render: Docker's durations, statuses, tabwriter layout, ps and images rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pycontain.cli.render import (
    PS_DEFAULT_FORMAT,
    PS_HEADERS,
    container_status_text,
    created_at_text,
    ellipsis,
    format_rows,
    go_quote,
    human_duration,
    image_rows,
    ps_fields,
    split_repo_tag,
    tabulate,
    truncate_id,
)

SECOND = 1.0
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY
YEAR = 365 * DAY
NOW = 1_800_000_000.0


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "Less than a second"),
        (0, "Less than a second"),
        (0.45, "Less than a second"),
        (1, "1 second"),
        (1.9, "1 second"),
        (2, "2 seconds"),
        (45, "45 seconds"),
        (59, "59 seconds"),
        (59.99, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3 * MINUTE, "3 minutes"),
        (35 * MINUTE + 40, "35 minutes"),
        (59 * MINUTE + 59, "59 minutes"),
        (1 * HOUR, "About an hour"),
        (1 * HOUR + 29 * MINUTE, "About an hour"),
        (1 * HOUR + 31 * MINUTE, "2 hours"),
        (3 * HOUR + 29 * MINUTE, "3 hours"),
        (3 * HOUR + 31 * MINUTE, "4 hours"),
        (24 * HOUR, "24 hours"),
        (DAY + 12 * HOUR, "36 hours"),
        (47 * HOUR + 29 * MINUTE, "47 hours"),
        (47 * HOUR + 31 * MINUTE, "2 days"),
        (2 * DAY, "2 days"),
        (7 * DAY, "7 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (3 * WEEK, "3 weeks"),
        (4 * WEEK + 3 * DAY, "4 weeks"),
        (MONTH, "4 weeks"),
        (MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (3 * MONTH + WEEK, "3 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (13 * MONTH, "13 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("state", "started", "finished", "code", "text"),
    [
        ("created", 0, 0, 0, "Created"),
        ("running", NOW - 3, 0, 0, "Up 3 seconds"),
        ("running", NOW - 0.2, 0, 0, "Up Less than a second"),
        ("running", NOW - 2 * MINUTE, 0, 0, "Up 2 minutes"),
        ("paused", NOW - 2 * MINUTE, 0, 0, "Up 2 minutes (Paused)"),
        ("restarting", NOW - 60, NOW - 5, 1, "Restarting (1) 5 seconds ago"),
        ("exited", NOW - 60, NOW - 5, 0, "Exited (0) 5 seconds ago"),
        ("exited", NOW - 60, NOW - 2 * HOUR, 137, "Exited (137) 2 hours ago"),
        ("exited", NOW - 60, 0, 0, ""),
        ("exited", 0, 0, 0, "Created"),
        ("removing", NOW - 60, NOW - 5, 0, "Removal In Progress"),
        ("dead", NOW - 60, NOW - 5, 0, "Dead"),
    ],
)
def test_container_status_text(
    state: str, started: float, finished: float, code: int, text: str
) -> None:
    assert container_status_text(state, started, finished, code, NOW) == text


def test_tabulate_pads_columns_and_leaves_the_last_cell_alone() -> None:
    out = tabulate([["A", "BB", "C"], ["long cell here", "", "tail"]])
    assert out == (
        "A                BB        C\n"
        "long cell here             tail\n"
    )


def test_tabulate_minwidth_and_blocks_like_go_tabwriter() -> None:
    # A line with fewer cells ends the column block: the next block has its own widths.
    out = tabulate([["a", "b", "c"], ["only"], ["xxxxxxxxxxxxxx", "y", "z"]], minwidth=4,
                   padding=1)
    assert out == (
        "a   b   c\n"
        "only\n"
        "xxxxxxxxxxxxxx y   z\n"
    )


def test_tabulate_top_style() -> None:
    out = tabulate([["UID", "PID", "CMD"], ["root", "4242", "sleep 100"]], minwidth=20)
    assert out == (
        "UID                 PID                 CMD\n"
        "root                4242                sleep 100\n"
    )


def test_helpers() -> None:
    assert truncate_id("sha256:" + "ab" * 32) == "abababababab"
    assert truncate_id("0123456789abcdef") == "0123456789ab"
    assert ellipsis("short", 20) == "short"
    assert ellipsis("x" * 20, 20) == "x" * 20
    assert ellipsis("x" * 21, 20) == "x" * 19 + "…"
    assert go_quote('say "hi"\\\n\t\x01é…') == '"say \\"hi\\"\\\\\\n\\t\\x01é…"'
    assert created_at_text(1_795_824_165) == "2026-11-28 00:02:45 +0000 UTC"
    assert split_repo_tag("busybox:latest") == ("busybox", "latest")
    assert split_repo_tag("localhost:5000/x:1") == ("localhost:5000/x", "1")
    assert split_repo_tag("localhost:5000/x") == ("localhost:5000/x", "<none>")


def _container(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Id": "3f4e5d6c7b8a" + "0" * 52,
        "Names": ["/brave_curie"],
        "Image": "busybox",
        "ImageID": "sha256:" + "1" * 64,
        "Command": "sleep 1000",
        "Created": int(NOW - 5),
        "Ports": [],
        "Labels": {},
        "State": "running",
        "Status": "Up 4 seconds",
        "Mounts": [],
        "NetworkSettings": {"Networks": {}},
    }
    base.update(fields)
    return base


CONTAINERS = [
    _container(),
    _container(
        Id="abcdef0123456789" + "f" * 48,
        Names=["/web"],
        Image="busybox:latest",
        Command="sh -c 'echo hello world; sleep 100'",
        Created=int(NOW - 2 * HOUR),
        State="exited",
        Status="Exited (0) 2 hours ago",
    ),
]


def _ps(fmt: str = "", trunc: bool = True) -> str:
    rows = [ps_fields(c, NOW, trunc) for c in CONTAINERS]
    return format_rows(fmt, rows, PS_HEADERS, PS_DEFAULT_FORMAT)


def test_ps_default_table_is_laid_out_like_docker() -> None:
    assert _ps().splitlines() == [
        "CONTAINER ID   IMAGE            COMMAND                  CREATED         "
        "STATUS                   PORTS     NAMES",
        '3f4e5d6c7b8a   busybox          "sleep 1000"             5 seconds ago   '
        "Up 4 seconds                       brave_curie",
        "abcdef012345   busybox:latest   \"sh -c 'echo hello w…\"   2 hours ago     "
        "Exited (0) 2 hours ago             web",
    ]


def test_ps_header_only_when_empty() -> None:
    assert format_rows("", [], PS_HEADERS, PS_DEFAULT_FORMAT) == (
        "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
    )


def test_ps_no_trunc_shows_full_id_and_command() -> None:
    line = _ps("{{.ID}} {{.Command}}", trunc=False).splitlines()[1]
    assert line == "abcdef0123456789" + "f" * 48 + " \"sh -c 'echo hello world; sleep 100'\""


def test_ps_custom_table_with_escaped_tabs() -> None:
    assert _ps(r"table {{.Names}}\t{{.State}}\t{{.RunningFor}}").splitlines() == [
        "NAMES         STATE     CREATED",
        "brave_curie   running   5 seconds ago",
        "web           exited    2 hours ago",
    ]


def test_ps_template_without_table_has_no_header() -> None:
    assert _ps("{{.ID}}:{{.Names}}:{{.Status}}") == (
        "3f4e5d6c7b8a:brave_curie:Up 4 seconds\n"
        "abcdef012345:web:Exited (0) 2 hours ago\n"
    )
    assert _ps(r"{{.Names}}\t{{.Image}}") == "brave_curie\tbusybox\nweb\tbusybox:latest\n"


def test_ps_headers_of_every_field() -> None:
    header = _ps("table {{.ID}}|{{.Names}}|{{.Image}}|{{.Command}}|{{.Status}}|{{.State}}|"
                 "{{.RunningFor}}|{{.CreatedAt}}|{{.Ports}}").splitlines()[0]
    assert header == ("CONTAINER ID|NAMES|IMAGE|COMMAND|STATUS|STATE|CREATED|CREATED AT|PORTS")


def test_ps_json_lines() -> None:
    lines = _ps("json").splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == sorted(first)
    assert first["ID"] == "3f4e5d6c7b8a"
    assert first["Names"] == "brave_curie"
    assert first["Command"] == '"sleep 1000"'
    assert first["CreatedAt"] == created_at_text(NOW - 5)
    assert first["RunningFor"] == "5 seconds ago"
    assert first["State"] == "running"
    assert first["Status"] == "Up 4 seconds"
    assert first["Ports"] == ""
    assert lines[0].startswith('{"Command":"\\"sleep 1000\\"","CreatedAt":')
    assert _ps("{{json .}}") == _ps("json")


def test_ps_unknown_field_is_an_error() -> None:
    with pytest.raises(ValueError, match="can't evaluate field Nope"):
        _ps("{{.Nope}}")


def test_ps_fields_details() -> None:
    fields = ps_fields(_container(
        Names=["/db", "/web/db"], Image="sha256:" + "2" * 64, ImageID="sha256:" + "2" * 64,
        Ports=[{"PrivatePort": 80, "Type": "tcp"},
               {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
        Labels={"b": "2", "a": "1"},
    ), NOW)
    assert fields["Names"] == "db"
    assert fields["Image"] == "222222222222"
    assert fields["Ports"] == "80/tcp, 0.0.0.0:8080->80/tcp"
    assert fields["Labels"] == "a=1,b=2"
    assert ps_fields(_container(Image="busybox@sha256:" + "3" * 64), NOW)["Image"] == "busybox"
    assert ps_fields(_container(Names=["/db", "/web/db"]), NOW, trunc=False)["Names"] == (
        "db,web/db"
    )


def test_image_rows() -> None:
    image = {"Id": "sha256:" + "c" * 64, "RepoTags": ["busybox:latest", "busybox:1.36"],
             "Created": int(NOW - 2 * WEEK), "Size": 4_261_000}
    assert image_rows(image, NOW) == [
        ("busybox", "latest", "cccccccccccc", "2 weeks ago", "4.26MB"),
        ("busybox", "1.36", "cccccccccccc", "2 weeks ago", "4.26MB"),
    ]
    untagged = {"Id": "sha256:" + "d" * 64, "RepoTags": None, "Created": 0, "Size": 999}
    assert image_rows(untagged, NOW) == [("<none>", "<none>", "dddddddddddd", "N/A", "999B")]
