"""rootfs/build.py: the offline images, built into a temporary directory and taken apart."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pycontain.images.config import host_architecture

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "rootfs" / "build.py"
BUSYBOX = Path("/bin/busybox")
FIXED_MTIME = 1704067200

pytestmark = pytest.mark.skipif(
    not BUSYBOX.exists(), reason="needs Debian's busybox-static at /bin/busybox"
)


def run_build(out: Path, *extra: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--out", str(out), *extra],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("rootfs-out")
    run_build(directory)
    return directory


@dataclass
class SavedImage:
    """A `docker save` archive taken apart."""

    manifest: dict[str, Any]
    config: dict[str, Any]
    repositories: dict[str, dict[str, str]]
    layers: list[bytes]
    config_blob: bytes

    @classmethod
    def read(cls, path: Path) -> SavedImage:
        with tarfile.open(path) as archive:

            def member(name: str) -> bytes:
                extracted = archive.extractfile(name)
                assert extracted is not None, name
                return extracted.read()

            (manifest,) = json.loads(member("manifest.json"))
            config_blob = member(manifest["Config"])
            return cls(
                manifest=manifest,
                config=json.loads(config_blob),
                repositories=json.loads(member("repositories")),
                layers=[member(name) for name in manifest["Layers"]],
                config_blob=config_blob,
            )

    def layer_members(self, index: int) -> dict[str, tarfile.TarInfo]:
        with tarfile.open(fileobj=io.BytesIO(self.layers[index])) as layer:
            return {info.name.rstrip("/"): info for info in layer.getmembers()}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def merged_tree(image: SavedImage) -> dict[str, bytes | None]:
    """Apply the layers like overlayfs: path -> file content (None for dirs and links)."""
    tree: dict[str, bytes | None] = {}
    for layer_bytes in image.layers:
        with tarfile.open(fileobj=io.BytesIO(layer_bytes)) as layer:
            for info in layer.getmembers():
                name = info.name.rstrip("/")
                parent, _, base = name.rpartition("/")
                if base == ".wh..wh..opq":
                    tree = {
                        path: v for path, v in tree.items() if not path.startswith(parent + "/")
                    }
                elif base.startswith(".wh."):
                    gone = f"{parent}/{base[4:]}" if parent else base[4:]
                    tree = {
                        path: v
                        for path, v in tree.items()
                        if path != gone and not path.startswith(gone + "/")
                    }
                else:
                    extracted = layer.extractfile(info) if info.isfile() else None
                    tree[name] = extracted.read() if extracted else None
    return tree


@pytest.mark.parametrize(
    ("archive", "repo_tag", "layer_count"),
    [
        ("busybox.tar", "busybox:latest", 1),
        ("multilayer.tar", "pycontain-test/multilayer:latest", 4),
    ],
)
def test_manifest_config_and_layers_agree(
    out: Path, archive: str, repo_tag: str, layer_count: int
) -> None:
    image = SavedImage.read(out / archive)

    assert image.manifest["RepoTags"] == [repo_tag]
    assert image.manifest["Config"] == sha256(image.config_blob).removeprefix("sha256:") + ".json"
    assert len(image.layers) == layer_count
    assert image.config["rootfs"] == {
        "type": "layers",
        "diff_ids": [sha256(layer) for layer in image.layers],
    }
    assert len(image.config["history"]) == layer_count
    top_layer_dir = image.manifest["Layers"][-1].split("/")[0]
    repository, tag = repo_tag.rsplit(":", 1)
    assert image.repositories == {repository: {tag: top_layer_dir}}
    assert (image.config["architecture"], image.config["os"]) == (host_architecture(), "linux")


def test_busybox_layer_has_the_binary_every_applet_and_the_base_files(out: Path) -> None:
    image = SavedImage.read(out / "busybox.tar")
    members = image.layer_members(0)

    binary = members["bin/busybox"]
    assert binary.isfile() and binary.mode == 0o755
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        if applet == "bin/busybox":
            continue
        link = members[applet]
        assert link.issym(), applet
        assert os.path.normpath(os.path.join(os.path.dirname(applet), link.linkname)) == (
            "bin/busybox"
        )
    tree = merged_tree(image)
    assert tree["etc/passwd"] is not None
    assert tree["etc/passwd"].startswith(b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:")
    assert tree["etc/group"] == b"root:x:0:\nnobody:x:65534:\n"
    assert stat.S_IMODE(members["tmp"].mode) == 0o1777
    assert members["root"].mode == 0o700
    for empty_dir in ("proc", "sys", "dev", "home", "var"):
        assert members[empty_dir].isdir()
        assert not any(name.startswith(empty_dir + "/") for name in members)


def test_every_entry_is_owned_by_root_with_a_fixed_mtime_in_sorted_order(out: Path) -> None:
    for archive in ("busybox.tar", "multilayer.tar"):
        image = SavedImage.read(out / archive)
        for index in range(len(image.layers)):
            members = list(image.layer_members(index).values())
            assert [m.name for m in members] == sorted(m.name for m in members)
            assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, FIXED_MTIME)}


def test_busybox_config(out: Path) -> None:
    config = SavedImage.read(out / "busybox.tar").config

    assert config["config"] == {
        "Cmd": ["sh"],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    }


def test_multilayer_whiteouts_opaque_dir_and_changes_merge_as_documented(out: Path) -> None:
    busybox = SavedImage.read(out / "busybox.tar")
    image = SavedImage.read(out / "multilayer.tar")

    assert image.layers[0] == busybox.layers[0]
    assert ".wh..wh..opq" in {name.rsplit("/", 1)[-1] for name in image.layer_members(2)}
    tree = merged_tree(image)
    app = sorted(path for path in tree if path.startswith("app/"))
    assert app == ["app/cache", "app/cache/new.txt", "app/greet.sh", "app/hello.txt"]
    assert tree["app/hello.txt"] == b"hello from layer 3\n"
    assert tree["etc/motd"] == b"motd from layer 2\n"
    assert tree["bin/busybox"] is not None


def test_multilayer_config(out: Path) -> None:
    config = SavedImage.read(out / "multilayer.tar").config["config"]

    assert config["WorkingDir"] == "/app"
    assert config["Entrypoint"] == ["/app/greet.sh"]
    assert config["Cmd"] == ["world"]
    assert "GREETING=hello" in config["Env"]


def test_a_second_run_rebuilds_nothing(out: Path) -> None:
    lines = run_build(out)

    assert all(line.startswith(("up to date:", "skipped")) for line in lines), lines


def test_forced_builds_are_byte_identical(out: Path, tmp_path: Path) -> None:
    lines = run_build(tmp_path, "--force")

    assert any(line.startswith(f"built {tmp_path / 'busybox.tar'}") for line in lines)
    for archive in ("busybox.tar", "multilayer.tar"):
        assert (tmp_path / archive).read_bytes() == (out / archive).read_bytes()


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_reads_the_archives_and_copies_them_to_an_oci_layout(
    out: Path, tmp_path: Path
) -> None:
    for archive in ("busybox.tar", "multilayer.tar"):
        image = SavedImage.read(out / archive)
        inspected = json.loads(
            subprocess.run(
                ["skopeo", "inspect", f"docker-archive:{out / archive}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        assert inspected["Layers"] == image.config["rootfs"]["diff_ids"]
        assert inspected["Architecture"] == image.config["architecture"]
        subprocess.run(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "--quiet",
                f"docker-archive:{out / archive}",
                f"oci:{tmp_path / 'layout'}:{archive.removesuffix('.tar')}",
            ],
            check=True,
        )
    assert (tmp_path / "layout" / "index.json").exists()
    subprocess.run(
        ["skopeo", "inspect", f"oci-archive:{out / 'busybox-oci.tar'}:busybox:oci"],
        check=True,
        capture_output=True,
    )
