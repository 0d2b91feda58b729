"""Attached sessions with stdin or a terminal: run -i/-t, start -ai, attach, exec -it.

The connection is hijacked (client.py ``Hijacked``): our stdin goes to the daemon as
it is typed, the container's output comes back raw (a terminal) or as multiplexed
frames.  With a terminal our own is put in raw mode, so that every key (Ctrl-C
included) reaches the container's terminal, whose line discipline does what a local
one would; window size changes (SIGWINCH) are sent on; our terminal is restored on
every way out.  The detach keys (Ctrl-P Ctrl-Q) end the session and leave the
container running.

Output is copied by a thread (blocking reads of the connection); the main thread
waits on our stdin and on a pipe that the output thread closes when it is done.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO

from pycontain.cli.stream import STDERR, SYSTEM_ERROR, demultiplex
from pycontain.client import Client, Hijacked
from pycontain.errors import PycontainError
from pycontain.runtime.attach import DetachKeys, parse_detach_keys

__all__ = ["Session", "raw_terminal", "resizer", "run_attached", "terminal_size"]


def terminal_size() -> tuple[int, int]:
    """Our terminal's (rows, columns); (0, 0) without one."""
    for stream in (sys.stdout, sys.stdin):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            columns, rows = os.get_terminal_size(stream.fileno())
            return rows, columns
    return 0, 0


def resizer(client: Client, path: str) -> Callable[[], None]:
    """A function that sends our window size to ``<path>/resize`` (a container or an exec)."""
    def resize() -> None:
        rows, cols = terminal_size()
        if rows and cols:
            with contextlib.suppress(PycontainError):  # the program has just ended
                client.request("POST", f"{path}/resize", query={"h": rows, "w": cols})

    return resize


@contextlib.contextmanager
def raw_terminal(on_resize: Callable[[], None]) -> Iterator[None]:
    """Our terminal in raw mode with SIGWINCH sent on; restored however the block ends
    (SIGTERM and SIGHUP included)."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def end(signum: int, _: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, end) for sig in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, lambda *_: on_resize())
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Session:
    """One attached connection: our stdin to it, its output to our stdout/stderr."""

    def __init__(self, connection: Hijacked, tty: bool, send_stdin: bool,
                 detach_keys: bytes, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.connection = connection
        self.tty = tty
        self.send_stdin = send_stdin
        self.keys = DetachKeys(detach_keys) if tty else None
        self.stdout, self.stderr = stdout, stderr
        self.detached = False
        self.error: PycontainError | None = None
        self._done_r, self._done_w = os.pipe()

    def run(self) -> None:
        """Until the output ends (the program exited) or the detach keys are typed."""
        reader = threading.Thread(target=self._copy_output, daemon=True)
        reader.start()
        try:
            if self.send_stdin:
                self._copy_input()
            if not self.detached:
                reader.join()
        finally:  # detached, or interrupted (SIGTERM): end the reader's read first
            self.connection.shutdown()
            reader.join(timeout=5)
            self.connection.close()
            os.close(self._done_r)
        if self.error is not None:
            raise self.error

    def _copy_input(self) -> None:
        fd = sys.stdin.fileno()
        watching = [fd, self._done_r]
        while True:
            ready, _, _ = select.select(watching, [], [])
            if self._done_r in ready:
                return
            data = os.read(fd, 65536)
            if not data:
                self.connection.close_input()
                watching = [self._done_r]
                continue
            if self.keys is not None:
                data, self.detached = self.keys.feed(data)
            try:
                if data:
                    self.connection.send(data)
            except OSError:
                return
            if self.detached:
                return

    def _copy_output(self) -> None:
        try:
            chunks = iter(self.connection.read, b"")
            if self.tty:
                for chunk in chunks:
                    self._write(self.stdout, chunk)
            else:
                for kind, payload in demultiplex(chunks):
                    if kind == SYSTEM_ERROR:
                        raise PycontainError(payload.decode(errors="replace").strip())
                    self._write(self.stderr if kind == STDERR else self.stdout, payload)
        except PycontainError as exc:
            self.error = exc
        except OSError:
            pass
        finally:
            os.close(self._done_w)

    @staticmethod
    def _write(stream: IO[bytes], data: bytes) -> None:
        stream.write(data)
        stream.flush()


def run_attached(connection: Hijacked, client: Client, path: str, tty: bool, stdin: bool,
                 detach_keys: str, stdout: IO[bytes], stderr: IO[bytes]) -> bool:
    """Our stdin (and terminal, in raw mode, its size sent to ``<path>/resize``) joined
    to ``connection`` until it ends; whether the user detached."""
    session = Session(connection, tty, stdin, parse_detach_keys(detach_keys), stdout, stderr)
    resize = resizer(client, path)
    raw = tty and stdin and sys.stdin.isatty()
    with raw_terminal(resize) if raw else contextlib.nullcontext():
        if tty:
            resize()
        session.run()
    return session.detached
