"""The registry HTTP API v2 client: authentication, manifests and blobs of one repository.

What a pull asks a registry, in order (distribution-spec, Docker's token protocol)::

    GET  /v2/                                  200, or 401 + WWW-Authenticate (the challenge)
      Bearer realm=R,service=S  -> GET R?service=S&scope=repository:PATH:pull
                                   (with basic credentials when we have some)
                                -> {"token": ...} or {"access_token": ...}
      Basic realm=R             -> every request carries the credentials
    HEAD /v2/PATH/manifests/TAG                Docker-Content-Digest: has the tag moved?
    GET  /v2/PATH/manifests/TAG|DIGEST         Accept: OCI index/manifest, Docker list/v2
    GET  /v2/PATH/blobs/DIGEST                 config and layers; 307 to a CDN is followed

A login (``POST /auth``, ``check_login``) asks only the first step: ``GET /v2/`` and its
challenge answered with the credentials (basic: the ping again with them; bearer: a token
for no scope, ``account=USER``, as ``docker login`` asks Docker Hub's token service).

Every reply is foreign: manifests are parsed into typed ``Manifest``/``Index`` values
here, at the boundary, and every blob is checked against its descriptor's size and
digest by whoever reads it (``BlobStream`` stops at the first byte too many).
Plain HTTP is used only for ``localhost``, 127.0.0.1, ``[::1]`` and the registries the
daemon lists with ``--insecure-registry``; everything else is HTTPS.
Transient failures (connection reset, time-out, 5xx, 429) are retried with backoff.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from pycontain.errors import InvalidArgument, NotFound, RegistryError, Unauthorized
from pycontain.images.config import host_architecture
from pycontain.images.reference import DEFAULT_DOMAIN, Reference, registry_domain

__all__ = [
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "BlobStream",
    "Credentials",
    "Descriptor",
    "Index",
    "Manifest",
    "Platform",
    "RegistryClient",
    "check_login",
    "choose_platform",
    "host_platform",
    "is_transient",
    "parse_challenge",
    "parse_index",
    "parse_manifest",
]

log = logging.getLogger(__name__)

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES: Final = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES: Final = (OCI_MANIFEST, DOCKER_MANIFEST)
LAYER_TYPES: Final = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
)
_ACCEPT: Final = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
_DOCKER_HUB_API: Final = "registry-1.docker.io"
_LOCAL_HOSTS: Final = ("localhost", "127.0.0.1", "[::1]")
_ATTESTATION_ANNOTATION: Final = "vnd.docker.reference.type"
_MAX_MANIFEST_BYTES: Final = 4 << 20
_MAX_CONFIG_BYTES: Final = 16 << 20
_MAX_TOKEN_BYTES: Final = 1 << 20
_MAX_REDIRECTS: Final = 5
_RETRIES: Final = 4
_BACKOFF_SECONDS: Final = 0.25
_CHUNK: Final = 256 << 10
_DIGEST: Final = re.compile(r"sha256:[a-f0-9]{64}")
_CHALLENGE_PARAM: Final = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or identity token) for one registry."""

    username: str
    password: str

    @classmethod
    def from_registry_auth(cls, header: str | None) -> Credentials | None:
        """Docker's ``X-Registry-Auth`` header: base64url JSON {username, password, ...}.

        None when the header is absent or carries no user name; ``RegistryError`` when
        it cannot be decoded.
        """
        if not header:
            return None
        try:
            padded = header + "=" * (-len(header) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded))
        except (ValueError, TypeError) as exc:
            raise RegistryError(f"decode X-Registry-Auth header: {exc}") from exc
        if not isinstance(data, dict):
            raise RegistryError("decode X-Registry-Auth header: not a JSON object")
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not username:
            return None
        return cls(username, password if isinstance(password, str) else "")

    def basic_authorization(self) -> str:
        """The ``Authorization`` header value of HTTP basic auth."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


@dataclass(frozen=True)
class Platform:
    """os/architecture[/variant], as manifests and configs name them."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclass(frozen=True)
class Descriptor:
    """A pointer to a blob or manifest: media type, digest and size (both verified on read)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    attestation: bool = False


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker v2 schema 2): one config and the layers, bottom up."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    """A multi-platform index (OCI index or Docker manifest list)."""

    media_type: str
    manifests: tuple[Descriptor, ...]


def host_platform() -> Platform:
    """The platform this machine runs: linux and Go's name of the architecture."""
    arch = host_architecture()
    return Platform("linux", arch, "v8" if arch == "arm64" else "")


async def check_login(server: str, credentials: Credentials,
                      insecure: Collection[str] = ()) -> None:
    """Check ``credentials`` with the registry ``server`` as ``docker login`` does.

    Raises ``InvalidArgument`` for a malformed address, ``Unauthorized`` when the registry
    refuses the credentials, ``RegistryError`` when it cannot be asked.
    """
    domain = registry_domain(server)
    async with RegistryClient(Reference(domain, ""), insecure, credentials) as client:
        await client.check_credentials()


def choose_platform(index: Index, want: Platform, what: str) -> Descriptor:
    """The entry of ``index`` for ``want``; attestation entries are never chosen.

    A variant must match when both sides name one (arm64's ``v8`` is the default).
    Raises ``NotFound`` naming the platforms the index does have.
    """
    candidates = [m for m in index.manifests if m.platform is not None and not m.attestation]
    for entry in candidates:
        plat = entry.platform
        assert plat is not None
        if plat.os != want.os or plat.architecture != want.architecture:
            continue
        if plat.variant and want.variant and plat.variant != want.variant:
            continue
        return entry
    have = ", ".join(str(m.platform) for m in candidates) or "none"
    raise NotFound(f"{what}: no matching manifest for {want} in the manifest list "
                   f"entries (it has: {have})")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3) or "")
              .replace('\\"', '"') for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def parse_manifest(data: bytes, media_type: str, what: str) -> Manifest | Index:
    """Parse a manifest or index reply; the JSON ``mediaType`` wins over the header's.

    Raises ``RegistryError`` naming the field that is wrong.
    """
    raw = _json_object(data, what)
    kind = raw.get("mediaType") if isinstance(raw.get("mediaType"), str) else media_type
    if kind not in (*INDEX_TYPES, *MANIFEST_TYPES):
        kind = OCI_INDEX if "manifests" in raw else OCI_MANIFEST if "layers" in raw else kind
    if raw.get("schemaVersion") != 2:
        raise RegistryError(f"{what}: unsupported manifest schema version "
                            f"{raw.get('schemaVersion')!r} (only schema 2 is supported)")
    if kind in INDEX_TYPES:
        return parse_index(raw, kind, what)
    if kind not in MANIFEST_TYPES:
        raise RegistryError(f"{what}: unsupported manifest media type {kind!r}")
    config = _descriptor(raw.get("config"), f"{what}: config")
    layers = raw.get("layers")
    if not isinstance(layers, list):
        raise RegistryError(f"{what}: layers must be a list")
    parsed = tuple(_descriptor(layer, f"{what}: layer {n}") for n, layer in enumerate(layers))
    for layer in parsed:
        if layer.media_type not in LAYER_TYPES:
            raise RegistryError(f"{what}: unsupported layer media type {layer.media_type!r}")
    return Manifest(kind, config, parsed)


def parse_index(raw: dict[str, Any], kind: str, what: str) -> Index:
    entries = raw.get("manifests")
    if not isinstance(entries, list):
        raise RegistryError(f"{what}: manifests must be a list")
    return Index(kind, tuple(_descriptor(e, f"{what}: manifests[{n}]")
                             for n, e in enumerate(entries)))


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{what}: invalid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise RegistryError(f"{what}: not a JSON object")
    return raw


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise RegistryError(f"{what}: not a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise RegistryError(f"{what}: bad or unsupported digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{what}: bad size {size!r}")
    platform = None
    plat = value.get("platform")
    if isinstance(plat, dict):
        os_name, arch, variant = plat.get("os"), plat.get("architecture"), plat.get("variant")
        if isinstance(os_name, str) and isinstance(arch, str):
            platform = Platform(os_name, arch, variant if isinstance(variant, str) else "")
    annotations = value.get("annotations")
    attestation = isinstance(annotations, dict) and annotations.get(
        _ATTESTATION_ANNOTATION) == "attestation-manifest"
    return Descriptor(media_type if isinstance(media_type, str) else "", digest, size,
                      platform, attestation)


def _registry_message(body: bytes) -> str:
    """``code: message`` of a registry's ``{"errors": [...]}`` body, else the body's text."""
    try:
        errors = json.loads(body).get("errors")
        first = errors[0]
        return f"{str(first['code']).lower().replace('_', ' ')}: {first['message']}"
    except (ValueError, AttributeError, LookupError, TypeError):
        return body[:200].decode(errors="replace").strip()


class BlobStream:
    """A blob being downloaded: its chunks, stopped with ``RegistryError`` at the first byte
    beyond the descriptor's size, or at the end when it was short or its digest is wrong.
    ``received`` counts the bytes so far (for progress)."""

    def __init__(self, response: aiohttp.ClientResponse, descriptor: Descriptor,
                 what: str) -> None:
        self._response = response
        self._descriptor = descriptor
        self._what = what
        self._hash = hashlib.sha256()
        self.received = 0

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        expected = self._descriptor.size
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                self.received += len(chunk)
                if self.received > expected:
                    raise RegistryError(f"{self._what}: more data than the {expected} bytes "
                                        "the manifest announces")
                self._hash.update(chunk)
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RegistryError(f"{self._what}: download cut off after {self.received} of "
                                f"{expected} bytes: {_describe(exc)}") from exc
        finally:
            self._response.release()
        if self.received != expected:
            raise RegistryError(f"{self._what}: download ended after {self.received} of "
                                f"{expected} bytes")
        digest = "sha256:" + self._hash.hexdigest()
        if digest != self._descriptor.digest:
            raise RegistryError(f"{self._what}: digest mismatch: got {digest}, the manifest "
                                f"says {self._descriptor.digest}")


def is_transient(exc: RegistryError) -> bool:
    """True when a download failed on the way (reset, time-out), not on its content."""
    return isinstance(exc.__cause__, (aiohttp.ClientError, TimeoutError))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


class RegistryClient:
    """One repository of one registry, for one pull.  Use as an async context manager.

    ``insecure`` lists the registries (``host[:port]``) that may be spoken to over plain
    HTTP besides the local ones.  Raises ``RegistryError`` for transport failures and
    bad replies, ``NotFound`` for an unknown manifest or repository.
    """

    def __init__(self, reference: Reference, insecure: Collection[str] = (),
                 credentials: Credentials | None = None, *, timeout: float = 60.0) -> None:
        self.reference = reference
        host = _DOCKER_HUB_API if reference.domain == DEFAULT_DOMAIN else reference.domain
        self.plain_http = _is_local(host) or reference.domain in insecure
        self.base = f"{'http' if self.plain_http else 'https'}://{host}/v2/{reference.path}"
        self._root = f"{'http' if self.plain_http else 'https'}://{host}/v2/"
        self._insecure = insecure
        self._credentials = credentials
        self._authorization: str | None = None
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout),
            headers={"User-Agent": "pycontain"}, auto_decompress=False)

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    # -- what a pull asks -----------------------------------------------------

    async def login(self) -> None:
        """GET /v2/ and answer its challenge (a bearer token, or basic credentials)."""
        response, body = await self._fetch("GET", self._root, authorize=False)
        if response.status == 200:
            return
        if response.status != 401:
            raise RegistryError(f"ping {self._root}: {response.status} {_registry_message(body)}")
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            if self._credentials is None:
                raise RegistryError(f"pull {self.reference.familiar_name}: {self.reference.domain} "
                                    "needs a user name and password (pycontain login)")
            self._authorization = self._credentials.basic_authorization()
        elif scheme == "bearer":
            self._authorization = "Bearer " + await self._token(params)
        else:
            raise RegistryError(f"ping {self._root}: unsupported authentication scheme "
                                f"{scheme!r}")

    async def check_credentials(self) -> None:
        """The registry's challenge answered with our credentials; ``Unauthorized`` when
        it refuses them (a registry that asks for none accepts any, as Docker's login)."""
        what = f"login to {self.reference.domain}"
        if self._credentials is None:
            raise InvalidArgument(f"{what}: no user name given")
        response, body = await self._fetch("GET", self._root, authorize=False)
        if response.status == 200:
            return
        if response.status != 401:
            raise RegistryError(f"{what}: GET {self._root}: {response.status} "
                                f"{_registry_message(body)}")
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            self._authorization = self._credentials.basic_authorization()
            response, body = await self._fetch("GET", self._root)
            asked = f"GET {self._root}"
        elif scheme == "bearer":
            response, body = await self._ask_token(params, {"account": self._credentials.username})
            asked = f"get token from {params.get('realm', '')}"
        else:
            raise RegistryError(f"{what}: unsupported authentication scheme {scheme!r}")
        if response.status in (401, 403):
            raise Unauthorized(f"{what}: incorrect username or password "
                               f"({_registry_message(body) or response.reason})")
        if response.status != 200:
            raise RegistryError(f"{what}: {asked}: {response.status} {_registry_message(body)}")

    async def manifest_digest(self, tag: str) -> str | None:
        """HEAD the manifest of ``tag``: its digest, or None when the registry does not say."""
        url = f"{self.base}/manifests/{tag}"
        response, body = await self._fetch("HEAD", url, accept=_ACCEPT)
        self._check(response, body, url)
        digest = response.headers.get("Docker-Content-Digest", "")
        return digest if _DIGEST.fullmatch(digest) else None

    async def manifest(self, tag_or_digest: str) -> tuple[bytes, str, str]:
        """GET a manifest or index: (its bytes, media type, digest).

        A manifest asked for by digest must have that digest; one asked for by tag gets
        the digest of its bytes (and must agree with ``Docker-Content-Digest`` if sent).
        """
        url = f"{self.base}/manifests/{tag_or_digest}"
        response, body = await self._fetch("GET", url, accept=_ACCEPT,
                                           limit=_MAX_MANIFEST_BYTES)
        self._check(response, body, url)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        claimed = response.headers.get("Docker-Content-Digest")
        expected = tag_or_digest if _DIGEST.fullmatch(tag_or_digest) else claimed
        if expected and expected.startswith("sha256:") and expected != digest:
            raise RegistryError(f"manifest {self.reference.familiar_name}:{tag_or_digest}: "
                                f"digest mismatch: got {digest}, expected {expected}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return body, media_type, digest

    async def blob_bytes(self, descriptor: Descriptor, what: str) -> bytes:
        """A small blob (the config) read whole and verified."""
        if descriptor.size > _MAX_CONFIG_BYTES:
            raise RegistryError(f"{what}: {descriptor.size} bytes is too large")
        for attempt in range(1, _RETRIES + 1):
            stream = await self.blob(descriptor, what)
            try:
                return b"".join([chunk async for chunk in stream.chunks()])
            except RegistryError as exc:
                if not is_transient(exc) or attempt == _RETRIES:
                    raise
                log.info("%s: %s, retrying", what, exc)
                await asyncio.sleep(_BACKOFF_SECONDS * attempt)
        raise RegistryError(f"{what}: still failing after {_RETRIES} attempts")

    async def blob(self, descriptor: Descriptor, what: str) -> BlobStream:
        """Start the download of a blob; read it with ``chunks()`` (verified as it goes)."""
        url = f"{self.base}/blobs/{descriptor.digest}"
        response, body = await self._fetch("GET", url, stream=True)
        if response.status != 200:
            self._check(response, body, url)
            raise RegistryError(f"{what}: GET {url}: {response.status}")
        return BlobStream(response, descriptor, what)

    # -- transport -------------------------------------------------------------

    def _check(self, response: aiohttp.ClientResponse, body: bytes, url: str) -> None:
        if response.status in (200, 204):
            return
        name = self.reference.familiar_name
        message = _registry_message(body) or response.reason or ""
        if response.status == 404 and "/manifests/" in url:
            tag = url.rsplit("/", 1)[1]
            raise NotFound(f"manifest for {name}:{tag} not found: {message}")
        if response.status in (401, 403) or "name unknown" in message:
            raise RegistryError(f"pull access denied for {name}, repository does not exist or "
                                f"may require 'pycontain login': {message}")
        raise RegistryError(f"GET {url}: {response.status} {message}")

    async def _ask_token(self, params: dict[str, str], query: dict[str, str],
                         ) -> tuple[aiohttp.ClientResponse, bytes]:
        """GET the challenge's realm for ``query`` (and its service), with our credentials."""
        realm = params.get("realm", "")
        parsed = urllib.parse.urlsplit(realm)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RegistryError(f"token service of {self.reference.domain}: bad realm {realm!r}")
        if parsed.scheme == "http" and not (_is_local(parsed.netloc)
                                            or parsed.netloc in self._insecure):
            raise RegistryError(f"token service {realm}: refusing plain HTTP")
        if params.get("service"):
            query = {**query, "service": params["service"]}
        url = realm + ("&" if parsed.query else "?") + urllib.parse.urlencode(query)
        headers = {}
        if self._credentials is not None:
            headers["Authorization"] = self._credentials.basic_authorization()
        return await self._fetch("GET", url, authorize=False, headers=headers,
                                 limit=_MAX_TOKEN_BYTES)

    async def _token(self, params: dict[str, str]) -> str:
        realm = params.get("realm", "")
        response, body = await self._ask_token(
            params, {"scope": f"repository:{self.reference.path}:pull"})
        if response.status != 200:
            raise RegistryError(f"get token from {realm}: {response.status} "
                                f"{_registry_message(body)}")
        reply = _json_object(body, f"token from {realm}")
        token = reply.get("token") or reply.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token from {realm}: no token in the reply")
        return token

    async def _fetch(self, method: str, url: str, *, authorize: bool = True,
                     accept: str | None = None, headers: dict[str, str] | None = None,
                     limit: int = 64 << 10, stream: bool = False,
                     ) -> tuple[aiohttp.ClientResponse, bytes]:
        """One request with retries (resets, time-outs, 5xx, 429) and redirects followed
        by hand: the Authorization header goes only to the registry's own host.

        Returns the response and its body (empty when ``stream``, then the caller reads
        and releases the response).
        """
        origin = urllib.parse.urlsplit(url).netloc
        delay = _BACKOFF_SECONDS
        for attempt in range(_RETRIES):
            target, hops = url, 0
            try:
                while True:
                    send = dict(headers or {})
                    if accept:
                        send["Accept"] = accept
                    same_host = urllib.parse.urlsplit(target).netloc == origin
                    if authorize and same_host and self._authorization:
                        send["Authorization"] = self._authorization
                    response = await self._session.request(method, target, headers=send,
                                                           allow_redirects=False)
                    if response.status in (301, 302, 303, 307, 308):
                        response.release()
                        hops += 1
                        if hops > _MAX_REDIRECTS:
                            raise RegistryError(f"{method} {url}: too many redirects")
                        target = self._redirect(target, response.headers.get("Location", ""))
                        continue
                    break
                if (response.status >= 500 or response.status == 429) and attempt + 1 < _RETRIES:
                    response.release()
                    log.info("%s %s: %s, retrying", method, target, response.status)
                elif stream and response.status == 200:
                    return response, b""
                else:
                    body = await response.content.read(limit + 1)
                    response.release()
                    if len(body) > limit:
                        raise RegistryError(f"{method} {target}: reply larger than {limit} bytes")
                    return response, body
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt + 1 == _RETRIES:
                    raise RegistryError(f"{method} {target}: {_describe(exc)}") from exc
                log.info("%s %s: %s, retrying", method, target, _describe(exc))
            await asyncio.sleep(delay)
            delay *= 2
        raise RegistryError(f"{method} {url}: still failing after {_RETRIES} attempts")

    def _redirect(self, current: str, location: str) -> str:
        target = urllib.parse.urljoin(current, location)
        parsed = urllib.parse.urlsplit(target)
        if parsed.scheme == "https" or (parsed.scheme == "http" and (
                _is_local(parsed.netloc) or parsed.netloc in self._insecure)):
            return target
        raise RegistryError(f"redirect from {current} to {target!r} refused "
                            "(plain HTTP or an unknown scheme)")


def _is_local(netloc: str) -> bool:
    host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    return host in _LOCAL_HOSTS or netloc in _LOCAL_HOSTS
