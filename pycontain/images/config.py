"""Image configs: the OCI/Docker config JSON, validated once into typed dataclasses.

``parse_config_blob`` is the boundary: nothing deeper reads the raw dict, except
``inspect``, which shows ``Image.raw_config`` as it came.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass, field
from typing import Any

from pycontain.errors import ImageArchiveError

__all__ = ["ConfigBlob", "Image", "ImageConfig", "host_architecture", "parse_config_blob"]

_DIFF_ID = re.compile(r"sha256:[a-f0-9]{64}")
_GOARCH_BY_MACHINE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_architecture() -> str:
    """The host's architecture as image configs name it (Go's GOARCH: ``amd64``, ``arm64``)."""
    machine = platform.machine().lower()
    return _GOARCH_BY_MACHINE.get(machine, machine)


@dataclass(frozen=True)
class ImageConfig:
    """The ``config`` section of an image config: how a container of the image runs."""

    env: tuple[str, ...] = ()
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Image:
    """An image in the store."""

    id: str
    repo_tags: tuple[str, ...]
    created: str
    architecture: str
    os: str
    diff_ids: tuple[str, ...]
    size: int
    config: ImageConfig
    raw_config: dict[str, Any] = field(hash=False, compare=False)
    repo_digests: tuple[str, ...] = ()  # "name@sha256:..." of the manifests it was pulled by


@dataclass(frozen=True)
class ConfigBlob:
    """A validated config blob: everything ``Image`` takes from it."""

    created: str
    architecture: str
    os: str
    diff_ids: tuple[str, ...]
    config: ImageConfig
    raw: dict[str, Any] = field(hash=False, compare=False)


def parse_config_blob(data: bytes) -> ConfigBlob:
    """Parse and validate an image config blob.

    Raises ``ImageArchiveError`` naming the field when the JSON is malformed or a field
    has the wrong type (``rootfs.diff_ids`` must be ``sha256:<hex>`` strings).
    """
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageArchiveError(f"image config: invalid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ImageArchiveError("image config: not a JSON object")
    rootfs = _optional(raw, "rootfs", dict, "image config") or {}
    rootfs_type = _optional(rootfs, "type", str, "image config rootfs")
    if rootfs_type != "layers":
        raise ImageArchiveError(f"image config: rootfs.type must be 'layers', not {rootfs_type!r}")
    diff_ids = _string_list(rootfs.get("diff_ids"), "image config rootfs.diff_ids") or ()
    for diff_id in diff_ids:
        if not _DIFF_ID.fullmatch(diff_id):
            raise ImageArchiveError(f"image config: bad diff_id {diff_id!r}")
    section = _optional(raw, "config", dict, "image config") or {}
    return ConfigBlob(
        created=_optional(raw, "created", str, "image config") or "",
        architecture=_optional(raw, "architecture", str, "image config") or "",
        os=_optional(raw, "os", str, "image config") or "",
        diff_ids=diff_ids,
        config=_parse_section(section),
        raw=raw,
    )


def _parse_section(section: dict[str, Any]) -> ImageConfig:
    where = "image config config"
    ports = _optional(section, "ExposedPorts", dict, where) or {}
    labels = _optional(section, "Labels", dict, where) or {}
    for key, value in labels.items():
        if not isinstance(value, str):
            raise ImageArchiveError(f"{where}.Labels: value of {key!r} is not a string")
    return ImageConfig(
        env=_string_list(section.get("Env"), f"{where}.Env") or (),
        cmd=_string_list(section.get("Cmd"), f"{where}.Cmd"),
        entrypoint=_string_list(section.get("Entrypoint"), f"{where}.Entrypoint"),
        working_dir=_optional(section, "WorkingDir", str, where) or "",
        user=_optional(section, "User", str, where) or "",
        exposed_ports=tuple(sorted(ports)),
        labels=dict(labels),
    )


def _optional(obj: dict[str, Any], key: str, kind: type[Any], where: str) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise ImageArchiveError(f"{where}: {key} must be a {_type_name(kind)}")
    return value


def _string_list(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImageArchiveError(f"{where} must be a list of strings")
    return tuple(value)


_TYPE_NAMES: dict[type[Any], str] = {dict: "JSON object", str: "string", list: "list"}


def _type_name(kind: type[Any]) -> str:
    return _TYPE_NAMES.get(kind, kind.__name__)
