"""Reading the daemon's streaming replies: multiplexed logs and JSON-message lines.

Multiplexed stream (Docker's stdcopy, for containers without a TTY): frames of

    [stream type: 1 stdout, 2 stderr][0][0][0][payload size: uint32 big-endian][payload]

``demultiplex(chunks)`` turns arbitrary chunks of that stream into
``(stream type, payload)`` pairs, whatever the chunk boundaries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO, Any

from pycontain.errors import PycontainError
from pycontain.runtime.attach import FrameReader

__all__ = ["STDERR", "STDOUT", "copy_multiplexed", "demultiplex", "json_messages"]

STDIN, STDOUT, STDERR, SYSTEM_ERROR = 0, 1, 2, 3


def demultiplex(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Frames of a multiplexed stream; PycontainError if it ends inside a frame."""
    frames = FrameReader()
    for chunk in chunks:
        yield from frames.feed(chunk)
    if frames.buffer:
        raise PycontainError("log stream from the daemon ended inside a frame")


def copy_multiplexed(chunks: Iterable[bytes], stdout: IO[bytes], stderr: IO[bytes]) -> None:
    """Write each frame to our stdout or stderr as it arrives."""
    for kind, payload in demultiplex(chunks):
        if kind == SYSTEM_ERROR:
            raise PycontainError(payload.decode(errors="replace").strip())
        target = stderr if kind == STDERR else stdout
        target.write(payload)
        target.flush()


def json_messages(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Decoded objects of a JSON-lines reply (``/images/load``, ``/images/create``).

    An ``{"error": ...}`` or ``{"errorDetail": ...}`` message raises PycontainError.
    """
    import json

    for line in lines:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise PycontainError(f"invalid reply from the daemon: {line[:80]!r}") from exc
        if not isinstance(message, dict):
            continue
        error = message.get("error") or (message.get("errorDetail") or {}).get("message")
        if error:
            raise PycontainError(str(error))
        yield message
