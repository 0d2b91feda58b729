"""A small HTTP/1.1 server on asyncio, with h11 doing all the parsing.

Handlers take a ``Request`` and return a ``Response``; a ``PycontainError`` raised
by a handler becomes Docker's error body ``{"message": ...}`` with its status.
Bodies are read on demand (``Request.json``, ``Request.iter_body``) so that an
image upload streams to disk instead of into memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h11

from pycontain.errors import InvalidArgument, PycontainError

log = logging.getLogger("pycontain.http")

MAX_JSON_BODY = 4 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
READ_TIMEOUT = 120.0
_VERSION_PREFIX = re.compile(r"^/v(?P<version>\d+\.\d+)(?=/)")


def _api_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


class Request:
    def __init__(self, conn: h11.Connection, event: h11.Request,
                 receive: Callable[[], Awaitable[h11.Event]]) -> None:
        target = event.target.decode("latin-1")
        raw_path, _, raw_query = target.partition("?")
        self.method = event.method.decode("ascii")
        path = urllib.parse.unquote(raw_path)
        versioned = _VERSION_PREFIX.match(path)
        self.api_version = versioned.group("version") if versioned else None
        self.path = path[versioned.end():] if versioned else path
        self.query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in event.headers}
        self.params: dict[str, str] = {}
        self._conn = conn
        self._receive = receive
        self._body_done = False

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    @property
    def wants_upgrade(self) -> bool:
        """Docker's hijack request: ``Connection: Upgrade`` and ``Upgrade: tcp``."""
        return ("upgrade" in self.headers.get("connection", "").lower()
                and self.headers.get("upgrade", "").lower() == "tcp")

    def flag(self, name: str) -> bool:
        return (self.arg(name) or "").lower() in ("1", "true", "yes")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError as exc:
            raise InvalidArgument(f"invalid value for {name}: {value!r}") from exc

    async def iter_body(self) -> AsyncIterator[bytes]:
        while not self._body_done:
            event = await self._receive()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
            else:
                raise InvalidArgument("malformed request body")

    async def read_body(self, limit: int = MAX_JSON_BODY) -> bytes:
        chunks, size = [], 0
        async for chunk in self.iter_body():
            size += len(chunk)
            if size > limit:
                raise InvalidArgument(f"request body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def json(self) -> Any:
        data = await self.read_body()
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise InvalidArgument(f"invalid JSON body: {exc}") from exc

    async def drain(self) -> None:
        async for _ in self.iter_body():
            pass


Hijacker = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[None]]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Docker's hijack: after "101 UPGRADED" the connection is the handler's, raw, in
    # both directions (``hijack(reader, writer, bytes already received)``).
    hijack: Hijacker | None = None

    @classmethod
    def hijacked(cls, session: Hijacker, content_type: str) -> Response:
        return cls(status=101, content_type=content_type, hijack=session)

    @classmethod
    def json(cls, obj: Any, status: int = 200) -> Response:
        return cls(status=status, body=json.dumps(obj).encode() + b"\n")

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status=status, content_type="")


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Routes by method and path (without its ``/vX.Y`` prefix).  A versioned path is
    served when ``min_version <= X.Y <= max_version``, else answered 400, as dockerd does."""

    def __init__(self, min_version: str = "1.0", max_version: str = "1.99") -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.min_version = min_version
        self.max_version = max_version

    def check_version(self, request: Request) -> None:
        asked = request.api_version
        if asked is None:
            return
        if _api_version(asked) > _api_version(self.max_version):
            raise InvalidArgument(f"client version {asked} is too new. Maximum supported API "
                                  f"version is {self.max_version}")
        if _api_version(asked) < _api_version(self.min_version):
            raise InvalidArgument(f"client version {asked} is too old. Minimum supported API "
                                  f"version is {self.min_version}, please upgrade your client "
                                  "to a newer version")

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    async def dispatch(self, request: Request) -> Response:
        self.check_version(request)
        path_matched = False
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if not match:
                continue
            path_matched = True
            if method == request.method:
                request.params = match.groupdict()
                return await handler(request)
        if path_matched:
            return Response.json({"message": f"method {request.method} not allowed"}, 405)
        return Response.json({"message": f"page not found: {request.path}"}, 404)


def error_response(exc: PycontainError) -> Response:
    if exc.http_status == 304:
        return Response.empty(304)
    return Response.json({"message": exc.message}, exc.http_status)


Authorizer = Callable[[socket.socket], str | None]


class HttpServer:
    """``authorize`` sees each new connection's socket and returns None to serve it, or
    the reason to refuse it: every request on it is answered 403 with that message."""

    def __init__(self, router: Router, default_headers: dict[str, str],
                 authorize: Authorizer | None = None) -> None:
        self.router = router
        self.default_headers = default_headers
        self.authorize = authorize

    async def handle_connection(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        refusal = None
        if self.authorize is not None:
            refusal = self.authorize(writer.get_extra_info("socket"))

        async def receive() -> h11.Event:
            while True:
                event = conn.next_event()
                if event is not h11.NEED_DATA:
                    return event  # type: ignore[return-value]
                data = await asyncio.wait_for(reader.read(65536), READ_TIMEOUT)
                conn.receive_data(data)

        try:
            while True:
                event = await receive()
                if isinstance(event, h11.ConnectionClosed):
                    break
                if not isinstance(event, h11.Request):
                    break
                request = Request(conn, event, receive)
                if refusal is not None:
                    await self._send(conn, writer, request,
                                     Response.json({"message": refusal}, 403))
                    break
                response = await self._respond(request)
                if response.hijack is not None:
                    await self._hijack(conn, reader, writer, request, response)
                    break
                await self._send(conn, writer, request, response)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                if conn.their_state is not h11.DONE:
                    await request.drain()
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._send_protocol_error(conn, writer, exc)
        except (TimeoutError, ConnectionError, h11.LocalProtocolError):
            pass
        finally:
            writer.close()

    async def _respond(self, request: Request) -> Response:
        try:
            return await self.router.dispatch(request)
        except PycontainError as exc:
            return error_response(exc)
        except Exception as exc:
            log.exception("%s %s failed", request.method, request.path)
            return Response.json({"message": f"internal error: {exc}"}, 500)

    async def _send(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                    request: Request, response: Response) -> None:
        headers = [(k, v) for k, v in self.default_headers.items()]
        headers += list(response.headers.items())
        if response.content_type:
            headers.append(("Content-Type", response.content_type))
        if response.stream is None:
            headers.append(("Content-Length", str(len(response.body))))
        writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)))
        if response.stream is None:
            if response.body and request.method != "HEAD":
                writer.write(conn.send(h11.Data(data=response.body)))
        else:
            await writer.drain()
            try:
                async for chunk in response.stream:
                    if chunk:
                        writer.write(conn.send(h11.Data(data=chunk)))
                        await writer.drain()
            except PycontainError as exc:
                log.warning("%s %s: stream ended: %s", request.method, request.path, exc)
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()

    async def _hijack(self, conn: h11.Connection, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, request: Request, response: Response) -> None:
        """Answer "101 UPGRADED" and give the raw connection to the response's session."""
        assert response.hijack is not None
        await request.drain()
        headers = [*self.default_headers.items(), ("Content-Type", response.content_type),
                   ("Connection", "Upgrade"), ("Upgrade", "tcp")]
        writer.write(conn.send(h11.InformationalResponse(status_code=101, headers=headers,
                                                         reason=b"UPGRADED")))
        await writer.drain()
        leftover, _ = conn.trailing_data
        try:
            await response.hijack(reader, writer, bytes(leftover))
        except PycontainError as exc:
            log.warning("%s %s: session ended: %s", request.method, request.path, exc)

    async def _send_protocol_error(self, conn: h11.Connection, writer: asyncio.StreamWriter,
                                   exc: h11.RemoteProtocolError) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = json.dumps({"message": f"bad request: {exc}"}).encode()
        try:
            writer.write(conn.send(h11.Response(
                status_code=exc.error_status_hint,
                headers=[("Content-Type", "application/json"),
                         ("Content-Length", str(len(body))), ("Connection", "close")])))
            writer.write(conn.send(h11.Data(data=body)))
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        except (h11.LocalProtocolError, ConnectionError):
            pass
