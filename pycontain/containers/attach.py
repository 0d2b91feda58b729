"""Attached clients: a hijacked API connection joined to a container's attach socket.

The daemon side of ``attach``, ``run -i``/``-t`` and ``start -a`` for containers with
stdin open or a terminal.  The shim holds the container's stdio and relays each
connection to its attach socket (runtime/attach.py); here one such connection is
joined to one client:

    client --raw bytes--> [detach keys?] --STDIN frames--> shim --> the program's stdin
    client <--raw bytes (terminal) or multiplexed frames-- shim <-- the program's output

The session ends when the program exits (the shim closes the connection), when the
client types the detach keys on a terminal (the container goes on; without a terminal
the input is passed on untouched, as Docker does), or when the client goes away.
The client's end of input (a half-closed connection) closes the program's stdin when
the container was created with ``StdinOnce``, as Docker's CLI asks for ``run -i``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from pycontain.runtime import attach
from pycontain.runtime.attach import DEFAULT_DETACH_KEYS, DetachKeys

__all__ = ["AttachOptions", "ShimConnection", "connect_to_shim", "relay"]

ShimConnection = tuple[asyncio.StreamReader, asyncio.StreamWriter]

@dataclass(frozen=True)
class AttachOptions:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool                 # raw output, no frames
    stdin_once: bool          # the client's end of input closes the program's stdin
    detach_keys: bytes = DEFAULT_DETACH_KEYS

    def wants(self, kind: int) -> bool:
        """Whether the client asked for this output stream (a frame's kind)."""
        return (kind == attach.STDOUT and self.stdout) or (
            kind == attach.STDERR and self.stderr)


async def connect_to_shim(state_dir: str) -> ShimConnection:
    """A connection to the container's attach socket (OSError when there is none)."""
    with attach.socket_address(state_dir) as address:
        return await asyncio.open_unix_connection(address)


async def relay(shim: ShimConnection, client: ShimConnection,
                leftover: bytes, options: AttachOptions) -> bool:
    """Join the client to the shim until the program exits, the client detaches or
    goes away; returns True when the client detached."""
    shim_reader, shim_writer = shim
    client_reader, client_writer = client
    detached = False

    async def to_program() -> None:
        nonlocal detached
        keys = DetachKeys(options.detach_keys) if options.tty else None  # as Docker's
        data = leftover or await client_reader.read(65536)
        while data:
            if keys is not None:
                data, detached = keys.feed(data)
            if data:
                shim_writer.write(attach.encode(attach.STDIN, data))
                await shim_writer.drain()
            if detached:
                return
            data = await client_reader.read(65536)
        if options.stdin_once:
            shim_writer.write(attach.encode(attach.CLOSE_STDIN))
            await shim_writer.drain()
        await asyncio.Event().wait()  # the client is done typing: wait for the output's end

    async def to_client() -> None:
        frames = attach.FrameReader()
        while data := await shim_reader.read(65536):
            for kind, payload in frames.feed(data):
                if options.tty:
                    client_writer.write(payload)
                elif options.wants(kind):
                    client_writer.write(attach.encode(kind, payload))
            await client_writer.drain()

    tasks = [asyncio.ensure_future(to_client())]
    if options.stdin:
        tasks.append(asyncio.ensure_future(to_program()))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                await task
        shim_writer.close()
    return detached
