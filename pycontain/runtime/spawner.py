"""The fork server: a single-threaded process, started before anything else, that forks shims.

Forking a multi-threaded or heavily loaded Python process is unsafe and copies a lot;
re-executing Python per container costs 40 ms or more.  The daemon therefore forks
this server first, while it is small; the server has already imported everything a
shim and a container init need, so each container start costs one fork.

Wire: a SOCK_SEQPACKET pair.  Each request is one JSON message ``{"kind", "spec"}``
with file descriptors attached (SCM_RIGHTS).  ``"container"``: a ContainerSpec and
one fd, the shim's end of a fresh control socket pair (see shim.py for what travels
on it).  ``"exec"``: an ExecSpec and two fds, the exec-shim's control socket and its
end of the socket pair that carries the process's stdio (see exec.py).  Shims are the server's
children; SIGCHLD is ignored so that they are reaped by the kernel.  The server
exits when the daemon's end of the pair closes; the shims live on.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import socket
from typing import Any, NoReturn

from pycontain.runtime.exec import ExecSpec, run_exec_shim
from pycontain.runtime.shim import run_shim
from pycontain.runtime.spec import ContainerSpec

MAX_SPEC_BYTES = 1 << 20
FDS_OF_KIND = {"container": 1, "exec": 2}
MAX_FDS = 2


class ForkServer:
    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock

    @classmethod
    def start(cls) -> ForkServer:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            _serve(theirs)
        theirs.close()
        return cls(pid, ours)

    def spawn(self, spec: ContainerSpec) -> socket.socket:
        """Start a shim for ``spec``; returns the daemon's end of its control socket."""
        return self._request("container", spec.to_dict(), ())

    def spawn_exec(self, spec: ExecSpec, stdio: socket.socket) -> socket.socket:
        """Start an exec-shim for ``spec`` relaying the process's stdio on ``stdio`` (the
        exec-shim's end of a pair; it stays the caller's too); returns the daemon's end
        of its control socket."""
        return self._request("exec", spec.to_dict(), (stdio.fileno(),))

    def _request(self, kind: str, spec: dict[str, Any], fds: tuple[int, ...]) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            message = json.dumps({"kind": kind, "spec": spec}).encode()
            socket.send_fds(self.sock, [message], [theirs.fileno(), *fds])
        finally:
            theirs.close()
        return ours

    def stop(self) -> None:
        self.sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _serve(sock: socket.socket) -> NoReturn:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.freeze()  # keep the shims' copy-on-write pages shared
    try:
        while True:
            message, fds, _, _ = socket.recv_fds(sock, MAX_SPEC_BYTES, MAX_FDS)
            if not message:
                break
            request = json.loads(message)
            if len(fds) != FDS_OF_KIND.get(request.get("kind"), -1):
                for fd in fds:
                    os.close(fd)
                continue
            try:
                pid = os.fork()
            except OSError:
                pid = -1  # the daemon sees EOF: the start failed
            if pid == 0:
                sock.close()
                control = socket.socket(fileno=fds[0])
                if request["kind"] == "exec":
                    run_exec_shim(ExecSpec.from_dict(request["spec"]), control,
                                  socket.socket(fileno=fds[1]))
                run_shim(ContainerSpec.from_dict(request["spec"]), control)
            for fd in fds:
                os.close(fd)
    finally:
        os._exit(0)
