"""Exec: more processes in a running container (``pycontain exec``, ``/containers/{id}/exec``).

Docker's two steps: ``create`` records what to run (an ``ExecInstance``, by a random
id), ``start`` runs it through the fork server's exec-shim (runtime/exec.py), which
joins the container's namespaces and cgroup and confines the process as the
container's init was.  The exec-shim holds the process's stdio (pipes, or a terminal
with ``Tty``) and relays it on a socket pair in the attach socket's frames
(runtime/attach.py): attached, the daemon joins it to the client (hijacked:
containers/attach.py ``relay``, with stdin and the terminal; else the output as
Docker's multiplexed stream) until the process ends; detached, the daemon's end is
closed and the output discarded.  Either way a watcher records the exit code, which
``inspect`` reports.

Both steps refuse a container that is not running, or paused (409).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pycontain.containers.attach import AttachOptions, ShimConnection, relay
from pycontain.containers.manager import START_TIMEOUT, ContainerManager, parse_shim_event
from pycontain.containers.record import ContainerRecord
from pycontain.containers.state import Status
from pycontain.errors import Conflict, ContainerStartError, InvalidArgument, NotFound
from pycontain.runtime import attach
from pycontain.runtime.attach import parse_detach_keys
from pycontain.runtime.exec import ExecSpec
from pycontain.runtime.spec import ProcessSpec

__all__ = ["ExecConfig", "ExecInstance", "ExecService", "parse_exec_body"]


class NoSuchExec(NotFound):
    def __init__(self, exec_id: str) -> None:
        super().__init__(f"No such exec instance: {exec_id}")


@dataclass(frozen=True)
class ExecConfig:
    """The body of ``POST /containers/{id}/exec``, validated."""

    cmd: tuple[str, ...]
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    attach_stdout: bool = True
    attach_stderr: bool = True
    attach_stdin: bool = False
    tty: bool = False
    console_size: tuple[int, int] = (0, 0)
    detach_keys: str = ""


def parse_exec_body(body: Any) -> ExecConfig:
    """Docker's exec-create body -> ExecConfig; InvalidArgument for a malformed one."""
    if not isinstance(body, dict):
        raise InvalidArgument("exec config: a JSON object is expected")
    cmd, env = body.get("Cmd") or [], body.get("Env") or []
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd:
        raise InvalidArgument("No exec command specified")
    if not all(isinstance(a, str) for a in (*cmd, *env)) or not isinstance(env, list):
        raise InvalidArgument("exec config: Cmd and Env must be lists of strings")
    size = body.get("ConsoleSize") or (0, 0)
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and 0 <= v < 65536 for v in size)):
        raise InvalidArgument("exec config: ConsoleSize must be [height, width]")
    detach_keys = str(body.get("DetachKeys") or "")
    parse_detach_keys(detach_keys)
    return ExecConfig(cmd=tuple(cmd), env=tuple(env),
                      working_dir=str(body.get("WorkingDir") or ""),
                      user=str(body.get("User") or ""),
                      attach_stdout=bool(body.get("AttachStdout", True)),
                      attach_stderr=bool(body.get("AttachStderr", True)),
                      attach_stdin=bool(body.get("AttachStdin")),
                      tty=bool(body.get("Tty")),
                      console_size=(int(size[0]), int(size[1])),
                      detach_keys=detach_keys)


@dataclass
class ExecInstance:
    id: str
    container_id: str
    config: ExecConfig
    running: bool = False
    started: bool = False
    pid: int = 0
    exit_code: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stdio: ShimConnection | None = None  # the exec-shim's relay, while attached

    def attach_options(self) -> AttachOptions:
        config = self.config
        return AttachOptions(stdin=config.attach_stdin, stdout=config.attach_stdout,
                             stderr=config.attach_stderr, tty=config.tty, stdin_once=True,
                             detach_keys=parse_detach_keys(config.detach_keys))

    async def frames(self) -> AsyncIterator[bytes]:
        """The output as Docker's multiplexed stream (not hijacked), until the end."""
        assert self.stdio is not None
        reader, writer = self.stdio
        frames = attach.FrameReader()
        options = self.attach_options()
        if options.stdin:  # no way to send any: the process sees the end of its input
            writer.write(attach.encode(attach.CLOSE_STDIN))
        try:
            while data := await reader.read(65536):
                for kind, payload in frames.feed(data):
                    if options.wants(kind):
                        yield attach.encode(kind, payload)
            await self.done.wait()
        finally:
            writer.close()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      leftover: bytes) -> None:
        """The hijacked connection joined to the process until it ends."""
        assert self.stdio is not None
        await relay(self.stdio, (reader, writer), leftover, self.attach_options())
        await self.done.wait()

    def resize(self, rows: int, cols: int) -> None:
        if self.stdio is None or not self.running:
            raise Conflict(f"Exec {self.id} is not running")
        if self.config.tty:
            self.stdio[1].write(attach.resize_frame(rows, cols))

    def inspect(self) -> dict[str, Any]:
        """Docker's ``GET /exec/{id}/json``."""
        return {
            "ID": self.id, "ContainerID": self.container_id, "Running": self.running,
            "ExitCode": self.exit_code, "Pid": self.pid, "CanRemove": False,
            "DetachKeys": self.config.detach_keys, "OpenStdin": self.config.attach_stdin,
            "OpenStdout": self.config.attach_stdout, "OpenStderr": self.config.attach_stderr,
            "ProcessConfig": {"tty": self.config.tty, "entrypoint": self.config.cmd[0],
                              "arguments": list(self.config.cmd[1:]), "privileged": False,
                              "user": self.config.user},
        }


class ExecService:
    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers
        self.instances: dict[str, ExecInstance] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    def _running(self, ref: str) -> ContainerRecord:
        record = self.containers.resolve(ref)
        if record.state.status is Status.PAUSED:
            raise Conflict(f"Container {record.id} is paused, "
                           "unpause the container before exec")
        if record.state.status is not Status.RUNNING:
            raise Conflict(f"Container {record.id} is not running")
        return record

    def create(self, ref: str, config: ExecConfig) -> ExecInstance:
        record = self._running(ref)
        self._forget_removed()
        instance = ExecInstance(secrets.token_hex(32), record.id, config)
        self.instances[instance.id] = instance
        return instance

    def get(self, exec_id: str) -> ExecInstance:
        instance = self.instances.get(exec_id)
        if instance is None:
            raise NoSuchExec(exec_id)
        return instance

    def check_startable(self, exec_id: str) -> ExecInstance:
        """The instance, if ``start`` may run it now: NoSuchExec, or Conflict (already
        started, the container not running or paused)."""
        instance = self.get(exec_id)
        if instance.started:
            raise Conflict(f"Exec {exec_id} has already been started")
        self._running(instance.container_id)
        return instance

    def _forget_removed(self) -> None:
        """Drop the instances of removed containers (Docker forgets them with it)."""
        for exec_id, instance in list(self.instances.items()):
            if instance.container_id not in self.containers.records and not instance.running:
                del self.instances[exec_id]

    def _spec(self, record: ContainerRecord, config: ExecConfig) -> ExecSpec:
        return ExecSpec(
            init_pid=record.state.pid, hostname=record.config.hostname,
            process=ProcessSpec(args=config.cmd, env=record.config.env + config.env,
                                cwd=config.working_dir or record.config.working_dir,
                                user=config.user or record.config.user),
            cgroup_join_files=tuple(self.containers.cgroups.join_files(record.id)),
            security=self.containers.security_spec(record),
            tty=config.tty, open_stdin=config.attach_stdin, console_size=config.console_size)

    async def start(self, exec_id: str, detach: bool) -> ExecInstance:
        """Run the instance; attached, its ``stdio`` is then the exec-shim's relay.

        Raises Conflict (already started, the container not running or paused) and
        ContainerStartError (126/127 like ``run``) when the process cannot be started.
        """
        instance = self.check_startable(exec_id)
        record = self._running(instance.container_id)
        instance.started = True
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            control = self.containers.spawner.spawn_exec(self._spec(record, instance.config),
                                                         theirs)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=control)
            event = parse_shim_event(await asyncio.wait_for(reader.readline(), START_TIMEOUT))
        except BaseException:
            control.close()
            ours.close()
            raise
        if event.get("event") != "started":
            writer.close()
            ours.close()
            instance.exit_code = int(event.get("exit_code") or 126)
            instance.done.set()
            message = str(event.get("message") or "the exec-shim exited before the process "
                                                  "started")
            raise ContainerStartError(f"exec failed: {message}", instance.exit_code)
        instance.pid = int(event["pid"])
        instance.running = True
        if detach:
            ours.close()  # the exec-shim discards the output
        else:
            instance.stdio = await asyncio.open_unix_connection(sock=ours)
        task = asyncio.get_running_loop().create_task(self._watch(instance, reader, writer))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return instance

    async def _watch(self, instance: ExecInstance, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        """Follow the exec-shim until it reports the exit code (none if it vanishes)."""
        try:
            while line := await reader.readline():
                event = parse_shim_event(line)
                if event.get("event") == "exited":
                    instance.exit_code = int(event["exit_code"])
        finally:
            writer.close()
            instance.running = False
            instance.done.set()
