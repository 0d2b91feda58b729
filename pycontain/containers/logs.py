"""Container logs in the format of Docker's json-file driver: one JSON object a line.

    {"log":"hello\n","stream":"stdout","time":"2026-11-28T00:02:45.123456789Z"}

The shim writes them (``LogWriter``); the daemon reads them (``read_log_entries``) and
frames them for the API (``frame``: Docker's 8-byte multiplexed stream header).
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pycontain.timefmt import rfc3339_nano

STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}
MAX_LINE = 16 * 1024


@dataclass(frozen=True)
class LogEntry:
    stream: str
    text: bytes
    time: str


class LogWriter:
    """Splits a stream's bytes into lines and appends them to the log file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def feed(self, stream: str, data: bytes) -> None:
        buffered = self.partial[stream] + data
        lines = buffered.split(b"\n")
        self.partial[stream] = lines.pop()
        out = [self._encode(stream, line + b"\n") for line in lines]
        while len(self.partial[stream]) >= MAX_LINE:
            head, self.partial[stream] = (self.partial[stream][:MAX_LINE],
                                          self.partial[stream][MAX_LINE:])
            out.append(self._encode(stream, head))
        if out:
            os.write(self.fd, b"".join(out))

    def flush(self, stream: str) -> None:
        if self.partial[stream]:
            os.write(self.fd, self._encode(stream, self.partial[stream]))
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


def frame(entry: LogEntry, timestamps: bool = False) -> bytes:
    """Docker's multiplexed-stream frame: [stream, 0, 0, 0, size (big-endian u32)] + payload."""
    payload = (entry.time.encode() + b" " + entry.text) if timestamps else entry.text
    return struct.pack(">BxxxI", STREAM_IDS.get(entry.stream, 1), len(payload)) + payload


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
