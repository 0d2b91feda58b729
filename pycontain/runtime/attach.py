"""The attach socket: how the daemon reaches a running container's stdin, stdout and terminal.

A shim whose container has stdin open or a terminal listens on ``<state dir>/attach.sock``
(a named socket, so that a restarted daemon can attach again).  Each connection is one
attached client; both directions carry Docker's multiplexed frames,

    [kind][0][0][0][payload size: uint32 big-endian][payload]

shim -> daemon: ``STDOUT`` and ``STDERR`` (a terminal's output is all ``STDOUT``), from the
moment the connection is accepted; EOF once the container's program has exited.
daemon -> shim: ``STDIN`` (bytes for the program), ``CLOSE_STDIN`` (no more input: the
pipe is closed), ``RESIZE`` (payload: rows and columns, two uint16 big-endian).

Unix socket paths are limited to 108 bytes and state directories can be deeper than
that, so both ends name the socket through ``/proc/self/fd/<directory fd>/``.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator

from pycontain.errors import InvalidArgument

ATTACH_SOCKET = "attach.sock"
STDIN, STDOUT, STDERR, CLOSE_STDIN, RESIZE = 0, 1, 2, 4, 5
HEADER = 8


def encode(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BxxxI", kind, len(payload)) + payload


def resize_frame(rows: int, cols: int) -> bytes:
    return encode(RESIZE, struct.pack(">HH", rows, cols))


def parse_resize(payload: bytes) -> tuple[int, int]:
    rows, cols = struct.unpack(">HH", payload[:4].ljust(4, b"\0"))
    return rows, cols


class FrameReader:
    """Frames out of arbitrary chunks of a multiplexed stream."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self.buffer += data
        while len(self.buffer) >= HEADER:
            size = int.from_bytes(self.buffer[4:HEADER], "big")
            if len(self.buffer) < HEADER + size:
                return
            kind, payload = self.buffer[0], bytes(self.buffer[HEADER:HEADER + size])
            del self.buffer[:HEADER + size]
            yield kind, payload


@contextlib.contextmanager
def socket_address(state_dir: str) -> Iterator[str]:
    """A short path to ``<state_dir>/attach.sock``, valid inside the ``with``."""
    fd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{ATTACH_SOCKET}"
    finally:
        os.close(fd)


DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


def parse_detach_keys(text: str) -> bytes:
    """Docker's ``--detach-keys`` format: "ctrl-p,ctrl-q", "a,ctrl-@", ...; "" for the default."""
    if not text:
        return DEFAULT_DETACH_KEYS
    keys = bytearray()
    for part in text.split(","):
        if len(part) == 1:
            keys.append(ord(part))
        elif part.startswith("ctrl-") and len(part) == 6 and (
                part[5].isalpha() or part[5] in "@[\\]^_"):
            keys.append(ord(part[5].upper()) & 0x1F)
        else:
            raise InvalidArgument(f"Invalid detach keys ({part}) provided")
    return bytes(keys)


class DetachKeys:
    """Finds the detach sequence in the client's input, across chunk boundaries."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""  # a prefix of the keys, not yet passed on

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(input to pass on, whether the client detached)."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                self.held = candidate
                continue
            out += self.held
            self.held = b""
            if self.keys.startswith(bytes([byte])):
                self.held = bytes([byte])
            else:
                out.append(byte)
        return bytes(out), False
