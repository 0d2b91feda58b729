"""Pull benchmark: a multi-layer image (about 40 MB, 6,000 small files) from a local
docker-registry on 127.0.0.1, pulled and unpacked by pycontain's puller (the daemon's
code, in process, into a fresh store) and by ``skopeo copy`` + ``umoci unpack``.

    .venv/bin/python bench/pull.py [--runs 5]

Needs root (layers keep their owners), docker-registry, skopeo and umoci.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pycontain.images.pull import Puller, pull_and_clean
from pycontain.images.store import ImageStore
from tests.registry_server import running_registry

LAYERS = 4
FILES_PER_LAYER = 1500
BIG_FILE = 16 << 20


def _layer(seed: int) -> bytes:
    rng = random.Random(seed)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for n in range(FILES_PER_LAYER):
            size = rng.randint(200, 8000)
            data = (rng.randbytes(size // 2) + b"x" * (size - size // 2))
            info = tarfile.TarInfo(f"layer{seed}/dir{n % 50}/file{n}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
        if seed % 2 == 0:
            data = rng.randbytes(BIG_FILE // 2) + bytes(BIG_FILE // 2)
            info = tarfile.TarInfo(f"layer{seed}/big.bin")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_archive(path: Path) -> int:
    """A docker-save archive of the bench image; returns its compressed size."""
    layers = [_layer(seed) for seed in range(LAYERS)]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]},
    }).encode()
    with tarfile.open(path, "w") as archive:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        names = []
        for n, layer in enumerate(layers):
            names.append(f"layer{n}/layer.tar")
            add(names[-1], layer)
        add("config.json", config)
        add("manifest.json", json.dumps([{"Config": "config.json",
                                          "RepoTags": ["bench/pull:latest"],
                                          "Layers": names}]).encode())
    return sum(len(gzip.compress(layer, 6)) for layer in layers)


def pycontain_pull(address: str) -> float:
    root = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    try:
        store = ImageStore(root / "image")
        started = time.perf_counter()

        async def pull() -> None:
            puller = Puller(store)
            await pull_and_clean(puller, Puller.reference(f"{address}/bench/pull"),
                                 lambda _message: None)

        asyncio.run(pull())
        return time.perf_counter() - started
    finally:
        shutil.rmtree(root)


def skopeo_umoci(address: str) -> float:
    root = Path(tempfile.mkdtemp(prefix="bench-umoci-"))
    try:
        started = time.perf_counter()
        subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false",
                        f"docker://{address}/bench/pull:latest", f"oci:{root}/oci:latest"],
                       check=True)
        subprocess.run(["umoci", "unpack", "--image", f"{root}/oci:latest",
                        str(root / "bundle")], check=True, capture_output=True)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(root)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/pull.py: needs root")
    for tool in ("docker-registry", "skopeo", "umoci"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/pull.py: {tool} is not installed (make setup)")
    work = Path(tempfile.mkdtemp(prefix="bench-image-"))
    try:
        archive = work / "bench.tar"
        compressed = build_archive(archive)
        with running_registry() as registry:
            subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                            f"docker-archive:{archive}",
                            f"docker://{registry.address}/bench/pull:latest"], check=True)
            ours = [pycontain_pull(registry.address) for _ in range(args.runs)]
            theirs = [skopeo_umoci(registry.address) for _ in range(args.runs)]
    finally:
        shutil.rmtree(work)
    mine, reference = statistics.median(ours), statistics.median(theirs)
    print(f"pull of a {LAYERS}-layer image ({LAYERS * FILES_PER_LAYER} files, "
          f"{compressed / 1e6:.1f} MB compressed) from a local registry, median of {args.runs}:")
    print(f"  pycontain puller        {mine * 1000:8.0f} ms")
    print(f"  skopeo copy + umoci     {reference * 1000:8.0f} ms  "
          f"(pycontain takes {mine / reference:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
