"""The container service: create, start, stop, kill, pause, wait, remove, logs, top.

Operations that change a container's state (start, stop, restart, pause, unpause,
remove, a policy restart) hold that container's lock, so they are serialized per
container while different containers proceed in parallel; kill never waits for it,
so that a stuck stop can always be cut short.

This is the core the API routes call; it is usable without the HTTP daemon (give it
an event loop, an ImageStore, a CgroupManager and a ForkServer).  It owns every
kernel object of a container and removes them through one place,
``_release_resources``, which ``rm``, a container's exit and daemon startup share.

On disk:
    <data-root>/containers/<id>/config.json   the record (atomic writes)
    <data-root>/containers/<id>/<id>-json.log the log (written by the shim)
    <data-root>/containers/<id>/{upper,work,merged}  the overlay's private parts
    <exec-root>/containers/<id>/exit.json     the exit status (written by the shim)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from pycontain.cgroups.base import CgroupManager, Resources, Usage
from pycontain.containers import logs
from pycontain.containers.attach import ShimConnection, connect_to_shim
from pycontain.containers.events import EventLog
from pycontain.containers.filesystem import ContainerFilesystem
from pycontain.containers.names import generate_name, validate_name
from pycontain.containers.record import (
    ContainerConfig,
    ContainerRecord,
    ContainerState,
    HostConfig,
    parse_bind,
    rotation_limits,
)
from pycontain.containers.state import Action, Status, transition
from pycontain.errors import (
    Conflict,
    ContainerStartError,
    InvalidArgument,
    NameInUse,
    NoSuchContainer,
    NotFound,
    NotModified,
    PycontainError,
)
from pycontain.faults import fault_point
from pycontain.images import Image, ImageStore
from pycontain.network.ports import parse_port_spec
from pycontain.runtime import attach as attach_protocol
from pycontain.runtime import syscalls
from pycontain.runtime.shim import read_exit_record
from pycontain.runtime.spawner import ForkServer

if TYPE_CHECKING:
    from pycontain.network.registry import NetworkRegistry
    from pycontain.network.service import BridgeNetwork
from pycontain.runtime.spec import BindMount, ContainerSpec, ProcessSpec, SecuritySpec
from pycontain.security import policy as security_policy

log = logging.getLogger("pycontain.containers")

NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")
START_TIMEOUT = 60.0
LOG_POLL_INTERVAL = 0.05
UNTIL_GRACE_NS = 100_000_000
UNKNOWN_EXIT_CODE = 255


def parse_signal(value: str | int | None, default: int = signal.SIGKILL) -> int:
    if value is None or value == "":
        return int(default)
    text = str(value).upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        if hasattr(signal.Signals, name):
            return int(signal.Signals[name])
    raise InvalidArgument(f"Invalid signal: {value}")


class ContainerManager:
    def __init__(self, data_root: Path, exec_root: Path, images: ImageStore,
                 cgroups: CgroupManager, spawner: ForkServer,
                 networks: NetworkRegistry | None = None) -> None:
        self.networks = networks  # None: only none, host and container: networks
        self.dir = data_root / "containers"
        self.state_root = exec_root / "containers"
        self.images = images
        self.cgroups = cgroups
        self.spawner = spawner
        self.records: dict[str, ContainerRecord] = {}
        self._stopped: dict[str, asyncio.Event] = {}
        self._removed: dict[str, asyncio.Event] = {}
        self._start_waiters: dict[str, list[asyncio.Event]] = {}
        self._attach_waiters: dict[str, list[asyncio.Future[ShimConnection | None]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._restarts: dict[str, asyncio.Task[None]] = {}
        self.broken: dict[str, str] = {}  # id -> why its record could not be read
        self.events = EventLog()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ lookup

    def resolve(self, ref: str) -> ContainerRecord:
        """By full id, by name (with or without "/"), or by unique id prefix."""
        ref = ref.lstrip("/") if ref.startswith("/") else ref
        if ref in self.records:
            return self.records[ref]
        for record in self.records.values():
            if record.name == ref:
                return record
        if ref and all(c in "0123456789abcdef" for c in ref):
            matches = [r for r in self.records.values() if r.id.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NoSuchContainer(ref)

    def _container_dir(self, container_id: str) -> Path:
        return self.dir / container_id

    def _state_dir(self, container_id: str) -> Path:
        return self.state_root / container_id

    def log_path(self, record: ContainerRecord) -> Path:
        return self._container_dir(record.id) / f"{record.id}-json.log"

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _stopped_event(self, container_id: str) -> asyncio.Event:
        event = self._stopped.get(container_id)
        if event is None:
            event = self._stopped[container_id] = asyncio.Event()
            record = self.records.get(container_id)
            if record is None or record.state.status not in (Status.RUNNING, Status.PAUSED):
                event.set()
        return event

    def _save(self, record: ContainerRecord) -> None:
        record.save(self._container_dir(record.id))

    def _emit(self, action: str, record: ContainerRecord, **attributes: str) -> None:
        self.events.emit(action, record.id, record.name, record.config.image, **attributes)

    # ------------------------------------------------------------------ create

    def create(self, config: ContainerConfig, host_config: HostConfig,
               name: str | None) -> ContainerRecord:
        """Make the record and the container's private directories; nothing runs yet."""
        if name:
            validate_name(name)
            name = name.lstrip("/")
            if any(r.name == name for r in self.records.values()):
                existing = next(r for r in self.records.values() if r.name == name)
                raise NameInUse(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{existing.id}". You have to remove (or rename) that container to be '
                    "able to reuse that name.")
        else:
            taken = {r.name for r in self.records.values()}
            name = generate_name(lambda n: n in taken)
        image = self.images.get(config.image)
        path, args = _command_line(config, image)
        network_mode = host_config.network_mode
        if network_mode not in ("none", "host") and not network_mode.startswith("container:"):
            if self.networks is None:
                raise PycontainError("bridge networks are not available in this daemon")
            self.networks.get(network_mode)  # NoSuchNetwork: "network X not found"
        container_id = secrets.token_hex(32)
        merged = dataclasses.replace(
            config,
            env=_merge_env(image.config.env, config.env),
            working_dir=config.working_dir or image.config.working_dir or "/",
            hostname=config.hostname or container_id[:12],
            user=config.user or image.config.user,
            labels={**image.config.labels, **config.labels},
        )
        Resources(
            memory=host_config.memory or None,
            memory_swap=host_config.memory_swap or None,
            nano_cpus=host_config.nano_cpus or None,
            cpu_shares=host_config.cpu_shares or None,
            pids_limit=host_config.pids_limit or None,
        ).validate()
        record = ContainerRecord(
            id=container_id, name=name, created=time.time_ns(), image_id=image.id,
            config=merged, host_config=host_config, path=path, args=tuple(args))
        directory = self._container_dir(container_id)
        try:
            fault_point("create:validated")
            directory.mkdir(parents=True, mode=0o700)
            # The overlay's root takes the upperdir's mode: it is the container's "/".
            for sub, mode in (("upper", 0o755), ("work", 0o700), ("merged", 0o755)):
                (directory / sub).mkdir(mode=mode)
                os.chmod(directory / sub, mode)  # regardless of the umask
            self.log_path(record).touch(mode=0o640)
            fault_point("create:directories")
            self._save(record)
            fault_point("create:saved")
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise PycontainError(f"create container directory {directory}: {exc}") from exc
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self.records[container_id] = record
        self._emit("create", record)
        return record

    # ------------------------------------------------------------------ start

    def _resources(self, record: ContainerRecord) -> Resources:
        hc = record.host_config
        return Resources(memory=hc.memory or None, memory_swap=hc.memory_swap or None,
                         nano_cpus=hc.nano_cpus or None, cpu_shares=hc.cpu_shares or None,
                         pids_limit=hc.pids_limit or None, all_devices=hc.privileged)

    def _spec(self, record: ContainerRecord, image: Image) -> ContainerSpec:
        directory = self._container_dir(record.id)
        hc = record.host_config
        binds = tuple(BindMount(*parse_bind(b)) for b in hc.binds)
        mode, join_netns = self._network_mode(record)
        if mode in ("bridge", "none"):
            binds += self._etc_files(record)
        max_size, max_files = rotation_limits(hc.log_config)
        return ContainerSpec(
            id=record.id,
            hostname=record.config.hostname,
            lowerdirs=tuple(str(p) for p in self.images.layer_dirs(image)),
            upperdir=str(directory / "upper"),
            workdir=str(directory / "work"),
            rootfs=str(directory / "merged"),
            process=ProcessSpec(args=tuple(record.command_line), env=record.config.env,
                                cwd=record.config.working_dir, user=record.config.user),
            log_path=str(self.log_path(record)),
            state_dir=str(self._state_dir(record.id)),
            cgroup_join_files=tuple(self.cgroups.join_files(record.id)),
            binds=binds,
            tmpfs=security_policy.tmpfs_specs(hc.tmpfs),
            security=self.security_spec(record),
            network_mode=mode,
            join_netns=join_netns,
            log_max_size=max_size,
            log_max_files=max_files,
            tty=record.config.tty,
            open_stdin=record.config.open_stdin,
            console_size=hc.console_size,
        )

    def security_spec(self, record: ContainerRecord) -> SecuritySpec:
        """The confinement of the container's processes (its init's, and exec'd ones)."""
        hc = record.host_config
        return security_policy.security_spec(hc.cap_add, hc.cap_drop, hc.privileged,
                                             hc.security_opt, hc.readonly_rootfs)

    def _bridge_network(self, record: ContainerRecord) -> BridgeNetwork | None:
        """The bridge network (default or user-defined) the container is on, if any."""
        mode = record.host_config.network_mode
        if mode in ("none", "host") or mode.startswith("container:"):
            return None
        if self.networks is None:
            raise PycontainError("bridge networks are not available in this daemon")
        return self.networks.get(mode)[1]

    def _network_mode(self, record: ContainerRecord) -> tuple[str, str]:
        """The runtime's network mode and, for container:NAME, the namespace to join."""
        mode = record.host_config.network_mode
        if self._bridge_network(record) is not None:
            return "bridge", ""
        if not mode.startswith("container:"):
            return mode, ""
        other = self.resolve(mode.partition(":")[2])
        if other.id == record.id:
            raise InvalidArgument("cannot join the network of the container itself")
        if other.state.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"cannot join network of a non running container: {other.name}")
        return "container", f"/proc/{other.state.pid}/ns/net"

    def _etc_files(self, record: ContainerRecord) -> tuple[BindMount, ...]:
        """/etc/hostname, /etc/hosts and /etc/resolv.conf of the container, as Docker
        makes them (bind mounts of files in its directory; hosts is rewritten once the
        container has its address)."""
        directory = self._container_dir(record.id)
        (directory / "hostname").write_text(record.config.hostname + "\n")
        self._write_hosts(record)
        try:
            resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            resolv = ""
        (directory / "resolv.conf").write_text(resolv)
        return tuple(BindMount(str(directory / name), f"/etc/{name}")
                     for name in ("hostname", "hosts", "resolv.conf"))

    def _write_hosts(self, record: ContainerRecord) -> None:
        """The container's /etc/hosts: itself and, on a user network, every container on
        that network by name (the file is rewritten in place: it is bind-mounted)."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        mode = record.host_config.network_mode
        peers = [record]
        if mode not in ("bridge", "none", "host") and not mode.startswith("container:"):
            peers += [r for r in self.records.values() if r.id != record.id
                      and r.host_config.network_mode == mode and r.state.ip_address]
        for peer in peers:
            if peer.state.ip_address:
                address = peer.state.ip_address.partition("/")[0]
                names = dict.fromkeys([peer.config.hostname, peer.name, peer.short_id])
                lines.append(f"{address}\t{' '.join(names)}")
        hosts = self._container_dir(record.id) / "hosts"
        with contextlib.suppress(FileNotFoundError), open(hosts, "r+" if hosts.exists()
                                                          else "w") as f:
            f.seek(0)
            f.write("\n".join(lines) + "\n")
            f.truncate()

    def _refresh_peers(self, record: ContainerRecord) -> None:
        """Rewrite the hosts files of the other running containers on a user network."""
        mode = record.host_config.network_mode
        if mode in ("bridge", "none", "host") or mode.startswith("container:"):
            return
        for peer in self.records.values():
            if peer.id != record.id and peer.host_config.network_mode == mode \
                    and peer.state.status in (Status.RUNNING, Status.PAUSED):
                self._write_hosts(peer)

    async def _wire_network(self, record: ContainerRecord, shim_pid: int) -> None:
        """Connect the container's new namespace to its bridge and publish its ports."""
        network = self._bridge_network(record)
        assert network is not None
        ports = [parse_port_spec(spec) for spec in record.host_config.port_bindings]
        attachment = await network.connect(record.id, f"/proc/{shim_pid}/ns/net", ports)
        endpoint = attachment.endpoint
        state = record.state
        state.ip_address = str(endpoint.address)
        state.gateway = str(endpoint.gateway)
        state.mac_address = endpoint.mac_address
        state.ports = tuple(str(p) for p in attachment.ports)
        self._write_hosts(record)
        self._refresh_peers(record)

    async def _unwire_network(self, record: ContainerRecord) -> None:
        """Release the address and the published ports (idempotent; the veth dies with
        the namespace, or is removed here)."""
        try:
            network = self._bridge_network(record)
        except PycontainError:  # its network is gone: nothing left to release
            network = None
        if network is not None:
            try:
                await network.disconnect(record.id)
            except PycontainError as exc:
                log.warning("disconnect %s from its network: %s", record.short_id, exc)
        state = record.state
        if state.ip_address:
            state.ip_address = state.gateway = state.mac_address = ""
            state.ports = ()
            self._refresh_peers(record)

    async def start(self, ref: str) -> None:
        record = self.resolve(ref)
        async with self._lock(record.id):
            if record.state.status in (Status.RUNNING, Status.PAUSED):
                raise NotModified("container already started")
            transition(record.name, record.state.status, Action.START)
            await self._start_locked(record)

    async def _start_locked(self, record: ContainerRecord) -> None:
        """Start the container; on any failure, nothing of this start is left behind.

        The fault points mark the steps the rollback tests break.
        """
        image = self.images.get(record.image_id)
        state_dir = self._state_dir(record.id)
        message: dict[str, Any] = {}
        writer: asyncio.StreamWriter | None = None
        wired = False
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fault_point("start:state-dir")
            self.cgroups.create(record.id, self._resources(record))
            fault_point("start:cgroup")
            control = self.spawner.spawn(self._spec(record, image))
            reader, writer = await asyncio.open_unix_connection(sock=control)
            message = parse_shim_event(await asyncio.wait_for(reader.readline(), START_TIMEOUT))
            if message.get("event") == "ready":
                if message.get("wire_network"):
                    wired = True
                    await self._wire_network(record, int(message["shim_pid"]))
                    fault_point("start:network")
                await self._connect_attach_waiters(record)
                writer.write(b"go\n")
                await writer.drain()
                message = parse_shim_event(await asyncio.wait_for(reader.readline(),
                                                              START_TIMEOUT))
            fault_point("start:spawned")
        except BaseException:
            if writer is not None:
                writer.close()
            if message.get("event") == "started":  # the process runs: it must not outlive us
                with contextlib.suppress(OSError):
                    os.kill(int(message["pid"]), signal.SIGKILL)
            if wired:
                await self._unwire_network(record)
            self._release_resources(record.id)
            raise
        if message.get("event") != "started":
            writer.close()
            if wired:
                await self._unwire_network(record)
            self._release_resources(record.id)
            error = str(message.get("message") or "the shim exited before the container started")
            code = int(message.get("exit_code") or 125)
            record.state.exit_code = code
            record.state.error = error
            if record.state.status is Status.RESTARTING:
                record.state.status = Status.EXITED
            self._save(record)
            self._wake_start_waiters(record.id)
            self._stopped_event(record.id).set()
            if record.host_config.auto_remove:
                self._track(asyncio.get_running_loop().create_task(self._auto_remove(record)))
            raise ContainerStartError(f"failed to create task for container: {error}", code)
        state = record.state
        state.status = Status.RUNNING
        state.pid = int(message["pid"])
        state.shim_pid = int(message["shim_pid"])
        state.started_at = int(message["started_at"])
        state.finished_at = 0
        state.exit_code = 0
        state.error = ""
        state.oom_killed = False
        state.stopped_by_user = False
        record.namespaces = _read_namespaces(state.pid)
        self._save(record)
        stopped = self._stopped.get(record.id)
        if stopped is None or stopped.is_set():  # keep the event a waiter already holds
            self._stopped[record.id] = asyncio.Event()
        self._wake_start_waiters(record.id)
        self._emit("start", record)
        self._track(asyncio.get_running_loop().create_task(self._watch(record, reader, writer)))

    async def _watch(self, record: ContainerRecord, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        """Follow the shim until it reports the exit (or vanishes)."""
        exit_record: dict[str, Any] | None = None
        try:
            while line := await reader.readline():
                event = parse_shim_event(line)
                if event.get("event") == "exited":
                    exit_record = event
        finally:
            writer.close()
        await self._on_exit(record, exit_record)

    async def _watch_adopted(self, record: ContainerRecord, pidfd: int) -> None:
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()

        def on_exit() -> None:
            if not gone.done():
                gone.set_result(None)

        loop.add_reader(pidfd, on_exit)
        try:
            await gone
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
        await self._on_exit(record, None)

    async def _on_exit(self, record: ContainerRecord, exit_record: dict[str, Any] | None) -> None:
        """The container's process is gone: record how, release its resources, apply its
        restart policy or AutoRemove.  Without an exit status from the shim (the shim was
        killed) the container is ``dead``; releasing its cgroup kills anything left in it.
        """
        if exit_record is None:
            exit_record = read_exit_record(str(self._state_dir(record.id)))
        state = record.state
        try:
            state.oom_killed = self.cgroups.oom_kill_count(record.id) > 0
        except PycontainError:
            state.oom_killed = False
        state.pid = 0
        state.shim_pid = 0
        if exit_record is None:
            state.status = transition(record.name, state.status, Action.LOSE)
            state.exit_code = UNKNOWN_EXIT_CODE
            state.finished_at = time.time_ns()
            state.error = "the container's shim died: its exit status is unknown"
        else:
            state.status = transition(record.name, state.status, Action.EXIT)
            state.exit_code = int(exit_record.get("exit_code", UNKNOWN_EXIT_CODE))
            state.finished_at = int(exit_record.get("finished_at") or time.time_ns())
        if state.oom_killed and state.exit_code == 0:
            state.exit_code = 137
        await self._unwire_network(record)
        self._release_resources(record.id)
        if state.oom_killed:
            self._emit("oom", record)
        self._emit("die", record, exitCode=str(state.exit_code))
        restart_delay = self._restart_delay(record)
        if restart_delay is not None:
            state.status = transition(record.name, state.status, Action.SCHEDULE_RESTART)
        if record.id in self.records:
            self._save(record)
        self._stopped_event(record.id).set()
        if restart_delay is not None:
            self._restarts[record.id] = asyncio.get_running_loop().create_task(
                self._restart_later(record, restart_delay))
            return
        if record.host_config.auto_remove:
            await self._auto_remove(record)

    def _restart_delay(self, record: ContainerRecord) -> float | None:
        """Seconds before the restart policy starts the container again, or None.

        Docker's backoff: 100 ms, doubled for each restart in a row, reset when the
        container ran for at least 10 s; at most 1 minute.
        """
        hc, state = record.host_config, record.state
        if state.stopped_by_user or state.status is not Status.EXITED:
            return None
        if hc.restart_policy == "on-failure":
            if state.exit_code == 0:
                return None
            if hc.restart_max_retries and state.restart_count >= hc.restart_max_retries:
                return None
        elif hc.restart_policy not in ("always", "unless-stopped"):
            return None
        if state.finished_at - state.started_at >= 10 * 1_000_000_000:
            state.restart_count = 0
        return float(min(0.1 * 2 ** state.restart_count, 60.0))

    async def _restart_later(self, record: ContainerRecord, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            return
        finally:
            self._restarts.pop(record.id, None)
        async with self._lock(record.id):
            if record.state.status is not Status.RESTARTING or record.id not in self.records:
                return
            record.state.restart_count += 1
            try:
                await self._start_locked(record)
            except PycontainError as exc:
                log.warning("restart of %s failed: %s", record.short_id, exc)
                return
            self._emit("restart", record)

    def _cancel_restart(self, record: ContainerRecord) -> None:
        """A stop, kill or rm of a restarting container: it stays down."""
        task = self._restarts.pop(record.id, None)
        if task is not None:
            task.cancel()
        if record.state.status is Status.RESTARTING:
            record.state.status = transition(record.name, record.state.status,
                                             Action.CANCEL_RESTART)
            self._save(record)
        self._stopped_event(record.id).set()

    async def _auto_remove(self, record: ContainerRecord) -> None:
        if record.id not in self.records:
            return
        try:
            await self.remove(record.id, force=False)
        except PycontainError as exc:
            log.warning("auto-remove of %s failed: %s", record.id[:12], exc)

    def _wake_start_waiters(self, container_id: str) -> None:
        for event in self._start_waiters.pop(container_id, []):
            event.set()
        for future in self._attach_waiters.pop(container_id, []):
            if not future.done():
                future.set_result(None)

    def _release_resources(self, container_id: str) -> None:
        """Remove the kernel objects and runtime state of a container that no longer runs."""
        try:
            self.cgroups.destroy(container_id)
        except PycontainError as exc:
            log.warning("remove cgroup of %s: %s", container_id[:12], exc)
        shutil.rmtree(self._state_dir(container_id), ignore_errors=True)

    # ------------------------------------------------------------------ signals

    def _deliver(self, record: ContainerRecord, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.state.pid, sig)

    async def kill(self, ref: str, signal_value: str | int | None = None) -> None:
        record = self.resolve(ref)
        sig = parse_signal(signal_value)
        if record.state.status is Status.RESTARTING:
            self._cancel_restart(record)
            return
        transition(record.name, record.state.status, Action.KILL)
        record.state.stopped_by_user = True
        self._emit("kill", record, signal=str(sig))
        self._deliver(record, sig)
        if record.state.status is Status.PAUSED and sig == signal.SIGKILL:
            with contextlib.suppress(PycontainError):
                self.cgroups.thaw(record.id)

    async def stop(self, ref: str, timeout: float | None = None) -> None:
        record = self.resolve(ref)
        async with self._lock(record.id):
            if record.state.status is Status.RESTARTING:
                self._cancel_restart(record)
                self._emit("stop", record)
                return
            if record.state.status not in (Status.RUNNING, Status.PAUSED):
                raise NotModified("container already stopped")
            await self._stop_record(record, 10 if timeout is None else timeout)

    async def _stop_record(self, record: ContainerRecord, timeout: float) -> None:
        stopped = self._stopped_event(record.id)
        record.state.stopped_by_user = True
        if record.state.status is Status.PAUSED:
            with contextlib.suppress(PycontainError):
                self.cgroups.thaw(record.id)
            record.state.status = Status.RUNNING
        self._deliver(record, signal.SIGTERM)
        if timeout < 0:  # Docker: -1 waits forever
            await stopped.wait()
        else:
            try:
                await asyncio.wait_for(stopped.wait(), timeout)
            except TimeoutError:
                self._deliver(record, signal.SIGKILL)
                await stopped.wait()
        self._emit("stop", record)

    async def restart(self, ref: str, timeout: float | None = None) -> None:
        record = self.resolve(ref)
        async with self._lock(record.id):
            if record.state.status is Status.RESTARTING:
                self._cancel_restart(record)
            if record.state.status in (Status.RUNNING, Status.PAUSED):
                await self._stop_record(record, 10 if timeout is None else timeout)
            transition(record.name, record.state.status, Action.START)
            await self._start_locked(record)
        self._emit("restart", record)

    async def pause(self, ref: str) -> None:
        record = self.resolve(ref)
        async with self._lock(record.id):
            record.state.status = transition(record.name, record.state.status, Action.PAUSE)
            try:
                self.cgroups.freeze(record.id)
            except BaseException:
                record.state.status = Status.RUNNING
                raise
            self._save(record)
        self._emit("pause", record)

    async def unpause(self, ref: str) -> None:
        record = self.resolve(ref)
        async with self._lock(record.id):
            new_status = transition(record.name, record.state.status, Action.UNPAUSE)
            self.cgroups.thaw(record.id)
            record.state.status = new_status
            self._save(record)
        self._emit("unpause", record)

    def wait(self, ref: str, condition: str = "not-running") -> Awaitable[int]:
        """Register a waiter now (so that a start that follows cannot be missed); await it later.

        ``not-running``: until the container is not running; ``next-exit``: until it next
        exits; ``removed``: until it is removed.  The result is the exit code.
        """
        record = self.resolve(ref)
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        if condition == "next-exit" and record.state.status not in (Status.RUNNING,
                                                                    Status.PAUSED):
            current = self._stopped.get(record.id)
            if current is None or current.is_set():
                self._stopped[record.id] = asyncio.Event()
        stopped = self._stopped_event(record.id)
        removed = (self._removed.setdefault(record.id, asyncio.Event())
                   if condition == "removed" else None)

        async def until_done() -> int:
            await (removed or stopped).wait()
            return record.state.exit_code

        return until_done()

    # ------------------------------------------------------------------ remove

    async def remove(self, ref: str, force: bool = False) -> None:
        """Remove a container and everything it owns.  A record that could not be read at
        startup (``broken``) is removed by ``rm -f`` with its full or prefix id."""
        try:
            record = self.resolve(ref)
        except NoSuchContainer:
            if force and self._remove_broken(ref):
                return
            raise
        if force and record.state.status is Status.RESTARTING:
            self._cancel_restart(record)
        if force and record.state.status in (Status.RUNNING, Status.PAUSED):
            await self.kill(record.id, signal.SIGKILL)
            await self._stopped_event(record.id).wait()
        async with self._lock(record.id):
            if record.id not in self.records:
                return
            record.state.status = transition(record.name, record.state.status, Action.REMOVE)
            await self._unwire_network(record)
            self._release_resources(record.id)
            shutil.rmtree(self._container_dir(record.id), ignore_errors=True)
            del self.records[record.id]
            self._locks.pop(record.id, None)
            self._stopped.pop(record.id, None)
            removed = self._removed.pop(record.id, None)
            if removed is not None:
                removed.set()
            self._wake_start_waiters(record.id)
            self._emit("destroy", record)

    def _remove_broken(self, ref: str) -> bool:
        matches = [cid for cid in self.broken if cid.startswith(ref)]
        if len(matches) != 1:
            return False
        container_id = matches[0]
        self._release_resources(container_id)
        shutil.rmtree(self._container_dir(container_id), ignore_errors=True)
        del self.broken[container_id]
        log.info("removed the unreadable record of container %s", container_id[:12])
        return True

    # ------------------------------------------------------------------ logs, top

    async def log_stream(self, ref: str, follow: bool, stdout: bool, stderr: bool,
                         tail: str | None, timestamps: bool, since: int | None = None,
                         until: int | None = None) -> AsyncIterator[bytes]:
        """The log's frames; ``since``/``until`` (ns since the epoch) bound the entries."""
        record = self.resolve(ref)
        stopped = self._stopped_event(record.id)
        try:
            log_file = open(self.log_path(record), "rb")  # noqa: SIM115 (held across awaits)
        except FileNotFoundError:
            return
        with log_file:
            entries, offset = logs.read_log_entries(log_file)
            entries = logs.between(logs.read_rotated(self.log_path(record)) + entries,
                                   since, until)
            for chunk in logs.iter_frames(logs.tail_entries(entries, tail), stdout, stderr,
                                          timestamps):
                yield chunk
            if follow and (until is None or until > time.time_ns()):
                async for chunk in _follow(log_file, offset, stopped, stdout, stderr,
                                           timestamps, self.log_path(record), until):
                    yield chunk

    def attach(self, ref: str, stdout: bool, stderr: bool) -> AsyncIterator[bytes]:
        """Output of the container's next (or current) run, from now until it stops.

        Registered at once, so that a client may attach and then start the container,
        as Docker's CLI does for ``run`` and ``start -a``.
        """
        record = self.resolve(ref)
        log_file = open(self.log_path(record), "rb")  # noqa: SIM115 (closed by the stream)
        offset = os.fstat(log_file.fileno()).st_size
        started: asyncio.Event | None = None
        if record.state.status not in (Status.RUNNING, Status.PAUSED):
            started = asyncio.Event()
            self._start_waiters.setdefault(record.id, []).append(started)

        async def stream() -> AsyncIterator[bytes]:
            with log_file:
                if started is not None:
                    await started.wait()
                async for chunk in _follow(log_file, offset, self._stopped_event(record.id),
                                           stdout, stderr, False, self.log_path(record)):
                    yield chunk

        return stream()

    async def open_attach(self, ref: str) -> asyncio.Future[ShimConnection | None]:
        """For a container with stdin open or a terminal: a connection to its shim's
        attach socket (containers/attach.py), now when it runs, else at its next start,
        before its program starts (so that nothing of its output is missed).  The
        future gives None when the container does not start; cancel it to give up."""
        record = self.resolve(ref)
        if not (record.config.tty or record.config.open_stdin):
            raise InvalidArgument(f"container {record.short_id} has neither stdin nor a "
                                  "terminal to attach to")
        future: asyncio.Future[ShimConnection | None] = (
            asyncio.get_running_loop().create_future())
        if record.state.status not in (Status.RUNNING, Status.PAUSED):
            self._attach_waiters.setdefault(record.id, []).append(future)
            return future
        try:
            future.set_result(await connect_to_shim(str(self._state_dir(record.id))))
        except OSError as exc:
            raise Conflict(f"cannot attach to container {record.short_id}: its shim does "
                           f"not answer ({exc.strerror or exc})") from exc
        return future

    async def _connect_attach_waiters(self, record: ContainerRecord) -> None:
        for future in self._attach_waiters.pop(record.id, []):
            if future.done():
                continue
            try:
                connection = await connect_to_shim(str(self._state_dir(record.id)))
            except OSError as exc:
                log.warning("attach to %s: %s", record.short_id, exc)
                future.set_result(None)
                continue
            if future.done():  # given up meanwhile
                connection[1].close()
            else:
                future.set_result(connection)

    async def resize(self, ref: str, rows: int, cols: int) -> None:
        """The terminal's new size (the program gets SIGWINCH); nothing without one."""
        record = self.resolve(ref)
        if record.state.status not in (Status.RUNNING, Status.PAUSED):
            raise Conflict(f"Container {record.id} is not running")
        if not record.config.tty:
            return
        try:
            _, writer = await connect_to_shim(str(self._state_dir(record.id)))
        except OSError as exc:
            raise PycontainError(f"resize the terminal of {record.short_id}: {exc}") from exc
        writer.write(attach_protocol.resize_frame(rows, cols))
        with contextlib.suppress(OSError):
            await writer.drain()
        writer.close()

    def filesystem(self, ref: str) -> ContainerFilesystem:
        """Where the container's files are, for cp, export, diff and commit."""
        record = self.resolve(ref)
        running = record.state.status in (Status.RUNNING, Status.PAUSED)
        directory = self._container_dir(record.id)
        return ContainerFilesystem(
            id=record.id, pid=record.state.pid if running else 0,
            upperdir=directory / "upper", workdir=directory / "work",
            lowerdirs=tuple(self.images.layer_dirs(self.images.get(record.image_id))),
            scratch=self.dir.parent / "tmp")

    def writable_size(self, container_id: str) -> int:
        """Bytes in the container's own writable layer (its overlay upperdir)."""
        total = 0
        for root, _, files in os.walk(self._container_dir(container_id) / "upper"):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(root, name)).st_size
        return total

    def usage(self, ref: str) -> tuple[ContainerRecord, Usage | None, dict[str, dict[str, int]]]:
        """The container's cgroup usage and its interfaces' counters (from its network
        namespace's /proc/net/dev), read once; None and {} when it is not running."""
        record = self.resolve(ref)
        if record.state.status not in (Status.RUNNING, Status.PAUSED):
            return record, None, {}
        try:
            usage = self.cgroups.usage(record.id)
        except NotFound:  # it stopped meanwhile
            return record, None, {}
        return record, usage, _interface_counters(record.state.pid)

    async def rename(self, ref: str, new_name: str) -> None:
        """Docker's rename: the name must be valid and free; peers' /etc/hosts follow."""
        record = self.resolve(ref)
        validate_name(new_name)
        new_name = new_name.lstrip("/")
        if new_name == record.name:
            raise InvalidArgument("Renaming a container with the same name as its current "
                                  "name")
        async with self._lock(record.id):
            taken = next((r for r in self.records.values() if r.name == new_name), None)
            if taken is not None:
                raise NameInUse(
                    f'Conflict. The container name "/{new_name}" is already in use by '
                    f'container "{taken.id}". You have to remove (or rename) that container '
                    "to be able to reuse that name.")
            old_name, record.name = record.name, new_name
            self._save(record)
            if record.state.status in (Status.RUNNING, Status.PAUSED) and record.state.ip_address:
                self._write_hosts(record)
                self._refresh_peers(record)
        self._emit("rename", record, oldName="/" + old_name)

    def top(self, ref: str) -> dict[str, Any]:
        import psutil

        record = self.resolve(ref)
        if record.state.status not in (Status.RUNNING, Status.PAUSED):
            raise InvalidArgument(f"Container {record.id} is not running")
        titles = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        rows = []
        for pid in self.cgroups.pids(record.id):
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    times = proc.cpu_times()
                    cpu_seconds = int(times.user + times.system)
                    rows.append([
                        proc.username(), str(pid), str(proc.ppid()), "0",
                        time.strftime("%H:%M", time.localtime(proc.create_time())),
                        proc.terminal() or "?",
                        time.strftime("%H:%M:%S", time.gmtime(cpu_seconds)),
                        " ".join(proc.cmdline()) or f"[{proc.name()}]",
                    ])
            except psutil.Error:
                continue
        return {"Titles": titles, "Processes": rows}

    # ------------------------------------------------------------------ startup

    def load_all(self) -> None:
        """Read every record at daemon start; re-adopt running containers through their shims.

        A record that cannot be read is reported and skipped.  A container whose shim is
        gone gets the exit status the shim recorded (255 when none), and its leftovers
        are released through the same path as ``rm``.
        """
        for directory in sorted(self.dir.iterdir()):
            try:
                record = ContainerRecord.load(directory)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("skipping unreadable container record %s (remove it with "
                          "`pycontain rm -f %s`): %s", directory, directory.name[:12], exc)
                self.broken[directory.name] = str(exc)
                continue
            self.records[record.id] = record
        for mount_point in _mounts_under(self.dir):
            log.info("unmounting stale mount %s", mount_point)
            with contextlib.suppress(OSError):
                syscalls.umount(mount_point, syscalls.MNT_DETACH)
        known = set(self.records) | set(self.broken)
        for orphan in set(self.cgroups.list_ids()) - known:
            log.info("removing orphaned cgroup %s", orphan)
            self._release_resources(orphan)
        loop = asyncio.get_running_loop()
        for record in list(self.records.values()):
            policy = record.host_config.restart_policy
            if record.state.status is Status.RESTARTING or (
                    record.state.status is Status.EXITED and policy == "always"):
                record.state.status = Status.RESTARTING  # Docker restarts these at startup
                self._restarts[record.id] = loop.create_task(self._restart_later(record, 0))
            if record.state.status not in (Status.RUNNING, Status.PAUSED):
                continue
            pidfd = _open_shim(record)
            self._stopped[record.id] = asyncio.Event()
            if pidfd is None:
                self._track(loop.create_task(self._on_exit(record, None)))
            else:
                self._track(loop.create_task(self._watch_adopted(record, pidfd)))

    async def recover_network(self) -> None:
        """Daemon start, after ``load_all``: the bridges and their NAT rules exist, and the
        leases, veths and port rules of containers that are gone are removed (logged)."""
        if self.networks is None:
            return
        await self.networks.setup()
        from pycontain.network.nat import enable_ip_forward

        enable_ip_forward()  # as Docker does: containers reach beyond the host
        for name, network in self.networks.networks.items():
            live = [r.id for r in self.records.values()
                    if r.state.status in (Status.RUNNING, Status.PAUSED)
                    and r.host_config.network_mode == name]
            report = await network.recover(live)
            for kind, items in (("port rules", report.rules), ("veths", report.veths),
                                ("address leases", report.leases)):
                if items:
                    log.info("network %s: removed stale %s: %s", name, kind, ", ".join(items))

    async def connect_network(self, ref: str, network: str) -> None:
        """Docker's ``network connect`` for pycontain's one network per container: a
        container without one (``none``, or disconnected) joins ``network``; a running one
        gets its interface, address and hosts entries at once."""
        record = self.resolve(ref)
        info, _ = self._networks().get(network)
        async with self._lock(record.id):
            mode = record.host_config.network_mode
            if mode == info.name:
                raise Conflict(f"endpoint with name {record.name} already exists in network "
                               f"{info.name}")
            if mode != "none":
                raise Conflict(f"container {record.name} is connected to network {mode}: a "
                               "pycontain container is on one network only; disconnect it "
                               "first")
            self._set_network_mode(record, info.name)
            if record.state.status in (Status.RUNNING, Status.PAUSED):
                try:
                    await self._wire_network(record, record.state.pid)
                except BaseException:
                    self._set_network_mode(record, "none")
                    raise
            self._save(record)
        self.events.emit_object("network", "connect", info.id, name=info.name,
                                container=record.id, type="bridge")

    async def disconnect_network(self, ref: str, network: str) -> None:
        """Docker's ``network disconnect``: the container is left without a network
        (``none``); a running one loses its interface and address at once."""
        record = self.resolve(ref)
        info, _ = self._networks().get(network)
        async with self._lock(record.id):
            if record.host_config.network_mode != info.name:
                raise Conflict(f"container {record.name} is not connected to network "
                               f"{info.name}")
            await self._unwire_network(record)
            self._set_network_mode(record, "none")
            self._save(record)
        self.events.emit_object("network", "disconnect", info.id, name=info.name,
                                container=record.id, type="bridge")

    def _networks(self) -> NetworkRegistry:
        if self.networks is None:
            raise PycontainError("bridge networks are not available in this daemon")
        return self.networks

    def _set_network_mode(self, record: ContainerRecord, mode: str) -> None:
        record.host_config = dataclasses.replace(record.host_config, network_mode=mode)

    def network_members(self, name: str) -> list[ContainerRecord]:
        return [r for r in self.records.values() if r.host_config.network_mode == name]

    def _track(self, task: asyncio.Task[None]) -> None:
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def shutdown(self) -> None:
        tasks = [*self._watchers, *self._restarts.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _follow(log_file: BinaryIO, offset: int, stopped: asyncio.Event, stdout: bool,
                  stderr: bool, timestamps: bool, path: Path,
                  until: int | None = None) -> AsyncIterator[bytes]:
    """New log entries as frames, from ``offset`` until the container stops (or the time
    ``until``, ns, comes); a rotated log is read to its end, then the new one from its
    start."""
    current = log_file
    try:
        while True:
            # an entry stamped just before ``until`` may land a moment later: one more look
            finished = stopped.is_set() or (
                until is not None and time.time_ns() >= until + UNTIL_GRACE_NS)
            entries, offset = logs.read_log_entries(current, offset)
            renewed = logs.reopen_if_rotated(current, path)
            if renewed is not None:
                more, offset = logs.read_log_entries(current, offset)
                entries += more
                if current is not log_file:
                    current.close()
                current, offset = renewed, 0
            if until is not None:
                entries = logs.between(entries, None, until)
            for chunk in logs.iter_frames(entries, stdout, stderr, timestamps):
                yield chunk
            if renewed is not None:
                continue
            if finished:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), LOG_POLL_INTERVAL)
    finally:
        if current is not log_file:
            current.close()


def parse_shim_event(line: bytes) -> dict[str, Any]:
    try:
        event = json.loads(line) if line else {}
    except ValueError:
        event = {}
    return event if isinstance(event, dict) else {}


def _open_shim(record: ContainerRecord) -> int | None:
    """A pidfd on the container's shim when it still runs, else None."""
    pid = record.state.shim_pid
    if pid <= 0:
        return None
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        with open(f"/proc/{record.state.pid}/status") as f:
            ppid = next((line.split()[1] for line in f if line.startswith("PPid:")), "")
    except OSError:
        ppid = ""
    if ppid != str(pid):
        os.close(pidfd)  # the pid was reused by something that is not our shim
        return None
    return pidfd


def _mounts_under(directory: Path) -> list[str]:
    """Mount points below ``directory`` in this mount namespace, deepest first.

    pycontain mounts a container's overlay only inside the container's own mount
    namespace, so any mount found here was left by something else (a crash of an
    older version, or a person) and is in the way.
    """
    prefix = str(directory) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _interface_counters(pid: int) -> dict[str, dict[str, int]]:
    """Each interface of the network namespace ``pid`` is in but lo: Docker's networks
    stats (rx_bytes, rx_packets, rx_errors, rx_dropped, and the same for tx)."""
    names = ("bytes", "packets", "errors", "dropped")
    counters: dict[str, dict[str, int]] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            lines = f.readlines()[2:]
    except OSError:
        return counters
    for line in lines:
        interface, _, numbers = line.partition(":")
        fields = numbers.split()
        if interface.strip() == "lo" or len(fields) < 12:
            continue
        rx = {f"rx_{n}": int(v) for n, v in zip(names, fields[0:4], strict=True)}
        tx = {f"tx_{n}": int(v) for n, v in zip(names, fields[8:12], strict=True)}
        counters[interface.strip()] = {**rx, **tx}
    return counters


def _read_namespaces(pid: int) -> dict[str, str]:
    result = {}
    for ns in NAMESPACES:
        with contextlib.suppress(OSError):
            result[ns] = os.readlink(f"/proc/{pid}/ns/{ns}")
    return result


def _merge_env(image_env: tuple[str, ...], user_env: tuple[str, ...]) -> tuple[str, ...]:
    merged: dict[str, str] = {}
    for item in (*image_env, *user_env):
        merged[item.partition("=")[0]] = item
    return tuple(merged.values())


def _command_line(config: ContainerConfig, image: Image) -> tuple[str, list[str]]:
    """Docker's merge of the user's Entrypoint/Cmd with the image's."""
    entrypoint = [e for e in config.entrypoint] if config.entrypoint is not None else None
    cmd = list(config.cmd or ())
    if entrypoint is not None and entrypoint in ([], [""]):
        entrypoint = []
    if not entrypoint:
        if not cmd:
            cmd = list(image.config.cmd or ())
        if entrypoint is None:
            entrypoint = list(image.config.entrypoint or ())
    argv = [*entrypoint, *cmd]
    if not argv:
        raise InvalidArgument("No command specified")
    return argv[0], argv[1:]


__all__ = ["ContainerManager", "ContainerState", "parse_signal"]
