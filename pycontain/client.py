"""The CLI's HTTP client: Docker Engine API calls over the daemon's Unix socket.

Standard library only, so that ``pycontain run`` starts fast.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import urllib.parse
from collections.abc import Iterator
from typing import IO, Any

from pycontain.errors import DaemonUnreachable, PycontainError, error_from_status

DEFAULT_HOST = "unix:///run/pycontain.sock"
API_PREFIX = "/v1.41"


def resolve_host(flag_value: str | None) -> str:
    """``-H/--host``, else ``PYCONTAIN_HOST``, else the default socket."""
    return flag_value or os.environ.get("PYCONTAIN_HOST") or DEFAULT_HOST


def socket_path(host: str) -> str:
    if not host.startswith("unix://"):
        raise PycontainError(f"unsupported host {host!r}: only unix:///path sockets are supported")
    return host[len("unix://") :]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Response:
    """A reply whose body has not been read yet (so that it can be streamed)."""

    def __init__(self, conn: _UnixConnection, raw: http.client.HTTPResponse) -> None:
        self._conn = conn
        self.raw = raw
        self.status = raw.status

    def json(self) -> Any:
        data = self.raw.read()
        self._conn.close()
        return json.loads(data) if data else None

    def read(self) -> bytes:
        data = self.raw.read()
        self._conn.close()
        return data

    def iter_chunks(self, size: int = 65536) -> Iterator[bytes]:
        try:
            while True:
                chunk = self.raw.read1(size)
                if not chunk:
                    return
                yield chunk
        finally:
            self._conn.close()

    def iter_lines(self) -> Iterator[bytes]:
        try:
            while True:
                line = self.raw.readline()
                if not line:
                    return
                yield line
        finally:
            self._conn.close()


class Hijacked:
    """A connection the daemon answered with "101 UPGRADED" (Docker's hijack): raw bytes
    both ways from now on."""

    def __init__(self, response: Response) -> None:
        self._conn = response._conn
        self._reader = response.raw.fp  # may already hold the first bytes
        sock = self._conn.sock
        assert sock is not None
        self.sock: socket.socket = sock
        sock.settimeout(None)

    def read(self) -> bytes:
        """The next bytes from the daemon; b"" once it has closed the connection."""
        try:
            return self._reader.read1(65536)
        except (OSError, ValueError):
            return b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_input(self) -> None:
        """No more input (the daemon sees the end of the client's stdin)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def shutdown(self) -> None:
        """End the session now: a blocked ``read`` returns b""."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._conn.close()
        with contextlib.suppress(OSError, ValueError):
            self._reader.close()


class PendingResponse:
    """A request that has been sent and whose reply has not been read yet."""

    def __init__(self, host: str, conn: _UnixConnection) -> None:
        self._host = host
        self._conn = conn

    def finish(self) -> Response:
        """Read the reply's head; raise the matching PycontainError on a 4xx/5xx reply."""
        try:
            raw = self._conn.getresponse()
        except (ConnectionResetError, BrokenPipeError, http.client.BadStatusLine) as exc:
            self._conn.close()
            raise PycontainError(
                f"the pycontain daemon at {self._host} closed the connection"
            ) from exc
        resp = Response(self._conn, raw)
        if resp.status >= 400:
            data = resp.read()
            try:
                message = json.loads(data)["message"]
            except (ValueError, KeyError, TypeError):
                message = data.decode(errors="replace").strip() or raw.reason
            raise error_from_status(resp.status, message)
        return resp

    def close(self) -> None:
        self._conn.close()


class Client:
    def __init__(self, host: str | None = None, timeout: float | None = None) -> None:
        self.host = resolve_host(host)
        self.path = socket_path(self.host)
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        upload: IO[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send one request; raise the matching PycontainError on a 4xx/5xx reply.

        ``body`` is sent as JSON; ``upload`` (a binary file) is streamed as the body.
        """
        return self.begin(method, path, query, body, upload, headers).finish()

    def begin(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        upload: IO[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> PendingResponse:
        """Send a request without reading the reply; ``finish()`` reads it later.

        Used to register a wait on a container before following its output.
        """
        url = API_PREFIX + path
        pairs = {k: _query_value(v) for k, v in (query or {}).items() if v is not None}
        if pairs:
            url += "?" + urllib.parse.urlencode(pairs)
        hdrs = dict(headers or {})
        payload: Any = None
        if upload is not None:
            payload = upload
            hdrs.setdefault("Content-Type", "application/x-tar")
        elif body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request(method, url, body=payload, headers=hdrs, encode_chunked=upload is not None)
        except BrokenPipeError:
            pass  # the daemon stopped reading the body early: its reply says why
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError) as exc:
            conn.close()
            raise DaemonUnreachable(
                f"Cannot connect to the pycontain daemon at {self.host}. Is the daemon running?"
            ) from exc
        except PermissionError as exc:
            conn.close()
            raise DaemonUnreachable(
                f"permission denied while trying to connect to the pycontain daemon socket "
                f"at {self.host}"
            ) from exc
        return PendingResponse(self.host, conn)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def hijack(self, path: str, query: dict[str, Any] | None = None,
               body: Any = None) -> Hijacked:
        """POST with ``Upgrade: tcp``; the raw connection once the daemon has switched."""
        response = self.request("POST", path, query, body,
                                headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        if response.status != 101:
            response.read()
            raise PycontainError(f"the daemon did not upgrade the connection for {path} "
                                 f"(status {response.status})")
        return Hijacked(response)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)
