"""Image layers on the real kernel: whiteouts, devices and owners as root, overlay
semantics of the unpacked layers, and archives converted by skopeo."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontain.images import Image, ImageStore
from tests.unit.images_helpers import (
    ImageSpec,
    diff_id,
    directory,
    docker_save_archive,
    file,
    layer_tar,
    special,
    symlink,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mknod, chown, trusted xattrs"),
]

LOWER = layer_tar(
    [
        directory("etc/"),
        file("etc/a", b"lower a"),
        file("etc/b", b"lower b"),
        directory("opaque/"),
        file("opaque/old", b"old"),
        directory("gone/"),
        file("gone/inside", b"x"),
    ]
)
UPPER = layer_tar(
    [
        file("etc/.wh.a"),
        directory("opaque/"),
        file("opaque/.wh..wh..opq"),
        file("opaque/new", b"new"),
        file(".wh.gone"),
        file("etc/.wh..wh.plnk"),
    ],
    compress=True,
)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "data" / "image")


def _load_one(store: ImageStore, tmp_path: Path, spec: ImageSpec) -> Image:
    store.load_archive(docker_save_archive(tmp_path / "image.tar", [spec]))
    return store.get(spec.id)


@pytest.fixture
def overlay_mount(tmp_path: Path) -> Iterator[tuple[Path, list[Path]]]:
    """A mountpoint and a list to fill with lowerdirs; mounted by ``mount_overlay``."""
    target = tmp_path / "merged"
    target.mkdir()
    yield target, []
    subprocess.run(["umount", str(target)], check=False, capture_output=True)


def mount_overlay(target: Path, lowerdirs: list[Path]) -> None:
    options = "lowerdir=" + ":".join(str(d) for d in lowerdirs)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)], check=True)


def test_whiteouts_become_overlay_whiteouts(store: ImageStore, tmp_path: Path) -> None:
    image = _load_one(store, tmp_path, ImageSpec([LOWER, UPPER], ["wh:1"]))
    upper, lower = store.layer_dirs(image)
    assert upper.parent.name == diff_id(UPPER)[7:]
    whiteout = (upper / "etc" / "a").lstat()
    assert stat.S_ISCHR(whiteout.st_mode)
    assert whiteout.st_rdev == os.makedev(0, 0)
    assert stat.S_ISCHR((upper / "gone").lstat().st_mode)
    assert os.getxattr(upper / "opaque", "trusted.overlay.opaque") == b"y"
    assert not (upper / "etc" / ".wh.a").exists()
    assert sorted(os.listdir(upper / "etc")) == ["a"]
    assert (lower / "etc" / "a").read_bytes() == b"lower a"


def test_overlay_of_two_layers_hides_whited_out_files(
    store: ImageStore, tmp_path: Path, overlay_mount: tuple[Path, list[Path]]
) -> None:
    image = _load_one(store, tmp_path, ImageSpec([LOWER, UPPER], ["wh:1"]))
    target, _ = overlay_mount
    mount_overlay(target, store.layer_dirs(image))
    assert sorted(os.listdir(target / "etc")) == ["b"]
    assert not (target / "etc" / "a").exists()
    assert (target / "etc" / "b").read_bytes() == b"lower b"
    assert sorted(os.listdir(target / "opaque")) == ["new"]
    assert not (target / "gone").exists()


def test_devices_fifos_owners_and_modes(store: ImageStore, tmp_path: Path) -> None:
    layer = layer_tar(
        [
            directory("dev/"),
            special("dev/null", tarfile.CHRTYPE, 1, 3),
            special("dev/loop9", tarfile.BLKTYPE, 7, 9),
            special("run/fifo", tarfile.FIFOTYPE),
            file("home/u/f", b"mine", mode=0o4750, uid=1234, gid=5678),
            directory("home/u/", mode=0o700, uid=1234, gid=5678),
            symlink("home/u/link", "/nowhere"),
        ]
    )
    (root,) = store.layer_dirs(_load_one(store, tmp_path, ImageSpec([layer], ["dev:1"])))
    null = (root / "dev" / "null").lstat()
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK((root / "dev" / "loop9").lstat().st_mode)
    assert stat.S_ISFIFO((root / "run" / "fifo").lstat().st_mode)
    owned = (root / "home" / "u" / "f").lstat()
    assert (owned.st_uid, owned.st_gid, stat.S_IMODE(owned.st_mode)) == (1234, 5678, 0o4750)
    home = (root / "home" / "u").lstat()
    assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (1234, 0o700)


def test_hostile_whiteouts_and_devices_stay_inside(store: ImageStore, tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_text("keep")
    dev_null = os.stat("/dev/null")
    layer = layer_tar(
        [
            symlink("s", str(sentinel)),
            file("s/.wh.secret"),
            file("s/.wh..wh..opq"),
            symlink("d", "/dev"),
            special("d/null", tarfile.CHRTYPE, 1, 5),
        ]
    )
    (root,) = store.layer_dirs(_load_one(store, tmp_path, ImageSpec([layer], ["evil:1"])))
    assert (sentinel / "secret").read_text() == "keep"
    assert "trusted.overlay.opaque" not in os.listxattr(sentinel)
    inside = root / str(sentinel).lstrip("/")
    assert stat.S_ISCHR((inside / "secret").lstat().st_mode)
    assert os.getxattr(inside, "trusted.overlay.opaque") == b"y"
    assert (root / "dev" / "null").lstat().st_rdev == os.makedev(1, 5)
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev) == (dev_null.st_ino, dev_null.st_rdev)


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_load_oci_archive_made_by_skopeo(store: ImageStore, tmp_path: Path) -> None:
    spec = ImageSpec([LOWER, UPPER], ["source:1"])
    docker_archive = docker_save_archive(tmp_path / "docker.tar", [spec])
    oci = tmp_path / "oci.tar"
    subprocess.run(
        ["skopeo", "copy", f"docker-archive:{docker_archive}", f"oci-archive:{oci}:conv/app:v3"],
        check=True,
        capture_output=True,
    )
    with tarfile.open(oci) as tar:
        names = set(tar.getnames())
    assert "index.json" in names and "manifest.json" not in names

    assert store.load_archive(oci) == ["Loaded image: conv/app:v3"]
    image = store.get("docker.io/conv/app:v3")
    assert image.diff_ids == (diff_id(LOWER), diff_id(UPPER))
    assert image.config.cmd == ("/bin/sh",)
    upper, _ = store.layer_dirs(image)
    assert stat.S_ISCHR((upper / "etc" / "a").lstat().st_mode)
