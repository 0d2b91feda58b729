"""Exec: more processes in a running container (``pycontain exec``, ``/containers/{id}/exec``).

Docker's two steps: ``create`` records what to run (an ``ExecInstance``, by a random
id), ``start`` runs it through the fork server's exec-shim (runtime/exec.py), which
joins the container's namespaces and cgroup and confines the process as the
container's init was.  Attached, ``start`` yields the process's output as Docker's
multiplexed stream until the process ends; detached, it returns once the process
runs.  Either way a watcher records the exit code, which ``inspect`` reports.

Both steps refuse a container that is not running, or paused (409).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pycontain.containers import logs
from pycontain.containers.manager import START_TIMEOUT, ContainerManager, parse_shim_event
from pycontain.containers.record import ContainerRecord
from pycontain.containers.state import Status
from pycontain.errors import Conflict, ContainerStartError, InvalidArgument, NotFound
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
    if body.get("Tty") or body.get("AttachStdin"):
        raise InvalidArgument("exec with a terminal or stdin is not supported yet")
    return ExecConfig(cmd=tuple(cmd), env=tuple(env),
                      working_dir=str(body.get("WorkingDir") or ""),
                      user=str(body.get("User") or ""),
                      attach_stdout=bool(body.get("AttachStdout", True)),
                      attach_stderr=bool(body.get("AttachStderr", True)))


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

    def inspect(self) -> dict[str, Any]:
        """Docker's ``GET /exec/{id}/json``."""
        return {
            "ID": self.id, "ContainerID": self.container_id, "Running": self.running,
            "ExitCode": self.exit_code, "Pid": self.pid, "CanRemove": False,
            "DetachKeys": "", "OpenStdin": False,
            "OpenStdout": self.config.attach_stdout, "OpenStderr": self.config.attach_stderr,
            "ProcessConfig": {"tty": False, "entrypoint": self.config.cmd[0],
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
            security=self.containers.security_spec(record))

    async def start(self, exec_id: str, detach: bool) -> AsyncIterator[bytes] | None:
        """Run the instance; attached: its output (multiplexed frames) until it ends.

        Raises Conflict (already started, the container not running or paused) and
        ContainerStartError (126/127 like ``run``) when the process cannot be started.
        """
        instance = self.get(exec_id)
        if instance.started:
            raise Conflict(f"Exec {exec_id} has already been started")
        record = self._running(instance.container_id)
        instance.started = True
        output = _Output(attached=not detach)
        try:
            control = self.containers.spawner.spawn_exec(self._spec(record, instance.config),
                                                         *output.write_ends)
        except BaseException:
            output.close()
            raise
        finally:
            output.close_write_ends()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=control)
            event = parse_shim_event(await asyncio.wait_for(reader.readline(), START_TIMEOUT))
        except BaseException:
            control.close()
            output.close()
            raise
        if event.get("event") != "started":
            writer.close()
            output.close()
            instance.exit_code = int(event.get("exit_code") or 126)
            instance.done.set()
            message = str(event.get("message") or "the exec-shim exited before the process "
                                                  "started")
            raise ContainerStartError(f"exec failed: {message}", instance.exit_code)
        instance.pid = int(event["pid"])
        instance.running = True
        task = asyncio.get_running_loop().create_task(self._watch(instance, reader, writer))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        return None if detach else output.frames(instance)

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


class _Output:
    """A process's stdout and stderr: pipes whose read ends become frames (attached),
    or /dev/null (detached, as Docker discards a detached exec's output)."""

    def __init__(self, attached: bool) -> None:
        self.streams: dict[int, str] = {}
        self.write_ends: tuple[int, ...]
        if attached:
            out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            self.streams = {out_r: "stdout", err_r: "stderr"}
            self.write_ends = (out_w, err_w)
        else:
            self.write_ends = tuple(os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
                                    for _ in range(2))
        self.unfinished = len(self.streams)  # streams whose end is not yet through the queue
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        for fd in self.streams:
            self.loop.add_reader(fd, self._readable, fd)

    def close_write_ends(self) -> None:
        """Once the exec-shim holds its copies: the reader then sees EOF when the process
        (and whatever it started) has closed them."""
        for fd in self.write_ends:
            os.close(fd)
        self.write_ends = ()

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            entry = logs.LogEntry(self.streams[fd], data, "")
            self.queue.put_nowait(logs.frame(entry))
        else:
            self._close_one(fd)
            self.queue.put_nowait(None)

    def _close_one(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        os.close(fd)
        del self.streams[fd]

    def close(self) -> None:
        for fd in list(self.streams):
            self._close_one(fd)

    async def frames(self, instance: ExecInstance) -> AsyncIterator[bytes]:
        """Frames until both pipes are closed and the process has exited."""
        wanted = {"stdout": instance.config.attach_stdout,
                  "stderr": instance.config.attach_stderr}
        try:
            while self.unfinished:
                chunk = await self.queue.get()
                if chunk is None:
                    self.unfinished -= 1
                elif wanted["stdout" if chunk[0] == logs.STREAM_IDS["stdout"] else "stderr"]:
                    yield chunk
            await instance.done.wait()
        finally:
            self.close()
