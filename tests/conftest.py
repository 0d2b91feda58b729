"""Fixtures shared by the integration and end-to-end tests.

Every test run is isolated: its own data root, exec root, socket and cgroup parent
(named after a random run tag), so that two runs can go side by side; the session
fixture removes everything it made and then checks that nothing of the run is left
(mounts, cgroups, processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path

import prctl
import pytest

from pycontain.client import Client
from pycontain.errors import PycontainError

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
IMAGES_OUT = REPO / "rootfs" / "out"


def needs_root() -> pytest.MarkDecorator:
    return pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")


def build_test_images() -> Path:
    """rootfs/out/*.tar, built by the project's own script (no network)."""
    subprocess.run([sys.executable, str(REPO / "rootfs" / "build.py"), "--out", str(IMAGES_OUT)],
                   check=True, stdout=subprocess.DEVNULL)
    return IMAGES_OUT


@dataclass
class Daemon:
    tag: str
    root: Path
    data_root: Path
    exec_root: Path
    socket: Path
    cgroup_parent: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    wrapper: list[str] = field(default_factory=list)
    """A command line the daemon's is appended to (it must exec it), e.g. to enter a cgroup."""
    subnet: IPv4Network = field(default_factory=lambda: IPv4Network("10.88.0.0/16"))

    @property
    def bridge(self) -> str:
        return f"pct{self.tag}"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 60,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the real `pycontain` console script against this daemon."""
        result = subprocess.run(
            [str(BIN / "pycontain"), "-H", self.host, *args],
            input=input.decode() if input is not None else None,
            capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"pycontain {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def inspect(self, name: str) -> dict[str, object]:
        out = self.cli("inspect", name, check=True).stdout
        data = json.loads(out)
        assert isinstance(data, list) and len(data) == 1
        item = data[0]
        assert isinstance(item, dict)
        return item

    def start(self) -> None:
        self.process = _spawn_daemon(self)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _spawn_daemon(d: Daemon) -> subprocess.Popen[bytes]:
    with open(d.log_path, "ab") as log:
        proc = subprocess.Popen(
            [*d.wrapper, str(BIN / "pycontaind"), "--data-root", str(d.data_root), "--exec-root",
             str(d.exec_root), "-H", d.host, "--cgroup-parent", d.cgroup_parent,
             "--bridge", d.bridge, "--subnet", str(d.subnet), "--log-level", "debug"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **d.env})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pycontaind exited: {d.log_path.read_text()}")
        if d.socket.exists():
            try:
                Client(d.host, timeout=5).request("GET", "/_ping").read()
                return proc
            except PycontainError:
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("pycontaind did not come up in 20 s")


def leftovers(tag: str, data_root: Path) -> list[str]:
    """Kernel objects of this run still present: mounts, cgroups, processes."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4]
            if str(data_root) in mount_point or tag in mount_point:
                found.append(f"mount {mount_point}")
    cgroup_root = Path("/sys/fs/cgroup")
    for parent in list(cgroup_root.glob(f"*/pycontain-test-{tag}")) + list(
            cgroup_root.glob(f"pycontain-test-{tag}")):
        children = [p for p in parent.iterdir() if p.is_dir()]
        if children:
            found.append(f"cgroup {parent} holds {[c.name for c in children]}")
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(data_root) in cmdline or f"pycontain-test-{tag}" in cmdline:
            found.append(f"process {pid_dir.name} {cmdline}")
    return found


def remove_cgroup_parents(tag: str) -> None:
    cgroup_root = Path("/sys/fs/cgroup")
    for parent in list(cgroup_root.glob(f"*/pycontain-test-{tag}")) + list(
            cgroup_root.glob(f"pycontain-test-{tag}")):
        for child in sorted(parent.rglob("*"), reverse=True):
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()


def host_networks() -> list[IPv4Network]:
    """Every IPv4 destination the host routes (any table) and every address it has."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        routes = [IPv4Network(f"{r.get('dst')}/{r['dst_len']}", strict=False)
                  for r in ipr.route("dump", family=socket.AF_INET, table=0)
                  if r["dst_len"] > 0 and r.get("dst")]
        addresses = [IPv4Network(f"{a.get('address')}/{a['prefixlen']}", strict=False)
                     for a in ipr.addr("dump", family=socket.AF_INET)]
    return routes + addresses


def free_subnet() -> IPv4Network:
    """A random 10.x.y.0/24 that overlaps nothing the host has: each run its own subnet."""
    used = host_networks()
    for _ in range(1000):
        candidate = IPv4Network(f"10.{random.randrange(1, 255)}.{random.randrange(256)}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 on this host")


def remove_network(bridge: str) -> list[str]:
    """Delete the run's bridge and nft table; report veths still attached to it."""
    from pyroute2 import IPRoute

    left = []
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=bridge)
        if found:
            ports = [link.get("IFLA_IFNAME") for link in ipr.get_links()
                     if link.get("IFLA_MASTER") == found[0]]
            left += [f"veth {name} on {bridge}" for name in ports]
            ipr.link("del", index=found[0])
    subprocess.run(["nft", "delete", "table", "inet", f"pycontain_{bridge}"],
                   capture_output=True)
    return left


def reap_orphans() -> None:
    """Reap the exited shims re-parented to us (our other children may still run)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@pytest.fixture(scope="session", autouse=True)
def restore_ip_forward() -> Iterator[None]:
    """The daemons turn IPv4 forwarding on, as Docker does; the run puts it back."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    before = path.read_text()
    yield
    if os.geteuid() == 0 and path.read_text() != before:
        path.write_text(before)


@pytest.fixture(scope="session")
def test_images() -> Path:
    return build_test_images()


@contextlib.contextmanager
def isolated_daemon(images: Path, env: dict[str, str] | None = None,
                    wrapper: list[str] | None = None) -> Iterator[Daemon]:
    """A pycontaind of its own (data root, exec root, socket, cgroup parent) with busybox
    loaded; on exit every container is removed, the daemon stopped, and the run checked
    for leftovers (mounts, cgroups, processes)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the daemon creates namespaces, mounts and cgroups")
    # Shims orphaned by a killed daemon are re-parented to us, not to PID 1 (which need
    # not reap them on every machine); we reap them when the run ends.
    prctl.set_child_subreaper(True)
    tag = secrets.token_hex(4)
    root = Path(tempfile.mkdtemp(prefix=f"pycontain-test-{tag}-"))
    d = Daemon(tag=tag, root=root, data_root=root / "data", exec_root=root / "exec",
               socket=root / "pycontain.sock", cgroup_parent=f"pycontain-test-{tag}",
               process=None, log_path=root / "daemon.log",  # type: ignore[arg-type]
               env=env or {}, wrapper=wrapper or [], subnet=free_subnet())
    d.start()
    try:
        d.cli("load", "-i", str(images / "busybox.tar"), check=True)
        yield d
    finally:
        if d.process.poll() is None:
            ids = d.cli("ps", "-aq").stdout.split()
            if ids:
                d.cli("rm", "-f", *ids)
        d.stop()
        reap_orphans()
        left = leftovers(tag, d.data_root) + remove_network(d.bridge)
        remove_cgroup_parents(tag)
        log_text = d.log_path.read_text(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"the test run left kernel objects behind: {left}\n{log_text[-3000:]}"


@pytest.fixture(scope="session")
def daemon(test_images: Path) -> Iterator[Daemon]:
    with isolated_daemon(test_images) as d:
        yield d
