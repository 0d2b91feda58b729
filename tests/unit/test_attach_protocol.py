"""The attach socket's frames and the detach keys (runtime/attach.py): pure logic."""

from __future__ import annotations

import pytest

from pycontain.errors import InvalidArgument
from pycontain.runtime import attach


def test_frames_survive_any_chunking() -> None:
    stream = (attach.encode(attach.STDOUT, b"hello") + attach.encode(attach.STDERR, b"")
              + attach.resize_frame(24, 80) + attach.encode(attach.STDIN, b"x" * 70000))
    for size in (1, 3, 8, 9, 4096, len(stream)):
        reader = attach.FrameReader()
        frames = [f for i in range(0, len(stream), size) for f in reader.feed(stream[i:i + size])]
        assert [kind for kind, _ in frames] == [attach.STDOUT, attach.STDERR, attach.RESIZE,
                                                attach.STDIN]
        assert frames[0][1] == b"hello" and frames[3][1] == b"x" * 70000
        assert attach.parse_resize(frames[2][1]) == (24, 80)
        assert not reader.buffer


@pytest.mark.parametrize(("text", "keys"), [
    ("", b"\x10\x11"), ("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-a,x", b"\x01x"),
    ("ctrl-@", b"\x00"), ("ctrl-[", b"\x1b"), ("q", b"q"),
])
def test_parse_detach_keys(text: str, keys: bytes) -> None:
    assert attach.parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["ctrl-", "ctrl-1", "ab", "ctrl-p,", "alt-x"])
def test_bad_detach_keys(text: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid detach keys"):
        attach.parse_detach_keys(text)


def test_detach_keys_found_across_chunks_and_prefixes_passed_on() -> None:
    keys = attach.DetachKeys(b"\x10\x11")
    assert keys.feed(b"ab\x10") == (b"ab", False)      # held: may be the start
    assert keys.feed(b"c") == (b"\x10c", False)        # was not: passed on
    assert keys.feed(b"\x10\x10") == (b"\x10", False)  # the second may start it again
    assert keys.feed(b"\x11rest") == (b"", True)       # detached: nothing after it
    assert attach.DetachKeys(b"\x10\x11").feed(b"x\x10\x11") == (b"x", True)
