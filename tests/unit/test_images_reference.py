"""Image references and config parsing: pure logic."""

from __future__ import annotations

import json

import pytest

from pycontain.errors import ImageArchiveError, InvalidArgument
from pycontain.images import parse_config_blob, parse_reference
from pycontain.images.reference import is_image_id

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "familiar", "domain", "path"),
    [
        ("busybox", "busybox:latest", "docker.io", "library/busybox"),
        ("busybox:1.36", "busybox:1.36", "docker.io", "library/busybox"),
        ("docker.io/library/busybox:1", "busybox:1", "docker.io", "library/busybox"),
        ("index.docker.io/library/busybox", "busybox:latest", "docker.io", "library/busybox"),
        ("user/app:v2", "user/app:v2", "docker.io", "user/app"),
        ("docker.io/user/app", "user/app:latest", "docker.io", "user/app"),
        ("host:5000/a/b:t", "host:5000/a/b:t", "host:5000", "a/b"),
        ("localhost/x", "localhost/x:latest", "localhost", "x"),
        ("localhost:5000/x:1", "localhost:5000/x:1", "localhost:5000", "x"),
        (
            "quay.io/org/my-app_1.2__x:v1.0-rc",
            "quay.io/org/my-app_1.2__x:v1.0-rc",
            "quay.io",
            "org/my-app_1.2__x",
        ),
        ("docker.io/library/a/b", "library/a/b:latest", "docker.io", "library/a/b"),
    ],
)
def test_parse_and_familiar(text: str, familiar: str, domain: str, path: str) -> None:
    reference = parse_reference(text)
    assert (reference.domain, reference.path) == (domain, path)
    assert reference.with_default_tag().familiar() == familiar


def test_digest_reference() -> None:
    reference = parse_reference(f"busybox@{DIGEST}")
    assert reference.digest == DIGEST
    assert reference.tag is None
    assert reference.with_default_tag().familiar() == f"busybox@{DIGEST}"
    assert parse_reference(f"host:5000/a:t@{DIGEST}").familiar() == f"host:5000/a:t@{DIGEST}"


def test_tag_kept_when_port_like() -> None:
    assert parse_reference("busybox").tag is None
    assert parse_reference("host:5000/x").tag is None
    assert parse_reference("x:5000").tag == "5000"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("Busybox", "lowercase"),
        ("busybox:", "tag"),
        ("busybox:-x", "tag"),
        ("bad name", "invalid reference format"),
        ("a//b", "invalid reference format"),
        ("-a", "invalid reference format"),
        ("a-", "invalid reference format"),
        ("busybox@sha256:abc", "digest"),
        ("busybox@md5:" + "a" * 32, "digest"),
        ("a" * 64, "64-byte hexadecimal"),
        ("x" * 256, "255"),
        ("ho_st.com/a", "registry domain"),
    ],
)
def test_invalid_references(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        parse_reference(text)


def test_is_image_id() -> None:
    assert is_image_id("a" * 64)
    assert is_image_id(DIGEST)
    assert not is_image_id("abcd")
    assert not is_image_id("busybox")


def _config(**section: object) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": section,
            "rootfs": {"type": "layers", "diff_ids": [DIGEST]},
        }
    ).encode()


def test_config_parsed_into_dataclasses() -> None:
    blob = parse_config_blob(
        _config(
            Env=["A=1"],
            Cmd=["sh"],
            Entrypoint=None,
            WorkingDir="/w",
            User="1:2",
            ExposedPorts={"80/tcp": {}, "53/udp": {}},
            Labels={"k": "v"},
        )
    )
    assert blob.diff_ids == (DIGEST,)
    assert (blob.architecture, blob.os, blob.created) == ("amd64", "linux", "2024-01-02T03:04:05Z")
    config = blob.config
    assert config.env == ("A=1",)
    assert config.cmd == ("sh",)
    assert config.entrypoint is None
    assert (config.working_dir, config.user) == ("/w", "1:2")
    assert config.exposed_ports == ("53/udp", "80/tcp")
    assert config.labels == {"k": "v"}
    assert blob.raw["config"]["WorkingDir"] == "/w"


def test_config_without_config_section() -> None:
    raw = {"rootfs": {"type": "layers", "diff_ids": []}}
    blob = parse_config_blob(json.dumps(raw).encode())
    assert blob.config.cmd is None
    assert blob.config.env == ()
    assert blob.created == ""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "invalid JSON"),
        (b"[]", "not a JSON object"),
        (_config(Env="A=1"), "Env must be a list of strings"),
        (_config(Cmd=[1]), "Cmd must be a list of strings"),
        (_config(WorkingDir=3), "WorkingDir must be a string"),
        (_config(Labels={"k": 1}), "Labels"),
        (_config(ExposedPorts=["80/tcp"]), "ExposedPorts must be a JSON object"),
        (json.dumps({"rootfs": {"type": "layers", "diff_ids": ["md5:x"]}}).encode(), "diff_id"),
        (json.dumps({"rootfs": {"type": "other"}}).encode(), "rootfs.type"),
        (json.dumps({"os": 1, "rootfs": {"type": "layers"}}).encode(), "os must be"),
    ],
)
def test_config_wrong_types(data: bytes, message: str) -> None:
    with pytest.raises(ImageArchiveError, match=message):
        parse_config_blob(data)
