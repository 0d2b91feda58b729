"""Hostile-layer corpus (issue 5): each archive is refused cleanly or unpacked strictly
inside the layer directory; a sentinel next to it is never touched."""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
from pathlib import Path

import pytest
from images_helpers import Entry, directory, file, layer_tar, symlink, tree_snapshot

from pycontain.errors import ImageArchiveError
from pycontain.images import unpack_layer


def unpack_or_refuse(entries: list[Entry], dest: Path) -> bool:
    """True when unpacked, False when refused with ImageArchiveError (both are fine)."""
    try:
        unpack_layer(io.BytesIO(layer_tar(entries)), dest, "hostile layer")
    except ImageArchiveError:
        return False
    return True


def assert_contained(tmp_path: Path, sentinel: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer", "sentinel"]
    assert tree_snapshot(sentinel) == {"secret": (0o100644, 7, b"keep me")}


@pytest.mark.parametrize("target", ["ABSOLUTE", "..", "../sentinel", "/"])
def test_a_dot_entry_that_is_a_symlink(tmp_path: Path, layer_root: Path, sentinel: Path,
                                       target: str) -> None:
    target = str(sentinel) if target == "ABSOLUTE" else target
    unpack_or_refuse([symlink(".", target), file("secret", b"pwned"),
                      file("./sentinel/secret", b"pwned")], layer_root)
    assert layer_root.is_dir() and not layer_root.is_symlink()
    assert_contained(tmp_path, sentinel)


@pytest.mark.parametrize("target", ["ABSOLUTE", "../sentinel", "../../../.."])
def test_whiteouts_aimed_through_a_symlink(tmp_path: Path, layer_root: Path, sentinel: Path,
                                           target: str) -> None:
    target = str(sentinel) if target == "ABSOLUTE" else target
    unpack_or_refuse([symlink("d", target), file("d/.wh.secret"), file("d/.wh..wh..opq")],
                     layer_root)
    assert_contained(tmp_path, sentinel)


@pytest.mark.parametrize("name", ["../.wh.sentinel", ".wh..", ".wh...", "/../.wh.sentinel",
                                  "./.wh..wh..opq/../../.wh.sentinel"])
def test_whiteouts_aimed_at_the_roots_parent(tmp_path: Path, layer_root: Path, sentinel: Path,
                                             name: str) -> None:
    unpack_or_refuse([file(name)], layer_root)
    assert_contained(tmp_path, sentinel)


def test_a_huge_declared_file_is_bounded(tmp_path: Path, layer_root: Path,
                                         sentinel: Path) -> None:
    """A header claiming 1 TiB followed by nothing: refused as truncated, no disk used."""
    header = tarfile.TarInfo("bomb")
    header.size = 1 << 40
    data = header.tobuf(format=tarfile.GNU_FORMAT)
    started = time.monotonic()
    with pytest.raises(ImageArchiveError):
        unpack_layer(io.BytesIO(data), layer_root, "hostile layer")
    assert time.monotonic() - started < 5
    assert sum(p.stat().st_size for p in layer_root.rglob("*") if p.is_file()) == 0
    assert_contained(tmp_path, sentinel)


def test_a_sparse_bomb_takes_bounded_disk(tmp_path: Path, layer_root: Path,
                                          sentinel: Path) -> None:
    """64 MiB of zeros (compressible to almost nothing): unpacked or refused, quickly."""
    size = 64 << 20
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w|gz") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    started = time.monotonic()
    with contextlib.suppress(ImageArchiveError):
        unpack_layer(io.BytesIO(buffer.getvalue()), layer_root, "hostile layer")
    assert time.monotonic() - started < 20
    used = sum(p.stat().st_blocks * 512 for p in layer_root.rglob("*") if p.is_file())
    assert used <= size + (1 << 20)
    assert_contained(tmp_path, sentinel)


def test_many_entries_and_deep_nesting_are_bounded(tmp_path: Path, layer_root: Path,
                                                   sentinel: Path) -> None:
    deep = "/".join(["d"] * 400)  # deeper than PATH_MAX, shallower than rmtree's recursion
    entries = [directory(f"{'/'.join(['d'] * i)}/") for i in range(1, 200)]
    entries += [file(f"many/{i}") for i in range(20000)]
    entries += [file(f"{deep}/x", b"deep")]
    started = time.monotonic()
    unpack_or_refuse(entries, layer_root)
    assert time.monotonic() - started < 60
    assert_contained(tmp_path, sentinel)
