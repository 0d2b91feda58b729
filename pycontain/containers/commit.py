"""``commit``: a new image from a container, Docker's way.

The new image is the container's image (its layers and config) plus one layer: a tar of
the container's upperdir, in which overlay whiteouts become ``.wh.NAME`` files again and
an opaque directory gets its ``.wh..wh..opq`` marker.  The layer goes through the image
store's safe extractor (``stage_layer``), which measures its diff_id, then
``commit_layer`` and ``add_image``.  The config takes the container's Cmd, Entrypoint,
Env, WorkingDir, User and Labels.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import stat
import tarfile
from datetime import UTC, datetime
from typing import Any

from pycontain.containers.filesystem import ContainerFilesystem, is_whiteout, write_tree
from pycontain.containers.record import ContainerRecord
from pycontain.errors import InvalidArgument, PycontainError
from pycontain.images import ImageStore
from pycontain.images.config import Image
from pycontain.images.reference import parse_reference

__all__ = ["commit_container", "whiteout_entries"]

_OPAQUE_XATTR = "trusted.overlay.opaque"
_OPAQUE_MARKER = ".wh..wh..opq"


def whiteout_entries(dir_fd: int, name: str, info: os.stat_result,
                      arcname: str) -> list[tarfile.TarInfo] | None:
    """Overlay's whiteouts back into the image format's ``.wh.`` entries."""
    if is_whiteout(info):
        parent, base = posixpath.split(arcname)
        entry = tarfile.TarInfo(posixpath.join(parent, ".wh." + base))
        entry.mtime = info.st_mtime
        return [entry]
    if not stat.S_ISDIR(info.st_mode):
        return None
    opaque = b""
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        with contextlib.suppress(OSError):
            opaque = os.getxattr(fd, _OPAQUE_XATTR)
    finally:
        os.close(fd)
    if opaque != b"y":
        return None
    directory = tarfile.TarInfo(arcname)
    directory.type = tarfile.DIRTYPE
    directory.mode = stat.S_IMODE(info.st_mode)
    directory.uid, directory.gid, directory.mtime = info.st_uid, info.st_gid, info.st_mtime
    marker = tarfile.TarInfo(posixpath.join(arcname, _OPAQUE_MARKER))
    return [directory, marker]


def _config(image: Image, record: ContainerRecord, diff_id: str, comment: str) -> bytes:
    raw: dict[str, Any] = json.loads(json.dumps(image.raw_config))
    created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    config = raw.setdefault("config", {}) or {}
    raw["config"] = config
    c = record.config
    config.update({
        "Cmd": list(c.cmd) if c.cmd is not None else config.get("Cmd"),
        "Entrypoint": list(c.entrypoint) if c.entrypoint is not None
        else config.get("Entrypoint"),
        "Env": list(c.env) or config.get("Env"),
        "WorkingDir": c.working_dir or config.get("WorkingDir", ""),
        "User": c.user or config.get("User", ""),
        "Labels": {**(config.get("Labels") or {}), **c.labels} or None,
    })
    raw["created"] = created
    raw["container"] = record.id
    rootfs = raw.setdefault("rootfs", {"type": "layers"})
    rootfs["diff_ids"] = [*image.diff_ids, diff_id]
    history = list(raw.get("history") or [])
    history.append({"created": created, "created_by": f"pycontain commit {record.name}",
                    "comment": comment})
    raw["history"] = history
    return json.dumps(raw, separators=(",", ":"), sort_keys=True).encode()


def commit_container(images: ImageStore, fs: ContainerFilesystem, record: ContainerRecord,
                     reference: str | None, comment: str = "") -> Image:
    """Make and store the image; tag it ``reference`` (``latest`` when it has no tag).

    Raises ``InvalidArgument`` for a bad reference, ``PycontainError`` when the upperdir
    cannot be read or the layer not stored.
    """
    tag = None
    if reference is not None:
        parsed = parse_reference(reference)
        if parsed.digest is not None:
            raise InvalidArgument(f"commit: cannot tag an image with a digest: {reference}")
        tag = parsed.with_default_tag().familiar()
    image = images.get(record.image_id)
    what = f"commit {record.name}"
    with images.staging() as staging:
        layer_tar = staging / "layer.tar"
        try:
            with open(layer_tar, "w+b") as out:
                upper = os.open(fs.upperdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    with tarfile.open(fileobj=out, mode="w|",
                                      format=tarfile.PAX_FORMAT) as tar, \
                            os.scandir(upper) as listing:
                        for name in sorted(e.name for e in listing):
                            write_tree(tar, upper, name, name, whiteout_entries)
                finally:
                    os.close(upper)
                out.seek(0)
                unpacked, layer_dir = images.stage_layer(out, staging, what)
        except OSError as exc:
            raise PycontainError(f"{what}: {exc}") from exc
        images.commit_layer(unpacked.diff_id, layer_dir)
        config_bytes = _config(image, record, unpacked.diff_id, comment)
        new, _ = images.add_image(config_bytes, None, [tag] if tag else [])
    return new
