"""Builders of layer tars and image archives for the images tests (plain tarfile, in memory).

Entries are owned by the current user unless a test says otherwise, so that extracting
them needs no root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MTIME = 1_600_000_000


def _info(name: str, kind: bytes, mode: int, **extra: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = MTIME
    info.uid = extra.pop("uid", os.getuid())
    info.gid = extra.pop("gid", os.getgid())
    for key, value in extra.items():
        setattr(info, key, value)
    return info


@dataclass
class Entry:
    info: tarfile.TarInfo
    data: bytes = b""


def file(name: str, data: bytes = b"", mode: int = 0o644, **extra: Any) -> Entry:
    info = _info(name, tarfile.REGTYPE, mode, **extra)
    info.size = len(data)
    return Entry(info, data)


def directory(name: str, mode: int = 0o755, **extra: Any) -> Entry:
    return Entry(_info(name, tarfile.DIRTYPE, mode, **extra))


def symlink(name: str, target: str) -> Entry:
    return Entry(_info(name, tarfile.SYMTYPE, 0o777, linkname=target))


def hardlink(name: str, target: str) -> Entry:
    return Entry(_info(name, tarfile.LNKTYPE, 0o644, linkname=target))


def special(name: str, kind: bytes, major: int = 0, minor: int = 0, **extra: Any) -> Entry:
    return Entry(_info(name, kind, 0o644, devmajor=major, devminor=minor, **extra))


def layer_tar(entries: Iterable[Entry], compress: bool = False) -> bytes:
    """A layer tar (PAX format) of ``entries`` in order; gzip-compressed on request."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            tar.addfile(entry.info, io.BytesIO(entry.data) if entry.info.isreg() else None)
    data = buffer.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def diff_id(layer: bytes) -> str:
    """The diff_id of a layer blob: the digest of its uncompressed tar."""
    return sha256(gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer)


def image_config(layers: Sequence[bytes], cmd: Sequence[str] = ("/bin/sh",), **extra: Any) -> bytes:
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": list(cmd), "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id(layer) for layer in layers]},
    }
    config.update(extra)
    return json.dumps(config).encode()


@dataclass
class ImageSpec:
    layers: list[bytes]
    tags: list[str] = field(default_factory=list)
    config: bytes = b""

    def __post_init__(self) -> None:
        if not self.config:
            self.config = image_config(self.layers)

    @property
    def id(self) -> str:
        return sha256(self.config)


def write_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """An outer archive: regular members, then symlinks ``name -> target``."""
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = _info(name, tarfile.REGTYPE, 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, linkname=target))
    return path


def docker_save_archive(path: Path, images: Sequence[ImageSpec]) -> Path:
    """A ``docker save`` archive in the legacy layout (``<id>/layer.tar``); a layer used
    again is stored as a symlink to its first copy, as Docker does."""
    members: dict[str, bytes] = {}
    links: dict[str, str] = {}
    first_path: dict[str, str] = {}
    manifest = []
    for image in images:
        config_hex = image.id.removeprefix("sha256:")
        members[f"{config_hex}.json"] = image.config
        layer_paths = []
        for index, layer in enumerate(image.layers):
            layer_path = f"{config_hex[:16]}{index:04d}/layer.tar"
            if layer in first_path:
                links[layer_path] = f"../{first_path[layer]}"
            else:
                members[layer_path] = layer
                first_path[layer] = layer_path
            layer_paths.append(layer_path)
        manifest.append(
            {"Config": f"{config_hex}.json", "RepoTags": image.tags or None, "Layers": layer_paths}
        )
    members["manifest.json"] = json.dumps(manifest).encode()
    return write_tar(path, members, links)


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def oci_archive(
    path: Path,
    images: Sequence[ImageSpec],
    with_docker_manifest: bool = False,
    annotation: str = "io.containerd.image.name",
) -> Path:
    """An OCI image layout archive (what Docker 25+ saves when ``with_docker_manifest``,
    otherwise what ``skopeo copy ... oci-archive:`` writes)."""
    members: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    index_manifests = []
    docker_manifest = []
    for image in images:
        members[_blob(image.config)] = image.config
        layer_descriptors = []
        for layer in image.layers:
            members[_blob(layer)] = layer
            gz = layer[:2] == b"\x1f\x8b"
            layer_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
            layer_descriptors.append(_descriptor(layer_type, layer))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": _descriptor("application/vnd.oci.image.config.v1+json", image.config),
                "layers": layer_descriptors,
            }
        ).encode()
        members[_blob(manifest)] = manifest
        for tag in image.tags or [None]:
            annotations = {annotation: tag} if tag else {}
            index_manifests.append(
                _descriptor(
                    "application/vnd.oci.image.manifest.v1+json", manifest, annotations=annotations
                )
            )
        docker_manifest.append(
            {
                "Config": _blob(image.config),
                "RepoTags": image.tags,
                "Layers": [_blob(layer) for layer in image.layers],
            }
        )
    members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": index_manifests}).encode()
    if with_docker_manifest:
        members["manifest.json"] = json.dumps(docker_manifest).encode()
    return write_tar(path, members)


def _blob(data: bytes) -> str:
    return "blobs/sha256/" + hashlib.sha256(data).hexdigest()


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path below ``root`` with its mode, size and (for files) content: for
    checking that a failed operation changed nothing."""
    snapshot: dict[str, tuple[int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            snapshot[str(path.relative_to(root))] = (st.st_mode, st.st_size, content)
    return snapshot
