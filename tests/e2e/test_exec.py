"""``pycontain exec`` end to end: output, exit codes, flags, the container's namespaces,
cgroup and confinement, refusals, detached processes and cleanup."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.root


def _status_fields(text: str, *names: str) -> dict[str, str]:
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name: fields[name].strip() for name in names}


@pytest.fixture
def box(daemon: Daemon) -> Iterator[str]:
    """A running container that wrote a file and has a hostname of its own."""
    name = f"exec-{os.urandom(3).hex()}"
    daemon.cli("run", "-d", "--name", name, "--hostname", "boxhost", "busybox", "sh", "-c",
               "echo written > /tmp/marker; exec sleep 1000", check=True)
    deadline = time.monotonic() + 10
    while daemon.cli("exec", name, "test", "-f", "/tmp/marker").returncode != 0:
        assert time.monotonic() < deadline, "the container did not write its file"
        time.sleep(0.05)
    yield name
    daemon.cli("rm", "-f", name)


def test_output_and_exit_codes(daemon: Daemon, box: str) -> None:
    out = daemon.cli("exec", box, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n")
    assert daemon.cli("exec", box, "true").returncode == 0
    missing = daemon.cli("exec", box, "no-such-command")
    assert missing.returncode == 127 and missing.stdout == ""
    assert len(missing.stderr.splitlines()) == 1
    assert "no-such-command" in missing.stderr and "not found" in missing.stderr
    not_executable = daemon.cli("exec", box, "/etc/passwd")
    assert not_executable.returncode == 126, not_executable.stderr


def test_env_workdir_and_user(daemon: Daemon, box: str) -> None:
    out = daemon.cli("exec", "-e", "GREETING=hi there", "-w", "/etc", "-u", "nobody", box,
                     "sh", "-c", 'echo "$GREETING"; pwd; id -u; id -g; echo "$HOSTNAME"',
                     check=True)
    assert out.stdout.splitlines() == ["hi there", "/etc", "65534", "65534", "boxhost"]
    default = daemon.cli("exec", box, "sh", "-c", "pwd; id -u", check=True)
    assert default.stdout.splitlines() == ["/", "0"]


def test_sees_the_containers_namespaces_and_files(daemon: Daemon, box: str) -> None:
    assert daemon.cli("exec", box, "hostname", check=True).stdout == "boxhost\n"
    assert daemon.cli("exec", box, "cat", "/tmp/marker", check=True).stdout == "written\n"
    ps = daemon.cli("exec", box, "ps", "-o", "pid,args", check=True).stdout.splitlines()[1:]
    processes = {line.split(None, 1)[1]: int(line.split()[0]) for line in ps}
    assert processes["sleep 1000"] == 1
    assert "ps -o pid,args" in processes
    for kind in ("net", "mnt", "uts", "ipc", "pid", "cgroup"):
        inside = daemon.cli("exec", box, "readlink", f"/proc/self/ns/{kind}",
                            check=True).stdout.strip()
        assert inside == daemon.cli("exec", box, "readlink", f"/proc/1/ns/{kind}",
                                    check=True).stdout.strip()
        assert inside == os.readlink(f"/proc/{_pid(daemon, box)}/ns/{kind}")
    address = daemon.cli("exec", box, "cat", "/proc/net/fib_trie", check=True).stdout
    own = daemon.cli("exec", box, "cat", "/proc/1/net/fib_trie", check=True).stdout
    assert address == own


def test_same_confinement_and_cgroup_as_the_container(daemon: Daemon, box: str) -> None:
    fields = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
    mine = daemon.cli("exec", box, "cat", "/proc/self/status", check=True).stdout
    init = daemon.cli("exec", box, "cat", "/proc/1/status", check=True).stdout
    assert _status_fields(mine, *fields) == _status_fields(init, *fields)
    assert _status_fields(mine, "Seccomp")["Seccomp"] == "2"
    cgroup = daemon.cli("exec", box, "cat", "/proc/self/cgroup", check=True).stdout
    assert cgroup == daemon.cli("exec", box, "cat", "/proc/1/cgroup", check=True).stdout


def test_detached_exec_shows_in_top_and_dies_with_the_container(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "exec-detach", "busybox", "sleep", "1000", check=True)
    detached = daemon.cli("exec", "-d", "exec-detach", "sleep", "777")
    assert (detached.returncode, detached.stdout, detached.stderr) == (0, "", "")
    deadline = time.monotonic() + 10
    while "sleep 777" not in daemon.cli("top", "exec-detach").stdout:
        assert time.monotonic() < deadline, "the exec'd process is not in top"
        time.sleep(0.05)
    host_pids = [pid for pid in os.listdir("/proc") if pid.isdigit()
                 and _cmdline(pid) == "sleep 777"]
    assert len(host_pids) == 1
    daemon.cli("rm", "-f", "exec-detach", check=True)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{host_pids[0]}") and _cmdline(host_pids[0]) == "sleep 777":
        assert time.monotonic() < deadline, "the exec'd process outlived its container"
        time.sleep(0.05)


def test_refused_for_a_stopped_or_paused_container(daemon: Daemon) -> None:
    daemon.cli("create", "--name", "exec-stopped", "busybox", "true", check=True)
    stopped = daemon.cli("exec", "exec-stopped", "true")
    assert stopped.returncode == 1 and len(stopped.stderr.splitlines()) == 1
    assert "is not running" in stopped.stderr
    daemon.cli("run", "-d", "--name", "exec-paused", "busybox", "sleep", "1000", check=True)
    daemon.cli("pause", "exec-paused", check=True)
    paused = daemon.cli("exec", "exec-paused", "true")
    assert paused.returncode == 1 and len(paused.stderr.splitlines()) == 1
    assert "is paused, unpause the container before exec" in paused.stderr
    daemon.cli("unpause", "exec-paused", check=True)
    assert daemon.cli("exec", "exec-paused", "true").returncode == 0
    daemon.cli("rm", "-f", "exec-stopped", "exec-paused", check=True)


def test_exec_api_shapes(daemon: Daemon, box: str) -> None:
    from pycontain.client import Client

    client = Client(daemon.host)
    created = client.json("POST", f"/containers/{box}/exec",
                          body={"Cmd": ["sh", "-c", "echo hi; exit 5"], "AttachStdout": True,
                                "AttachStderr": True})
    exec_id = created["Id"]
    before = client.json("GET", f"/exec/{exec_id}/json")
    assert before["Running"] is False and before["ExitCode"] is None
    stream = client.request("POST", f"/exec/{exec_id}/start", body={"Detach": False})
    assert b"".join(stream.iter_chunks()) == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    after = client.json("GET", f"/exec/{exec_id}/json")
    assert (after["Running"], after["ExitCode"]) == (False, 5)
    assert after["Pid"] > 0 and after["ProcessConfig"]["entrypoint"] == "sh"


def _pid(daemon: Daemon, name: str) -> int:
    state = daemon.inspect(name)["State"]
    assert isinstance(state, dict)
    return int(state["Pid"])


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
