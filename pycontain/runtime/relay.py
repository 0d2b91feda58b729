"""The shims' I/O loop: a program's output into the log and to attached clients, and
the clients' input to the program (the container's shim, and the exec-shim).

One ``poll`` over: the output (a terminal's master, or the stdout and stderr pipes),
the attach socket's listener and its clients (runtime/attach.py), and, while input is
waiting, the container's stdin (the master, or the stdin pipe).  Input is written
without blocking, so that a program that neither reads its input nor stops writing
output can never wedge the shim.  The loop ends when every output has closed (for a
terminal: the session has hung up), which is when the container's program has exited.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket

from pycontain.containers.logs import LogWriter
from pycontain.runtime import attach
from pycontain.runtime.console import receive_master, set_size

CLIENT_SEND_TIMEOUT = 30.0
_READABLE = select.POLLIN | select.POLLHUP | select.POLLERR


class Relay:
    def __init__(self, log: LogWriter | None, outputs: dict[int, str], stdin: int | None = None,
                 terminal: int | None = None, listener: socket.socket | None = None,
                 clients: tuple[socket.socket, ...] = ()) -> None:
        self.log = log
        self.outputs = dict(outputs)        # fd -> "stdout" | "stderr"
        self.stdin = stdin                  # where input goes; None: no input
        self.terminal = terminal            # the master, for resizes
        self.listener = listener
        self.clients: dict[int, tuple[socket.socket, attach.FrameReader]] = {}
        self.pending = bytearray()          # input not yet taken by the program
        self.close_stdin_when_flushed = False
        self.poller = select.poll()
        self.registered: dict[int, int] = {}
        if stdin is not None:
            os.set_blocking(stdin, False)
        for fd in self.outputs:
            self._watch(fd)
        if listener is not None:
            listener.setblocking(False)
            self._watch(listener.fileno())
        for sock in clients:
            self._add_client(sock)

    def _watch(self, fd: int) -> None:
        mask = _READABLE if fd in self.outputs or fd in self.clients else 0
        if self.listener is not None and fd == self.listener.fileno():
            mask = select.POLLIN
        if fd == self.stdin and self.pending:
            mask |= select.POLLOUT
        if mask == self.registered.get(fd, 0):
            return
        if not mask:
            self.poller.unregister(fd)
            del self.registered[fd]
        elif fd in self.registered:
            self.poller.modify(fd, mask)
            self.registered[fd] = mask
        else:
            self.poller.register(fd, mask)
            self.registered[fd] = mask

    def accept_waiting(self) -> None:
        """Take every connection already queued on the listener (the clients the daemon
        connected before the program started: they must see all of its output)."""
        if self.listener is None:
            return
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._add_client(sock)

    def _add_client(self, sock: socket.socket) -> None:
        sock.settimeout(CLIENT_SEND_TIMEOUT)
        self.clients[sock.fileno()] = (sock, attach.FrameReader())
        self._watch(sock.fileno())

    def run(self) -> None:
        self.accept_waiting()
        while self.outputs:
            for fd, event in self.poller.poll():
                if self.listener is not None and fd == self.listener.fileno():
                    self.accept_waiting()
                    continue
                if fd in self.outputs and event & _READABLE:
                    self._output(fd)
                if fd in self.clients and event & _READABLE:
                    self._client_input(fd)
                if fd == self.stdin and event & select.POLLOUT:
                    self._write_stdin()
        for sock, _ in self.clients.values():
            sock.close()
        self.clients.clear()
        if self.listener is not None:
            self.listener.close()

    def _output(self, fd: int) -> None:
        stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the terminal's session has hung up
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            if self.log is not None:
                self.log.flush(stream)
            del self.outputs[fd]
            if fd == self.stdin:
                self.stdin = None
                self.pending.clear()
            self._watch(fd)
            os.close(fd)
            return
        if self.log is not None:
            self.log.feed(stream, data)
        frame = attach.encode(attach.STDERR if stream == "stderr" else attach.STDOUT, data)
        for client_fd, (sock, _) in list(self.clients.items()):
            try:
                sock.sendall(frame)
            except OSError:
                self._drop(client_fd)

    def _client_input(self, fd: int) -> None:
        sock, reader = self.clients[fd]
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
            return
        for kind, payload in reader.feed(data):
            if kind == attach.STDIN and self.stdin is not None:
                self.pending += payload
            elif kind == attach.CLOSE_STDIN and self.terminal is None:
                self.close_stdin_when_flushed = True
            elif kind == attach.RESIZE and self.terminal is not None:
                with contextlib.suppress(OSError):
                    set_size(self.terminal, *attach.parse_resize(payload))
        self._write_stdin()

    def _write_stdin(self) -> None:
        if self.stdin is None:
            return
        if self.pending:
            try:
                written = os.write(self.stdin, self.pending)
                del self.pending[:written]
            except BlockingIOError:
                pass
            except OSError:  # the program closed its input
                self.pending.clear()
        if not self.pending and self.close_stdin_when_flushed and self.stdin not in self.outputs:
            fd, self.stdin = self.stdin, None
            self._watch(fd)
            os.close(fd)
            return
        self._watch(self.stdin)

    def _drop(self, fd: int) -> None:
        sock, _ = self.clients.pop(fd)
        self._watch(fd)
        sock.close()


class Stdio:
    """A program's stdin, stdout and stderr as its shim sets them up before the fork.

    With a terminal: a socket pair on which the program's process sends the master
    (console.py).  Without: pipes for stdout and stderr, and one for stdin when it is
    open (else the process keeps the shim's /dev/null).
    """

    def __init__(self, tty: bool, open_stdin: bool) -> None:
        self.console: tuple[socket.socket, socket.socket] | None = None
        self.pipes: dict[str, tuple[int, int]] = {}
        if tty:
            self.console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            return
        self.pipes = {"stdout": os.pipe(), "stderr": os.pipe()}
        if open_stdin:
            self.pipes["stdin"] = os.pipe()

    def child_side(self) -> None:
        """In the forked process: fds 0, 1, 2 (the console socket on 0 until the
        process replaces it with the terminal)."""
        if self.console is not None:
            os.dup2(self.console[1].fileno(), 0)
            for sock in self.console:
                sock.close()
            return
        for name, (r, w) in self.pipes.items():
            os.dup2(r if name == "stdin" else w, {"stdin": 0, "stdout": 1, "stderr": 2}[name])
            os.close(r)
            os.close(w)

    def parent_side(self) -> None:
        """In the shim after the fork: close what the process now holds."""
        if self.console is not None:
            self.console[1].close()
        for name, (r, w) in self.pipes.items():
            os.close(w if name != "stdin" else r)

    def relay_ends(self) -> tuple[dict[int, str], int | None, int | None]:
        """After the process's execve: (outputs, stdin, terminal) for the Relay."""
        if self.console is not None:
            master = receive_master(self.console[0])
            self.console[0].close()
            return {master: "stdout"}, master, master
        outputs = {self.pipes[name][0]: name for name in ("stdout", "stderr")}
        stdin = self.pipes["stdin"][1] if "stdin" in self.pipes else None
        return outputs, stdin, None

    def close(self) -> None:
        if self.console is not None:
            self.console[0].close()
        for name, (r, w) in self.pipes.items():
            os.close(r if name != "stdin" else w)
