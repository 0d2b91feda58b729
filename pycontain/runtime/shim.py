"""The shim: one small process per container, the container init's parent.

It holds the container's stdio (pipes, or a terminal's master: console.py), writes
the log, relays attached clients through its attach socket (attach.py, relay.py),
records the exit status in ``<state_dir>/exit.json`` and tells the daemon over the
control socket.  It runs in its own session (setsid) and does not depend on the
daemon: when the daemon is killed, the container keeps running, its exit status is
not lost, and a restarted daemon can attach to it again.

Control protocol (one JSON object per line, shim -> daemon; "go" the other way):

    daemon                          shim                          container init
      |  spawn(spec) via fork server  |                                  |
      |------------------------------>| unshare(PID), unshare(NET)       |
      |                               | listen on attach.sock (-i, -t)   |
      |<-- {"event": "ready", "shim_pid", "wire_network"}                |
      |    (bridge network, or stdin/terminal; else straight on)         |
      | wire /proc/<shim_pid>/ns/net, |                                  |
      | connect attached clients      |                                  |
      |-- "go\n" ------------------->| fork --------------------------->|
      |                               |        setup, (terminal), execve |
      |                               |<-- error pipe: EOF (exec ok)     |
      |                               |    or {"message", "exit_code"}   |
      |<-- {"event": "started", "pid", "shim_pid"}                       |
      |    or {"event": "failed", "message", "exit_code"}               |
      |                               |<== stdio: pipes or terminal =====|
      |<== attach.sock: output, input, resizes ==>                       |
      |                               |    waitpid <---------------- exit|
      |                               | exit.json written (atomic)       |
      |<-- {"event": "exited", "exit_code", "finished_at"}               |
      |    EOF (the shim exits)       |                                  |
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, NoReturn

from pycontain.containers.logs import LogWriter
from pycontain.fsutil import atomic_write_json
from pycontain.runtime import attach
from pycontain.runtime import syscalls as sc
from pycontain.runtime.init import run_container_init
from pycontain.runtime.relay import Relay, Stdio
from pycontain.runtime.spec import ContainerSpec

EXIT_FILE = "exit.json"


def exit_code_from_wait_status(status: int) -> int:
    """Docker's convention: the exit status, or 128 + the signal number."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def read_exit_record(state_dir: str) -> dict[str, Any] | None:
    try:
        with open(Path(state_dir) / EXIT_FILE, "rb") as f:
            data: dict[str, Any] = json.loads(f.read())
            return data
    except (OSError, ValueError):
        return None


def run_shim(spec: ContainerSpec, control: socket.socket) -> NoReturn:
    """The shim's whole life; entered in a freshly forked child of the fork server."""
    try:
        _shim(spec, control)
    finally:
        os._exit(0)


def send_event(control: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the daemon is gone: the exit file is what counts
        control.sendall(json.dumps(message).encode() + b"\n")


def become_shim() -> None:
    """A session of its own, default signals but SIGHUP and SIGPIPE (ignored: an attached
    client that has gone is dropped on EPIPE, see relay.py), /dev/null on 0, 1 and 2."""
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    for sig in (signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def read_init_report(status_r: int) -> tuple[str, int] | None:
    """What the forked child reported on its error pipe (message, exit code), or None
    when the pipe closed empty: its execve succeeded."""
    failure = _read_all(status_r)
    if not failure:
        return None
    try:
        report = json.loads(failure)
        return str(report["message"]), int(report["exit_code"])
    except (ValueError, KeyError, TypeError):
        return failure.decode(errors="replace"), 125


def listen_for_attach(spec: ContainerSpec) -> socket.socket | None:
    """The attach socket of a container with stdin open or a terminal (attach.py)."""
    if not spec.interactive:
        return None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    with attach.socket_address(spec.state_dir) as address:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(address)
        listener.bind(address)
    os.chmod(Path(spec.state_dir) / attach.ATTACH_SOCKET, 0o600)
    listener.listen(16)
    return listener


def _shim(spec: ContainerSpec, control: socket.socket) -> None:
    become_shim()

    state_dir = Path(spec.state_dir)
    (state_dir / EXIT_FILE).unlink(missing_ok=True)
    log_fd = os.open(spec.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    stdio = Stdio(spec.tty, spec.open_stdin)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)

    sc.unshare(sc.CLONE_NEWPID)
    listener = listen_for_attach(spec)
    failure = enter_network_namespace(spec, control)
    if failure is None and (spec.network_mode == "bridge" or listener is not None):
        failure = wait_for_go(control, wire_network=spec.network_mode == "bridge")
    if failure is not None:
        _report_failure(state_dir, control, failure, 125)
        return
    pid = os.fork()
    if pid == 0:
        control.close()
        stdio.child_side()
        for fd in (status_r, log_fd):
            os.close(fd)
        run_container_init(spec, status_w)
    stdio.parent_side()
    os.close(status_w)

    report = read_init_report(status_r)
    os.close(status_r)
    if report is not None:
        _, status = os.waitpid(pid, 0)
        stdio.close()
        _report_failure(state_dir, control, *report)
        return

    outputs, stdin, terminal = stdio.relay_ends()
    send_event(control, {"event": "started", "pid": pid, "shim_pid": os.getpid(),
                    "started_at": time.time_ns()})
    writer = LogWriter(log_fd, spec.log_path, spec.log_max_size, spec.log_max_files)
    Relay(writer, outputs, stdin, terminal, listener).run()
    _, status = os.waitpid(pid, 0)
    record = {"exit_code": exit_code_from_wait_status(status), "finished_at": time.time_ns(),
              "error": "", "started": True}
    writer.close()
    atomic_write_json(state_dir / EXIT_FILE, record)
    send_event(control, {"event": "exited", **record})


def _report_failure(state_dir: Path, control: socket.socket, message: str, code: int) -> None:
    record = {"exit_code": code, "finished_at": time.time_ns(), "error": message,
              "started": False}
    atomic_write_json(state_dir / EXIT_FILE, record)
    send_event(control, {"event": "failed", "message": message, "exit_code": code})


def enter_network_namespace(spec: ContainerSpec, control: socket.socket) -> str | None:
    """Put the shim (and so the init it forks) in the container's network namespace.

    ``bridge``: a new namespace, which the daemon wires (veth, address, route, ports)
    through /proc/<shim pid>/ns/net while the shim waits for its "go"; ``none``: a new
    namespace with loopback only; ``host``: the host's; ``container``: another
    container's (``join_netns``).  Returns why it failed, or None.
    """
    if spec.network_mode == "host":
        return None
    if spec.network_mode == "container":
        try:
            fd = os.open(spec.join_netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            return f"join the network namespace {spec.join_netns}: {exc.strerror}"
        try:
            sc.setns(fd, sc.CLONE_NEWNET)
        except OSError as exc:
            return f"join the network namespace {spec.join_netns}: {exc.strerror}"
        finally:
            os.close(fd)
        return None
    sc.unshare(sc.CLONE_NEWNET)
    return None


def wait_for_go(control: socket.socket, wire_network: bool) -> str | None:
    """Tell the daemon the shim is ready (its network namespace to wire, its attach
    socket to connect to) and wait for its "go"; returns why not, or None."""
    send_event(control, {"event": "ready", "shim_pid": os.getpid(), "wire_network": wire_network})
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = control.recv(64)
        if not chunk:
            break
        answer += chunk
    if answer.strip() != b"go":
        return "the daemon did not let the container start"
    return None


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
