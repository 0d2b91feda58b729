"""`pycontain run` end to end: CLI -> daemon -> shim -> container on the real kernel."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.root


def test_run_prints_output_and_exits_with_the_containers_code(daemon: Daemon) -> None:
    result = daemon.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_command_after_the_image_replaces_the_default(daemon: Daemon) -> None:
    result = daemon.cli("run", "--rm", "busybox", "ls", "/")
    assert result.returncode == 0, result.stderr
    listing = result.stdout.split()
    for entry in ("bin", "dev", "etc", "proc", "sys", "tmp"):
        assert entry in listing


def test_default_command_of_the_image_runs(daemon: Daemon) -> None:
    # busybox's default command is `sh`; with stdin at /dev/null it exits 0 at once.
    result = daemon.cli("run", "--rm", "busybox")
    assert result.returncode == 0, result.stderr


def test_exit_codes_follow_docker(daemon: Daemon) -> None:
    not_found = daemon.cli("run", "--rm", "busybox", "no-such-command")
    assert not_found.returncode == 127
    assert "executable file not found" in not_found.stderr
    assert len(not_found.stderr.strip().splitlines()) == 1
    cannot_invoke = daemon.cli("run", "--rm", "busybox", "/etc")
    assert cannot_invoke.returncode == 126
    by_signal = daemon.cli("run", "--rm", "busybox", "sh", "-c", "sh -c 'kill -TERM $$'; exit $?")
    assert by_signal.returncode == 128 + 15


def test_container_sees_itself_as_pid_1_and_its_own_hostname(daemon: Daemon) -> None:
    result = daemon.cli("run", "--rm", "--hostname", "box", "busybox", "sh", "-c",
                        "echo $$; hostname; ps -o pid,comm")
    lines = result.stdout.splitlines()
    assert lines[0] == "1"
    assert lines[1] == "box"
    pids = [line.split()[0] for line in lines[3:]]
    assert set(pids) <= {"1", "2", "3", "4", "5", "6"}, lines


def test_hostname_defaults_to_the_short_id(daemon: Daemon) -> None:
    cid = daemon.cli("create", "busybox", "hostname", check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    result = daemon.cli("start", "-a", cid)
    assert result.stdout.strip() == cid[:12]
    daemon.cli("rm", cid, check=True)


def _host_ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_namespaces_from_inside_and_from_the_host(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "busybox", "sh", "-c",
                     "for n in pid mnt uts ipc net; do readlink /proc/$$/ns/$n; done; "
                     "exec sleep 300", check=True).stdout.strip()
    try:
        time.sleep(0.2)
        info = daemon.inspect(cid)
        state = info["State"]
        assert isinstance(state, dict)
        pid = state["Pid"]
        assert isinstance(pid, int) and pid > 1
        # From the host: the container's process is an ordinary host process, seen by ps.
        ps = subprocess.run(["ps", "-o", "pid=,args=", "-p", str(pid)], capture_output=True,
                            text=True)
        assert "sleep 300" in ps.stdout
        namespaces = info["Namespaces"]
        assert isinstance(namespaces, dict)
        for kind in ("pid", "mnt", "uts", "ipc", "net"):
            assert _host_ns(pid, kind) != _host_ns("self", kind), kind
            assert namespaces[kind] == _host_ns(pid, kind)
        # From inside: the container reads the same namespace ids the host sees for it.
        for _ in range(100):
            inside = daemon.cli("logs", cid).stdout.split()
            if len(inside) == 5:
                break
            time.sleep(0.05)
        assert inside == [namespaces[kind] for kind in ("pid", "mnt", "uts", "ipc", "net")]
        # Network: with --network none, loopback only, and up; by default also eth0.
        links = daemon.cli("run", "--rm", "--network", "none", "busybox", "ip", "-o",
                           "link").stdout
        names = [line.split(":")[1].strip() for line in links.splitlines()]
        assert names == ["lo"]
        assert "UP" in links
        links = daemon.cli("run", "--rm", "busybox", "ip", "-o", "link").stdout
        names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
        assert names == ["lo", "eth0"]
    finally:
        daemon.cli("rm", "-f", cid)


def test_container_filesystem_is_private_and_proc_dev_are_set_up(daemon: Daemon) -> None:
    script = ("touch /made-here; ls /dev; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
              "grep -c . /proc/mounts; touch /sys/x 2>/dev/null || echo sys-ro")
    result = daemon.cli("run", "--rm", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm"):
        assert dev in result.stdout.split()
    assert "sys-ro" in result.stdout
    assert not Path("/made-here").exists()


def test_env_workdir_and_volumes(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from the host\n")
    result = daemon.cli("run", "--rm", "-e", "GREETING=hi", "-w", "/work",
                        "-v", f"{tmp_path}:/mnt/host:ro", "-v", f"{tmp_path}/rw:/rw",
                        "busybox", "sh", "-c",
                        "echo $GREETING; pwd; cat /mnt/host/data.txt; "
                        "touch /mnt/host/x 2>/dev/null || echo ro; echo written > /rw/out")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hi", "/work", "from the host", "ro"]
    assert (tmp_path / "rw" / "out").read_text() == "written\n"


def test_detached_run_logs_and_wait(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "busybox", "sh", "-c", "echo one; echo two >&2; exit 4",
                     check=True).stdout.strip()
    wait = daemon.cli("wait", cid)
    assert wait.stdout.strip() == "4"
    logs = daemon.cli("logs", cid)
    assert logs.stdout == "one\n"
    assert logs.stderr == "two\n"
    tail = daemon.cli("logs", "--tail", "1", "-t", cid)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z two", tail.stderr), tail
    daemon.cli("rm", cid, check=True)


def test_logs_follow_ends_when_the_container_stops(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "busybox", "sh", "-c",
                     "for i in 1 2 3; do echo line$i; sleep 0.2; done",
                     check=True).stdout.strip()
    started = time.monotonic()
    follow = daemon.cli("logs", "-f", cid, timeout=30)
    assert follow.stdout.split() == ["line1", "line2", "line3"]
    assert time.monotonic() - started < 10
    daemon.cli("rm", cid, check=True)


def test_rm_flag_removes_the_container(daemon: Daemon) -> None:
    daemon.cli("run", "--rm", "--name", "gone-after", "busybox", "true", check=True)
    for _ in range(50):
        if "gone-after" not in daemon.cli("ps", "-a", "--format", "{{.Names}}").stdout:
            break
        time.sleep(0.1)
    assert "gone-after" not in daemon.cli("ps", "-a", "--format", "{{.Names}}").stdout


def test_user_from_the_flag_and_from_the_images_passwd(daemon: Daemon) -> None:
    as_nobody = daemon.cli("run", "--rm", "-u", "nobody", "busybox", "id")
    assert as_nobody.stdout.startswith("uid=65534(nobody) gid=65534"), as_nobody
    numeric = daemon.cli("run", "--rm", "-u", "1234:5678", "busybox", "sh", "-c", "id -u; id -g")
    assert numeric.stdout.split() == ["1234", "5678"]
    unknown = daemon.cli("run", "--rm", "-u", "ghost", "busybox", "id")
    assert unknown.returncode == 125 and "unable to find user ghost" in unknown.stderr
