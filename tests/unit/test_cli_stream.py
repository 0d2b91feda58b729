"""pycontain.cli.stream: Docker's multiplexed log frames and JSON-message lines."""

from __future__ import annotations

import io
import struct

import pytest

from pycontain.cli.stream import copy_multiplexed, demultiplex, json_messages
from pycontain.errors import PycontainError


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", kind, len(payload)) + payload


def test_frames_survive_any_chunking() -> None:
    data = frame(1, b"hello\n") + frame(2, b"x" * 70000) + frame(1, b"")
    expected = [(1, b"hello\n"), (2, b"x" * 70000), (1, b"")]
    for size in (1, 3, 8, 9, 1000, len(data)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert list(demultiplex(chunks)) == expected


def test_a_stream_cut_inside_a_frame_is_an_error() -> None:
    with pytest.raises(PycontainError, match="ended inside a frame"):
        list(demultiplex([frame(1, b"hello")[:-1]]))


def test_copy_sends_each_stream_to_its_target() -> None:
    out, err = io.BytesIO(), io.BytesIO()
    copy_multiplexed([frame(1, b"a"), frame(2, b"b"), frame(1, b"c")], out, err)
    assert (out.getvalue(), err.getvalue()) == (b"ac", b"b")


def test_system_error_frame_raises() -> None:
    with pytest.raises(PycontainError, match="log driver failed"):
        copy_multiplexed([frame(3, b"log driver failed\n")], io.BytesIO(), io.BytesIO())


def test_json_messages() -> None:
    lines = [b'{"stream": "Loaded image: busybox:latest\\n"}\n', b"\n", b'{"status": "ok"}\n']
    assert list(json_messages(lines)) == [
        {"stream": "Loaded image: busybox:latest\n"}, {"status": "ok"}]
    with pytest.raises(PycontainError, match="bad layer"):
        list(json_messages([b'{"errorDetail": {"message": "bad layer"}, "error": "bad layer"}']))
    with pytest.raises(PycontainError, match="invalid reply"):
        list(json_messages([b"not json"]))
