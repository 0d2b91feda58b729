"""The image store: verified blobs, unpacked layers and tags under ``<data-root>/image``.

Layout::

    image/
      blobs/sha256/<hex>          config and manifest blobs, named by their sha256
      layers/<diff-id hex>/diff/  the unpacked layer: an overlay lowerdir
      layers/<diff-id hex>/layer.json   {"diff_id": ..., "size": ...}
      images/<config hex>.json    {"id": ..., "manifest": digest or null}; the image exists
      repositories.json           {"busybox:latest": "sha256:<config hex>", ...}
    tmp/image-staging-*/          one staging dir per load or import

A load or import unpacks and verifies everything in a staging dir first, then moves
it into place (a layer is one rename of its whole directory), writes the blobs and the
image records, and updates ``repositories.json`` last.  A failure before that point
removes the staging dir and leaves the store as it was.  Layers are keyed by diff_id
and shared between images; one that no image uses any more is removed with it.

A pull (images/pull.py) commits each layer as soon as it is verified, so that two pulls
can share it; while a pull runs its layers are *pinned* and no removal touches them.
A layer that no image uses and no pull pins is garbage: it is removed when the pull
fails, at the next ``rmi`` and at start-up.  ``repositories.json`` also maps digest
references (``alpine@sha256:...``, the manifest a pull came from) to images; they are
not tags, and go with the image's last tag.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from pycontain.errors import (
    Conflict,
    ImageArchiveError,
    InvalidArgument,
    NoSuchImage,
    PycontainError,
)
from pycontain.fsutil import atomic_write, atomic_write_json, read_json
from pycontain.images.archive import ArchivedImage, ImageArchive
from pycontain.images.config import ConfigBlob, Image, host_architecture, parse_config_blob
from pycontain.images.reference import Reference, parse_reference
from pycontain.images.unpack import UnpackedLayer, unpack_layer

__all__ = ["ImageStore"]

log = logging.getLogger(__name__)

STAGING_PREFIX: Final = "image-staging-"
_SHA256_ID: Final = re.compile(r"sha256:([a-f0-9]{64})")
_HEX64: Final = re.compile(r"[a-f0-9]{64}")
_ID_PREFIX: Final = re.compile(r"[a-f0-9]{4,64}")
_SHORT_ID_LENGTH: Final = 12


class ImageStore:
    """Images on disk; see the module docstring for the layout.

    Mutations are serialized by a lock, so the store may be used from worker threads.
    Raises ``PycontainError`` when the host refuses a file operation.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root.parent / "tmp"
        self._blobs = root / "blobs" / "sha256"
        self._layers = root / "layers"
        self._images = root / "images"
        self._repositories = root / "repositories.json"
        self._lock = threading.RLock()
        self._configs: dict[str, ConfigBlob] = {}
        self._pins: Counter[str] = Counter()
        self._broken: dict[str, str] = {}
        for directory in (root, self._blobs, self._layers, self._images, self.tmp):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._remove_stale_staging()
        self.remove_unused_layers()  # the verified layers of a pull cut off by a crash

    # -- queries ---------------------------------------------------------------

    def list(self) -> list[Image]:
        """Every image, newest first."""
        images = [self._image(image_id) for image_id in self._readable_image_ids()]
        return sorted(images, key=lambda image: (image.created, image.id), reverse=True)

    def unreadable(self) -> dict[str, str]:
        """Images whose stored config cannot be read (id -> why); ``rmi -f ID`` removes them."""
        self._readable_image_ids()
        return dict(self._broken)

    def get(self, name_or_id: str) -> Image:
        """The image a tag, full id (with or without ``sha256:``) or unique id prefix of
        at least 4 hex digits names; tags win over id prefixes, as in Docker.

        Raises ``NoSuchImage``, or ``InvalidArgument`` for a malformed name or an
        ambiguous id prefix.
        """
        image_id, _ = self._resolve(name_or_id)
        return self._image(image_id)

    def layer_dirs(self, image: Image) -> builtins.list[Path]:
        """The image's unpacked layer directories, top-most first (overlay lowerdir order).

        A layer that occurs twice is given once, at its top-most place: the lower copy
        cannot change what the merged tree shows.  Raises ``PycontainError`` when a
        layer is missing from the store.
        """
        dirs: builtins.list[Path] = []
        for diff_id in dict.fromkeys(reversed(image.diff_ids)):
            diff = self._layer_dir(diff_id) / "diff"
            if not diff.is_dir():
                raise PycontainError(f"image {image.id}: layer {diff_id} is missing from the store")
            dirs.append(diff)
        return dirs

    # -- load and import -------------------------------------------------------

    def load_archive(self, path: Path, name: str | None = None) -> builtins.list[str]:
        """Load every image of a ``docker save`` or OCI archive; return Docker's lines
        (``Loaded image: busybox:latest``, ``Loaded image ID: sha256:...``).

        Raises ``ImageArchiveError`` for a corrupt or hostile archive (the store is then
        unchanged) and ``PycontainError`` when the archive cannot be read.  ``name`` is
        what messages call the archive (default: its path).
        """
        with ImageArchive(path, name) as archive, self._staging() as staging:
            images = archive.images()
            staged: dict[str, Path] = {}
            for image in images:
                for diff_id, layer in zip(image.config.diff_ids, image.layers, strict=True):
                    if diff_id in staged or self._has_layer(diff_id):
                        continue
                    what = f"load {archive.name}: layer {layer.member}"
                    with archive.open_member(layer.member) as stream:
                        unpacked, layer_dir = self._stage_layer(stream, staging, what)
                    _check_layer(unpacked, diff_id, layer.digest, what)
                    staged[diff_id] = layer_dir
            with self._lock:
                self._commit_layers(staged)
                for image in images:
                    self._commit_image(image.id, image.config_bytes, image.manifest_bytes)
                return self._tag_loaded(images)

    def import_rootfs(
        self, path: Path, reference: str | None, *, cmd: Sequence[str] | None = None,
        name: str | None = None,
    ) -> Image:
        """Make a one-layer image of a flat root filesystem tar (``docker import``), tagged
        ``reference`` (``latest`` when it has no tag) or untagged when it is ``None``.

        The config has the host's architecture, os ``linux`` and ``cmd`` (none by default).
        Raises ``InvalidArgument`` for a bad reference, ``ImageArchiveError`` for a corrupt
        or hostile tar, ``PycontainError`` when the file cannot be read.
        """
        tag = _tag_of(parse_reference(reference)) if reference is not None else None
        with self._staging() as staging:
            what = f"import {name or path}"
            try:
                source: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed just below
            except OSError as exc:
                raise PycontainError(f"{what}: {exc}") from exc
            with source:
                unpacked, layer_dir = self._stage_layer(source, staging, what)
            config_bytes = _import_config(unpacked.diff_id, cmd)
            image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
            with self._lock:
                self._commit_layers({unpacked.diff_id: layer_dir})
                self._commit_image(image_id, config_bytes, None)
                if tag is not None:
                    self._set_tags({tag: image_id})
        return self._image(image_id)

    # -- pull: layers one by one, then the image -------------------------------

    def has_layer(self, diff_id: str) -> bool:
        """True when the layer ``sha256:<hex>`` is in the store, unpacked and complete."""
        return self._has_layer(diff_id)

    def find(self, reference: str) -> Image | None:
        """The image a tag or digest reference (``alpine@sha256:...``) names, or None."""
        with self._lock:
            target = self._read_repositories().get(reference)
            if target is None or target not in self._image_ids():
                return None
            return self._image(target)

    @contextmanager
    def pinned(self, diff_ids: Iterable[str]) -> Iterator[None]:
        """Keep these layers from removal while a pull that needs them runs."""
        pins = list(diff_ids)
        with self._lock:
            self._pins.update(pins)
        try:
            yield
        finally:
            with self._lock:
                self._pins.subtract(pins)
                self._pins = +self._pins

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A private scratch directory on the store's file system, removed at the end."""
        with self._staging() as staging:
            yield staging

    def stage_layer(self, stream: IO[bytes], staging: Path, what: str) -> tuple[UnpackedLayer,
                                                                               Path]:
        """Unpack one layer stream into a new directory under ``staging``; return what was
        measured and the directory, for ``commit_layer`` once it is verified.

        Raises ``ImageArchiveError`` for a corrupt or hostile layer (``what`` names it).
        """
        return self._stage_layer(stream, staging, what)

    def commit_layer(self, diff_id: str, layer_dir: Path) -> None:
        """Move a staged and verified layer into the store (one rename; a layer already
        there wins)."""
        with self._lock:
            self._commit_layers({diff_id: layer_dir})

    def add_image(self, config_bytes: bytes, manifest_bytes: bytes | None,
                  references: Sequence[str]) -> tuple[Image, bool]:
        """Record a pulled image whose layers are all in the store and point each of
        ``references`` (tags and digest references, familiar form) at it.

        Returns the image and whether anything changed (a new image or a moved tag).
        ``manifest_bytes`` is None for an image made here (``commit``).
        Raises ``ImageArchiveError`` for a bad config and ``PycontainError`` when a
        layer is missing.
        """
        config = parse_config_blob(config_bytes)
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        with self._lock:
            for diff_id in config.diff_ids:
                if not self._has_layer(diff_id):
                    raise PycontainError(f"add image {image_id}: layer {diff_id} is missing")
            known = image_id in self._image_ids()
            if not known:
                self._commit_image(image_id, config_bytes, manifest_bytes)
            moved = self.point(references, image_id)
            return self._image(image_id), moved or not known

    def point(self, references: Sequence[str], image_id: str) -> bool:
        """Point tags and digest references at an image; True when a tag moved or is new."""
        with self._lock:
            repositories = self._read_repositories()
            moved = any(repositories.get(r) != image_id for r in references if "@" not in r)
            self._set_tags(dict.fromkeys(references, image_id))
            return moved

    # -- removal ---------------------------------------------------------------

    def untag_or_remove(self, name_or_id: str, force: bool) -> builtins.list[dict[str, str]]:
        """``docker rmi``: by tag, untag it and delete the image with its last tag; by id,
        untag all and delete.  Layers no image uses any more are removed too.

        Returns ``[{"Untagged": "busybox:latest"}, {"Deleted": "sha256:..."}]``-style records.
        Raises ``NoSuchImage``, and ``Conflict`` when an id names an image tagged in
        several repositories and ``force`` is false.  Whether a container uses the image
        is the caller's question (``ImageInUse``).
        """
        with self._lock:
            broken = self._broken_image(name_or_id) if force else None
            if broken is not None:
                repositories = self._read_repositories()
                stale = [tag for tag, target in repositories.items() if target == broken]
                for tag in stale:
                    del repositories[tag]
                if stale:
                    atomic_write_json(self._repositories, repositories)
                self._delete_image(broken)
                self._broken.pop(broken, None)
                log.info("removed unreadable image %s", broken)
                return [*({"Untagged": tag} for tag in stale), {"Deleted": broken}]
            image_id, matched_tag = self._resolve(name_or_id)
            repositories = self._read_repositories()
            tags = [tag for tag, target in repositories.items() if target == image_id]
            if matched_tag is not None:
                to_untag = [matched_tag]
            else:
                names = {_repository_of(tag) for tag in tags}
                if len(names) > 1 and not force:
                    raise Conflict(
                        f"conflict: unable to delete {_short(image_id)} (must be forced) - "
                        "image is referenced in multiple repositories"
                    )
                to_untag = tags
            if all("@" in tag for tag in tags if tag not in to_untag):
                to_untag += [tag for tag in tags if tag not in to_untag]  # digest references
            for tag in to_untag:
                del repositories[tag]
            if to_untag:
                atomic_write_json(self._repositories, repositories)
            records = [{"Untagged": tag} for tag in to_untag]
            if len(to_untag) == len(tags):
                self._delete_image(image_id)
                records.append({"Deleted": image_id})
                self.remove_unused_layers()
            return records

    def remove_unused_layers(self) -> None:
        """Remove every layer no image refers to and no pull pins (each disappears with
        one rename)."""
        with self._lock:
            readable = self._readable_image_ids()
            if self._broken:  # their layers are unknown: keep every layer until they go
                log.warning("keeping unused layers while %d image(s) are unreadable",
                            len(self._broken))
                return
            used = {d.removeprefix("sha256:") for i in readable for d in self._diff_ids(i)}
            used.update(d.removeprefix("sha256:") for d in self._pins)
            for entry in os.listdir(self._layers):
                if _HEX64.fullmatch(entry) and entry not in used:
                    self._discard(self._layers / entry)

    def tag(self, name_or_id: str, reference: str) -> str:
        """Point the tag ``reference`` (``latest`` when it has none) at the image
        ``name_or_id`` names; return the tag in its familiar form.

        Raises ``NoSuchImage``, and ``InvalidArgument`` for a bad or digest reference.
        """
        tag = _tag_of(parse_reference(reference))
        with self._lock:
            image_id, _ = self._resolve(name_or_id)
            self._set_tags({tag: image_id})
        return tag

    def config_bytes(self, image: Image) -> bytes:
        """The image's config blob as stored (its sha256 is the image id)."""
        path = self._blobs / image.id.removeprefix("sha256:")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise PycontainError(f"image {image.id}: read config: {exc}") from exc

    def layer_sizes(self, image: Image) -> builtins.list[int]:
        """The size of each of the image's layers, bottom-most first."""
        return [self._layer_size(d) for d in image.diff_ids]

    def layers_size(self, images: builtins.list[Image]) -> int:
        """Bytes of the distinct layers of ``images``: a layer they share counts once."""
        return sum(self._layer_size(d) for d in {d for i in images for d in i.diff_ids})

    # -- internals -------------------------------------------------------------

    def _resolve(self, name_or_id: str) -> tuple[str, str | None]:
        """(image id, the repositories key it was found by, or None for an id)."""
        known = set(self._readable_image_ids())
        full = _SHA256_ID.fullmatch(name_or_id) or _HEX64.fullmatch(name_or_id)
        if full:
            image_id = "sha256:" + (full.group(1) if full.re is _SHA256_ID else full.group(0))
            if image_id in known:
                return image_id, None
            raise NoSuchImage(name_or_id)
        parse_error: InvalidArgument | None = None
        try:
            key = parse_reference(name_or_id).with_default_tag().familiar()
        except InvalidArgument as exc:
            parse_error = exc
        else:
            target = self._read_repositories().get(key)
            if target in known:
                return str(target), key
        prefix = name_or_id.removeprefix("sha256:")
        if _ID_PREFIX.fullmatch(prefix):
            matches = [i for i in known if i.removeprefix("sha256:").startswith(prefix)]
            if len(matches) > 1:
                raise InvalidArgument(f"image ID prefix {name_or_id!r} is ambiguous")
            if matches:
                return matches[0], None
        if parse_error is not None:
            raise parse_error
        raise NoSuchImage(key)  # Docker names the image with its tag: "busybox:latest"

    def _image(self, image_id: str) -> Image:
        config = self._config(image_id)
        names = [tag for tag, target in self._read_repositories().items() if target == image_id]
        tags = sorted(tag for tag in names if "@" not in tag)
        size = sum(self._layer_size(diff_id) for diff_id in set(config.diff_ids))
        return Image(
            id=image_id,
            repo_tags=tuple(tags),
            created=config.created,
            architecture=config.architecture,
            os=config.os,
            diff_ids=config.diff_ids,
            size=size,
            config=config.config,
            raw_config=config.raw,
            repo_digests=tuple(sorted(tag for tag in names if "@" in tag)),
        )

    def _config(self, image_id: str) -> ConfigBlob:
        config = self._configs.get(image_id)
        if config is None:
            path = self._blobs / image_id.removeprefix("sha256:")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise PycontainError(f"image {image_id}: read config: {exc}") from exc
            try:
                config = parse_config_blob(data)
            except ImageArchiveError as exc:
                raise PycontainError(f"image {image_id}: stored config: {exc}") from exc
            self._configs[image_id] = config
        return config

    def _diff_ids(self, image_id: str) -> tuple[str, ...]:
        return self._config(image_id).diff_ids

    def _readable_image_ids(self) -> builtins.list[str]:
        """The stored images whose config can be read; the others are recorded in
        ``_broken`` and reported once in the log, never raised: one corrupt file must
        not take the daemon down."""
        readable = []
        for image_id in self._image_ids():
            try:
                self._config(image_id)
            except PycontainError as exc:
                if image_id not in self._broken:
                    log.error("skipping unreadable image %s (remove it with `pycontain rmi "
                              "-f %s`): %s", image_id, _short(image_id), exc)
                self._broken[image_id] = str(exc)
                continue
            self._broken.pop(image_id, None)
            readable.append(image_id)
        return readable

    def _broken_image(self, name_or_id: str) -> str | None:
        self._readable_image_ids()
        prefix = name_or_id.removeprefix("sha256:")
        matches = [i for i in self._broken if _ID_PREFIX.fullmatch(prefix)
                   and i.removeprefix("sha256:").startswith(prefix)]
        return matches[0] if len(matches) == 1 else None

    def _image_ids(self) -> builtins.list[str]:
        return [
            "sha256:" + name.removesuffix(".json")
            for name in os.listdir(self._images)
            if name.endswith(".json") and _HEX64.fullmatch(name.removesuffix(".json"))
        ]

    def _read_repositories(self) -> dict[str, str]:
        try:
            data = read_json(self._repositories)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            return self._set_aside_repositories(str(exc))
        if not isinstance(data, dict):
            return self._set_aside_repositories("not a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def _set_aside_repositories(self, why: str) -> dict[str, str]:
        """A corrupt tag file: moved aside (kept for a person to look at) and started
        afresh, so that the images stay usable by id instead of the store failing."""
        aside = self._repositories.with_name(f"repositories.json.corrupt-{int(time.time())}")
        log.error("%s is unreadable (%s): moved to %s; images keep their ids, tags are lost",
                  self._repositories, why, aside.name)
        with contextlib.suppress(OSError):
            os.replace(self._repositories, aside)
        return {}

    def _layer_dir(self, diff_id: str) -> Path:
        return self._layers / diff_id.removeprefix("sha256:")

    def _has_layer(self, diff_id: str) -> bool:
        return (self._layer_dir(diff_id) / "layer.json").is_file()

    def _layer_size(self, diff_id: str) -> int:
        try:
            meta = read_json(self._layer_dir(diff_id) / "layer.json")
        except (OSError, ValueError):
            return 0
        size = meta.get("size") if isinstance(meta, dict) else None
        return size if isinstance(size, int) else 0

    @contextmanager
    def _staging(self) -> Iterator[Path]:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.tmp))
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _remove_stale_staging(self) -> None:
        for entry in os.listdir(self.tmp):
            if entry.startswith(STAGING_PREFIX):
                shutil.rmtree(self.tmp / entry, ignore_errors=True)

    def _stage_layer(
        self, stream: IO[bytes], staging: Path, what: str
    ) -> tuple[UnpackedLayer, Path]:
        layer_dir = Path(tempfile.mkdtemp(prefix="layer-", dir=staging))
        diff = layer_dir / "diff"
        diff.mkdir(mode=0o755)
        unpacked = unpack_layer(stream, diff, what)
        atomic_write_json(
            layer_dir / "layer.json", {"diff_id": unpacked.diff_id, "size": unpacked.size}
        )
        return unpacked, layer_dir

    def _commit_layers(self, staged: dict[str, Path]) -> None:
        for diff_id, layer_dir in staged.items():
            try:
                os.rename(layer_dir, self._layer_dir(diff_id))
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise PycontainError(f"store layer {diff_id}: {exc}") from exc

    def _commit_image(self, image_id: str, config_bytes: bytes, manifest: bytes | None) -> None:
        self._write_blob(config_bytes, image_id)
        manifest_digest = self._write_blob(manifest, None) if manifest is not None else None
        record = {"id": image_id, "manifest": manifest_digest}
        atomic_write_json(self._images / (image_id.removeprefix("sha256:") + ".json"), record)

    def _write_blob(self, data: bytes, expected: str | None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected is not None and digest != expected:
            raise ImageArchiveError(f"blob {expected} does not match its content ({digest})")
        path = self._blobs / digest.removeprefix("sha256:")
        if not path.exists():
            atomic_write(path, data)
        return digest

    def _tag_loaded(self, images: Sequence[ArchivedImage]) -> builtins.list[str]:
        lines: builtins.list[str] = []
        tags: dict[str, str] = {}
        for image in images:
            for tag in image.repo_tags:
                tags[tag] = image.id
        lines.extend(self._set_tags(tags))
        for image in images:
            if image.repo_tags:
                lines.extend(f"Loaded image: {tag}" for tag in image.repo_tags)
            else:
                lines.append(f"Loaded image ID: {image.id}")
        return lines

    def _set_tags(self, tags: dict[str, str]) -> builtins.list[str]:
        """Point each tag at its image; return Docker's notices for tags that moved."""
        repositories = self._read_repositories()
        notices = [
            f"The image {tag} already exists, renaming the old one with ID "
            f"{repositories[tag]} to empty string"
            for tag, image_id in tags.items()
            if repositories.get(tag, image_id) != image_id
        ]
        repositories.update(tags)
        atomic_write_json(self._repositories, repositories)
        return notices

    def _delete_image(self, image_id: str) -> None:
        hex_id = image_id.removeprefix("sha256:")
        record_path = self._images / f"{hex_id}.json"
        try:
            record: Any = read_json(record_path)
        except (OSError, ValueError):
            record = {}
        record_path.unlink(missing_ok=True)
        self._configs.pop(image_id, None)
        (self._blobs / hex_id).unlink(missing_ok=True)
        manifest = record.get("manifest") if isinstance(record, dict) else None
        if isinstance(manifest, str) and _SHA256_ID.fullmatch(manifest):
            (self._blobs / manifest.removeprefix("sha256:")).unlink(missing_ok=True)

    def _discard(self, path: Path) -> None:
        """Remove a directory tree: first out of sight with one rename, then for real."""
        trash = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.tmp))
        os.rename(path, trash / path.name)
        shutil.rmtree(trash, ignore_errors=True)


def _check_layer(unpacked: UnpackedLayer, diff_id: str, digest: str | None, what: str) -> None:
    if unpacked.diff_id != diff_id:
        raise ImageArchiveError(
            f"{what}: content digest {unpacked.diff_id} does not match diff_id {diff_id}"
        )
    if digest is not None and unpacked.blob_digest != digest:
        raise ImageArchiveError(f"{what}: blob digest {unpacked.blob_digest} is not {digest}")


def _tag_of(reference: Reference) -> str:
    if reference.digest is not None:
        raise InvalidArgument(f"cannot tag an image with a digest reference: {reference}")
    return reference.with_default_tag().familiar()


def _repository_of(tag: str) -> str:
    name = tag.partition("@")[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:_SHORT_ID_LENGTH]


def _import_config(diff_id: str, cmd: Sequence[str] | None) -> bytes:
    created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    config: dict[str, Any] = {
        "architecture": host_architecture(),
        "os": "linux",
        "created": created,
        "config": {
            "Env": None,
            "Cmd": list(cmd) if cmd else None,
            "Entrypoint": None,
            "WorkingDir": "",
            "User": "",
            "Labels": None,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "pycontain import"}],
    }
    return json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
