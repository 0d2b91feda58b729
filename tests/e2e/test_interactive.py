"""Interactive containers through a real pseudo-terminal on the client side (pexpect):
``run -it``, ``exec -it``, detach and ``attach``, resize, Ctrl-C, the terminal restored;
``run -i`` with piped input; the hijacked API connection itself."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pexpect
import psutil
import pytest

from tests.conftest import BIN, Daemon, isolated_daemon

pytestmark = pytest.mark.root

PROMPT = "# "


def spawn(daemon: Daemon, *args: str, rows: int = 24, cols: int = 80) -> pexpect.spawn:
    """The real CLI on a pseudo-terminal of the given size."""
    return pexpect.spawn(str(BIN / "pycontain"), ["-H", daemon.host, *args],
                         dimensions=(rows, cols), timeout=15, encoding="utf-8")


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus is None
    return int(child.exitstatus)


def resize(child: pexpect.spawn, old: tuple[int, int], new: tuple[int, int]) -> None:
    """Resize our terminal (SIGWINCH for the CLI, which sends the size on) and wait
    until ``stty size`` in the shell on the other side shows it."""
    child.setwinsize(*new)
    deadline = time.monotonic() + 5
    while True:
        child.sendline("stty size")
        if child.expect([f"{new[0]} {new[1]}", f"{old[0]} {old[1]}"]) == 0:
            return
        assert time.monotonic() < deadline, "the new size did not reach the shell"
        time.sleep(0.1)


def unique(prefix: str) -> str:
    return f"{prefix}-{os.urandom(3).hex()}"


@pytest.fixture
def box(daemon: Daemon) -> Iterator[str]:
    name = unique("box")
    daemon.cli("run", "-d", "--name", name, "busybox", "sleep", "1000", check=True)
    yield name
    daemon.cli("rm", "-f", name)


def test_run_it_is_a_shell_on_a_terminal(daemon: Daemon) -> None:
    name = unique("it")
    child = spawn(daemon, "run", "--rm", "-it", "--name", name, "busybox", "sh", rows=30,
                  cols=100)
    child.expect(PROMPT)
    child.sendline("tty; stty size; echo $((6 * 7))")
    child.expect("/dev/pts/0")
    child.expect("30 100")
    child.expect("42")
    child.expect(PROMPT)
    resize(child, (30, 100), (41, 123))
    child.expect(PROMPT)
    # line editing is the container's terminal's: a backspace erases the typo
    child.send("echo helloX\x7f\r")
    child.expect("\r\nhello\r\n")
    child.expect(PROMPT)
    child.sendline("exit 7")
    assert finish(child) == 7
    assert name not in daemon.cli("ps", "-a", "--format", "{{.Names}}").stdout


def test_ctrl_c_reaches_the_program_in_the_container(daemon: Daemon) -> None:
    child = spawn(daemon, "run", "--rm", "-it", "busybox", "sh", "-c",
                  'trap "echo got-SIGINT; exit 3" INT; echo ready; while :; do sleep 1; done')
    child.expect("ready")
    started = time.monotonic()
    child.sendcontrol("c")
    child.expect("got-SIGINT")
    assert finish(child) == 3
    assert time.monotonic() - started < 5


def test_ctrl_c_interrupts_a_command_and_the_shell_goes_on(daemon: Daemon) -> None:
    child = spawn(daemon, "run", "--rm", "-it", "busybox", "sh")
    child.expect(PROMPT)
    child.sendline("sleep 100; echo not-interrupted")
    time.sleep(0.5)
    child.sendcontrol("c")
    child.expect(PROMPT)
    child.sendline("echo still-here")
    child.expect("still-here")
    assert "not-interrupted" not in child.before
    child.sendline("exit")
    assert finish(child) == 0


def test_detach_then_attach(daemon: Daemon) -> None:
    name = unique("detach")
    child = spawn(daemon, "run", "-it", "--name", name, "busybox", "sh")
    try:
        child.expect(PROMPT)
        child.sendline("echo before-detach")
        child.expect("\r\nbefore-detach")
        child.sendcontrol("p")
        child.sendcontrol("q")
        assert finish(child) == 0
        assert daemon.inspect(name)["State"]["Status"] == "running"  # type: ignore[index]

        child = spawn(daemon, "attach", name, rows=20, cols=90)
        child.sendline("echo attached-$((1 + 1))")
        child.expect("attached-2")
        child.sendline("stty size")
        child.expect("20 90")
        child.sendline("exit 5")
        assert finish(child) == 5
        state = daemon.inspect(name)["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 5  # type: ignore[index]
        logs = daemon.cli("logs", name, check=True).stdout
        assert "before-detach" in logs and "attached-2" in logs
    finally:
        daemon.cli("rm", "-f", name)


def test_custom_detach_keys(daemon: Daemon) -> None:
    name = unique("keys")
    child = spawn(daemon, "run", "-it", "--detach-keys", "ctrl-a,x", "--name", name,
                  "busybox", "sh")
    try:
        child.expect(PROMPT)
        child.sendcontrol("p")  # no longer the detach keys: the shell gets them
        child.sendcontrol("q")
        child.sendcontrol("a")
        child.send("x")
        assert finish(child) == 0
        assert daemon.inspect(name)["State"]["Running"] is True  # type: ignore[index]
    finally:
        daemon.cli("rm", "-f", name)


def test_start_ai_and_attach_refusals(daemon: Daemon) -> None:
    name = unique("start")
    daemon.cli("create", "-it", "--name", name, "busybox", "sh", check=True)
    try:
        refused = daemon.cli("attach", name)
        assert refused.returncode == 1
        assert refused.stderr == "You cannot attach to a stopped container, start it first\n"
        child = spawn(daemon, "start", "-ai", name)
        child.expect(PROMPT)
        child.sendline("exit 4")
        child.expect(pexpect.EOF)
        assert finish(child) == 4, daemon.inspect(name)["State"]
    finally:
        daemon.cli("rm", "-f", name)


def test_terminal_restored_on_exit_and_on_sigterm(daemon: Daemon, tmp_path: object) -> None:
    """The CLI's terminal is in raw mode only while it is attached."""
    name = unique("restore")
    script = (f"stty -g; {shlex.quote(str(BIN / 'pycontain'))} -H {daemon.host} "
              f"run --rm -it --name {name} busybox sh; echo code=$?; stty -g")
    child = pexpect.spawn("sh", ["-c", script], timeout=15, encoding="utf-8")
    child.expect(r"(\S+:\S+)\r\n")
    before = child.match.group(1)
    child.expect(PROMPT)
    child.sendline("exit 2")
    child.expect(r"code=2\r\n(\S+)\r\n")
    assert child.match.group(1) == before
    finish(child)

    child = pexpect.spawn("sh", ["-c", script], timeout=15, encoding="utf-8")
    child.expect(r"(\S+:\S+)\r\n")
    before = child.match.group(1)
    child.expect(PROMPT)
    cli = next(p for p in psutil.Process(child.pid).children() if "pycontain" in p.name())
    cli.send_signal(signal.SIGTERM)
    child.expect(r"code=(\d+)\r\n(\S+)\r\n")
    assert child.match.group(1) == str(128 + signal.SIGTERM)
    assert child.match.group(2) == before
    finish(child)
    # as Docker's: the container outlives the attached CLI
    assert daemon.inspect(name)["State"]["Running"] is True  # type: ignore[index]
    daemon.cli("rm", "-f", name, check=True)


def test_it_needs_a_terminal(daemon: Daemon) -> None:
    before = daemon.cli("ps", "-aq").stdout
    result = daemon.cli("run", "-it", "busybox", "sh")  # stdin: not a terminal
    assert (result.returncode, result.stderr) == (1, "the input device is not a TTY\n")
    assert daemon.cli("ps", "-aq").stdout == before


def test_run_i_pipes_stdin_and_closes_it(daemon: Daemon) -> None:
    out = daemon.cli("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done",
                     input=b"first line\nsecond\n", check=True)
    assert out.stdout == "first line\nsecond\ndone\n"
    big = os.urandom(3 << 20)  # far more than a pipe holds, both ways at once; without a
    # terminal the detach keys' bytes (bound to be in there) are data like any other
    result = subprocess.run([str(BIN / "pycontain"), "-H", daemon.host, "run", "--rm", "-i",
                             "busybox", "cat"], input=big, capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout == big
    counted = daemon.cli("run", "--rm", "-i", "busybox", "wc", "-c", input=b"x" * (1 << 20),
                         check=True)
    assert counted.stdout.split() == [str(1 << 20)]


def test_run_t_without_i_gets_a_terminal(daemon: Daemon) -> None:
    out = subprocess.run([str(BIN / "pycontain"), "-H", daemon.host, "run", "--rm", "-t",
                          "busybox", "sh", "-c", "tty; echo a; exit 6"],
                         capture_output=True, timeout=60)
    assert out.returncode == 6
    assert out.stdout == b"/dev/pts/0\r\na\r\n"  # the container's terminal: \n -> \r\n


def test_exec_it(daemon: Daemon, box: str) -> None:
    child = spawn(daemon, "exec", "-it", box, "sh", rows=25, cols=85)
    child.expect(PROMPT)
    child.sendline("tty; stty size; ps -o pid,args")
    child.expect("/dev/pts/")
    child.expect("25 85")
    child.expect("sleep 1000")
    resize(child, (25, 85), (33, 99))
    child.sendline("sleep 100")
    time.sleep(0.3)
    child.sendcontrol("c")
    child.expect(PROMPT)
    child.sendline("exit 9")
    assert finish(child) == 9
    assert daemon.inspect(box)["State"]["Running"] is True  # type: ignore[index]


def test_exec_i_pipes_stdin(daemon: Daemon, box: str) -> None:
    out = daemon.cli("exec", "-i", box, "sh", "-c", "tr a-z A-Z; echo end",
                     input=b"shout\n", check=True)
    assert out.stdout == "SHOUT\nend\n"


def test_exec_it_refused_when_paused_or_stopped(daemon: Daemon, box: str) -> None:
    daemon.cli("pause", box, check=True)
    try:
        child = spawn(daemon, "exec", "-it", box, "sh")
        child.expect(pexpect.EOF)
        assert "is paused, unpause the container before exec" in child.before
        child.close()
        assert child.exitstatus == 1
    finally:
        daemon.cli("unpause", box, check=True)
    daemon.cli("stop", "-t", "0", box, check=True)
    child = spawn(daemon, "exec", "-it", box, "sh")
    child.expect(pexpect.EOF)
    assert "is not running" in child.before
    child.close()
    assert child.exitstatus == 1


def _hijack(daemon: Daemon, request: str) -> tuple[socket.socket, bytes]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(daemon.socket))
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    return sock, head


def test_api_hijacked_attach(daemon: Daemon) -> None:
    """Docker's wire format: 101 UPGRADED, then raw input and multiplexed output."""
    name = unique("api")
    daemon.cli("create", "-i", "--name", name, "busybox", "sh", "-c",
               "read line; echo got:$line; echo to-stderr >&2", check=True)
    try:
        sock, head = _hijack(daemon, (
            f"POST /v1.41/containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1 "
            "HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"))
        status, _, rest = head.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
        assert b"Content-Type: application/vnd.docker.multiplexed-stream" in status
        daemon.cli("start", name, check=True)
        sock.sendall(b"hello\n")
        data = rest
        while chunk := sock.recv(4096):
            data += chunk
        sock.close()
        assert data == (b"\x01\0\0\0\0\0\0\x0a" b"got:hello\n"
                        b"\x02\0\0\0\0\0\0\x0a" b"to-stderr\n")
        assert daemon.cli("wait", name, check=True).stdout == "0\n"
    finally:
        daemon.cli("rm", "-f", name)


def test_interactive_container_survives_a_daemon_restart(test_images: object) -> None:
    """Its shim keeps its terminal: a restarted daemon attaches to it again."""
    with isolated_daemon(test_images) as d:  # type: ignore[arg-type]
        d.cli("run", "-dit", "--name", "kept", "busybox", "sh", check=True)
        pid = d.inspect("kept")["State"]["Pid"]  # type: ignore[index]
        d.kill()
        d.start()
        assert d.inspect("kept")["State"]["Pid"] == pid  # type: ignore[index]
        child = spawn(d, "attach", "kept")
        child.sendline("echo after-restart-$((40 + 2))")
        child.expect("after-restart-42")
        child.sendline("exit 8")
        assert finish(child) == 8
        d.cli("rm", "kept", check=True)


@pytest.mark.parametrize("flags", [(), ("-i",)])
def test_signals_reach_a_container_without_a_terminal(daemon: Daemon,
                                                       flags: tuple[str, ...]) -> None:
    """Docker's sig-proxy: Ctrl-C's SIGINT (and SIGTERM...) to the CLI go to the container."""
    cli = subprocess.Popen(
        [str(BIN / "pycontain"), "-H", daemon.host, "run", "--rm", *flags, "busybox", "sh",
         "-c", 'trap "echo got-INT; exit 5" INT; echo ready; while :; do sleep 0.1; done'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline() == b"ready\n"
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=20)
    finally:
        cli.kill()
    assert (cli.returncode, out, err) == (5, b"got-INT\n", b"")
