"""Pulling from a real registry (Debian's docker-registry on 127.0.0.1), end to end:
the CLI's output, run pulling a missing image, the unpacked tree against umoci's, and
the bad cases (tampered blob, connection cut mid-layer, basic auth, a multi-platform
index, concurrent pulls, the daemon killed mid-layer).  No traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycontain.client import Client
from pycontain.errors import PycontainError
from pycontain.images.config import host_architecture
from tests.conftest import BIN, Daemon, isolated_daemon
from tests.e2e.conftest import MULTILAYER
from tests.registry_server import (
    FaultyProxy,
    LocalRegistry,
    get_manifest,
    put_manifest,
    request,
    running_registry,
    upload_blob,
)

pytestmark = [pytest.mark.root, pytest.mark.skipif(
    shutil.which("docker-registry") is None or shutil.which("skopeo") is None,
    reason="needs docker-registry and skopeo (make setup)")]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
GZIP_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"


def _layers_root(daemon: Daemon) -> Path:
    return daemon.data_root / "image" / "layers"


def _store_state(daemon: Daemon) -> tuple[list[str], list[str], list[str]]:
    """Layers, images and staging dirs of the daemon's store."""
    image_root = daemon.data_root / "image"
    staging = [p.name for p in (daemon.data_root / "tmp").iterdir()
               if p.name.startswith("image-staging-")]
    return (sorted(os.listdir(image_root / "layers")), sorted(os.listdir(image_root / "images")),
            staging)


def _generated_image(address: str, repository: str, payload: bytes) -> dict[str, Any]:
    """Push a one-layer image holding /payload by hand; return its manifest."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("payload")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = buffer.getvalue()
    layer = gzip.compress(tar_bytes, mtime=0)
    config = json.dumps({
        "architecture": host_architecture(), "os": "linux",
        "config": {"Cmd": ["/payload"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]},
    }).encode()
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "size": len(config),
                   "digest": upload_blob(address, repository, config)},
        "layers": [{"mediaType": GZIP_LAYER, "size": len(layer),
                    "digest": upload_blob(address, repository, layer)}],
    }
    put_manifest(address, repository, "latest", manifest)
    return manifest


# -- the happy path -------------------------------------------------------------------


def test_pull_prints_dockers_lines_then_runs(daemon: Daemon, registry: LocalRegistry) -> None:
    name = f"{registry.address}/{MULTILAYER}"
    result = daemon.cli("pull", name, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"latest: Pulling from {MULTILAYER}"
    complete = [line for line in lines if line.endswith(": Pull complete")]
    assert len(complete) + sum(line.endswith(": Already exists") for line in lines) == 4
    assert any(line.startswith("Digest: sha256:") for line in lines)
    assert f"Status: Downloaded newer image for {name}:latest" in lines
    assert lines[-1] == f"{name}:latest"
    assert not any("Downloading" in line for line in lines)  # not a terminal: no progress
    run = daemon.cli("run", "--rm", name)
    assert (run.returncode, run.stdout) == (0, "hello world\n"), run.stderr
    again = daemon.cli("pull", name, check=True).stdout
    assert f"Status: Image is up to date for {name}:latest" in again
    info = daemon.inspect(name)
    assert len(info["RootFS"]["Layers"]) == 4  # type: ignore[index]


def test_run_pulls_a_missing_image(daemon: Daemon, registry: LocalRegistry) -> None:
    name = f"{registry.address}/library/busybox"
    never = daemon.cli("run", "--rm", "--pull", "never", name, "true")
    assert never.returncode == 125 and "No such image" in never.stderr
    result = daemon.cli("run", "--rm", name, "echo", "pulled")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pulled\n"
    assert f"Unable to find image '{name}:latest' locally" in result.stderr
    assert "Pulling from library/busybox" in result.stderr
    always = daemon.cli("run", "--rm", "--pull", "always", name, "true")
    assert always.returncode == 0 and "Image is up to date" in always.stderr
    bad = daemon.cli("run", "--pull", "sometimes", name)
    assert bad.returncode == 125 and "invalid pull option" in bad.stderr


def test_pull_by_digest_and_unknown_tag(daemon: Daemon, registry: LocalRegistry) -> None:
    manifest, _ = get_manifest(registry.address, "library/busybox", "latest")
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    name = f"{registry.address}/library/busybox@{digest}"
    result = daemon.cli("pull", name, check=True)
    assert result.stdout.splitlines()[-1] == name
    missing = daemon.cli("pull", f"{registry.address}/library/busybox:nope")
    assert missing.returncode == 1
    assert "manifest for" in missing.stderr and "not found" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


# -- the unpacked tree against umoci's ---------------------------------------------------


def _snapshot(root: Path) -> tuple[dict[str, tuple[Any, ...]], set[frozenset[str]]]:
    entries: dict[str, tuple[Any, ...]] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory, name)
            rel = str(path.relative_to(root))
            st = path.lstat()
            kind = stat.S_IFMT(st.st_mode)
            detail: Any = None
            if stat.S_ISREG(st.st_mode):
                detail = (st.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                detail = st.st_rdev
            entries[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, detail)
    links = {frozenset(paths) for paths in inodes.values() if len(paths) > 1}
    return entries, links


@contextlib.contextmanager
def _merged(lowerdirs: list[Path]) -> Iterator[Path]:
    target = Path(tempfile.mkdtemp(prefix="pycontain-merged-"))
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "ro,lowerdir=" + ":".join(map(str, lowerdirs)), str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)
        target.rmdir()


@pytest.mark.skipif(shutil.which("umoci") is None, reason="needs umoci")
def test_unpacked_tree_matches_umoci(daemon: Daemon, registry: LocalRegistry,
                                     tmp_path: Path) -> None:
    name = f"{registry.address}/{MULTILAYER}"
    daemon.cli("pull", name, check=True)
    diff_ids = daemon.inspect(name)["RootFS"]["Layers"]  # type: ignore[index]
    lowerdirs = [_layers_root(daemon) / d.removeprefix("sha256:") / "diff"
                 for d in reversed(diff_ids)]
    layout, bundle = tmp_path / "oci", tmp_path / "bundle"
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false",
                    f"docker://{name}:latest", f"oci:{layout}:latest"], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True,
                   capture_output=True)
    theirs, their_links = _snapshot(bundle / "rootfs")
    with _merged(lowerdirs) as merged:
        ours, our_links = _snapshot(merged)
    assert len(ours) > 10
    differ = {path: (ours.get(path), theirs.get(path)) for path in ours.keys() | theirs.keys()
              if ours.get(path) != theirs.get(path)}
    assert not differ
    assert our_links == their_links


# -- bad registries ----------------------------------------------------------------------


def test_tampered_blob_is_refused_and_store_unchanged(daemon: Daemon,
                                                    registry: LocalRegistry) -> None:
    manifest = _generated_image(registry.address, "tampered/image", os.urandom(4096))
    blob = registry.blob_file(manifest["layers"][0]["digest"])
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    before = _store_state(daemon)
    result = daemon.cli("pull", f"{registry.address}/tampered/image")
    assert result.returncode == 1
    assert "digest mismatch" in result.stderr or "corrupt" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _store_state(daemon) == before


def test_connection_cut_mid_layer(daemon: Daemon, registry: LocalRegistry) -> None:
    manifest = _generated_image(registry.address, "flaky/image", os.urandom(256 << 10))
    proxy = FaultyProxy(registry.address)
    try:
        name = f"{proxy.address}/flaky/image"
        layer = manifest["layers"][0]["digest"]
        proxy.cut_only = layer
        before = _store_state(daemon)
        proxy.cut_blobs = 100  # every attempt: refused with a clear error, nothing kept
        result = daemon.cli("pull", name, timeout=120)
        assert result.returncode == 1
        assert "cut off" in result.stderr or "ended after" in result.stderr, result.stderr
        assert _store_state(daemon) == before
        proxy.cut_blobs = 1  # once: the retry completes the pull
        result = daemon.cli("pull", name, timeout=120)
        assert result.returncode == 0, result.stderr
        assert proxy.blob_gets[layer] >= 2
        run = daemon.cli("run", "--rm", "--entrypoint", "",
                         f"{proxy.address}/flaky/image", "true")
        assert run.returncode != 0  # the image has no shell: the pull itself is the test
    finally:
        proxy.stop()


def test_concurrent_pulls_download_each_layer_once(daemon: Daemon,
                                                   registry: LocalRegistry) -> None:
    for n in range(3):  # three layers in one image, unique to this test
        _generated_image(registry.address, f"concurrent/part{n}", os.urandom(64 << 10))
    manifest = _generated_image(registry.address, "concurrent/image", os.urandom(512 << 10))
    proxy = FaultyProxy(registry.address)
    try:
        name = f"{proxy.address}/concurrent/image"
        command = [str(BIN / "pycontain"), "-H", daemon.host, "pull", name]
        processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True) for _ in range(4)]
        outputs = [p.communicate(timeout=120) for p in processes]
        assert all(p.returncode == 0 for p in processes), outputs
        layer = manifest["layers"][0]["digest"]
        assert proxy.blob_gets[layer] == 1
        assert proxy.blob_gets[manifest["config"]["digest"]] <= 4
    finally:
        proxy.stop()


def test_basic_auth_registry(daemon: Daemon, test_images: Path) -> None:
    with running_registry(("tester", "s3cret")) as reg:
        reg.push_archive(test_images / "busybox.tar", "private/busybox:latest")
        name = f"{reg.address}/private/busybox"
        denied = daemon.cli("pull", name)
        assert denied.returncode == 1 and "user name and password" in denied.stderr
        client = Client(daemon.host)
        wrong = base64.urlsafe_b64encode(json.dumps(
            {"username": "tester", "password": "nope"}).encode()).decode()
        with pytest.raises(PycontainError, match=r"pull access denied|unauthorized"):
            _api_pull(client, "private/busybox", reg.address, wrong)
        good = base64.urlsafe_b64encode(json.dumps(
            {"username": "tester", "password": "s3cret"}).encode()).decode()
        messages = _api_pull(client, "private/busybox", reg.address, good)
        assert messages[-1]["status"] == f"Status: Downloaded newer image for {name}:latest"
        assert daemon.cli("run", "--rm", name, "true").returncode == 0


def _api_pull(client: Client, path: str, address: str, auth: str) -> list[dict[str, Any]]:
    reply = client.request("POST", "/images/create",
                           query={"fromImage": f"{address}/{path}", "tag": "latest"},
                           headers={"X-Registry-Auth": auth})
    messages = [json.loads(line) for line in reply.iter_lines() if line.strip()]
    for message in messages:
        if "error" in message:
            raise PycontainError(message["error"])
    return messages


def test_index_with_several_platforms(daemon: Daemon, registry: LocalRegistry) -> None:
    address, repo = registry.address, "multi/busybox"
    own = _generated_image(address, repo, b"native")
    own_bytes, _ = get_manifest(address, repo, "latest")
    other_arch = "s390x" if host_architecture() != "s390x" else "arm64"
    foreign_config = json.dumps({"architecture": other_arch, "os": "linux",
                                 "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    foreign = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
               "config": {"mediaType": CONFIG_TYPE, "size": len(foreign_config),
                          "digest": upload_blob(address, repo, foreign_config)},
               "layers": []}
    foreign_digest = put_manifest(address, repo, "foreign", foreign)
    foreign_size = len(json.dumps(foreign).encode())
    own_digest = "sha256:" + hashlib.sha256(own_bytes).hexdigest()
    index = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": foreign_digest, "size": foreign_size,
         "platform": {"os": "linux", "architecture": other_arch}},
        {"mediaType": DOCKER_MANIFEST, "digest": foreign_digest, "size": foreign_size,
         "platform": {"os": "unknown", "architecture": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest"}},
        {"mediaType": DOCKER_MANIFEST, "digest": own_digest, "size": len(own_bytes),
         "platform": {"os": "linux", "architecture": host_architecture()}},
    ]}
    index_digest = put_manifest(address, repo, "multi", index)
    result = daemon.cli("pull", f"{address}/{repo}:multi", check=True)
    assert f"Digest: {index_digest}" in result.stdout
    info = daemon.inspect(f"{address}/{repo}:multi")
    assert info["Architecture"] == host_architecture()
    assert info["RootFS"]["Layers"] == json.loads(  # type: ignore[index]
        registry_config(address, repo, own))["rootfs"]["diff_ids"]
    only_foreign = {**index, "manifests": index["manifests"][:2]}  # type: ignore[index]
    put_manifest(address, repo, "foreign-only", only_foreign)
    refused = daemon.cli("pull", f"{address}/{repo}:foreign-only")
    assert refused.returncode == 1 and "no matching manifest" in refused.stderr


def registry_config(address: str, repo: str, manifest: dict[str, Any]) -> bytes:
    status, _, body = request(address, "GET",
                              f"/v2/{repo}/blobs/{manifest['config']['digest']}")
    assert status == 200
    return body


# -- a pull cut off by the daemon's death ----------------------------------------------------


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip layer holding ``files``: (its bytes, its diff_id)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return gzip.compress(raw, mtime=0, compresslevel=1), "sha256:" + hashlib.sha256(raw).hexdigest()


def _busybox_plus(address: str, repository: str, extra: list[tuple[bytes, str]]
                  ) -> dict[str, Any]:
    """busybox (from ``library/busybox`` of the same registry) with ``extra`` layers on top."""
    base_bytes, _ = get_manifest(address, "library/busybox", "latest")
    base = json.loads(base_bytes)
    config = json.loads(registry_config(address, "library/busybox", base))
    layers = []
    for descriptor in base["layers"]:
        status, _, data = request(address, "GET",
                                  f"/v2/library/busybox/blobs/{descriptor['digest']}")
        assert status == 200
        layers.append({**descriptor, "digest": upload_blob(address, repository, data)})
    for data, diff_id in extra:
        layers.append({"mediaType": GZIP_LAYER, "size": len(data),
                       "digest": upload_blob(address, repository, data)})
        config["rootfs"]["diff_ids"].append(diff_id)
    config["architecture"] = host_architecture()
    config_bytes = json.dumps(config).encode()
    manifest = {**base, "layers": layers,
                "config": {**base["config"], "size": len(config_bytes),
                           "digest": upload_blob(address, repository, config_bytes)}}
    put_manifest(address, repository, "latest", manifest)
    return manifest


def _wait_for(check: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_daemon_killed_mid_layer(test_images: Path, registry: LocalRegistry) -> None:
    small, small_id = _layer({"small": b"committed before the kill\n"})
    payload = os.urandom(6 << 20)
    big, big_id = _layer({f"part{n}": payload[n << 20:(n + 1) << 20] for n in range(6)})
    manifest = _busybox_plus(registry.address, "killed/image", [(small, small_id),
                                                                 (big, big_id)])
    big_digest = manifest["layers"][-1]["digest"]
    proxy = FaultyProxy(registry.address)
    proxy.cut_only, proxy.cut_blobs, proxy.hold = big_digest, 1, True
    name = f"{proxy.address}/killed/image"
    with isolated_daemon(test_images) as daemon:
        layers = daemon.data_root / "image" / "layers"
        staging_root = daemon.data_root / "tmp"

        def staged_files() -> list[Path]:
            return [p for p in staging_root.glob("image-staging-*/layer-*/diff/*") if p.is_file()]

        pull = subprocess.Popen([str(BIN / "pycontain"), "-H", daemon.host, "pull", name],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proxy.holding.wait(60), "the big layer was never requested"
            _wait_for(lambda: staged_files() and (layers / small_id[7:]).is_dir(),
                      "the small layer committed and the big one half unpacked")
            daemon.kill()
            pull.communicate(timeout=30)
        finally:
            proxy.release.set()
            if pull.poll() is None:
                pull.kill()
                pull.wait()
        try:
            assert pull.returncode != 0
            assert staged_files(), "the kill did not land mid-layer"
            assert not (layers / big_id[7:]).exists()

            daemon.start()
            assert not list(staging_root.glob("image-staging-*"))
            left = sorted(os.listdir(layers))
            assert big_id[7:] not in left and small_id[7:] not in left  # an orphan: removed
            assert all((layers / entry / "layer.json").is_file() for entry in left)
            assert "killed/image" not in daemon.cli("images", check=True).stdout
            assert daemon.cli("inspect", name).returncode == 1

            result = daemon.cli("pull", name, timeout=120)
            assert result.returncode == 0, result.stderr
            assert proxy.blob_gets[big_digest] == 2
            run = daemon.cli("run", "--rm", name, "sh", "-c",
                             "cat /small; cat /part* | md5sum")
            assert run.returncode == 0, run.stderr
            assert run.stdout == ("committed before the kill\n"
                                  f"{hashlib.md5(payload).hexdigest()}  -\n")
        finally:
            proxy.stop()
