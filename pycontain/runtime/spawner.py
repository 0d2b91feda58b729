"""The fork server: a single-threaded process, started before anything else, that forks shims.

Forking a multi-threaded or heavily loaded Python process is unsafe and copies a lot;
re-executing Python per container costs 40 ms or more.  The daemon therefore forks
this server first, while it is small; the server has already imported everything a
shim and a container init need, so each container start costs one fork.

Wire: a SOCK_SEQPACKET pair.  Each request is one message: the ContainerSpec as
JSON, with one file descriptor attached (SCM_RIGHTS): the shim's end of a fresh
control socket pair (see shim.py for what travels on it).  Shims are the server's
children; SIGCHLD is ignored so that they are reaped by the kernel.  The server
exits when the daemon's end of the pair closes; the shims live on.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
from typing import NoReturn

from pycontain.runtime.shim import run_shim
from pycontain.runtime.spec import ContainerSpec

MAX_SPEC_BYTES = 1 << 20


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
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self.sock, [spec.to_json()], [theirs.fileno()])
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
            message, fds, _, _ = socket.recv_fds(sock, MAX_SPEC_BYTES, 1)
            if not message:
                break
            if len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                continue
            try:
                pid = os.fork()
            except OSError:
                os.close(fds[0])  # the daemon sees EOF: the start failed
                continue
            if pid == 0:
                sock.close()
                run_shim(ContainerSpec.from_json(message), socket.socket(fileno=fds[0]))
            os.close(fds[0])
    finally:
        os._exit(0)
