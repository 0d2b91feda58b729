"""Cgroup limits read back from the host's files; nothing left behind after rm; bad input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.root

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_version(daemon: Daemon) -> int:
    info = daemon.cli("info", check=True).stdout
    line = next(line for line in info.splitlines() if "Cgroup Version" in line)
    return int(line.split(":")[1])


def _cgroup_file(daemon: Daemon, controller: str, cid: str, name: str) -> Path:
    if _cgroup_version(daemon) == 2:
        return CGROUP_ROOT / daemon.cgroup_parent / cid / name
    return CGROUP_ROOT / controller / daemon.cgroup_parent / cid / name


def test_limits_are_written_to_the_hosts_cgroup_files(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50",
                     "busybox", "sleep", "300", check=True).stdout.strip()
    try:
        pid = daemon.inspect(cid)["State"]["Pid"]  # type: ignore[index]
        version = _cgroup_version(daemon)
        if version == 1:
            memory = _cgroup_file(daemon, "memory", cid, "memory.limit_in_bytes")
            assert int(memory.read_text()) == 64 * 1024 * 1024
            quota = _cgroup_file(daemon, "cpu", cid, "cpu.cfs_quota_us").read_text()
            period = _cgroup_file(daemon, "cpu", cid, "cpu.cfs_period_us").read_text()
            assert (int(quota), int(period)) == (50000, 100000)
        else:
            memory = _cgroup_file(daemon, "memory", cid, "memory.max")
            assert int(memory.read_text()) == 64 * 1024 * 1024
            cpu_max = _cgroup_file(daemon, "cpu", cid, "cpu.max").read_text().split()
            assert cpu_max == ["50000", "100000"]
        assert _cgroup_file(daemon, "pids", cid, "pids.max").read_text().strip() == "50"
        for controller in ("memory", "cpu", "pids", "freezer") if version == 1 else ("",):
            procs = _cgroup_file(daemon, controller, cid, "cgroup.procs").read_text().split()
            assert str(pid) in procs, controller
    finally:
        daemon.cli("rm", "-f", cid, check=True)
    for controller in ("memory", "cpu", "pids", "freezer"):
        assert not _cgroup_file(daemon, controller, cid, "").exists()


def test_pids_limit_is_enforced(daemon: Daemon) -> None:
    result = daemon.cli("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c",
                        "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; wait")
    assert "can't fork" in result.stdout + result.stderr or "Resource" in result.stdout + \
        result.stderr


def test_memory_limit_kills_and_reports_oom(daemon: Daemon) -> None:
    result = daemon.cli("run", "--name", "oom", "-m", "16m", "--memory-swap", "16m",
                        "busybox", "sh", "-c",
                        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
    assert result.returncode == 137, (result.stdout, result.stderr)
    assert "survived" not in result.stdout
    state = daemon.inspect("oom")["State"]
    assert state["OOMKilled"] is True  # type: ignore[index]
    assert state["ExitCode"] == 137  # type: ignore[index]
    daemon.cli("rm", "oom", check=True)


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(path) in line.split()[4]]


def test_nothing_is_left_after_rm(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "-m", "32m", "busybox", "sleep", "300",
                     check=True).stdout.strip()
    pid = daemon.inspect(cid)["State"]["Pid"]  # type: ignore[index]
    container_dir = daemon.data_root / "containers" / cid
    assert container_dir.is_dir()
    assert _mounts_under(container_dir) == []  # the overlay lives in the container's own mount ns
    daemon.cli("rm", "-f", cid, check=True)
    assert not Path(f"/proc/{pid}").exists()
    assert not container_dir.exists()
    assert not (daemon.exec_root / "containers" / cid).exists()
    assert _mounts_under(daemon.data_root) == []
    for controller in ("memory", "cpu", "pids", "freezer"):
        assert not (CGROUP_ROOT / controller / daemon.cgroup_parent / cid).exists()
    assert not (CGROUP_ROOT / daemon.cgroup_parent / cid).exists()
    # An exited container keeps no cgroup and no shim either.
    cid = daemon.cli("run", "-d", "busybox", "true", check=True).stdout.strip()
    daemon.cli("wait", cid, check=True)
    time.sleep(0.1)
    for controller in ("memory", "pids"):
        assert not (CGROUP_ROOT / controller / daemon.cgroup_parent / cid).exists()
    daemon.cli("rm", cid, check=True)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["run", "no-such-image-here"], 125, "Unable to find image"),
        (["run", "-m", "6x", "busybox", "true"], 125, "invalid"),
        (["run", "--bogus-flag", "busybox"], 125, "unknown flag"),
        (["run", "-m", "1k", "busybox", "true"], 125, "Minimum memory limit"),
        (["stop", "no-such-container"], 1, "No such container"),
        (["rm", "no-such-container"], 1, "No such container"),
        (["logs", "no-such-container"], 1, "No such container"),
        (["rmi", "no-such-image"], 1, "No such image"),
        (["run", "--name", "bad/name", "busybox", "true"], 125, "Invalid container name"),
        (["run", "-v", "relative:/x", "busybox", "true"], 125, "invalid volume"),
        (["start", "no-such-container"], 1, "No such container"),
        (["inspect", "no-such-thing"], 1, "No such"),
        (["kill", "-s", "NOPE", "busybox"], 1, "No such container"),
    ],
)
def test_bad_input_gets_one_line_and_the_right_code(daemon: Daemon, args: list[str], code: int,
                                                    needle: str) -> None:
    before = daemon.cli("ps", "-aq").stdout.split()
    result = daemon.cli(*args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) <= 2  # "Unable to find image" + the error, as Docker prints
    assert daemon.cli("ps", "-aq").stdout.split() == before  # nothing half-created


def test_daemon_down_is_one_line(tmp_path: Path, daemon: Daemon) -> None:
    ghost = Daemon(tag="x", root=tmp_path, data_root=tmp_path, exec_root=tmp_path,
                   socket=tmp_path / "none.sock", cgroup_parent="x", process=daemon.process,
                   log_path=tmp_path / "log")
    for verb in (["ps"], ["run", "busybox", "true"]):
        result = ghost.cli(*verb)
        assert result.returncode in (1, 125)
        assert "Cannot connect to the pycontain daemon" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
