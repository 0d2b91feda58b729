"""The exec-shim: runs one more process inside a running container (``pycontain exec``).

Forked by the fork server, like a container's shim, and as small.  It opens the
container init's namespaces (all of them before entering any), enters its PID
namespace, then forks the process, which joins the container's cgroup and the
other namespaces, and then takes the init's own last steps (user, working directory,
capabilities, no_new_privs, seccomp: init.py) before execve.  Nothing is imported
once inside the container.

Control protocol (one JSON object per line, exec-shim -> daemon).  The process's
stdio (pipes, or a terminal from the container's devpts: console.py) is the exec-shim's,
which relays it (relay.py) to one pre-connected client, the daemon's end of a socket
pair, in the attach socket's frames (attach.py):

    daemon                          exec-shim                         process
      |  spawn_exec(spec, client)     |                                  |
      |------------------------------>| open /proc/<init>/ns/*           |
      |                               | setns(pid), fork --------------->|
      |                               |          cgroup, setns(ipc, uts, |
      |                               |          net, cgroup, mnt), cwd, |
      |                               |          confinement, execve     |
      |                               |<-- error pipe: EOF (exec ok)     |
      |                               |    or {"message", "exit_code"}   |
      |<-- {"event": "started", "pid"}  or {"event": "failed", ...}      |
      |<== client: frames ==========>|<== pipes or terminal ===========>|
      |                               |    waitpid <---------------- exit|
      |<-- {"event": "exited", "exit_code"}                              |
      |    EOF (the exec-shim exits)  |                                  |
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

from pycontain.runtime import syscalls as sc
from pycontain.runtime.console import become_console_client
from pycontain.runtime.init import (
    StartError,
    close_inherited_fds,
    confine_and_exec,
    enter_process_context,
    join_cgroup,
    run_reporting_failure,
)
from pycontain.runtime.relay import Relay, Stdio
from pycontain.runtime.shim import (
    become_shim,
    exit_code_from_wait_status,
    read_init_report,
    send_event,
)
from pycontain.runtime.spec import ProcessSpec, SecuritySpec
from pycontain.security import confine

__all__ = ["ExecSpec", "run_exec_shim"]

# Joined in this order after the PID namespace; the mount namespace last, since the
# host's paths (the cgroup files) are out of reach once inside it.
NAMESPACES = (("ipc", sc.CLONE_NEWIPC), ("uts", sc.CLONE_NEWUTS), ("net", sc.CLONE_NEWNET),
              ("cgroup", sc.CLONE_NEWCGROUP), ("mnt", sc.CLONE_NEWNS))


@dataclass(frozen=True)
class ExecSpec:
    """What to run, in which container: the exec-shim's only input (plain JSON)."""

    init_pid: int                       # the container's init, as the host sees it
    hostname: str
    process: ProcessSpec
    cgroup_join_files: tuple[str, ...]
    security: SecuritySpec
    tty: bool = False
    open_stdin: bool = False
    console_size: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExecSpec:
        return cls(init_pid=int(raw["init_pid"]), hostname=raw["hostname"],
                   process=ProcessSpec.from_dict(raw["process"]),
                   cgroup_join_files=tuple(raw["cgroup_join_files"]),
                   security=SecuritySpec.from_dict(raw["security"]),
                   tty=bool(raw["tty"]), open_stdin=bool(raw["open_stdin"]),
                   console_size=(int(raw["console_size"][0]), int(raw["console_size"][1])))


def run_exec_shim(spec: ExecSpec, control: socket.socket, client: socket.socket) -> NoReturn:
    """The exec-shim's whole life; entered in a freshly forked child of the fork server."""
    try:
        _exec_shim(spec, control, client)
    finally:
        os._exit(0)


def _exec_shim(spec: ExecSpec, control: socket.socket, client: socket.socket) -> None:
    become_shim()
    try:
        namespaces = open_namespaces(spec.init_pid)
    except OSError as exc:
        send_event(control, {"event": "failed", "exit_code": 126,
                        "message": f"open the namespaces of process {spec.init_pid}: "
                                   f"{exc.strerror}"})
        return
    stdio = Stdio(spec.tty, spec.open_stdin)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    try:
        sc.setns(namespaces["pid"], sc.CLONE_NEWPID)  # for the children: fork next
        pid = os.fork()
    except OSError as exc:
        send_event(control, {"event": "failed", "exit_code": 126,
                        "message": f"enter the container's PID namespace: {exc.strerror}"})
        return
    if pid == 0:
        control.close()
        client.close()
        stdio.child_side()
        run_reporting_failure(status_w, "exec", _enter_and_exec, spec, namespaces, status_w)
    stdio.parent_side()
    for fd in (status_w, *namespaces.values()):
        os.close(fd)

    report = read_init_report(status_r)
    os.close(status_r)
    if report is not None:
        os.waitpid(pid, 0)
        stdio.close()
        message, code = report
        send_event(control, {"event": "failed", "message": message, "exit_code": code})
        return
    outputs, stdin, terminal = stdio.relay_ends()
    send_event(control, {"event": "started", "pid": pid})
    Relay(None, outputs, stdin, terminal, clients=(client,)).run()
    _, status = os.waitpid(pid, 0)
    send_event(control, {"event": "exited", "exit_code": exit_code_from_wait_status(status)})


def open_namespaces(init_pid: int) -> dict[str, int]:
    """O_RDONLY fds on the init's pid and NAMESPACES (all opened before any is entered)."""
    fds: dict[str, int] = {}
    try:
        for name in ("pid", *(n for n, _ in NAMESPACES)):
            fds[name] = os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _enter_and_exec(spec: ExecSpec, namespaces: dict[str, int], error_fd: int) -> None:
    join_cgroup(spec.cgroup_join_files)
    confine.make_non_dumpable()
    for name, nstype in NAMESPACES:
        try:
            sc.setns(namespaces[name], nstype)
        except OSError as exc:
            raise StartError(f"exec: join the container's {name} namespace: "
                             f"{exc.strerror}", 126) from exc
    os.chdir("/")  # the container's root (pivot_root made it the namespace's root)
    close_inherited_fds(error_fd)
    user = enter_process_context(spec.process, spec.hostname)
    if spec.tty:  # fd 0 is the exec-shim's console socket until now
        become_console_client(0, user.uid, spec.console_size)
    confine_and_exec(spec.process.args, user, spec.security, error_fd)
