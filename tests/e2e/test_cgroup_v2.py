"""Container limits and lifecycle on a real cgroup v2 (unified) hierarchy.

These run in the VM lane (``make vm-test``: Debian's kernel in QEMU, cgroup2 at
/sys/fs/cgroup with every controller enabled), selected with ``-m cgroup_v2``.
``make test`` deselects them by marker; run by hand on a v1 or hybrid host they
skip, saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontain.cgroups import cpu_weight_from_shares
from pycontain.cgroups.delegation import DAEMON_LEAF, DELEGATE_XATTR
from pycontain.cgroups.detect import detect_cgroup_version
from pycontain.client import Client
from pycontain.errors import PycontainError
from tests.conftest import Daemon, isolated_daemon

CGROUP_ROOT = Path("/sys/fs/cgroup")
MiB = 1024 * 1024


def _host_is_v2() -> bool:
    try:
        return detect_cgroup_version() == 2
    except PycontainError:
        return False


pytestmark = [
    pytest.mark.root,
    pytest.mark.cgroup_v2,
    pytest.mark.skipif(not _host_is_v2(), reason="needs a cgroup v2 host: /sys/fs/cgroup is not "
                       "cgroup2 here (make vm-test runs these in a VM)"),
]


def cgroup_of(daemon: Daemon, cid: str) -> Path:
    return CGROUP_ROOT / daemon.cgroup_parent / cid


def read(path: Path) -> str:
    return path.read_text().strip()


def flat_keyed(path: Path) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in read(path).splitlines())


def running(daemon: Daemon, *args: str) -> str:
    return daemon.cli("run", "-d", *args, check=True).stdout.strip()


@contextlib.contextmanager
def container(daemon: Daemon, *args: str) -> Iterator[str]:
    """A container ``run -d`` with ``args``, removed (``rm -f``) when the block ends."""
    cid = running(daemon, *args)
    try:
        yield cid
    finally:
        daemon.cli("rm", "-f", cid, check=True)


def test_info_reports_cgroup_version_2(daemon: Daemon) -> None:
    info = daemon.cli("info", check=True).stdout
    assert "Cgroup Version: 2" in info
    reply = Client(daemon.host, timeout=10).request("GET", "/info").read()
    assert json.loads(reply)["CgroupVersion"] == "2"


def test_limits_reach_the_v2_interface_files(daemon: Daemon) -> None:
    with container(daemon, "-m", "64m", "--memory-swap", "96m", "--cpus", "0.5",
                   "--cpu-shares", "512", "--pids-limit", "50", "busybox", "sleep", "300") as cid:
        cgroup = cgroup_of(daemon, cid)
        assert read(cgroup / "memory.max") == str(64 * MiB)
        assert read(cgroup / "memory.swap.max") == str(32 * MiB)  # memory+swap minus memory
        assert read(cgroup / "cpu.max") == "50000 100000"
        assert read(cgroup / "cpu.weight") == str(cpu_weight_from_shares(512)) == "20"
        assert read(cgroup / "pids.max") == "50"
        pid = daemon.inspect(cid)["State"]["Pid"]  # type: ignore[index]
        assert str(pid) in read(cgroup / "cgroup.procs").split()
        assert f"0::/{daemon.cgroup_parent}/{cid}" in Path(f"/proc/{pid}/cgroup").read_text()


def test_controllers_are_enabled_in_the_parents_subtree_control(daemon: Daemon) -> None:
    with container(daemon, "busybox", "sleep", "300") as cid:
        for level in (CGROUP_ROOT, CGROUP_ROOT / daemon.cgroup_parent):
            enabled = read(level / "cgroup.subtree_control").split()
            assert {"memory", "cpu", "pids"} <= set(enabled), level
        controllers = read(cgroup_of(daemon, cid) / "cgroup.controllers").split()
        assert {"memory", "cpu", "pids"} <= set(controllers)


def test_defaults_without_limits_are_unlimited(daemon: Daemon) -> None:
    with container(daemon, "busybox", "sleep", "300") as cid:
        cgroup = cgroup_of(daemon, cid)
        assert read(cgroup / "memory.max") == "max"
        assert read(cgroup / "cpu.max") == "max 100000"
        assert read(cgroup / "pids.max") == "max"


def test_pids_limit_stops_a_fork_bomb_at_pids_max(daemon: Daemon) -> None:
    # A failed fork ends a busybox shell: the subshell meets the limit, the shell stays.
    with container(daemon, "--pids-limit", "8", "busybox", "sh", "-c",
                   "(for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 300 & done) 2>/dev/null;"
                   " exec sleep 300") as cid:
        cgroup = cgroup_of(daemon, cid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and flat_keyed(cgroup / "pids.events")["max"] == "0":
            time.sleep(0.1)
        assert int(flat_keyed(cgroup / "pids.events")["max"]) >= 1
        assert int(read(cgroup / "pids.current")) <= 8


def test_pause_and_unpause_use_cgroup_freeze(daemon: Daemon) -> None:
    with container(daemon, "busybox", "sleep", "300") as cid:
        cgroup = cgroup_of(daemon, cid)
        daemon.cli("pause", cid, check=True)
        assert read(cgroup / "cgroup.freeze") == "1"
        assert flat_keyed(cgroup / "cgroup.events")["frozen"] == "1"
        assert daemon.inspect(cid)["State"]["Status"] == "paused"  # type: ignore[index]
        daemon.cli("unpause", cid, check=True)
        assert read(cgroup / "cgroup.freeze") == "0"
        assert flat_keyed(cgroup / "cgroup.events")["frozen"] == "0"
        assert daemon.inspect(cid)["State"]["Status"] == "running"  # type: ignore[index]


def test_rm_force_kills_every_process_through_the_cgroup(daemon: Daemon) -> None:
    cid = running(daemon, "busybox", "sh", "-c",
                  "trap '' TERM; sleep 300 & sleep 300 & sleep 300")
    cgroup = cgroup_of(daemon, cid)
    assert (cgroup / "cgroup.kill").exists()  # the kernel has cgroup.kill (5.14+)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(read(cgroup / "cgroup.procs").split()) < 3:
        time.sleep(0.05)
    pids = [int(pid) for pid in read(cgroup / "cgroup.procs").split()]
    assert len(pids) >= 3
    daemon.cli("rm", "-f", cid, check=True)
    assert not cgroup.exists()
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []


def test_oom_kill_is_read_from_memory_events(daemon: Daemon) -> None:
    """On v2, OOMKilled comes from oom_kill in the cgroup's memory.events."""
    result = daemon.cli("run", "--name", "oom-v2", "-m", "16m", "--memory-swap", "16m",
                        "busybox", "sh", "-c",
                        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    try:
        assert result.returncode == 137, (result.stdout, result.stderr)
        state = daemon.inspect("oom-v2")["State"]
        assert state["OOMKilled"] is True  # type: ignore[index]
    finally:
        daemon.cli("rm", "oom-v2", check=True)


def test_no_cgroup_is_left_after_rm(daemon: Daemon) -> None:
    cid = running(daemon, "-m", "32m", "busybox", "sleep", "300")
    assert cgroup_of(daemon, cid).is_dir()
    daemon.cli("rm", "-f", cid, check=True)
    assert not cgroup_of(daemon, cid).exists()
    exited = running(daemon, "busybox", "true")
    daemon.cli("wait", exited, check=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and cgroup_of(daemon, exited).exists():
        time.sleep(0.05)
    assert not cgroup_of(daemon, exited).exists()
    daemon.cli("rm", exited, check=True)
    parent = CGROUP_ROOT / daemon.cgroup_parent
    assert [child.name for child in parent.iterdir() if child.is_dir()] == []


@pytest.fixture
def delegated_unit() -> Iterator[Path]:
    """A cgroup marked the way systemd marks a Delegate=yes service's, removed afterwards."""
    unit = CGROUP_ROOT / f"pycontaind-test-{os.getpid()}.service"
    unit.mkdir()
    os.setxattr(unit, DELEGATE_XATTR, b"1")
    try:
        yield unit
    finally:
        for child in sorted(unit.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if child.is_dir():
                child.rmdir()
        unit.rmdir()


def test_under_systemd_delegation_containers_live_in_the_units_subtree(
        test_images: Path, delegated_unit: Path) -> None:
    """As pycontaind.service with Delegate=yes and DelegateSubgroup=daemon (systemd 254+):
    started in <unit>/daemon, the containers' parent is <unit>/<--cgroup-parent>,
    controllers enabled on <unit>."""
    relative = delegated_unit.relative_to(CGROUP_ROOT)
    leaf_dir = shlex.quote(str(delegated_unit / DAEMON_LEAF))
    enter = f"mkdir -p {leaf_dir}; echo 0 > {leaf_dir}/cgroup.procs; exec \"$@\""
    env = {"INVOCATION_ID": "0123456789abcdef0123456789abcdef"}
    with isolated_daemon(test_images, env=env, wrapper=["sh", "-c", enter, "sh"]) as daemon:
        leaf = delegated_unit / DAEMON_LEAF
        assert str(daemon.process.pid) in read(leaf / "cgroup.procs").split()
        assert read(delegated_unit / "cgroup.procs") == ""
        with container(daemon, "-m", "32m", "--pids-limit", "20", "busybox", "sleep", "300") as cid:
            cgroup = delegated_unit / daemon.cgroup_parent / cid
            assert read(cgroup / "memory.max") == str(32 * MiB)
            assert read(cgroup / "pids.max") == "20"
            assert {"memory", "cpu", "pids"} <= set(
                read(delegated_unit / "cgroup.subtree_control").split())
            pid = daemon.inspect(cid)["State"]["Pid"]  # type: ignore[index]
            assert f"0::/{relative}/{daemon.cgroup_parent}/{cid}" in Path(
                f"/proc/{pid}/cgroup").read_text()
            reply = Client(daemon.host, timeout=10).request("GET", "/info").read()
            assert json.loads(reply)["CgroupParent"] == f"{relative}/{daemon.cgroup_parent}"
        assert not (delegated_unit / daemon.cgroup_parent / cid).exists()


def test_under_an_older_systemd_the_unit_cgroup_is_left_without_controllers(
        test_images: Path, delegated_unit: Path) -> None:
    """Started in <unit> itself (systemd < 254, no DelegateSubgroup): the daemon stays
    there and enables nothing on it, so that systemd can start it there again on a
    restart while containers run; the containers go under --cgroup-parent from the root."""
    enter = f"echo 0 > {shlex.quote(str(delegated_unit / 'cgroup.procs'))}; exec \"$@\""
    env = {"INVOCATION_ID": "0123456789abcdef0123456789abcdef"}
    with isolated_daemon(test_images, env=env, wrapper=["sh", "-c", enter, "sh"]) as daemon:
        assert str(daemon.process.pid) in read(delegated_unit / "cgroup.procs").split()
        with container(daemon, "-m", "32m", "busybox", "sleep", "300") as cid:
            assert read(CGROUP_ROOT / daemon.cgroup_parent / cid / "memory.max") == str(32 * MiB)
            assert read(delegated_unit / "cgroup.subtree_control") == ""
