"""The host's real cgroup backend, under a parent of its own (pycontain-test-<random>).

Every test process joins the cgroup the way a container's init does: a shell
writes "0" into each join file, then execs the real command.  The fixture
removes the parent at the end and checks nothing is left in any hierarchy.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontain.cgroups import CgroupManager, Resources, open_cgroup_manager

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups"),
]

MiB = 1024 * 1024
CGROUP_MOUNT_POINT = Path("/sys/fs/cgroup")
JOIN_THEN_EXEC = 'for f in "$@"; do echo 0 > "$f"; done; exec {command}'


def parent_dirs(parent: str) -> list[Path]:
    """Every directory of ``parent`` in any hierarchy under /sys/fs/cgroup."""
    return [
        path
        for path in (CGROUP_MOUNT_POINT / parent, *CGROUP_MOUNT_POINT.glob(f"*/{parent}"))
        if path.is_dir()
    ]


@pytest.fixture
def manager() -> Iterator[CgroupManager]:
    parent = f"pycontain-test-{secrets.token_hex(4)}"
    cgroups = open_cgroup_manager(parent)
    try:
        yield cgroups
    finally:
        for container_id in cgroups.list_ids():
            cgroups.destroy(container_id)
        cgroups.remove_parent()
    assert parent_dirs(parent) == []


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def start_in_cgroup(
    manager: CgroupManager,
    container_id: str,
    command: list[str],
    processes: list[subprocess.Popen[bytes]],
) -> subprocess.Popen[bytes]:
    """Start ``command`` through a shell that first joins the container's cgroup."""
    script = JOIN_THEN_EXEC.format(command=shlex.join(command))
    process = subprocess.Popen(["sh", "-c", script, "sh", *manager.join_files(container_id)])
    processes.append(process)
    return process


def wait_for_exec(process: subprocess.Popen[bytes], program: str) -> None:
    """Wait until ``process`` runs ``program`` (the shell has joined and exec'd)."""
    for _ in range(500):
        if Path(f"/proc/{process.pid}/exe").resolve().name == program:
            return
        subprocess.run(["sleep", "0.01"], check=True)
    raise AssertionError(f"pid {process.pid} never exec'd {program}")


def process_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0]


def host_file(manager: CgroupManager, controller: str, container_id: str, name: str) -> str:
    """Read an interface file straight from the host, not through the manager."""
    if manager.version == 2:
        path = CGROUP_MOUNT_POINT / manager.parent / container_id / name
    else:
        path = CGROUP_MOUNT_POINT / controller / manager.parent / container_id / name
    return path.read_text().strip()


def cpu_usage_usec(manager: CgroupManager, container_id: str) -> int:
    """usage_usec of the v2 cgroup's cpu.stat: the CPU time its processes have had."""
    stat = host_file(manager, "cpu", container_id, "cpu.stat")
    return int(dict(line.split() for line in stat.splitlines())["usage_usec"])


def test_limits_reach_the_host_files(manager: CgroupManager) -> None:
    resources = Resources(
        memory=64 * MiB, memory_swap=96 * MiB, nano_cpus=250_000_000, cpu_shares=512, pids_limit=42
    )

    manager.create("limits", resources)
    manager.create("limits", resources)

    if manager.version == 2:
        expected = {
            ("memory", "memory.max"): str(64 * MiB),
            ("cpu", "cpu.max"): "25000 100000",
            ("cpu", "cpu.weight"): "20",
            ("pids", "pids.max"): "42",
        }
    else:
        expected = {
            ("memory", "memory.limit_in_bytes"): str(64 * MiB),
            ("cpu", "cpu.cfs_quota_us"): "25000",
            ("cpu", "cpu.cfs_period_us"): "100000",
            ("cpu", "cpu.shares"): "512",
            ("pids", "pids.max"): "42",
        }
    for (controller, name), value in expected.items():
        assert host_file(manager, controller, "limits", name) == value, name
        assert manager.read_limits("limits")[name] == value
    assert manager.list_ids() == ["limits"]


def test_a_process_joins_and_is_listed(
    manager: CgroupManager, processes: list[subprocess.Popen[bytes]]
) -> None:
    manager.create("join", Resources())
    sleeper = start_in_cgroup(manager, "join", ["sleep", "100"], processes)
    wait_for_exec(sleeper, "sleep")

    assert manager.pids("join") == [sleeper.pid]
    membership = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
    assert f"/{manager.parent}/join\n" in membership


def test_a_pid_written_by_the_parent_joins_too(
    manager: CgroupManager, processes: list[subprocess.Popen[bytes]]
) -> None:
    manager.create("by-pid", Resources())
    sleeper = subprocess.Popen(["sleep", "100"])
    processes.append(sleeper)

    for join_file in manager.join_files("by-pid"):
        Path(join_file).write_text(str(sleeper.pid))

    assert manager.pids("by-pid") == [sleeper.pid]


def test_freeze_stops_and_thaw_resumes(
    manager: CgroupManager, processes: list[subprocess.Popen[bytes]]
) -> None:
    manager.create("pause", Resources())
    sleeper = start_in_cgroup(manager, "pause", ["sleep", "100"], processes)
    wait_for_exec(sleeper, "sleep")
    if manager.version == 2:  # a busy loop too, whose CPU time must stop growing
        start_in_cgroup(manager, "pause", ["sh", "-c", "while :; do :; done"], processes)
        while cpu_usage_usec(manager, "pause") == 0:
            time.sleep(0.01)

    manager.freeze("pause")
    assert manager.is_frozen("pause")
    if manager.version == 1:
        assert process_state(sleeper.pid) in ("D", "T")
        assert host_file(manager, "freezer", "pause", "freezer.state") == "FROZEN"
    else:
        # The v2 freezer parks each task in an interruptible trap (state S): the proof is
        # that the busy loop gets next to no CPU time while frozen (the counter may still
        # take in a tick's worth accounted late), where running it would get the whole second.
        frozen_at = cpu_usage_usec(manager, "pause")
        time.sleep(1)
        grown = cpu_usage_usec(manager, "pause") - frozen_at
        assert grown < 100_000, f"{grown} us of CPU time in 1 s while frozen"

    manager.thaw("pause")
    assert not manager.is_frozen("pause")
    # Thawed, the sleeper leaves the trap and goes back to sleep (briefly R on a slow VM).
    deadline = time.monotonic() + 5
    while process_state(sleeper.pid) != "S" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_state(sleeper.pid) == "S"


def test_a_child_over_its_memory_limit_is_oom_killed(
    manager: CgroupManager, processes: list[subprocess.Popen[bytes]]
) -> None:
    manager.create("oom", Resources(memory=32 * MiB, memory_swap=32 * MiB))
    allocate = "block = b'x' * (256 * 1024 * 1024)"
    hog = start_in_cgroup(manager, "oom", [sys.executable, "-c", allocate], processes)

    assert hog.wait(timeout=30) == -9
    if manager.version == 1 and "oom_kill " not in host_file(
        manager, "memory", "oom", "memory.oom_control"
    ):
        pytest.skip("this kernel does not count OOM kills in memory.oom_control (< 4.13)")
    assert manager.oom_kill_count("oom") >= 1


def test_destroy_kills_a_live_process_and_removes_every_directory(
    manager: CgroupManager, processes: list[subprocess.Popen[bytes]]
) -> None:
    manager.create("doomed", Resources(pids_limit=10))
    sleeper = start_in_cgroup(manager, "doomed", ["sleep", "100"], processes)
    wait_for_exec(sleeper, "sleep")
    manager.freeze("doomed")

    manager.destroy("doomed")

    assert sleeper.wait(timeout=5) == -9
    assert manager.list_ids() == []
    assert not any(Path(join_file).parent.exists() for join_file in manager.join_files("doomed"))
    manager.destroy("doomed")
