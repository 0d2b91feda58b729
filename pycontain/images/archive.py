"""Image archives: read what a ``docker save`` or OCI archive holds, without unpacking it.

Three shapes are understood, told apart by their top-level files:

- ``docker save`` before Docker 25: ``manifest.json`` lists ``Config`` (``<hex>.json``),
  ``RepoTags`` and ``Layers`` (``<id>/layer.tar``; duplicates may be symlinks).
- Docker 25 and later: the same ``manifest.json``, with ``blobs/sha256/<hex>`` paths,
  plus ``index.json`` and ``oci-layout``.  ``manifest.json`` wins when both exist.
- OCI image layout (``skopeo copy ... oci-archive:``): ``index.json`` only.  Tags come
  from the annotations ``io.containerd.image.name`` or ``org.opencontainers.image.ref.name``
  (when that holds a whole reference, not just a tag); nested indexes are followed to the
  manifest for the host's platform.

Every blob named by a digest is verified against it; layers are only located here and
streamed later by the store (``ImageArchive.open_member``).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, TypeGuard

from pycontain.errors import ImageArchiveError, InvalidArgument, PycontainError
from pycontain.images.config import ConfigBlob, host_architecture, parse_config_blob
from pycontain.images.reference import parse_reference

__all__ = ["ArchivedImage", "ArchivedLayer", "ImageArchive"]

DOCKER_MANIFEST: Final = "manifest.json"
OCI_INDEX: Final = "index.json"
CONTAINERD_NAME_ANNOTATION: Final = "io.containerd.image.name"
OCI_REF_NAME_ANNOTATION: Final = "org.opencontainers.image.ref.name"

_INDEX_TYPES: Final = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_MANIFEST_TYPES: Final = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_MAX_METADATA_BYTES: Final = 16 << 20
_MAX_LINK_HOPS: Final = 40
_MAX_INDEX_DEPTH: Final = 4
_DIGEST: Final = re.compile(r"sha256:([a-f0-9]{64})")
_HEX_PATH: Final = re.compile(r"(?:blobs/sha256/([a-f0-9]{64})|([a-f0-9]{64})\.json)")


@dataclass(frozen=True)
class ArchivedLayer:
    """Where a layer is in the archive; ``digest`` is the blob's digest when the
    archive states one (it is then verified while the layer is unpacked)."""

    member: str
    digest: str | None


@dataclass(frozen=True)
class ArchivedImage:
    """One image found in an archive, its config verified and validated."""

    id: str
    config_bytes: bytes
    config: ConfigBlob
    repo_tags: tuple[str, ...]
    layers: tuple[ArchivedLayer, ...]
    manifest_bytes: bytes | None


class ImageArchive:
    """An image archive opened for reading; use as a context manager.

    Raises ``ImageArchiveError`` when the file is not a tar archive, and
    ``PycontainError`` when it cannot be opened.
    """

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.name = name or str(path)  # what error messages call the archive
        try:
            # Closed by __exit__ (or below when the index cannot be read).
            self._tar = tarfile.open(path, mode="r:*")  # noqa: SIM115
        except tarfile.TarError as exc:
            # tarfile's message lists every decompressor it tried; the reason is enough.
            raise ImageArchiveError("invalid image archive: not a tar archive "
                                    "(or a truncated or unsupported compressed one)") from exc
        except OSError as exc:
            raise PycontainError(f"load {self.name}: {exc}") from exc
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            for member in self._tar:
                self._members[_clean(member.name)] = member
        except (tarfile.TarError, EOFError, OSError) as exc:
            self._tar.close()
            raise ImageArchiveError(f"load {self.name}: corrupt archive: {exc}") from exc

    def __enter__(self) -> ImageArchive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tar.close()

    def images(self) -> list[ArchivedImage]:
        """The images the archive holds, one per image id (tags merged).

        Raises ``ImageArchiveError`` when a manifest, index or config is missing,
        malformed or does not match its digest.
        """
        if DOCKER_MANIFEST in self._members:
            found = self._docker_manifest_images()
        elif OCI_INDEX in self._members:
            found = self._oci_images()
        else:
            raise ImageArchiveError(
                f"load {self.name}: neither {DOCKER_MANIFEST} nor {OCI_INDEX} in the archive"
            )
        merged: dict[str, ArchivedImage] = {}
        for image in found:
            if image.id in merged:
                previous = merged[image.id]
                tags = previous.repo_tags + tuple(
                    t for t in image.repo_tags if t not in previous.repo_tags
                )
                image = ArchivedImage(
                    previous.id,
                    previous.config_bytes,
                    previous.config,
                    tags,
                    previous.layers,
                    previous.manifest_bytes,
                )
            merged[image.id] = image
        return list(merged.values())

    @contextmanager
    def open_member(self, name: str) -> Iterator[IO[bytes]]:
        """A seekable stream of the regular file ``name`` (symlinks and hardlinks followed
        inside the archive).  Raises ``ImageArchiveError`` when it is missing."""
        member = self._regular_member(name)
        stream = self._tar.extractfile(member)
        if stream is None:
            raise ImageArchiveError(f"load {self.name}: {name} is not a regular file")
        with stream:
            yield stream

    def read_member(self, name: str) -> bytes:
        """The whole content of a small member (manifests, indexes, configs)."""
        member = self._regular_member(name)
        if member.size > _MAX_METADATA_BYTES:
            raise ImageArchiveError(f"load {self.name}: {name} is too large ({member.size} bytes)")
        with self.open_member(name) as stream:
            try:
                return stream.read()
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise ImageArchiveError(f"load {self.name}: read {name}: {exc}") from exc

    def _regular_member(self, name: str) -> tarfile.TarInfo:
        current = _clean(name)
        for _ in range(_MAX_LINK_HOPS):
            member = self._members.get(current)
            if member is None:
                raise ImageArchiveError(f"load {self.name}: {name} is missing from the archive")
            if member.issym():
                current = _clean(posixpath.join(posixpath.dirname(current), member.linkname))
            elif member.islnk():
                current = _clean(member.linkname)
            elif member.isreg():
                return member
            else:
                raise ImageArchiveError(f"load {self.name}: {name} is not a regular file")
        raise ImageArchiveError(f"load {self.name}: {name}: too many levels of links")

    def _read_json(self, name: str, data: bytes | None = None) -> Any:
        raw = self.read_member(name) if data is None else data
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImageArchiveError(f"load {self.name}: {name}: invalid JSON: {exc}") from exc

    def _docker_manifest_images(self) -> list[ArchivedImage]:
        entries = self._read_json(DOCKER_MANIFEST)
        if not isinstance(entries, list):
            raise ImageArchiveError(f"load {self.name}: {DOCKER_MANIFEST} is not a JSON list")
        images = []
        for entry in entries:
            where = f"load {self.name}: {DOCKER_MANIFEST}"
            if not isinstance(entry, dict):
                raise ImageArchiveError(f"{where}: an entry is not a JSON object")
            config_path = entry.get("Config")
            tags = entry.get("RepoTags") or []
            layer_paths = entry.get("Layers")
            if not isinstance(config_path, str):
                raise ImageArchiveError(f"{where}: Config must be a string")
            if not _is_string_list(tags):
                raise ImageArchiveError(f"{where}: RepoTags must be a list of strings")
            if not _is_string_list(layer_paths):
                raise ImageArchiveError(f"{where}: Layers must be a list of strings")
            config_bytes = self.read_member(config_path)
            layers = tuple(ArchivedLayer(p, _digest_from_path(p)) for p in layer_paths)
            images.append(
                self._image(config_bytes, _digest_from_path(config_path), tags, layers, None)
            )
        return images

    def _oci_images(self) -> list[ArchivedImage]:
        index = self._read_json(OCI_INDEX)
        if not isinstance(index, dict):
            raise ImageArchiveError(f"load {self.name}: {OCI_INDEX} is not a JSON object")
        images = []
        for descriptor in _descriptors(index.get("manifests"), f"{self.name}: {OCI_INDEX}"):
            tags = _tags_from_annotations(descriptor.get("annotations") or {})
            images.append(self._oci_image(descriptor, tags, depth=0))
        return images

    def _oci_image(self, descriptor: dict[str, Any], tags: list[str], depth: int) -> ArchivedImage:
        if depth > _MAX_INDEX_DEPTH:
            raise ImageArchiveError(f"load {self.name}: image indexes nested too deeply")
        data = self._read_blob(descriptor)
        document = self._read_json(descriptor["digest"], data)
        if not isinstance(document, dict):
            raise ImageArchiveError(f"load {self.name}: {descriptor['digest']} is not an object")
        media_type = descriptor.get("mediaType") or document.get("mediaType")
        where = f"{self.name}: {descriptor['digest']}"
        if media_type in _INDEX_TYPES or (media_type is None and "manifests" in document):
            chosen = _choose_platform(_descriptors(document.get("manifests"), where), where)
            return self._oci_image(chosen, tags, depth + 1)
        if media_type is not None and media_type not in _MANIFEST_TYPES:
            raise ImageArchiveError(f"load {where}: unsupported media type {media_type!r}")
        config_descriptor = _descriptors([document.get("config")], where)[0]
        layers = tuple(
            ArchivedLayer(_blob_path(d["digest"]), d["digest"])
            for d in _descriptors(document.get("layers"), where)
        )
        config_bytes = self._read_blob(config_descriptor)
        return self._image(config_bytes, config_descriptor["digest"], tags, layers, data)

    def _read_blob(self, descriptor: dict[str, Any]) -> bytes:
        digest = descriptor["digest"]
        data = self.read_member(_blob_path(digest))
        if len(data) != descriptor["size"]:
            raise ImageArchiveError(
                f"load {self.name}: blob {digest} has {len(data)} bytes, "
                f"its descriptor says {descriptor['size']}"
            )
        _verify_digest(data, digest, self.name)
        return data

    def _image(
        self,
        config_bytes: bytes,
        expected_digest: str | None,
        tags: list[str],
        layers: tuple[ArchivedLayer, ...],
        manifest_bytes: bytes | None,
    ) -> ArchivedImage:
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        if expected_digest is not None:
            _verify_digest(config_bytes, expected_digest, self.name)
        config = parse_config_blob(config_bytes)
        if len(config.diff_ids) != len(layers):
            raise ImageArchiveError(
                f"load {self.name}: image {image_id} has {len(layers)} layers "
                f"but its config lists {len(config.diff_ids)} diff_ids"
            )
        familiar = tuple(_familiar_tag(tag, self.name) for tag in tags)
        return ArchivedImage(image_id, config_bytes, config, familiar, layers, manifest_bytes)


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _is_string_list(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _digest_from_path(path: str) -> str | None:
    """The digest a content-addressed name states: ``blobs/sha256/<hex>``, ``<hex>.json``."""
    match = _HEX_PATH.fullmatch(_clean(path))
    return f"sha256:{match.group(1) or match.group(2)}" if match else None


def _verify_digest(data: bytes, digest: str, archive: str) -> None:
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ImageArchiveError(f"load {archive}: blob {digest} does not match its content")


def _descriptors(value: Any, where: str) -> list[dict[str, Any]]:
    """Validate a list of OCI descriptors (digest ``sha256:<hex>``, integer size)."""
    if not isinstance(value, list):
        raise ImageArchiveError(f"load {where}: expected a list of descriptors")
    for descriptor in value:
        if not isinstance(descriptor, dict):
            raise ImageArchiveError(f"load {where}: a descriptor is not a JSON object")
        digest, size = descriptor.get("digest"), descriptor.get("size")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ImageArchiveError(f"load {where}: bad or unsupported digest {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageArchiveError(f"load {where}: bad size for {digest}")
        if not isinstance(descriptor.get("mediaType", ""), str):
            raise ImageArchiveError(f"load {where}: mediaType of {digest} must be a string")
        annotations = descriptor.get("annotations")
        if annotations is not None and not (
            isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values())
        ):
            raise ImageArchiveError(f"load {where}: annotations of {digest} must be strings")
    return value


def _choose_platform(manifests: list[dict[str, Any]], where: str) -> dict[str, Any]:
    if len(manifests) == 1:
        return manifests[0]
    arch = host_architecture()
    for descriptor in manifests:
        platform = descriptor.get("platform")
        if (
            isinstance(platform, dict)
            and platform.get("os") == "linux"
            and platform.get("architecture") == arch
        ):
            return descriptor
    raise ImageArchiveError(f"load {where}: no manifest for linux/{arch} in the image index")


def _tags_from_annotations(annotations: dict[str, str]) -> list[str]:
    name = annotations.get(CONTAINERD_NAME_ANNOTATION)
    if name:
        return [name]
    ref_name = annotations.get(OCI_REF_NAME_ANNOTATION, "")
    if "/" in ref_name or ":" in ref_name:
        return [ref_name]
    return []


def _familiar_tag(tag: str, archive: str) -> str:
    try:
        reference = parse_reference(tag).with_default_tag()
    except InvalidArgument as exc:
        raise ImageArchiveError(f"load {archive}: bad image name {tag!r}: {exc}") from exc
    if reference.digest is not None or reference.tag is None:
        raise ImageArchiveError(f"load {archive}: image name {tag!r} must be a tag, not a digest")
    return reference.familiar()
