"""containers/filesystem.py, commit's whiteouts, log rotation and time windows: against
temp dirs standing for a container's root (no daemon)."""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontain.cli.events import parse_time
from pycontain.containers import filesystem, logs
from pycontain.containers.commit import whiteout_entries
from pycontain.containers.record import rotation_limits
from pycontain.errors import InvalidArgument, NotFound
from tests.conftest import needs_root


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    """(the container's root, a host dir beside it, an fd of the root); the root holds
    /evil -> the host dir's absolute path and /evil2 -> ../../../host."""
    top, host = tmp_path / "root", tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host\n")
    inside = top / str(host).lstrip("/")
    inside.mkdir(parents=True)
    (inside / "secret").write_text("container\n")
    (top / "host").mkdir()
    (top / "evil").symlink_to(host)
    (top / "evil2").symlink_to("../../../../../host")
    (top / "loop").symlink_to("loop")
    fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
    yield top, host, fd
    os.close(fd)


def _tar(*members: tuple[str, str, bytes]) -> io.BytesIO:
    """A tar of (name, kind "file"|"dir"|"sym", data or link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, data.decode()
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def test_reading_through_symlinks_stays_inside_the_root(root: tuple[Path, Path, int]) -> None:
    _, _, fd = root
    out = io.BytesIO()
    filesystem.read_archive(fd, "/evil/secret", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        member = tar.extractfile("secret")
        assert member is not None and member.read() == b"container\n"
    with pytest.raises(NotFound):  # <root>/host has no secret; the host's is never read
        filesystem.read_archive(fd, "/evil2/secret", io.BytesIO())
    with pytest.raises(InvalidArgument, match="too many levels"):
        filesystem.read_archive(fd, "/loop/x", io.BytesIO())


def test_the_last_component_is_not_followed(root: tuple[Path, Path, int]) -> None:
    _, host, fd = root
    out = io.BytesIO()
    filesystem.read_archive(fd, "/evil", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        (member,) = tar.getmembers()
    assert member.issym() and member.linkname == str(host)
    stat = json.loads(base64.b64decode(filesystem.path_stat(fd, "/evil")))
    assert stat["linkTarget"] == str(host) and stat["name"] == "evil"


def test_a_hostile_archive_cannot_write_out_of_the_root(root: tuple[Path, Path, int]) -> None:
    top, host, fd = root
    filesystem.write_archive(fd, "/", _tar(("link", "sym", b"../../../../host"),
                                           ("link/planted", "file", b"x"),
                                           ("evil/planted", "file", b"y"),
                                           ("evil2", "file", b"replaced")))
    assert sorted(p.name for p in host.iterdir()) == ["secret"]
    assert (top / "host" / "planted").read_bytes() == b"x"
    assert (top / str(host).lstrip("/") / "planted").read_bytes() == b"y"
    assert not (top / "evil2").is_symlink() and (top / "evil2").read_bytes() == b"replaced"
    with pytest.raises(InvalidArgument, match="refused entry"):
        filesystem.write_archive(fd, "/", _tar(("../escape", "file", b"z")))
    with pytest.raises(InvalidArgument, match="not a directory"):
        filesystem.write_archive(fd, "/evil2", _tar(("f", "file", b"z")))


def test_directories_and_symlinks_round_trip(root: tuple[Path, Path, int]) -> None:
    top, _, fd = root
    filesystem.write_archive(fd, "/", _tar(("d", "dir", b""), ("d/sub", "dir", b""),
                                           ("d/sub/f", "file", b"data"),
                                           ("d/ln", "sym", b"sub/f")))
    out = io.BytesIO()
    filesystem.read_archive(fd, "/d", out)
    assert _names(out.getvalue()) == ["d", "d/ln", "d/sub", "d/sub/f"]
    assert (top / "d" / "ln").readlink() == Path("sub/f")
    exported = io.BytesIO()
    filesystem.export(fd, exported)
    assert {"d/sub/f", "evil", "host"} <= set(_names(exported.getvalue()))


@needs_root()
def test_changes_and_commit_whiteouts(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "gone").write_text("x")
    (lower / "etc" / "kept").write_text("x")
    (upper / "etc").mkdir(parents=True)
    os.mknod(upper / "etc" / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    (upper / "etc" / "kept").write_text("changed")
    (upper / "new").mkdir()
    (upper / "new" / "f").write_text("added")
    fs = filesystem.ContainerFilesystem("c", 0, upper, tmp_path / "work", (lower,), tmp_path)
    found = [(c.letter, c.path) for c in filesystem.changes(fs)]
    assert found == [("C", "/etc"), ("D", "/etc/gone"), ("C", "/etc/kept"), ("A", "/new"),
                     ("A", "/new/f")]
    os.setxattr(upper / "new", "trusted.overlay.opaque", b"y")
    out = io.BytesIO()
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with tarfile.open(fileobj=out, mode="w") as tar:
            for name in ("etc", "new"):
                filesystem.write_tree(tar, fd, name, name, whiteout_entries)
    finally:
        os.close(fd)
    assert _names(out.getvalue()) == ["etc", "etc/.wh.gone", "etc/kept", "new",
                                      "new/.wh..wh..opq", "new/f"]


def test_log_writer_rotates_and_readers_see_every_kept_entry(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    writer = logs.LogWriter(fd, str(path), max_size=400, max_files=3)
    for n in range(50):
        writer.feed("stdout", f"line{n}\n".encode())
    writer.close()
    rotated = logs.rotated_paths(path)
    assert [p.name for p in rotated] == ["c-json.log.2", "c-json.log.1"]
    assert all(p.stat().st_size <= 400 for p in [*rotated, path])
    with open(path, "rb") as live:
        entries = logs.read_rotated(path) + logs.read_log_entries(live)[0]
    texts = [e.text.decode().strip() for e in entries]
    assert texts[-1] == "line49"
    first = int(texts[0].removeprefix("line"))
    assert texts == [f"line{n}" for n in range(first, 50)]
    times = [logs.parse_rfc3339_nano(e.time) for e in entries]
    assert logs.between(entries, times[3], times[5]) == entries[3:5]


def test_rotation_limits_and_times() -> None:
    assert rotation_limits({}) == (0, 1)
    assert rotation_limits({"max-size": "10k", "max-file": "3"}) == (10240, 3)
    with pytest.raises(InvalidArgument, match="without max-size"):
        rotation_limits({"max-file": "2"})
    with pytest.raises(InvalidArgument, match="max-file"):
        rotation_limits({"max-size": "1k", "max-file": "0"})
    with pytest.raises(InvalidArgument, match="unknown log opt"):
        rotation_limits({"compress": "true"})
    assert parse_time("2026-11-28T01:00:00Z", 0) == 1795827600.0
    assert parse_time("1.5", 0) == 1.5
    assert parse_time("10m", 1000.0) == 400.0
    with pytest.raises(InvalidArgument):
        parse_time("yesterday", 0)
