"""Docker's lifecycle verbs end to end: create, start -a, stop, kill, pause, restart, rm, ps."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.root


def _status(daemon: Daemon, name: str) -> str:
    state = daemon.inspect(name)["State"]
    assert isinstance(state, dict)
    return str(state["Status"])


def _pid(daemon: Daemon, name: str) -> int:
    state = daemon.inspect(name)["State"]
    assert isinstance(state, dict)
    return int(state["Pid"])


def test_create_start_attach_stop_rm(daemon: Daemon) -> None:
    cid = daemon.cli("create", "--name", "lifecycle", "busybox", "echo", "hello",
                     check=True).stdout.strip()
    assert _status(daemon, "lifecycle") == "created"
    ps = daemon.cli("ps", "-a", "--filter", "name=lifecycle").stdout.splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                             "PORTS", "NAMES"]
    assert ps[1].startswith(cid[:12] + " ")
    assert '"echo hello"' in ps[1] and "Created" in ps[1] and ps[1].endswith("lifecycle")
    started = daemon.cli("start", "-a", "lifecycle")
    assert started.returncode == 0 and started.stdout == "hello\n"
    assert _status(daemon, "lifecycle") == "exited"
    status = daemon.cli("ps", "-a", "--filter", "name=lifecycle", "--format",
                        "{{.Status}}").stdout.strip()
    assert re.fullmatch(r"Exited \(0\) (Less than a second|\d+ seconds?) ago", status), status
    assert daemon.cli("rm", "lifecycle").stdout.strip() == "lifecycle"
    gone = daemon.cli("inspect", "lifecycle")
    assert gone.returncode == 1
    assert "No such" in gone.stderr and "lifecycle" in gone.stderr


def test_stop_sends_term_then_kill(daemon: Daemon) -> None:
    # A shell that traps TERM exits at once with 143 (128+15).
    daemon.cli("run", "-d", "--name", "trapper", "busybox", "sh", "-c",
               "trap 'exit 143' TERM; while true; do sleep 0.1; done", check=True)
    t0 = time.monotonic()
    assert daemon.cli("stop", "trapper").stdout.strip() == "trapper"
    assert time.monotonic() - t0 < 5
    info = daemon.inspect("trapper")
    assert info["State"]["ExitCode"] == 143  # type: ignore[index]
    # `sleep` as PID 1 ignores TERM: stop kills it after the timeout (137 = 128+9).
    daemon.cli("run", "-d", "--name", "sleeper", "busybox", "sleep", "300", check=True)
    t0 = time.monotonic()
    daemon.cli("stop", "-t", "1", "sleeper", check=True)
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 6, elapsed
    assert daemon.inspect("sleeper")["State"]["ExitCode"] == 137  # type: ignore[index]
    daemon.cli("rm", "trapper", "sleeper", check=True)


def test_kill_with_a_signal_and_exit_code_128_plus_n(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "killme", "busybox", "sleep", "300", check=True)
    assert daemon.cli("kill", "killme").stdout.strip() == "killme"
    assert daemon.cli("wait", "killme").stdout.strip() == "137"
    not_running = daemon.cli("kill", "killme")
    assert not_running.returncode == 1 and "is not running" in not_running.stderr
    daemon.cli("run", "-d", "--name", "hup", "busybox", "sh", "-c",
               "trap 'exit 5' HUP; echo ready; while true; do sleep 0.1; done", check=True)
    for _ in range(100):  # PID 1 ignores HUP until its trap is set
        if daemon.cli("logs", "hup").stdout == "ready\n":
            break
        time.sleep(0.05)
    daemon.cli("kill", "-s", "HUP", "hup", check=True)
    assert daemon.cli("wait", "hup").stdout.strip() == "5"
    daemon.cli("rm", "killme", "hup", check=True)


def test_pause_and_unpause_freeze_the_processes(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "frozen", "busybox", "sleep", "300", check=True)
    pid = _pid(daemon, "frozen")
    daemon.cli("pause", "frozen", check=True)
    assert _status(daemon, "frozen") == "paused"
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    assert state in ("D", "T", "S")  # frozen tasks sleep in the freezer
    status = daemon.cli("ps", "--filter", "name=frozen", "--format", "{{.Status}}").stdout
    assert status.strip().endswith("(Paused)")
    twice = daemon.cli("pause", "frozen")
    assert twice.returncode == 1 and "already paused" in twice.stderr
    daemon.cli("unpause", "frozen", check=True)
    assert _status(daemon, "frozen") == "running"
    refused = daemon.cli("unpause", "frozen")
    assert refused.returncode == 1 and "not paused" in refused.stderr
    daemon.cli("rm", "-f", "frozen", check=True)


def test_rm_of_a_running_container_needs_force(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "busy", "busybox", "sleep", "300", check=True)
    pid = _pid(daemon, "busy")
    refused = daemon.cli("rm", "busy")
    assert refused.returncode == 1
    assert "stop the container before removing or force remove" in refused.stderr
    daemon.cli("rm", "-f", "busy", check=True)
    assert not Path(f"/proc/{pid}").exists()
    assert daemon.cli("inspect", "busy").returncode == 1


def test_restart_runs_the_command_again(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "again", "busybox", "sh", "-c",
               "echo run; sleep 300", check=True)
    first = _pid(daemon, "again")
    daemon.cli("restart", "-t", "0", "again", check=True)
    assert _status(daemon, "again") == "running"
    assert _pid(daemon, "again") != first
    for _ in range(50):
        if daemon.cli("logs", "again").stdout == "run\nrun\n":
            break
        time.sleep(0.1)
    assert daemon.cli("logs", "again").stdout == "run\nrun\n"
    daemon.cli("rm", "-f", "again", check=True)


def test_top_lists_host_pids(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "topped", "busybox", "sh", "-c",
               "sleep 301 & sleep 302", check=True)
    pid = _pid(daemon, "topped")
    time.sleep(0.3)
    top = daemon.cli("top", "topped", check=True).stdout.splitlines()
    assert top[0].split()[:3] == ["UID", "PID", "PPID"]
    rows = top[1:]
    assert any(row.split()[1] == str(pid) for row in rows)
    assert any("sleep 301" in row for row in rows) and any("sleep 302" in row for row in rows)
    host_ps = subprocess.run(["ps", "-e", "-o", "pid=,args="], capture_output=True, text=True)
    assert "sleep 301" in host_ps.stdout  # visible from the host with plain ps
    daemon.cli("rm", "-f", "topped", check=True)


def test_inspect_reports_docker_fields(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "inspected", "-m", "64m", "--cpus", "0.5",
               "--pids-limit", "50", "busybox", "sleep", "300", check=True)
    info = daemon.inspect("inspected")
    assert info["Name"] == "/inspected"
    assert info["Path"] == "sleep" and info["Args"] == ["300"]
    host = info["HostConfig"]
    assert isinstance(host, dict)
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 50
    state = info["State"]
    assert isinstance(state, dict)
    assert state["Running"] is True and state["OOMKilled"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", str(state["StartedAt"]))
    fmt = daemon.cli("inspect", "-f", "{{.State.Status}} {{.HostConfig.Memory}}", "inspected")
    assert fmt.stdout.strip() == f"running {64 * 1024 * 1024}"
    daemon.cli("rm", "-f", "inspected", check=True)


def test_ps_formats(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "fmt-a", "busybox", "sleep", "300", check=True)
    daemon.cli("create", "--name", "fmt-b", "busybox", "sh", "-c",
               "echo a very long command line indeed", check=True)
    running = daemon.cli("ps", "--format", "{{.Names}}").stdout.split()
    assert "fmt-a" in running and "fmt-b" not in running
    everything = daemon.cli("ps", "-a", "--format", "{{.Names}}\t{{.State}}").stdout
    assert "fmt-a\trunning" in everything and "fmt-b\tcreated" in everything
    table = daemon.cli("ps", "-a", "--filter", "name=fmt-", "--format",
                       "table {{.Names}}\t{{.Image}}").stdout.splitlines()
    assert table[0].split() == ["NAMES", "IMAGE"]
    assert {line.split()[0] for line in table[1:]} == {"fmt-a", "fmt-b"}
    long_cmd = daemon.cli("ps", "-a", "--filter", "name=fmt-b").stdout.splitlines()[1]
    assert '"sh -c \'echo a very…"' in long_cmd or '"sh -c \\"echo a very…"' in long_cmd \
        or "…" in long_cmd
    up = daemon.cli("ps", "--filter", "name=fmt-a", "--format", "{{.Status}}").stdout.strip()
    assert re.fullmatch(r"Up (Less than a second|\d+ seconds?)", up), up
    quiet = daemon.cli("ps", "-aq").stdout.split()
    assert all(re.fullmatch(r"[0-9a-f]{12}", q) for q in quiet)
    latest = daemon.cli("ps", "-l", "--format", "{{.Names}}").stdout.split()
    assert latest == ["fmt-b"]
    as_json = [json.loads(line) for line in
               daemon.cli("ps", "-a", "--filter", "name=fmt-a", "--format", "json").stdout
               .splitlines()]
    assert as_json[0]["Names"] == "fmt-a" and as_json[0]["State"] == "running"
    exited = daemon.cli("ps", "-a", "--filter", "status=created", "--format",
                        "{{.Names}}").stdout.split()
    assert "fmt-b" in exited and "fmt-a" not in exited
    daemon.cli("rm", "-f", "fmt-a", "fmt-b", check=True)


def test_generated_names_are_adjective_noun(daemon: Daemon) -> None:
    cid = daemon.cli("create", "busybox", "true", check=True).stdout.strip()
    name = str(daemon.inspect(cid)["Name"])
    assert re.fullmatch(r"/[a-z]+_[a-z]+\d*", name), name
    daemon.cli("rm", cid, check=True)


def test_name_in_use_is_a_conflict(daemon: Daemon) -> None:
    daemon.cli("create", "--name", "twin", "busybox", "true", check=True)
    again = daemon.cli("create", "--name", "twin", "busybox", "true")
    assert again.returncode == 125
    assert "already in use" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    daemon.cli("rm", "twin", check=True)


def test_version_and_info(daemon: Daemon) -> None:
    version = daemon.cli("version", check=True).stdout
    assert "API version:       1.41" in version and "Server:" in version
    info = daemon.cli("info", check=True).stdout
    assert "Cgroup Driver: cgroupfs" in info
    assert re.search(r"Cgroup Version: [12]", info)


def test_force_remove_and_stop_of_a_paused_container(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "paused-rm", "busybox", "sleep", "300", check=True)
    daemon.cli("run", "-d", "--name", "paused-stop", "busybox", "sh", "-c",
               "trap 'exit 3' TERM; while true; do sleep 0.1; done", check=True)
    pid = _pid(daemon, "paused-rm")
    time.sleep(0.3)
    daemon.cli("pause", "paused-rm", "paused-stop", check=True)
    daemon.cli("rm", "-f", "paused-rm", check=True)
    assert not Path(f"/proc/{pid}").exists()
    daemon.cli("stop", "paused-stop", check=True)
    assert daemon.inspect("paused-stop")["State"]["ExitCode"] == 3  # type: ignore[index]
    daemon.cli("rm", "paused-stop", check=True)
