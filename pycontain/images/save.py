"""``docker save``: images as a docker-archive tar (``manifest.json``, configs, layers).

The store keeps layers unpacked, not as the tars they came in, so each layer is tarred
again from its directory (overlay whiteouts back to ``.wh.`` entries, as ``commit``
does).  When that tar is not byte for byte the original, its digest is a new diff_id:
the saved config then lists the new diff_ids, and the image loads under a new id with
the same content.  Everything is written to ``out`` before anything is sent, so a
failure is an error reply, never a truncated archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

from pycontain.containers.commit import whiteout_entries
from pycontain.containers.filesystem import write_tree
from pycontain.errors import PycontainError
from pycontain.images.config import Image
from pycontain.images.store import ImageStore

__all__ = ["save_images"]


class _HashingWriter(io.RawIOBase):
    """A write-only file that hashes what goes through it into ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.digest.update(chunk)
        self.target.write(chunk)
        return len(chunk)


def _tar_layer(layer_dir: Path, out: IO[bytes]) -> str:
    """Tar ``layer_dir`` into ``out``; return the tar's diff_id."""
    writer = _HashingWriter(out)
    root = os.open(layer_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar, \
                os.scandir(root) as listing:
            for name in sorted(e.name for e in listing):
                write_tree(tar, root, name, name, whiteout_entries)
    finally:
        os.close(root)
    return "sha256:" + writer.digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def save_images(store: ImageStore, names: list[str], out: IO[bytes]) -> None:
    """Write the docker-archive of the images ``names`` name (tags or ids) to ``out``.

    Raises ``NoSuchImage``, ``InvalidArgument`` (a bad name) or ``PycontainError`` when a
    layer cannot be read.
    """
    chosen: dict[str, tuple[Image, list[str]]] = {}
    for name in names:
        image = store.get(name)
        tags = chosen.setdefault(image.id, (image, []))[1]
        by_tag = image.id.removeprefix("sha256:")[:len(name)] != name.removeprefix("sha256:")
        if by_tag:
            tag = next((t for t in image.repo_tags if t in (name, f"{name}:latest")), None)
            if tag is not None and tag not in tags:
                tags.append(tag)
    manifest = []
    done: dict[str, str] = {}  # stored diff_id -> the archive's
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for image, tags in chosen.values():
            layer_paths = []
            diff_ids = []
            dirs = {str(d.parent.name): d for d in store.layer_dirs(image)}
            for stored in image.diff_ids:
                if stored not in done:
                    with tempfile.TemporaryFile(dir=store.tmp) as layer:
                        try:
                            new = _tar_layer(dirs[stored.removeprefix("sha256:")], layer)
                        except OSError as exc:
                            raise PycontainError(f"save {image.id}: read layer {stored}: "
                                                 f"{exc}") from exc
                        info = tarfile.TarInfo(f"{new.removeprefix('sha256:')}/layer.tar")
                        info.size = layer.tell()
                        info.mode = 0o644
                        layer.seek(0)
                        archive.addfile(info, layer)
                    done[stored] = new
                diff_ids.append(done[stored])
                layer_paths.append(f"{done[stored].removeprefix('sha256:')}/layer.tar")
            config = dict(image.raw_config)
            config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
            config_bytes = (json.dumps(config, separators=(",", ":")).encode()
                            if diff_ids != list(image.diff_ids)
                            else store.config_bytes(image))
            config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
            _add_bytes(archive, config_name, config_bytes)
            manifest.append({"Config": config_name, "RepoTags": tags or None,
                             "Layers": layer_paths})
        _add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
