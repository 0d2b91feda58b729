#!/usr/bin/env python3
"""Build pycontain's offline default images, with no network.

Outputs, in ``rootfs/out/`` or ``--out DIR``:

``busybox.tar``
    Image ``busybox:latest`` in ``docker save`` format (legacy ``manifest.json``,
    ``repositories``, ``<layer>/layer.tar``, the config as ``<hex>.json``).  One
    layer: the host's static busybox (Debian's busybox-static) at /bin/busybox, a
    relative symlink for every applet at the path ``busybox --list-full`` gives,
    /etc/passwd and /etc/group (root, nobody), /tmp (1777), /root, /home, /var and
    empty /proc, /sys, /dev.  Config: Cmd ["sh"], the usual PATH.

``multilayer.tar``
    Image ``pycontain-test/multilayer:latest``: the busybox layer and three more
    that exercise what an image store must get right.

    1. adds /app/greet.sh, /app/hello.txt, /app/remove-me.txt, /app/cache/old-1.txt,
       /app/cache/old-2.txt, /app/old-dir/file.txt and /etc/motd ("motd from layer 1").
    2. deletes /app/remove-me.txt (``.wh.remove-me.txt``), makes /app/cache opaque
       (``.wh..wh..opq``) with only new.txt in it, and changes /etc/motd.
    3. changes /app/hello.txt and deletes the directory /app/old-dir.

    So the merged tree has /app/{greet.sh, hello.txt ("hello from layer 3"),
    cache/new.txt} and /etc/motd "motd from layer 2".  Config: Env PATH and
    GREETING=hello, WorkingDir /app, Entrypoint ["/app/greet.sh"], Cmd ["world"]
    (so the container prints "hello world"), a label and an exposed port.

``busybox-oci.tar``
    ``busybox.tar`` converted by ``skopeo copy`` to an OCI archive (tag "oci");
    skipped, with a note, when skopeo is not installed.

It needs only the standard library and pycontain's own ``host_architecture``.
The archives are deterministic (fixed timestamps, sorted entries, owner 0:0), so
the image ids are the same on every build from the same busybox binary.  Nothing
is rebuilt when every output is newer than this script and the busybox binary.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout, too
from pycontain.images.config import host_architecture

ROOTFS_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = ROOTFS_DIR / "out"
DEFAULT_BUSYBOX = Path("/bin/busybox")

CREATED = "2024-01-01T00:00:00Z"
CREATED_EPOCH = 1704067200  # CREATED as a Unix time: every file's mtime
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

BUSYBOX_TAG = "busybox:latest"
MULTILAYER_TAG = "pycontain-test/multilayer:latest"
OCI_TAG = "busybox:oci"


class BuildError(Exception):
    """A build input is missing or unusable; the message says which and why."""


@dataclass(frozen=True)
class Entry:
    """One member of a layer tar: a directory, a regular file or a symlink."""

    path: str
    type: bytes
    mode: int
    data: bytes = b""
    link_target: str = ""


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, tarfile.DIRTYPE, mode)


def regular_file(path: str, data: bytes | str, mode: int = 0o644) -> Entry:
    return Entry(path, tarfile.REGTYPE, mode, data.encode() if isinstance(data, str) else data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, tarfile.SYMTYPE, 0o777, link_target=target)


def whiteout(deleted_path: str) -> Entry:
    """The marker that deletes ``deleted_path`` of a lower layer."""
    parent, _, name = deleted_path.rpartition("/")
    return regular_file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", b"")


def opaque_marker(directory_path: str) -> Entry:
    """The marker that hides every lower-layer entry of ``directory_path``."""
    return regular_file(f"{directory_path}/.wh..wh..opq", b"")


def deterministic_tar(entries: Iterable[Entry]) -> bytes:
    """A tar of ``entries`` sorted by path, owned by 0:0, every mtime ``CREATED_EPOCH``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in sorted(entries, key=lambda item: item.path):
            info = tarfile.TarInfo(entry.path)
            info.type = entry.type
            info.mode = entry.mode
            info.mtime = CREATED_EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.linkname = entry.link_target
            info.size = len(entry.data)
            archive.addfile(info, io.BytesIO(entry.data) if entry.type == tarfile.REGTYPE else None)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Layer:
    tar: bytes
    created_by: str

    @property
    def digest_hex(self) -> str:
        return sha256_hex(self.tar)


@dataclass(frozen=True)
class ImageSpec:
    repo_tag: str
    layers: list[Layer]
    config: dict[str, Any]
    """The image config's "config" section (Env, Cmd, WorkingDir, ...)."""
    architecture: str = field(default_factory=host_architecture)

    def config_blob(self) -> bytes:
        return canonical_json(
            {
                "architecture": self.architecture,
                "config": self.config,
                "created": CREATED,
                "history": [
                    {"created": CREATED, "created_by": layer.created_by} for layer in self.layers
                ],
                "os": "linux",
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [f"sha256:{layer.digest_hex}" for layer in self.layers],
                },
            }
        )

    def image_id(self) -> str:
        return f"sha256:{sha256_hex(self.config_blob())}"


def docker_save_archive(image: ImageSpec) -> bytes:
    """``image`` in `docker save`'s legacy format, one directory per layer named by its digest."""
    config_blob = image.config_blob()
    config_name = f"{sha256_hex(config_blob)}.json"
    layer_paths = [f"{layer.digest_hex}/layer.tar" for layer in image.layers]
    repository, _, tag = image.repo_tag.rpartition(":")
    manifest = [{"Config": config_name, "RepoTags": [image.repo_tag], "Layers": layer_paths}]
    entries = [
        regular_file("manifest.json", canonical_json(manifest)),
        regular_file(
            "repositories", canonical_json({repository: {tag: image.layers[-1].digest_hex}})
        ),
        regular_file(config_name, config_blob),
    ]
    for layer, layer_path in zip(image.layers, layer_paths, strict=True):
        entries.append(directory(layer.digest_hex))
        entries.append(regular_file(layer_path, layer.tar))
    return deterministic_tar(entries)


def busybox_applets(busybox: Path) -> list[str]:
    """The applet paths of ``busybox --list-full`` ("bin/sh", "usr/bin/awk", ...).

    Raises:
        BuildError: busybox cannot run, or lists a path that is not relative and clean.
    """
    try:
        listing = subprocess.run(
            [str(busybox), "--list-full"], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"run {busybox} --list-full: {exc}") from exc
    applets = []
    for line in listing.split():
        parts = line.split("/")
        if line.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise BuildError(f"{busybox} --list-full gave an unusable path {line!r}")
        applets.append(line)
    return applets


def busybox_version(busybox: Path) -> str:
    """The banner's version, e.g. "v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1)"; "" if absent."""
    banner = subprocess.run([str(busybox)], capture_output=True, text=True).stdout
    match = re.match(r"BusyBox (\S+(?: \([^)]*\))?)", banner)
    return match.group(1) if match else ""


def busybox_layer(busybox: Path) -> Layer:
    """The root filesystem of the busybox image.

    Raises:
        BuildError: the binary is missing or does not list its applets.
    """
    try:
        binary = busybox.read_bytes()
    except OSError as exc:
        raise BuildError(
            f"read {busybox}: {exc.strerror}; install Debian's busybox-static"
        ) from exc
    entries = {
        entry.path: entry
        for entry in [
            *(directory(name) for name in ("bin", "etc", "home", "usr", "var", "proc", "sys")),
            directory("dev"),
            directory("root", 0o700),
            directory("tmp", 0o1777),
            regular_file("bin/busybox", binary, 0o755),
            regular_file(
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            ),
            regular_file("etc/group", "root:x:0:\nnobody:x:65534:\n"),
        ]
    }
    for applet in busybox_applets(busybox):
        if applet == "bin/busybox":
            continue
        for ancestor in ancestor_dirs(applet):
            entries.setdefault(ancestor, directory(ancestor))
        entries[applet] = symlink(applet, os.path.relpath("bin/busybox", os.path.dirname(applet)))
    version = busybox_version(busybox) or "(version unknown)"
    return Layer(
        deterministic_tar(entries.values()),
        f"pycontain rootfs/build.py: static busybox {version}, one symlink per applet",
    )


def ancestor_dirs(path: str) -> list[str]:
    """The directories above a relative path, outermost first: "a/b/c" -> ["a", "a/b"]."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: depth + 1]) for depth in range(len(parts))]


GREET_SCRIPT = '#!/bin/sh\necho "$GREETING $*"\n'


def multilayer_layers() -> list[Layer]:
    """The three layers of the multilayer test image above busybox (see the module docstring)."""
    adds = [
        directory("app"),
        regular_file("app/greet.sh", GREET_SCRIPT, 0o755),
        regular_file("app/hello.txt", "hello from layer 1\n"),
        regular_file("app/remove-me.txt", "deleted by layer 2\n"),
        directory("app/cache"),
        regular_file("app/cache/old-1.txt", "hidden by the opaque cache of layer 2\n"),
        regular_file("app/cache/old-2.txt", "hidden by the opaque cache of layer 2\n"),
        directory("app/old-dir"),
        regular_file("app/old-dir/file.txt", "deleted with its directory by layer 3\n"),
        directory("etc"),
        regular_file("etc/motd", "motd from layer 1\n"),
    ]
    whiteouts = [
        directory("app"),
        whiteout("app/remove-me.txt"),
        directory("app/cache"),
        opaque_marker("app/cache"),
        regular_file("app/cache/new.txt", "the only file left in the cache\n"),
        directory("etc"),
        regular_file("etc/motd", "motd from layer 2\n"),
    ]
    changes = [
        directory("app"),
        regular_file("app/hello.txt", "hello from layer 3\n"),
        whiteout("app/old-dir"),
    ]
    return [
        Layer(deterministic_tar(adds), "layer 1: add /app and /etc/motd"),
        Layer(deterministic_tar(whiteouts), "layer 2: whiteout, opaque /app/cache, change motd"),
        Layer(deterministic_tar(changes), "layer 3: change hello.txt, delete /app/old-dir"),
    ]


def busybox_image(base: Layer) -> ImageSpec:
    return ImageSpec(BUSYBOX_TAG, [base], {"Cmd": ["sh"], "Env": [PATH_ENV]})


def multilayer_image(base: Layer) -> ImageSpec:
    return ImageSpec(
        MULTILAYER_TAG,
        [base, *multilayer_layers()],
        {
            "Cmd": ["world"],
            "Entrypoint": ["/app/greet.sh"],
            "Env": [PATH_ENV, "GREETING=hello"],
            "ExposedPorts": {"8080/tcp": {}},
            "Labels": {"org.pycontain.test": "multilayer"},
            "WorkingDir": "/app",
        },
    )


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def is_up_to_date(outputs: list[Path], inputs: list[Path]) -> bool:
    """Whether every output exists and is newer than every input."""
    if not all(output.exists() for output in outputs):
        return False
    newest_input = max(path.stat().st_mtime for path in inputs)
    return min(output.stat().st_mtime for output in outputs) > newest_input


def convert_to_oci_archive(docker_archive: Path, oci_archive: Path, skopeo: str) -> None:
    """Convert with ``skopeo copy`` into a temporary file, then rename into place.

    Both ends are local files this script controls, so no signature policy applies
    (``--insecure-policy``).

    Raises:
        BuildError: skopeo failed; its error output is in the message.
    """
    temporary = oci_archive.with_name(f".{oci_archive.name}.tmp{os.getpid()}")
    temporary.unlink(missing_ok=True)
    command = [
        skopeo,
        "--insecure-policy",
        "copy",
        "--quiet",
        f"docker-archive:{docker_archive}",
        f"oci-archive:{temporary}:{OCI_TAG}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise BuildError(f"{' '.join(command)}: {result.stderr.strip()}")
        os.replace(temporary, oci_archive)
    finally:
        temporary.unlink(missing_ok=True)


def build(out: Path, busybox: Path, force: bool) -> list[str]:
    """Build every output into ``out``; return one line per output saying what happened.

    Raises:
        BuildError: an input is missing or a tool failed.
    """
    out.mkdir(parents=True, exist_ok=True)
    busybox_tar, multilayer_tar = out / "busybox.tar", out / "multilayer.tar"
    inputs = [Path(__file__).resolve(), busybox]
    if not busybox.exists():
        raise BuildError(f"{busybox} not found; install Debian's busybox-static")
    report = []
    if force or not is_up_to_date([busybox_tar, multilayer_tar], inputs):
        base = busybox_layer(busybox)
        for image, path in (
            (busybox_image(base), busybox_tar),
            (multilayer_image(base), multilayer_tar),
        ):
            write_atomically(path, docker_save_archive(image))
            report.append(
                f"built {path} ({image.repo_tag}, {len(image.layers)} layer(s), {image.image_id()})"
            )
    else:
        report.append(f"up to date: {busybox_tar} {multilayer_tar}")
    oci_tar = out / "busybox-oci.tar"
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        report.append(f"skipped {oci_tar}: skopeo is not installed")
    elif force or not is_up_to_date([oci_tar], [busybox_tar]):
        convert_to_oci_archive(busybox_tar, oci_tar, skopeo)
        report.append(f"built {oci_tar} ({OCI_TAG}, OCI archive by skopeo)")
    else:
        report.append(f"up to date: {oci_tar}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--busybox", type=Path, default=DEFAULT_BUSYBOX, help="static busybox")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    try:
        for line in build(args.out, args.busybox, args.force):
            print(line)
    except BuildError as exc:
        print(f"rootfs/build.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
