"""What every verb uses: the context (client, output streams) and small helpers.

Verbs are ``def cmd_x(ctx: Context, opts: Options) -> int``; they return the exit
code and let a PycontainError from the daemon propagate to ``main``, which prints
it on one line.  Standard library only.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, TextIO

from pycontain.errors import DaemonUnreachable, PycontainError

if TYPE_CHECKING:
    from pycontain.cli.flags import Command, Options
    from pycontain.client import Client

__all__ = ["Context", "Verb", "each", "one_line", "os_error_text", "quote_path"]


class Context:
    """A verb's surroundings: the daemon's address, our output streams."""

    def __init__(self, host: str | None, out: TextIO, err: TextIO, verb: str) -> None:
        self.host = host
        self.out = out
        self.err = err
        self.verb = verb
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from pycontain.client import Client

            self._client = Client(self.host)
        return self._client

    def line(self, text: str) -> None:
        self.out.write(text + "\n")

    def error(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def daemon_error(self, exc: PycontainError, prefix: str = "") -> None:
        """``Error response from daemon: <message>`` on one line (unreachable: the text as is)."""
        if isinstance(exc, DaemonUnreachable):
            self.error(prefix + one_line(exc.message))
        else:
            self.error(f"{prefix}Error response from daemon: {one_line(exc.message)}")

    def interactive(self) -> bool:
        """Whether a person can answer a question on standard input."""
        import sys

        return sys.stdin is not None and sys.stdin.isatty()

    def binary_streams(self) -> tuple[IO[bytes], IO[bytes]]:
        """Our stdout and stderr as byte streams (for container output)."""
        self.out.flush()
        self.err.flush()
        return self.out.buffer, self.err.buffer


class Verb:
    """A verb: its grammar, its function, and how its daemon errors are reported.

    ``run_style`` verbs (run, create) print ``pycontain: Error response from daemon: ...``
    and exit 125, like ``docker run``.
    """

    __slots__ = ("command", "function", "run_style")

    def __init__(
        self,
        command: Command,
        function: Callable[[Context, Options], int],
        run_style: bool = False,
    ) -> None:
        self.command = command
        self.function = function
        self.run_style = run_style


def each(ctx: Context, names: Iterable[str], action: Callable[[str], str]) -> int:
    """Apply ``action`` to each name and print what it returns.

    A daemon error for one name is printed and the others still run (exit 1 at
    the end), as Docker's multi-container verbs do.
    """
    failed = False
    for name in names:
        try:
            text = action(name)
        except DaemonUnreachable:
            raise
        except PycontainError as exc:
            ctx.daemon_error(exc)
            failed = True
            continue
        if text:
            ctx.line(text)
    return 1 if failed else 0


def one_line(message: str) -> str:
    """A message folded onto one line (a daemon's multi-line error stays one stderr line)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def quote_path(name: str) -> str:
    """A container or image name made safe for a URL path (``/`` and ``:`` kept)."""
    return urllib.parse.quote(name, safe="/:@")


def os_error_text(path: str, exc: OSError) -> str:
    """``open x: no such file or directory``, as Go words a failed open."""
    reason = exc.strerror or str(exc)
    return f"open {path}: {reason[:1].lower()}{reason[1:]}"
