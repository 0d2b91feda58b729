"""Image references: parse ``[domain/]path[:tag][@digest]`` and print them in familiar form.

The grammar is Docker's (distribution/reference): the first path component is a
registry domain when it contains ``.`` or ``:`` or is ``localhost``; otherwise the
domain is ``docker.io`` and a single-component path gets ``library/`` in front.
The familiar form drops both again: ``docker.io/library/busybox:1`` -> ``busybox:1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pycontain.errors import InvalidArgument

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "Reference",
    "is_image_id",
    "parse_reference",
    "registry_domain",
]

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
_LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
_OFFICIAL_PREFIX = "library/"
_MAX_NAME_LENGTH = 255

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
    r"(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_SHA256_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HEX64 = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class Reference:
    """A parsed, normalized image reference.

    ``domain`` is ``docker.io`` for Docker Hub names, ``path`` includes ``library/``
    for official images; ``tag`` and ``digest`` are ``None`` when not given.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def familiar_name(self) -> str:
        """The repository as people write it: ``busybox``, ``user/app``, ``host:5000/a/b``."""
        if self.domain != DEFAULT_DOMAIN:
            return f"{self.domain}/{self.path}"
        if self.path.startswith(_OFFICIAL_PREFIX) and "/" not in self.path[len(_OFFICIAL_PREFIX) :]:
            return self.path[len(_OFFICIAL_PREFIX) :]
        return self.path

    @property
    def full_name(self) -> str:
        """The repository with its domain: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    def with_default_tag(self) -> Reference:
        """This reference, with tag ``latest`` when it has neither tag nor digest."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def familiar(self) -> str:
        """``busybox:latest``, ``busybox@sha256:...``, or ``busybox`` when neither is set."""
        text = self.familiar_name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self.familiar()


def is_image_id(text: str) -> bool:
    """True for a full image id, with or without its ``sha256:`` prefix."""
    return bool(_SHA256_DIGEST.fullmatch(text) or _HEX64.fullmatch(text))


def parse_reference(text: str) -> Reference:
    """Parse and normalize an image reference (no default tag is added).

    Raises ``InvalidArgument`` with the reason when ``text`` is not a valid reference,
    including a bare 64-hex string (that is an image id, not a name).
    """
    if not text:
        raise InvalidArgument("invalid reference format: empty image name")
    remainder, digest = text, None
    if "@" in remainder:
        remainder, _, digest = remainder.partition("@")
        if not _SHA256_DIGEST.fullmatch(digest):
            raise InvalidArgument(f"invalid reference format: bad digest in {text!r}")
    name, tag = remainder, None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidArgument(f"invalid reference format: bad tag in {text!r}")
    if len(name) > _MAX_NAME_LENGTH:
        raise InvalidArgument(
            f"invalid reference format: repository name must not be longer than "
            f"{_MAX_NAME_LENGTH} characters: {text!r}"
        )
    domain, path = _split_domain(name)
    if not domain and _HEX64.fullmatch(path):
        raise InvalidArgument(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    _check_path(path, text)
    if not domain or domain in _LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    return Reference(domain, path, tag, digest)


def registry_domain(server: str) -> str:
    """The registry a login names, as a reference's domain: ``https://index.docker.io/v1/``,
    ``index.docker.io`` and ``docker.io`` are ``docker.io``; ``http://host:5000/x`` is
    ``host:5000``.  Raises ``InvalidArgument`` for an empty or malformed address."""
    text = server.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
    host = text.split("/", 1)[0]
    if not _DOMAIN.fullmatch(host):
        raise InvalidArgument(f"invalid registry address {server!r}: want HOST[:PORT]")
    return DEFAULT_DOMAIN if host.lower() in (DEFAULT_DOMAIN, *_LEGACY_DOMAINS) else host


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.fullmatch(first):
            raise InvalidArgument(f"invalid reference format: bad registry domain {first!r}")
        return first, rest
    return "", name


def _check_path(path: str, text: str) -> None:
    for component in path.split("/"):
        if _PATH_COMPONENT.fullmatch(component):
            continue
        if _PATH_COMPONENT.fullmatch(component.lower()):
            raise InvalidArgument(
                f"invalid reference format: repository name must be lowercase: {text!r}"
            )
        raise InvalidArgument(f"invalid reference format: {text!r}")
