"""Image verbs end to end: load, import, images, inspect, rmi, and running what was loaded."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.root


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def test_images_lists_the_loaded_busybox(daemon: Daemon) -> None:
    out = daemon.cli("images", check=True).stdout.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    row = next(line.split() for line in out[1:] if line.startswith("busybox "))
    assert row[1] == "latest" and re.fullmatch(r"[0-9a-f]{12}", row[2])
    assert re.search(r"\d(\.\d+)?[kMG]B$", out[1 + [r.split()[0] for r in out[1:]]
                                               .index("busybox")])
    info = json.loads(daemon.cli("inspect", "busybox", check=True).stdout)[0]
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["Os"] == "linux" and len(info["RootFS"]["Layers"]) == 1


def test_multilayer_image_with_whiteouts(daemon: Daemon, test_images: Path) -> None:
    loaded = daemon.cli("load", "-i", str(test_images / "multilayer.tar"), check=True).stdout
    assert "Loaded image: pycontain-test/multilayer:latest" in loaded
    info = json.loads(daemon.cli("inspect", "pycontain-test/multilayer", check=True).stdout)[0]
    assert len(info["RootFS"]["Layers"]) >= 3
    # The image's Entrypoint + Cmd: /app/greet.sh world.
    default = daemon.cli("run", "--rm", "pycontain-test/multilayer")
    assert (default.returncode, default.stdout) == (0, "hello world\n"), default.stderr
    # The merged tree: whiteouts hide, the opaque dir shows only the top layer, later wins.
    result = daemon.cli("run", "--rm", "--entrypoint", "sh", "pycontain-test/multilayer", "-c",
                        "pwd; echo $GREETING; ls /app /app/cache; cat /app/hello.txt /etc/motd; "
                        "ls /app/old-dir /app/remove-me.txt 2>&1 | wc -l")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "/app", "hello", "/app:", "cache", "greet.sh", "hello.txt", "", "/app/cache:",
        "new.txt", "hello from layer 3", "motd from layer 2", "2"]


def test_oci_archive_made_by_skopeo_loads_and_runs(daemon: Daemon, test_images: Path,
                                                   tmp_path: Path) -> None:
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed (make test installs it)")
    oci = tmp_path / "busybox-oci.tar"
    subprocess.run(["skopeo", "copy", "--quiet", f"docker-archive:{test_images}/busybox.tar",
                    f"oci-archive:{oci}:ocibox:v1"], check=True)
    loaded = daemon.cli("load", "-i", str(oci), check=True).stdout
    assert "ocibox:v1" in loaded
    result = daemon.cli("run", "--rm", "ocibox:v1", "echo", "from-oci")
    assert result.stdout == "from-oci\n"
    daemon.cli("rmi", "ocibox:v1", check=True)


def test_import_a_flat_rootfs_then_run_it(daemon: Daemon, tmp_path: Path) -> None:
    busybox = Path("/bin/busybox").read_bytes()
    bb = _file("bin/busybox", busybox, 0o755)
    link = tarfile.TarInfo("bin/sh")
    link.type, link.linkname = tarfile.SYMTYPE, "busybox"
    archive = tmp_path / "flat.tar"
    archive.write_bytes(_tar_bytes([bb, (link, None), _file("hello.txt", b"imported\n")]))
    image_id = daemon.cli("import", str(archive), "flat:1", check=True).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    result = daemon.cli("run", "--rm", "flat:1", "/bin/sh", "-c", "/bin/busybox cat /hello.txt")
    assert result.stdout == "imported\n", result.stderr
    no_command = daemon.cli("run", "--rm", "flat:1")  # an imported image has no Cmd
    assert no_command.returncode == 125 and "No command specified" in no_command.stderr
    removed = daemon.cli("rmi", "flat:1", check=True).stdout
    assert "Untagged: flat:1" in removed and "Deleted: sha256:" in removed


def test_rmi_of_an_image_in_use_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    archive = tmp_path / "tiny.tar"
    archive.write_bytes(_tar_bytes([_file("bin/busybox", Path("/bin/busybox").read_bytes(),
                                          0o755)]))
    daemon.cli("import", str(archive), "tiny:1", check=True)
    daemon.cli("create", "--name", "uses-tiny", "tiny:1", "/bin/busybox", "true", check=True)
    refused = daemon.cli("rmi", "tiny:1")
    assert refused.returncode == 1 and "conflict" in refused.stderr
    daemon.cli("rm", "uses-tiny", check=True)
    daemon.cli("rmi", "tiny:1", check=True)


@pytest.mark.parametrize("attack", ["dotdot", "absolute", "symlink-parent", "hardlink-out"])
def test_hostile_archives_are_refused_or_contained(daemon: Daemon, tmp_path: Path,
                                                   attack: str) -> None:
    sentinel_dir = tmp_path / "outside"
    sentinel_dir.mkdir()
    target = sentinel_dir / "pwned"
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    if attack == "dotdot":
        members.append(_file("../../../../../../" + str(target).lstrip("/"), b"x"))
    elif attack == "absolute":
        members.append(_file(str(target), b"x"))
    elif attack == "symlink-parent":
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, str(sentinel_dir)
        members += [(link, None), _file("escape/pwned", b"x")]
    else:
        (sentinel_dir / "secret").write_text("secret")
        hard = tarfile.TarInfo("stolen")
        hard.type, hard.linkname = tarfile.LNKTYPE, str(sentinel_dir / "secret")
        members.append((hard, None))
    archive = tmp_path / "evil.tar"
    archive.write_bytes(_tar_bytes(members))
    images_before = daemon.cli("images", "-q").stdout
    result = daemon.cli("import", str(archive), f"evil:{attack}")
    assert "Traceback" not in result.stderr
    assert not target.exists()
    if attack == "hardlink-out":
        assert (sentinel_dir / "secret").read_text() == "secret"
    if result.returncode == 0:
        # Contained: the entry landed inside the layer, never outside it.
        daemon.cli("rmi", f"evil:{attack}", check=True)
    else:
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1
        assert daemon.cli("images", "-q").stdout == images_before


def test_corrupt_archive_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive at all" * 100)
    result = daemon.cli("load", "-i", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
