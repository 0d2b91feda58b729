"""Container logs in the format of Docker's json-file driver: one JSON object a line.

    {"log":"hello\n","stream":"stdout","time":"2026-11-28T00:02:45.123456789Z"}

The shim writes them (``LogWriter``); the daemon reads them (``read_log_entries``) and
frames them for the API (``frame``: Docker's 8-byte multiplexed stream header).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pycontain.runtime import attach
from pycontain.timefmt import parse_rfc3339_nano, rfc3339_nano

STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}
MAX_LINE = 16 * 1024


@dataclass(frozen=True)
class LogEntry:
    stream: str
    text: bytes
    time: str


class LogWriter:
    """Splits a stream's bytes into lines and appends them to the log file descriptor.

    With ``max_size`` (bytes, 0: no limit) the log rotates as Docker's json-file driver
    does: when a write would take it past ``max_size``, ``LOG.1`` becomes ``LOG.2`` and so
    on, the oldest beyond ``max_files`` goes, ``LOG`` becomes ``LOG.1`` and a new ``LOG``
    is started (``max_files`` 1: the log starts again empty).  Readers follow by inode.
    """

    def __init__(self, fd: int, path: str = "", max_size: int = 0, max_files: int = 1) -> None:
        self.fd = fd
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self.path, self.max_size, self.max_files = path, max_size, max_files
        self.size = os.fstat(fd).st_size if max_size else 0

    def _write(self, data: bytes) -> None:
        if self.max_size and self.size and self.size + len(data) > self.max_size:
            self._rotate()
        os.write(self.fd, data)
        self.size += len(data)

    def _rotate(self) -> None:
        for index in range(self.max_files - 1, 0, -1):
            older = f"{self.path}.{index - 1}" if index > 1 else self.path
            with contextlib.suppress(FileNotFoundError):
                os.rename(older, f"{self.path}.{index}")
        if self.max_files <= 1:
            os.unlink(self.path)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        os.close(self.fd)
        self.fd, self.size = fd, 0

    def close(self) -> None:
        os.close(self.fd)

    def feed(self, stream: str, data: bytes) -> None:
        buffered = self.partial[stream] + data
        lines = buffered.split(b"\n")
        self.partial[stream] = lines.pop()
        out = [self._encode(stream, line + b"\n") for line in lines]
        while len(self.partial[stream]) >= MAX_LINE:
            head, self.partial[stream] = (self.partial[stream][:MAX_LINE],
                                          self.partial[stream][MAX_LINE:])
            out.append(self._encode(stream, head))
        if out and not self.max_size:
            os.write(self.fd, b"".join(out))
        for entry in out if self.max_size else ():
            self._write(entry)

    def flush(self, stream: str) -> None:
        if self.partial[stream]:
            self._write(self._encode(stream, self.partial[stream]))
            self.partial[stream] = b""

    @staticmethod
    def _encode(stream: str, text: bytes) -> bytes:
        entry = {"log": text.decode("utf-8", "replace"), "stream": stream,
                 "time": rfc3339_nano(time.time_ns())}
        return json.dumps(entry, ensure_ascii=False).encode() + b"\n"


def parse_log_line(line: bytes) -> LogEntry | None:
    try:
        raw = json.loads(line)
        return LogEntry(raw["stream"], raw["log"].encode(), raw["time"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a torn last line of a crashed writer


def read_log_entries(log: BinaryIO, offset: int = 0) -> tuple[list[LogEntry], int]:
    """Complete entries from ``offset`` of an open log; returns them and the offset after them.

    Reading from an open file keeps working after the container (and its log) is removed.
    """
    log.seek(offset)
    data = log.read()
    end = data.rfind(b"\n") + 1
    entries = [e for e in map(parse_log_line, data[:end].splitlines()) if e is not None]
    return entries, offset + end


def between(entries: list[LogEntry], since: int | None, until: int | None) -> list[LogEntry]:
    """The entries written at or after ``since`` and before ``until`` (ns; None: open)."""
    if since is None and until is None:
        return entries
    low, high = since or 0, until if until is not None else 1 << 128
    return [e for e in entries if low <= parse_rfc3339_nano(e.time) < high]


def rotated_paths(path: Path) -> list[Path]:
    """The rotated files of the log at ``path`` that exist, oldest first (``LOG.2``,
    ``LOG.1``); the live log itself is not among them."""
    found: list[tuple[int, Path]] = []
    for candidate in path.parent.glob(path.name + ".*"):
        suffix = candidate.name.removeprefix(path.name + ".")
        if suffix.isdigit():
            found.append((int(suffix), candidate))
    return [p for _, p in sorted(found, reverse=True)]


def read_rotated(path: Path) -> list[LogEntry]:
    """Every entry of the rotated files of ``path``, oldest first."""
    entries: list[LogEntry] = []
    for rotated in rotated_paths(path):
        with contextlib.suppress(FileNotFoundError), open(rotated, "rb") as log:
            entries += read_log_entries(log)[0]
    return entries


def reopen_if_rotated(log: BinaryIO, path: Path) -> BinaryIO | None:
    """The new live log when the one open as ``log`` was rotated away, else None."""
    try:
        if os.stat(path).st_ino == os.fstat(log.fileno()).st_ino:
            return None
        return open(path, "rb")
    except FileNotFoundError:
        return None


def frame(entry: LogEntry, timestamps: bool = False) -> bytes:
    """Docker's multiplexed-stream frame: [stream, 0, 0, 0, size (big-endian u32)] + payload."""
    payload = (entry.time.encode() + b" " + entry.text) if timestamps else entry.text
    return attach.encode(STREAM_IDS.get(entry.stream, 1), payload)


def tail_entries(entries: list[LogEntry], tail: str | None) -> list[LogEntry]:
    if tail is None or tail in ("", "all"):
        return entries
    count = int(tail)
    return entries[-count:] if count > 0 else []


def iter_frames(entries: list[LogEntry], stdout: bool, stderr: bool,
                timestamps: bool) -> Iterator[bytes]:
    for entry in entries:
        if (entry.stream == "stdout" and stdout) or (entry.stream == "stderr" and stderr):
            yield frame(entry, timestamps)
