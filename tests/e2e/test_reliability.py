"""Reliability: crashes of the daemon or a shim, rollback of failed steps, restart
policies, events, a soak of parallel clients, hostile workloads."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Daemon, isolated_daemon

pytestmark = pytest.mark.root

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _state(daemon: Daemon, name: str) -> dict[str, object]:
    state = daemon.inspect(name)["State"]
    assert isinstance(state, dict)
    return state


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _cgroups_of(daemon: Daemon) -> list[Path]:
    found = []
    for parent in [*CGROUP_ROOT.glob(f"*/{daemon.cgroup_parent}"),
                   *CGROUP_ROOT.glob(daemon.cgroup_parent)]:
        found += [p for p in parent.iterdir() if p.is_dir()]
    return found


def _mounts_of(daemon: Daemon) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(daemon.root) in line.split()[4]]


def test_ten_containers_survive_a_daemon_kill(daemon: Daemon) -> None:
    long_lived = [f"crash-long-{i}" for i in range(6)]
    short_lived = [f"crash-short-{i}" for i in range(4)]
    for name in long_lived:
        daemon.cli("run", "-d", "--name", name, "busybox", "sleep", "300", check=True)
    for i, name in enumerate(short_lived):
        daemon.cli("run", "-d", "--name", name, "busybox", "sh", "-c", f"sleep 1; exit {i + 1}",
                   check=True)
    pids = {name: _state(daemon, name)["Pid"] for name in long_lived}
    started = {name: daemon.inspect(name)["State"]["StartedAt"]  # type: ignore[index]
               for name in long_lived}
    daemon.kill()
    time.sleep(1.5)
    daemon.start()
    for name in long_lived:
        state = _state(daemon, name)
        assert state["Status"] == "running" and state["Pid"] == pids[name]
        assert state["StartedAt"] == started[name]
    for i, name in enumerate(short_lived):
        state = _state(daemon, name)
        assert state["Status"] == "exited" and state["ExitCode"] == i + 1
    ps = daemon.cli("ps", "-a", "--filter", "name=crash-", "--format", "{{.Names}} {{.Status}}")
    assert len(ps.stdout.splitlines()) == 10
    assert all(re.search(r" Up ", line) for line in ps.stdout.splitlines()
               if "crash-long" in line)
    daemon.cli("rm", "-f", *long_lived, *short_lived, check=True)
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists()


def test_a_killed_shim_leaves_a_dead_container_and_nothing_else(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "--name", "orphan", "busybox", "sleep", "300",
                     check=True).stdout.strip()
    pid = int(_state(daemon, "orphan")["Pid"])  # type: ignore[call-overload]
    shim = int(Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[2])
    os.kill(shim, signal.SIGKILL)
    _wait_for(lambda: _state(daemon, "orphan")["Status"] == "dead")
    state = _state(daemon, "orphan")
    assert state["ExitCode"] == 255 and "shim" in str(state["Error"])
    _wait_for(lambda: not Path(f"/proc/{pid}").exists() or
              Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z")
    assert not [c for c in _cgroups_of(daemon) if c.name == cid]
    daemon.cli("rm", "orphan", check=True)


FAULT_POINTS = ["create:validated", "create:directories", "create:saved",
                "start:state-dir", "start:cgroup", "start:spawned"]


def test_every_failed_step_rolls_back(test_images: Path) -> None:
    with isolated_daemon(test_images,
                         {"PYCONTAIN_FAULT_POINTS": ",".join(FAULT_POINTS)}) as faulty:
        # Every create fails at its first fault point; nothing of it may remain.
        result = faulty.cli("create", "--name", "doomed", "busybox", "true")
        assert result.returncode == 125 and "injected fault at create:validated" in result.stderr
        assert faulty.cli("ps", "-aq").stdout == ""
        assert list((faulty.data_root / "containers").iterdir()) == []
    for point in FAULT_POINTS[1:]:
        with isolated_daemon(test_images, {"PYCONTAIN_FAULT_POINTS": point}) as faulty:
            if point.startswith("create"):
                result = faulty.cli("create", "busybox", "true")
                assert result.returncode == 125 and point in result.stderr
                assert list((faulty.data_root / "containers").iterdir()) == []
                continue
            cid = faulty.cli("create", "busybox", "sleep", "3001", check=True).stdout.strip()
            result = faulty.cli("start", cid)
            assert result.returncode == 1 and point in result.stderr, point
            assert _state(faulty, cid)["Status"] == "created"
            assert _cgroups_of(faulty) == []
            assert not (faulty.exec_root / "containers" / cid).exists()
            assert _mounts_of(faulty) == []
            survivors = subprocess.run(["pgrep", "-fx", "sleep 3001"], capture_output=True,
                                       text=True).stdout.split()
            assert survivors == [], point  # a process that did start was killed


def test_a_corrupt_record_is_reported_and_removable(test_images: Path) -> None:
    with isolated_daemon(test_images) as d:
        cid = d.cli("create", "--name", "torn", "busybox", "true", check=True).stdout.strip()
        keep = d.cli("create", "--name", "kept", "busybox", "true", check=True).stdout.strip()
        d.stop()
        (d.data_root / "containers" / cid / "config.json").write_text('{"id": "trunc')
        d.start()
        assert "kept" in d.cli("ps", "-a", "--format", "{{.Names}}", check=True).stdout
        assert "unreadable container record" in d.log_path.read_text()
        assert d.cli("inspect", "torn").returncode == 1
        d.cli("rm", "-f", cid[:12], check=True)
        assert not (d.data_root / "containers" / cid).exists()
        d.cli("rm", keep, check=True)


def test_restart_policy_on_failure_with_a_limit(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh",
               "-c", "echo try; exit 3", check=True)
    _wait_for(lambda: daemon.cli("logs", "flaky").stdout.count("try") == 3
              and _state(daemon, "flaky")["Status"] == "exited")
    info = daemon.inspect("flaky")
    assert info["RestartCount"] == 2
    assert info["HostConfig"]["RestartPolicy"] == {  # type: ignore[index]
        "Name": "on-failure", "MaximumRetryCount": 2}
    assert _state(daemon, "flaky")["ExitCode"] == 3
    daemon.cli("rm", "flaky", check=True)


def test_restart_policy_always_stops_for_a_user_stop(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sh", "-c",
               "trap 'exit 0' TERM; sleep 0.3; exit 0", check=True)
    _wait_for(lambda: int(daemon.inspect("phoenix")["RestartCount"]) >= 2)  # type: ignore[call-overload]
    _wait_for(lambda: _state(daemon, "phoenix")["Status"] in ("running", "restarting"))
    daemon.cli("stop", "-t", "1", "phoenix", check=True)
    _wait_for(lambda: _state(daemon, "phoenix")["Status"] == "exited")
    count = daemon.inspect("phoenix")["RestartCount"]
    time.sleep(1)
    assert _state(daemon, "phoenix")["Status"] == "exited"
    assert daemon.inspect("phoenix")["RestartCount"] == count
    conflict = daemon.cli("run", "--rm", "--restart", "always", "busybox", "true")
    assert conflict.returncode == 125 and "Conflicting options" in conflict.stderr
    daemon.cli("rm", "phoenix", check=True)


def test_events_record_the_lifecycle_and_oom(daemon: Daemon) -> None:
    since = f"{time.time():.3f}"
    daemon.cli("run", "--name", "evented", "busybox", "true", check=True)
    daemon.cli("rm", "evented", check=True)
    daemon.cli("run", "--name", "hungry", "-m", "16m", "--memory-swap", "16m", "busybox", "sh",
               "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a)")
    daemon.cli("rm", "hungry", check=True)
    until = f"{time.time() + 0.5:.3f}"
    out = daemon.cli("events", "--since", since, "--until", until, "--format",
                     "{{.Action}} {{.Actor.Attributes.name}}", timeout=20).stdout.split("\n")
    assert out[:4] == ["create evented", "start evented", "die evented", "destroy evented"]
    assert "oom hungry" in out and "die hungry" in out
    as_json = daemon.cli("events", "--since", since, "--until", until, "--filter",
                         "event=die", "--format", "json", timeout=20).stdout.splitlines()
    dies = [json.loads(line) for line in as_json]
    assert [d["Actor"]["Attributes"]["name"] for d in dies] == ["evented", "hungry"]
    assert dies[0]["Actor"]["Attributes"]["exitCode"] == "0"
    assert dies[1]["Actor"]["Attributes"]["exitCode"] == "137"


def test_a_fork_bomb_is_held_by_the_pids_limit(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "bomb", "--pids-limit", "50", "busybox", "sh", "-c",
               "b() { b | b & }; b", check=True)
    time.sleep(2)
    cid = str(daemon.inspect("bomb")["Id"])
    if (CGROUP_ROOT / "pids").is_dir():
        current = CGROUP_ROOT / "pids" / daemon.cgroup_parent / cid / "pids.current"
    else:
        current = CGROUP_ROOT / daemon.cgroup_parent / cid / "pids.current"
    if current.exists():
        assert int(current.read_text()) <= 50
    assert subprocess.run(["true"]).returncode == 0  # the host still forks
    t0 = time.monotonic()
    daemon.cli("rm", "-f", "bomb", check=True)
    assert time.monotonic() - t0 < 15
    assert not current.parent.exists()


def test_soak_200_cycles_with_10_clients_leaks_nothing(daemon: Daemon) -> None:
    daemon_proc = daemon.process.pid

    def counts() -> tuple[int, int, int, int, int]:
        fds = len(os.listdir(f"/proc/{daemon_proc}/fd"))
        threads = len(os.listdir(f"/proc/{daemon_proc}/task"))
        children = subprocess.run(["pgrep", "-P", str(daemon_proc)], capture_output=True,
                                  text=True).stdout.split()
        return fds, threads, len(children), len(_cgroups_of(daemon)), len(_mounts_of(daemon))

    before = counts()

    def cycle(i: int) -> int:
        result = daemon.cli("run", "--rm", "busybox", "true", timeout=60)
        return result.returncode

    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(cycle, range(200)))
    assert codes == [0] * 200
    _wait_for(lambda: daemon.cli("ps", "-aq").stdout.strip() == "", timeout=20)
    after = counts()
    assert after == before, (before, after)


def test_slow_huge_and_many_clients_do_not_stall_the_daemon(daemon: Daemon) -> None:
    import socket

    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(daemon.socket))
        return s

    idle = [connect() for _ in range(1000)]
    slow = connect()
    slow.sendall(b"GET /containers/json HTTP/1.1\r\nHo")  # and never finishes
    try:
        t0 = time.monotonic()
        assert daemon.cli("ps", "-a", check=True).returncode == 0
        assert time.monotonic() - t0 < 5
        huge = connect()
        body = b'{"Image": "' + b"x" * (5 * 1024 * 1024) + b'"}'
        huge.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: " + str(len(body)).encode() +
                     b"\r\n\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            huge.sendall(body)
        reply = huge.recv(4096)
        assert reply.startswith(b"HTTP/1.1 400") and b"larger than" in reply
        huge.close()
        bad = connect()
        bad.sendall(b"NONSENSE\r\n\r\n")
        assert bad.recv(4096).startswith(b"HTTP/1.1 400")
        bad.close()
        assert daemon.cli("run", "--rm", "busybox", "true").returncode == 0
    finally:
        for s in [*idle, slow]:
            s.close()


def test_startup_removes_stale_mounts_and_half_removed_records(test_images: Path) -> None:
    with isolated_daemon(test_images) as d:
        d.stop()
        stale = d.data_root / "containers" / ("ab" * 32)
        (stale / "merged").mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "stale", str(stale / "merged")], check=True)
        try:
            d.start()
            assert _mounts_of(d) == []
            assert "unmounting stale mount" in d.log_path.read_text()
            d.cli("rm", "-f", "abab", check=True)  # the half-removed record (no config.json)
            assert not stale.exists()
        finally:
            subprocess.run(["umount", "-l", str(stale / "merged")], capture_output=True)


def test_operations_on_one_container_are_serialized_others_proceed(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "slow-stop", "busybox", "sleep", "300", check=True)
    daemon.cli("run", "-d", "--name", "contended", "busybox", "sh", "-c",
               "trap 'exit 0' TERM; while true; do sleep 0.1; done", check=True)
    with ThreadPoolExecutor(12) as pool:
        slow = pool.submit(daemon.cli, "stop", "-t", "3", "slow-stop")
        time.sleep(0.3)
        t0 = time.monotonic()  # another container is not held up by the slow stop
        assert daemon.cli("run", "--rm", "busybox", "true").returncode == 0
        assert time.monotonic() - t0 < 2.5
        verbs = ["pause", "unpause", "restart", "stop", "start"] * 2
        results = list(pool.map(lambda verb: daemon.cli(verb, "contended"), verbs))
        assert slow.result().returncode == 0
    assert all("Traceback" not in r.stderr for r in results)
    state = _state(daemon, "contended")
    pid = int(state["Pid"])  # type: ignore[call-overload]
    if state["Status"] in ("running", "paused"):
        assert pid > 0 and Path(f"/proc/{pid}").exists()
    else:
        assert state["Status"] == "exited" and pid == 0
    daemon.cli("rm", "-f", "slow-stop", "contended", check=True)
    assert _cgroups_of(daemon) == []


def test_corrupt_image_metadata_is_reported_and_removable(test_images: Path) -> None:
    with isolated_daemon(test_images) as d:
        d.cli("load", "-i", str(test_images / "multilayer.tar"), check=True)
        image_id = str(json.loads(d.cli("inspect", "busybox", check=True).stdout)[0]["Id"])
        d.stop()
        blob = d.data_root / "image" / "blobs" / "sha256" / image_id.removeprefix("sha256:")
        blob.write_text("{torn")
        d.start()
        listed = d.cli("images", check=True).stdout
        assert "pycontain-test/multilayer" in listed and "busybox" not in listed
        assert "unreadable image" in d.log_path.read_text()
        refused = d.cli("run", "--rm", "busybox", "true", "--pull", "never")
        assert refused.returncode == 125 and "Traceback" not in refused.stderr
        removed = d.cli("rmi", "-f", image_id.removeprefix("sha256:")[:12], check=True).stdout
        assert f"Deleted: {image_id}" in removed and "Untagged: busybox:latest" in removed
        assert d.cli("run", "--rm", "--entrypoint", "sh", "pycontain-test/multilayer", "-c",
                     "cat /app/hello.txt", check=True).stdout == "hello from layer 3\n"
