"""The registry client without a real registry: challenges, manifests, platform choice,
the greenlet bridge, and the bearer-token flow against a fake Docker Hub on 127.0.0.1
that answers with the shapes Docker Hub's registry and token service send.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from pycontain.cli.images import PullView
from pycontain.errors import NotFound, RegistryError, Unauthorized
from pycontain.images.pull import _await, _ChunkReader, run_in_greenlet
from pycontain.images.reference import parse_reference
from pycontain.images.registry import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    Credentials,
    Index,
    Manifest,
    Platform,
    RegistryClient,
    check_login,
    choose_platform,
    parse_challenge,
    parse_manifest,
)

# Recorded from registry-1.docker.io and auth.docker.io (token shortened).
HUB_CHALLENGE = ('Bearer realm="{realm}",service="registry.docker.io",'
                 'scope="repository:library/alpine:pull"')
HUB_UNAUTHORIZED = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                                "detail": [{"Type": "repository", "Class": "",
                                            "Name": "library/alpine", "Action": "pull"}]}]}
HUB_TOKEN = {"token": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2ln",
             "access_token": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.e30.c2ln",
             "expires_in": 300, "issued_at": "2024-05-06T07:08:09.123456789Z"}
DIGEST = "sha256:" + "a" * 64


def _descriptor(digest: str = DIGEST, **extra: Any) -> dict[str, Any]:
    return {"mediaType": DOCKER_MANIFEST, "digest": digest, "size": 10, **extra}



@contextlib.asynccontextmanager
async def serve_on_loopback(app: web.Application) -> AsyncIterator[int]:
    """Run a fake registry or token server on 127.0.0.1; yields its port."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()

def test_parse_challenge_of_docker_hub() -> None:
    scheme, params = parse_challenge(HUB_CHALLENGE.format(realm="https://auth.docker.io/token"))
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/alpine:pull"}
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic",
                                                                {"realm": "Registry Realm"})


def test_choose_platform_skips_attestations_and_checks_variants() -> None:
    index = Index(DOCKER_LIST, tuple(
        parse_manifest(json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
            _descriptor("sha256:" + "1" * 64, platform={"os": "unknown",
                                                        "architecture": "unknown"},
                        annotations={"vnd.docker.reference.type": "attestation-manifest"}),
            _descriptor("sha256:" + "2" * 64, platform={"os": "linux", "architecture": "arm",
                                                        "variant": "v6"}),
            _descriptor("sha256:" + "3" * 64, platform={"os": "linux", "architecture": "arm",
                                                        "variant": "v7"}),
            _descriptor("sha256:" + "4" * 64, platform={"os": "linux",
                                                        "architecture": "amd64"}),
        ]}).encode(), "", "test").manifests))  # type: ignore[union-attr]
    assert choose_platform(index, Platform("linux", "amd64"), "t").digest.endswith("4" * 64)
    assert choose_platform(index, Platform("linux", "arm", "v7"), "t").digest.endswith("3" * 64)
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        choose_platform(index, Platform("linux", "s390x"), "t")


@pytest.mark.parametrize("body, message", [
    (b"not json", "invalid JSON"),
    (json.dumps({"schemaVersion": 1}).encode(), "schema version"),
    (json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                 "config": _descriptor("md5:abc"), "layers": []}).encode(), "digest"),
    (json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": _descriptor(),
                 "layers": [_descriptor(size=-1)]}).encode(), "bad size"),
    (json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": _descriptor(),
                 "layers": [_descriptor(mediaType="text/html")]}).encode(), "layer media type"),
])
def test_bad_manifests_are_refused_with_the_field(body: bytes, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_manifest(body, DOCKER_MANIFEST, "manifest x")


def test_registry_auth_header() -> None:
    header = base64.urlsafe_b64encode(json.dumps(
        {"username": "u", "password": "p", "serveraddress": "x"}).encode()).decode().rstrip("=")
    assert Credentials.from_registry_auth(header) == Credentials("u", "p")
    assert Credentials.from_registry_auth(None) is None
    assert Credentials.from_registry_auth(base64.b64encode(b"{}").decode()) is None
    with pytest.raises(RegistryError, match="X-Registry-Auth"):
        Credentials.from_registry_auth("!!!")


def test_greenlet_bridge_reads_async_chunks_synchronously() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"ab", b"cde", b"", b"f"):
            await asyncio.sleep(0)
            if part:
                yield part

    def consume(reader: _ChunkReader) -> list[bytes]:
        return [reader.read(4), reader.read(1), reader.read(10), reader.read(10)]

    counted: list[int] = []
    result = asyncio.run(run_in_greenlet(consume, _ChunkReader(chunks(), counted.append)))
    assert result == [b"abcd", b"e", b"f", b""]
    assert sum(counted) == 6

    def fails() -> None:
        _await(asyncio.sleep(0))
        raise RegistryError("inside")

    with pytest.raises(RegistryError, match="inside"):
        asyncio.run(run_in_greenlet(fails))

    async def broken() -> None:
        raise RegistryError("outside")

    def relays() -> str:
        try:
            _await(broken())
        except RegistryError as exc:
            return f"caught {exc}"
        return "no"

    assert asyncio.run(run_in_greenlet(relays)) == "caught outside"


def test_pull_view_plain_and_terminal() -> None:
    plain = io.StringIO()
    view = PullView(plain, terminal=False)
    for message in ({"status": "Pulling from library/alpine", "id": "latest"},
                    {"status": "Pulling fs layer", "progressDetail": {}, "id": "abc"},
                    {"status": "Downloading", "progressDetail": {"current": 1, "total": 2},
                     "progress": "[==>  ]", "id": "abc"},
                    {"status": "Pull complete", "progressDetail": {}, "id": "abc"},
                    {"status": "Digest: sha256:x"}):
        view.show(message)
    assert plain.getvalue() == ("latest: Pulling from library/alpine\nabc: Pulling fs layer\n"
                                "abc: Pull complete\nDigest: sha256:x\n")
    tty = io.StringIO()
    view = PullView(tty, terminal=True)
    view.show({"status": "Pulling fs layer", "progressDetail": {}, "id": "a"})
    view.show({"status": "Pulling fs layer", "progressDetail": {}, "id": "b"})
    view.show({"status": "Downloading", "progressDetail": {"current": 1, "total": 2},
               "progress": "[==>  ]", "id": "a"})
    assert tty.getvalue().endswith("\x1b[2A\r\x1b[2Ka: Downloading [==>  ]\x1b[2B\r")


def test_token_flow_with_docker_hub_shapes() -> None:
    """GET /v2/ -> 401 + challenge -> token (with basic credentials) -> manifest with it."""
    manifest = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                           "config": _descriptor(), "layers": []}).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    seen: dict[str, Any] = {}

    async def scenario() -> tuple[Manifest | Index, str]:
        async def token(request: web.Request) -> web.Response:
            seen["token_query"] = dict(request.query)
            seen["token_auth"] = request.headers.get("Authorization")
            return web.json_response(HUB_TOKEN)

        def challenge(request: web.Request) -> web.Response | None:
            if request.headers.get("Authorization") == "Bearer " + HUB_TOKEN["token"]:
                return None
            realm = f"http://{request.host}/token"
            return web.json_response(HUB_UNAUTHORIZED, status=401, headers={
                "WWW-Authenticate": HUB_CHALLENGE.format(realm=realm)})

        async def ping(request: web.Request) -> web.Response:
            return challenge(request) or web.json_response({})

        async def manifests(request: web.Request) -> web.Response:
            return challenge(request) or web.Response(body=manifest, headers={
                "Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": digest})

        app = web.Application()
        app.router.add_get("/token", token)
        app.router.add_get("/v2/", ping)
        app.router.add_get("/v2/library/alpine/manifests/{ref}", manifests)
        async with serve_on_loopback(app) as port:
            reference = parse_reference(f"127.0.0.1:{port}/library/alpine:latest")
            async with RegistryClient(reference, credentials=Credentials("u", "p")) as client:
                await client.login()
                data, media_type, got = await client.manifest("latest")
                return parse_manifest(data, media_type, "m"), got

    parsed, got = asyncio.run(scenario())
    assert isinstance(parsed, Manifest) and got == digest
    assert seen["token_query"] == {"scope": "repository:library/alpine:pull",
                                   "service": "registry.docker.io"}
    assert seen["token_auth"] == "Basic " + base64.b64encode(b"u:p").decode()


def test_login_against_docker_hub_shapes() -> None:
    """docker login's question: a token for no scope, ``account=USER``; 401 -> Unauthorized."""
    seen: list[dict[str, str]] = []

    async def scenario(password: str) -> None:
        async def token(request: web.Request) -> web.Response:
            seen.append(dict(request.query))
            if request.headers.get("Authorization") != "Basic " + base64.b64encode(
                    b"u:right").decode():
                return web.json_response({"details": "incorrect username or password"},
                                         status=401)
            return web.json_response(HUB_TOKEN)

        async def ping(request: web.Request) -> web.Response:
            return web.json_response(HUB_UNAUTHORIZED, status=401, headers={
                "WWW-Authenticate": f'Bearer realm="http://{request.host}/token",'
                                    'service="registry.docker.io"'})

        app = web.Application()
        app.router.add_get("/token", token)
        app.router.add_get("/v2/", ping)
        async with serve_on_loopback(app) as port:
            await check_login(f"http://127.0.0.1:{port}/", Credentials("u", password))

    asyncio.run(scenario("right"))
    assert seen == [{"account": "u", "service": "registry.docker.io"}]
    with pytest.raises(Unauthorized, match=r"^login to 127\.0\.0\.1:\d+: incorrect username or "
                                           r"password \(.*incorrect username or password"):
        asyncio.run(scenario("wrong"))
