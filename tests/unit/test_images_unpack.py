"""The safe layer extractor: what it preserves, and what hostile layers cannot do."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from images_helpers import (
    MTIME,
    Entry,
    directory,
    file,
    hardlink,
    layer_tar,
    sha256,
    symlink,
    tree_snapshot,
)

from pycontain.errors import ImageArchiveError
from pycontain.images import unpack_layer


def unpack(entries: list[Entry], dest: Path, compress: bool = False) -> str:
    data = layer_tar(entries, compress=compress)
    return unpack_layer(io.BytesIO(data), dest, "test layer").diff_id


def assert_contained(tmp_path: Path, sentinel: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer", "sentinel"]
    assert tree_snapshot(sentinel) == {"secret": (0o100644, 7, b"keep me")}


def test_preserves_files_dirs_links_modes_and_times(layer_root: Path) -> None:
    entries = [
        directory("bin/", mode=0o750),
        file("bin/tool", b"#!/bin/sh\n", mode=0o4755),
        symlink("bin/abs", "/etc/hostname"),
        symlink("bin/rel", "tool"),
        hardlink("bin/tool2", "bin/tool"),
        file("etc/deep/conf", b"x=1"),
    ]
    data = layer_tar(entries)
    result = unpack_layer(io.BytesIO(data), layer_root, "test layer")
    assert result.diff_id == sha256(data) == result.blob_digest
    assert result.size == len(b"#!/bin/sh\n") + len(b"x=1")
    tool = layer_root / "bin" / "tool"
    assert tool.read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o4755
    assert tool.stat().st_mtime == MTIME
    assert stat.S_IMODE((layer_root / "bin").stat().st_mode) == 0o750
    assert (layer_root / "bin").stat().st_mtime == MTIME
    assert os.readlink(layer_root / "bin" / "abs") == "/etc/hostname"
    assert os.readlink(layer_root / "bin" / "rel") == "tool"
    assert (layer_root / "bin" / "tool2").stat().st_ino == tool.stat().st_ino
    assert (layer_root / "etc" / "deep").is_dir()


def test_gzip_layer_has_the_uncompressed_diff_id(layer_root: Path) -> None:
    plain = layer_tar([file("a", b"data")])
    compressed = gzip.compress(plain)
    result = unpack_layer(io.BytesIO(compressed), layer_root, "gz layer")
    assert result.diff_id == sha256(plain)
    assert result.blob_digest == sha256(compressed)
    assert (layer_root / "a").read_bytes() == b"data"


def test_user_xattrs_kept_and_overlay_xattrs_dropped(layer_root: Path) -> None:
    entry = file("f", b"x")
    entry.info.pax_headers = {
        "SCHILY.xattr.user.note": "hello",
        "SCHILY.xattr.trusted.overlay.redirect": "/elsewhere",
    }
    unpack([entry], layer_root)
    attrs = os.listxattr(layer_root / "f")
    assert "trusted.overlay.redirect" not in attrs
    if "user.note" in attrs:  # not every filesystem has user xattrs
        assert os.getxattr(layer_root / "f", "user.note") == b"hello"


def test_later_entries_replace_earlier_ones(layer_root: Path) -> None:
    unpack(
        [file("x", b"one"), file("x", b"two"), directory("d/"), file("d", b"now a file")],
        layer_root,
    )
    assert (layer_root / "x").read_bytes() == b"two"
    assert (layer_root / "d").read_bytes() == b"now a file"


def test_dot_dot_name_is_refused(tmp_path: Path, layer_root: Path, sentinel: Path) -> None:
    with pytest.raises(ImageArchiveError, match=r"'\.\./sentinel/secret'"):
        unpack([file("../sentinel/secret", b"pwned")], layer_root)
    assert_contained(tmp_path, sentinel)


def test_absolute_name_lands_inside(tmp_path: Path, layer_root: Path, sentinel: Path) -> None:
    unpack([file(f"{sentinel}/secret", b"pwned")], layer_root)
    assert (layer_root / sentinel.relative_to("/") / "secret").read_bytes() == b"pwned"
    assert_contained(tmp_path, sentinel)


@pytest.mark.parametrize("target", ["ABSOLUTE", "../sentinel", "../../../../../..", "/"])
def test_symlinked_parent_is_resolved_inside(
    tmp_path: Path, layer_root: Path, sentinel: Path, target: str
) -> None:
    target = str(sentinel) if target == "ABSOLUTE" else target
    unpack([symlink("a", target), file("a/secret", b"pwned"), file("a/new", b"x")], layer_root)
    assert os.readlink(layer_root / "a") == target
    assert_contained(tmp_path, sentinel)
    written = [p for p in layer_root.rglob("secret") if p.is_file()]
    assert len(written) == 1
    assert written[0].read_bytes() == b"pwned"


def test_symlink_chain_through_parents(tmp_path: Path, layer_root: Path, sentinel: Path) -> None:
    entries = [
        symlink("x", "y/.."),
        directory("y/"),
        symlink("y/up", "../../.."),
        symlink("z", "y/up/y/up"),
        file("z/secret", b"pwned"),
    ]
    unpack(entries, layer_root)
    assert (layer_root / "secret").read_bytes() == b"pwned"
    assert_contained(tmp_path, sentinel)


def test_symlink_replaced_by_directory(tmp_path: Path, layer_root: Path, sentinel: Path) -> None:
    unpack([symlink("a", str(sentinel)), directory("a/"), file("a/secret", b"pwned")], layer_root)
    assert (layer_root / "a").is_dir()
    assert not (layer_root / "a").is_symlink()
    assert (layer_root / "a" / "secret").read_bytes() == b"pwned"
    assert_contained(tmp_path, sentinel)


def test_symlink_as_last_component_is_replaced_not_followed(
    tmp_path: Path, layer_root: Path, sentinel: Path
) -> None:
    unpack([symlink("f", str(sentinel / "secret")), file("f", b"pwned")], layer_root)
    assert not (layer_root / "f").is_symlink()
    assert (layer_root / "f").read_bytes() == b"pwned"
    assert_contained(tmp_path, sentinel)


@pytest.mark.parametrize("target", ["ABSOLUTE", "/etc/passwd", "missing"])
def test_hardlink_out_of_the_tree_is_refused(
    tmp_path: Path, layer_root: Path, sentinel: Path, target: str
) -> None:
    target = str(sentinel / "secret") if target == "ABSOLUTE" else target
    with pytest.raises(ImageArchiveError, match=r"'h'.*not in the layer"):
        unpack([hardlink("h", target)], layer_root)
    assert_contained(tmp_path, sentinel)


def test_hardlink_through_symlinked_parent_is_refused(
    tmp_path: Path, layer_root: Path, sentinel: Path
) -> None:
    with pytest.raises(ImageArchiveError, match="not in the layer"):
        unpack([symlink("a", str(sentinel)), hardlink("h", "a/secret")], layer_root)
    with pytest.raises(ImageArchiveError, match=r"'\.\.' in path"):
        unpack([hardlink("h2", "../sentinel/secret")], layer_root)
    assert_contained(tmp_path, sentinel)


def test_hardlink_then_write_does_not_reach_target(layer_root: Path) -> None:
    unpack([file("orig", b"original"), hardlink("link", "orig"), file("link", b"new")], layer_root)
    assert (layer_root / "orig").read_bytes() == b"original"
    assert (layer_root / "link").read_bytes() == b"new"


def test_symlink_loop_is_refused(layer_root: Path) -> None:
    with pytest.raises(ImageArchiveError, match=r"'a/x'.*too many levels"):
        unpack([symlink("a", "b"), symlink("b", "a"), file("a/x")], layer_root)


def test_file_as_parent_is_refused(layer_root: Path) -> None:
    with pytest.raises(ImageArchiveError, match=r"'f/x'.*not a directory"):
        unpack([file("f", b"x"), file("f/x")], layer_root)


def test_unknown_entry_type_is_refused(layer_root: Path) -> None:
    entry = file("odd")
    entry.info.type = b"Z"
    with pytest.raises(ImageArchiveError, match=r"'odd'.*unsupported"):
        unpack([entry], layer_root)


@pytest.mark.parametrize("cut", [100, 700, 1500])
def test_truncated_layer_is_refused(layer_root: Path, cut: int) -> None:
    data = layer_tar([file("big", b"x" * 4000)])
    with pytest.raises(ImageArchiveError, match="test layer"):
        unpack_layer(io.BytesIO(data[:cut]), layer_root, "test layer")


def test_corrupt_gzip_is_refused(layer_root: Path) -> None:
    data = bytearray(gzip.compress(layer_tar([file("a", b"x" * 1000)])))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(ImageArchiveError, match="test layer"):
        unpack_layer(io.BytesIO(bytes(data)), layer_root, "test layer")


def test_zstd_layers_unpack_and_corrupt_ones_are_refused(layer_root: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    tar = layer_tar([file("a", b"zstd!" * 1000)])
    blob = zstandard.ZstdCompressor().compress(tar)
    unpacked = unpack_layer(io.BytesIO(blob), layer_root, "zstd layer")
    assert (layer_root / "a").read_bytes() == b"zstd!" * 1000
    assert (unpacked.diff_id, unpacked.blob_digest) == (sha256(tar), sha256(blob))
    corrupt = bytearray(blob)
    corrupt[len(corrupt) // 2] ^= 0xFF
    with pytest.raises(ImageArchiveError, match="test layer"):
        (layer_root / "again").mkdir()
        unpack_layer(io.BytesIO(bytes(corrupt)), layer_root / "again", "test layer")


def test_long_names_work(layer_root: Path) -> None:
    name = "/".join(["d" * 100] * 5) + "/file"
    unpack([file(name, b"deep")], layer_root)
    assert (layer_root / name).read_bytes() == b"deep"


def test_diff_id_covers_trailing_padding(layer_root: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("a")
        tar.addfile(info, io.BytesIO(b""))
    data = buffer.getvalue() + b"\0" * 10240
    assert unpack_layer(io.BytesIO(data), layer_root, "padded").diff_id == sha256(data)
