"""The exec-shim: runs one more process inside a running container (``pycontain exec``).

Forked by the fork server, like a container's shim, and as small.  It opens the
container init's namespaces (all of them before entering any), enters its PID
namespace, then forks the process, which joins the container's cgroup and the
other namespaces, and then takes the init's own last steps (user, working directory,
capabilities, no_new_privs, seccomp: init.py) before execve.  Nothing is imported
once inside the container.

Control protocol (one JSON object per line, exec-shim -> daemon), with the
process's stdout and stderr going straight to the daemon's pipes:

    daemon                          exec-shim                         process
      |  spawn_exec(spec, out, err)   |                                  |
      |------------------------------>| open /proc/<init>/ns/*           |
      |                               | setns(pid), fork --------------->|
      |                               |          cgroup, setns(ipc, uts, |
      |                               |          net, cgroup, mnt), cwd, |
      |                               |          confinement, execve     |
      |                               |<-- error pipe: EOF (exec ok)     |
      |                               |    or {"message", "exit_code"}   |
      |<-- {"event": "started", "pid"}  or {"event": "failed", ...}      |
      |<===================== stdout/stderr pipes =======================|
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
from pycontain.runtime.init import (
    StartError,
    close_inherited_fds,
    confine_and_exec,
    enter_process_context,
    join_cgroup,
    run_reporting_failure,
)
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExecSpec:
        return cls(init_pid=int(raw["init_pid"]), hostname=raw["hostname"],
                   process=ProcessSpec.from_dict(raw["process"]),
                   cgroup_join_files=tuple(raw["cgroup_join_files"]),
                   security=SecuritySpec.from_dict(raw["security"]))


def run_exec_shim(spec: ExecSpec, control: socket.socket, stdout: int, stderr: int) -> NoReturn:
    """The exec-shim's whole life; entered in a freshly forked child of the fork server."""
    try:
        _exec_shim(spec, control, stdout, stderr)
    finally:
        os._exit(0)


def _exec_shim(spec: ExecSpec, control: socket.socket, stdout: int, stderr: int) -> None:
    become_shim()
    try:
        namespaces = open_namespaces(spec.init_pid)
    except OSError as exc:
        send_event(control, {"event": "failed", "exit_code": 126,
                        "message": f"open the namespaces of process {spec.init_pid}: "
                                   f"{exc.strerror}"})
        return
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
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        run_reporting_failure(status_w, "exec", _enter_and_exec, spec, namespaces, status_w)
    for fd in (stdout, stderr, status_w, *namespaces.values()):
        os.close(fd)

    report = read_init_report(status_r)
    os.close(status_r)
    if report is not None:
        os.waitpid(pid, 0)
        message, code = report
        send_event(control, {"event": "failed", "message": message, "exit_code": code})
        return
    send_event(control, {"event": "started", "pid": pid})
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
    stdin = os.open("/dev/null", os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)
    user = enter_process_context(spec.process, spec.hostname)
    confine_and_exec(spec.process.args, user, spec.security, error_fd)
