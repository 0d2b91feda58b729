"""The API routes: each one translates an HTTP request into one service call.

Paths and shapes follow the Docker Engine API v1.41 (a ``/v1.NN`` prefix is accepted
and ignored).  No logic lives here beyond argument parsing and rendering.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pycontain import __version__
from pycontain.containers import filesystem
from pycontain.containers.attach import AttachOptions, relay
from pycontain.containers.exec import ExecService, parse_exec_body
from pycontain.containers.manager import ContainerManager
from pycontain.containers.record import ContainerRecord, parse_create_body
from pycontain.containers.state import Status
from pycontain.containers.unsupported import (
    refuse_unsupported_endpoint,
    refuse_unsupported_network,
)
from pycontain.daemon import hostinfo, views
from pycontain.daemon.http import Request, Response, Router
from pycontain.errors import (
    ImageInUse,
    InvalidArgument,
    NoSuchImage,
    NoSuchNetwork,
    PycontainError,
)
from pycontain.images import ImageStore, host_architecture, is_image_id
from pycontain.runtime import attach as attach_frames
from pycontain.runtime.attach import parse_detach_keys
from pycontain.timefmt import parse_rfc3339_nano, rfc3339_nano

if TYPE_CHECKING:
    from pycontain.images.pull import Puller
    from pycontain.network.registry import NetworkRegistry

API_VERSION = "1.41"      # the API this daemon implements and advertises (API-Version)
MIN_API_VERSION = "1.24"
# Clients that have not negotiated (docker-py pinned to its default, a CLI given
# DOCKER_API_VERSION) send their own newer version: served with the 1.41 shapes, up to
# the newest the docker CLI speaks (28.x: 1.50).  Beyond that: 400, as dockerd answers.
NEWEST_ACCEPTED_API_VERSION = "1.50"
MAX_UPLOAD = 64 * 1024 * 1024 * 1024
_NAME_RE = r"(?P<name>[^/]+)"
_MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
_RAW = "application/vnd.docker.raw-stream"


class Api:
    def __init__(self, containers: ContainerManager, images: ImageStore, data_root: Path,
                 cgroup_parent: str, insecure_registries: Sequence[str] = ()) -> None:
        self.containers = containers
        self.execs = ExecService(containers)
        self.images = images
        self.data_root = data_root
        self.cgroup_parent = cgroup_parent
        self.insecure_registries = tuple(insecure_registries)
        self._puller: Puller | None = None

    def router(self) -> Router:
        r = Router(MIN_API_VERSION, NEWEST_ACCEPTED_API_VERSION)
        for method in ("GET", "HEAD"):
            r.add(method, "/_ping", self.ping)
        r.add("GET", "/version", self.version)
        r.add("GET", "/info", self.info)
        r.add("POST", "/auth", self.auth)
        r.add("GET", "/events", self.events)
        r.add("GET", "/system/df", self.system_df)
        r.add("POST", "/containers/prune", self.prune_containers)
        r.add("POST", "/images/prune", self.prune_images)
        r.add("POST", "/containers/create", self.create)
        r.add("GET", "/containers/json", self.list_containers)
        c = f"/containers/{_NAME_RE}"
        r.add("GET", f"{c}/json", self.inspect_container)
        r.add("POST", f"{c}/start", self.start)
        r.add("POST", f"{c}/stop", self.stop)
        r.add("POST", f"{c}/restart", self.restart)
        r.add("POST", f"{c}/kill", self.kill)
        r.add("POST", f"{c}/pause", self.pause)
        r.add("POST", f"{c}/unpause", self.unpause)
        r.add("POST", f"{c}/wait", self.wait)
        r.add("GET", f"{c}/logs", self.logs)
        r.add("POST", f"{c}/attach", self.attach)
        r.add("POST", f"{c}/resize", self.resize)
        r.add("GET", f"{c}/top", self.top)
        r.add("GET", f"{c}/stats", self.stats)
        r.add("POST", f"{c}/rename", self.rename)
        r.add("POST", f"{c}/exec", self.create_exec)
        r.add("POST", f"/exec/{_NAME_RE}/start", self.start_exec)
        r.add("GET", f"/exec/{_NAME_RE}/json", self.inspect_exec)
        r.add("POST", f"/exec/{_NAME_RE}/resize", self.resize_exec)
        r.add("GET", f"{c}/archive", self.get_archive)
        r.add("HEAD", f"{c}/archive", self.stat_archive)
        r.add("PUT", f"{c}/archive", self.put_archive)
        r.add("GET", f"{c}/export", self.export)
        r.add("GET", f"{c}/changes", self.changes)
        r.add("POST", "/commit", self.commit)
        r.add("DELETE", c, self.remove)
        r.add("GET", "/networks", self.list_networks)
        r.add("POST", "/networks/create", self.create_network)
        r.add("GET", f"/networks/{_NAME_RE}", self.inspect_network)
        r.add("DELETE", f"/networks/{_NAME_RE}", self.remove_network)
        r.add("POST", f"/networks/{_NAME_RE}/connect", self.connect_network)
        r.add("POST", f"/networks/{_NAME_RE}/disconnect", self.disconnect_network)
        r.add("POST", "/networks/prune", self.prune_networks)
        r.add("GET", "/images/json", self.list_images)
        r.add("POST", "/images/load", self.load)
        r.add("POST", "/images/create", self.create_image)
        r.add("GET", "/images/get", self.save_images)
        r.add("GET", "/images/(?P<name>.+)/json", self.inspect_image)
        r.add("GET", "/images/(?P<name>.+)/history", self.image_history)
        r.add("GET", "/images/(?P<name>.+)/get", self.save_image)
        r.add("POST", "/images/(?P<name>.+)/tag", self.tag_image)
        r.add("DELETE", "/images/(?P<name>.+)", self.remove_image)
        return r

    # ---------------------------------------------------------------- system

    async def ping(self, request: Request) -> Response:
        """GET and HEAD: the API-Version, OSType and Docker-Experimental headers (every
        reply has them) are what the clients negotiate with."""
        return Response(body=b"OK", content_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-cache, no-store, must-revalidate",
                                 "Pragma": "no-cache"})

    async def version(self, request: Request) -> Response:
        details = {
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "python" + platform.python_version(),
            "Os": "linux",
            "Arch": host_architecture(),
            "KernelVersion": platform.release(),
            "BuildTime": "",
            "Experimental": "false",
        }
        return Response.json({
            "Platform": {"Name": "pycontain"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__,
            **{k: v for k, v in details.items() if k != "Experimental"},
            "Experimental": False,
        })

    async def info(self, request: Request) -> Response:
        records = list(self.containers.records.values())
        count = {s: sum(1 for r in records if r.state.status is s) for s in Status}
        uname = platform.uname()
        cgroups = self.containers.cgroups
        return Response.json({
            "ID": "",
            "Containers": len(records),
            "ContainersRunning": count[Status.RUNNING],
            "ContainersPaused": count[Status.PAUSED],
            "ContainersStopped": len(records) - count[Status.RUNNING] - count[Status.PAUSED],
            "Images": len(self.images.list()),
            "Driver": "overlay",
            "DockerRootDir": str(self.data_root),
            "CgroupDriver": cgroups.driver,
            "CgroupVersion": str(cgroups.version),
            "CgroupParent": self.cgroup_parent,
            "KernelVersion": uname.release,
            "OperatingSystem": hostinfo.os_name(),
            "OSType": "linux",
            "Architecture": uname.machine,
            "NCPU": os.cpu_count() or 1,
            "MemTotal": hostinfo.mem_total(),
            "Name": uname.node,
            "ServerVersion": __version__,
            "LoggingDriver": "json-file",
            "DefaultRuntime": "pycontain",
            "Runtimes": {"pycontain": {"path": "pycontain"}},
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "DriverStatus": [],
            "Plugins": {"Volume": [], "Network": ["bridge", "host", "none"],
                        "Authorization": None, "Log": ["json-file"]},
            "MemoryLimit": True,
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": False,
            "PidsLimit": True,
            "IPv4Forwarding": True,
            "BridgeNfIptables": False,
            "BridgeNfIp6tables": False,
            "Debug": False,
            "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": 1,
            "SystemTime": rfc3339_nano(time.time_ns()),
            "NEventsListener": 0,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {},
                "Mirrors": [],
            },
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Labels": [],
            "ExperimentalBuild": False,
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "Warnings": [],
        })

    async def auth(self, request: Request) -> Response:
        """Docker's login check: {username, password, serveraddress} -> the registry asked
        with them; 401 ``Unauthorized`` when it refuses.  Nothing is stored here."""
        from pycontain.images.registry import Credentials, check_login

        body = await request.json()
        if not isinstance(body, dict):
            raise InvalidArgument("auth: the body must be a JSON object")
        username, password = body.get("username"), body.get("password", "")
        server = body.get("serveraddress") or "docker.io"
        if not isinstance(username, str) or not username:
            raise InvalidArgument("auth: a user name is required")
        if not isinstance(password, str) or not isinstance(server, str):
            raise InvalidArgument("auth: password and serveraddress must be strings")
        await check_login(server, Credentials(username, password), self.insecure_registries)
        return Response.json({"Status": "Login Succeeded", "IdentityToken": ""})

    async def events(self, request: Request) -> Response:
        """Events, Docker's shape: past ones from ``since``, then live ones
        until ``until`` (or until the client goes away)."""
        since = _time_arg(request.arg("since"))
        until = _time_arg(request.arg("until"))
        filters = views.parse_filters(request.arg("filters"))
        for key in filters:
            if key not in ("container", "event", "type", "image", "network"):
                raise InvalidArgument(f"invalid filter '{key}'")

        def matches(key: str, value: str, event: dict[str, Any]) -> bool:
            actor, kind = event["Actor"], event["Type"]
            attributes = actor["Attributes"]
            if key == "event":
                return bool(value == event["Action"])
            if key == "type":
                return bool(value == kind)
            if key == "image" and kind == "container":
                return bool(value == attributes.get("image"))
            if key != kind:
                return False
            return bool(actor["ID"].startswith(value) or value == attributes.get("name"))

        def wanted(event: dict[str, Any]) -> bool:
            return all(any(matches(k, v, event) for v in values)
                       for k, values in filters.items())

        async def stream() -> AsyncIterator[bytes]:
            async for event in self.containers.events.follow(since, until):
                if wanted(event):
                    yield json.dumps(event).encode() + b"\n"

        return Response(stream=stream())

    async def system_df(self, request: Request) -> Response:
        """Disk usage: images (layers shared between images count once), containers'
        writable layers; the same figures `system prune` would reclaim."""
        images = self.images.list()
        records = list(self.containers.records.values())
        users = {i.id: sum(1 for r in records if r.image_id == i.id) for i in images}
        image_items = []
        for image in images:
            others = [i for i in images if i.id != image.id]
            shared = self.images.layers_size([image]) + self.images.layers_size(others) - \
                self.images.layers_size([image, *others])
            item = views.image_summary(image)
            item.update({"SharedSize": shared, "Containers": users[image.id]})
            image_items.append(item)
        container_items = []
        for record in records:
            item = views.container_summary(record, record.config.image,
                                           self._network_id(record))
            item["SizeRw"] = self.containers.writable_size(record.id)
            item["SizeRootFs"] = item["SizeRw"] + self.images.layers_size(
                [i for i in images if i.id == record.image_id])
            container_items.append(item)
        return Response.json({"LayersSize": self.images.layers_size(images),
                              "Images": image_items, "Containers": container_items,
                              "Volumes": [], "BuildCache": []})

    async def prune_containers(self, request: Request) -> Response:
        """Stopped containers; filters ``until`` (Unix seconds or RFC 3339), ``label`` and
        ``label!`` (KEY or KEY=VALUE)."""
        filters = views.parse_filters(request.arg("filters"))
        for key in filters:
            if key not in ("until", "label", "label!"):
                raise InvalidArgument(f"invalid filter '{key}'")
        until = min((_until_ns(v) for v in filters.get("until", [])), default=None)
        deleted, reclaimed = [], 0
        for record in list(self.containers.records.values()):
            labels = record.config.labels
            if until is not None and record.created >= until:
                continue
            if not all(_label_matches(labels, v) for v in filters.get("label", [])):
                continue
            if any(_label_matches(labels, v) for v in filters.get("label!", [])):
                continue
            if record.state.status in (Status.CREATED, Status.EXITED, Status.DEAD):
                size = self.containers.writable_size(record.id)
                await self.containers.remove(record.id)
                deleted.append(record.id)
                reclaimed += size
        return Response.json({"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed})

    async def prune_images(self, request: Request) -> Response:
        """Dangling (untagged) images, or with dangling=false every image no container uses."""
        filters = views.parse_filters(request.arg("filters"))
        for key in filters:
            if key not in ("dangling", "label", "label!"):
                raise InvalidArgument(f"invalid filter '{key}'")
        only_dangling = filters.get("dangling", ["true"]) != ["false"]
        used = {r.image_id for r in self.containers.records.values()}
        before = self.images.list()
        size_before = self.images.layers_size(before)
        removed: list[dict[str, str]] = []
        for image in before:
            if image.id in used or (only_dangling and image.repo_tags):
                continue
            labels = image.config.labels
            if not all(_label_matches(labels, v) for v in filters.get("label", [])) or any(
                    _label_matches(labels, v) for v in filters.get("label!", [])):
                continue
            removed += self.images.untag_or_remove(image.id, force=True)
        reclaimed = size_before - self.images.layers_size(self.images.list())
        return Response.json({"ImagesDeleted": removed or None, "SpaceReclaimed": reclaimed})

    # ---------------------------------------------------------------- containers

    async def create(self, request: Request) -> Response:
        config, host_config = parse_create_body(await request.json())
        record = self.containers.create(config, host_config, request.arg("name"))
        return Response.json({"Id": record.id, "Warnings": []}, 201)

    async def list_containers(self, request: Request) -> Response:
        filters = views.parse_filters(request.arg("filters"))
        limit = request.int_arg("limit", -1) or -1
        show_all = request.flag("all") or limit > 0 or "status" in filters
        records = sorted(self.containers.records.values(), key=lambda r: r.created,
                         reverse=True)
        if not show_all:
            records = [r for r in records if r.state.status in (Status.RUNNING, Status.PAUSED)]
        records = [r for r in records if self._matches(r, filters)]
        if limit > 0:
            records = records[:limit]
        return Response.json([views.container_summary(r, r.config.image, self._network_id(r))
                              for r in records])

    def _network_id(self, record: ContainerRecord) -> str:
        """The id of the container's network ("" for none, host and container:NAME)."""
        mode = record.host_config.network_mode
        if self.containers.networks is None or mode in ("none", "host"):
            return ""
        try:
            return self.containers.networks.get(mode)[0].id
        except NoSuchNetwork:
            return ""

    def _matches(self, record: Any, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if key == "status":
                ok = record.state.status.value in values
            elif key == "name":
                ok = any(re.search(v.lstrip("/"), record.name) for v in values)
            elif key == "id":
                ok = any(record.id.startswith(v) for v in values)
            elif key == "ancestor":
                ok = any(self._is_ancestor(record, v) for v in values)
            elif key == "label":
                ok = all(_label_matches(record.config.labels, v) for v in values)
            else:
                raise InvalidArgument(f"invalid filter '{key}'")
            if not ok:
                return False
        return True

    def _is_ancestor(self, record: Any, value: str) -> bool:
        try:
            return bool(self.images.get(value).id == record.image_id)
        except NoSuchImage:
            return False

    async def inspect_container(self, request: Request) -> Response:
        record = self.containers.resolve(request.params["name"])
        try:
            image = self.images.get(record.image_id)
            lowerdirs = [str(p) for p in self.images.layer_dirs(image)]
        except PycontainError:
            lowerdirs = []
        directory = str(self.containers.dir / record.id)
        return Response.json(views.container_inspect(
            record, str(self.containers.log_path(record)), lowerdirs, directory,
            self.cgroup_parent, self._network_id(record)))

    async def start(self, request: Request) -> Response:
        await self.containers.start(request.params["name"])
        return Response.empty()

    async def stop(self, request: Request) -> Response:
        await self.containers.stop(request.params["name"], request.int_arg("t"))
        return Response.empty()

    async def restart(self, request: Request) -> Response:
        await self.containers.restart(request.params["name"], request.int_arg("t"))
        return Response.empty()

    async def kill(self, request: Request) -> Response:
        await self.containers.kill(request.params["name"], request.arg("signal"))
        return Response.empty()

    async def pause(self, request: Request) -> Response:
        await self.containers.pause(request.params["name"])
        return Response.empty()

    async def unpause(self, request: Request) -> Response:
        await self.containers.unpause(request.params["name"])
        return Response.empty()

    async def wait(self, request: Request) -> Response:
        # Like Docker: the waiter is registered and the headers go out at once, so that a
        # client may start the container next; the body follows when the condition holds.
        waiting = self.containers.wait(request.params["name"],
                                       request.arg("condition") or "not-running")

        async def body() -> AsyncIterator[bytes]:
            code = await waiting
            yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

        return Response(stream=body())

    async def logs(self, request: Request) -> Response:
        name = request.params["name"]
        self.containers.resolve(name)
        stdout, stderr = request.flag("stdout"), request.flag("stderr")
        if not stdout and not stderr:
            raise InvalidArgument("you must choose at least one stream")
        stream = self.containers.log_stream(name, request.flag("follow"), stdout, stderr,
                                            request.arg("tail"), request.flag("timestamps"),
                                            _time_arg(request.arg("since")),
                                            _time_arg(request.arg("until")) or None)
        return Response(content_type="application/vnd.docker.raw-stream", stream=stream)

    async def attach(self, request: Request) -> Response:
        """Docker's attach.  Hijacked (``Upgrade: tcp``): the raw connection, with stdin
        and a terminal's raw output for a container that has them (attach.py), else the
        multiplexed output; not hijacked: the output as a multiplexed stream body."""
        name = request.params["name"]
        if not request.flag("stream"):
            raise InvalidArgument("attach needs stream=1")
        stdout, stderr = request.flag("stdout"), request.flag("stderr")
        if not request.wants_upgrade:
            if request.flag("stdin"):
                raise InvalidArgument("attaching stdin needs an upgraded connection "
                                      "(Connection: Upgrade, Upgrade: tcp)")
            stream = self.containers.attach(name, stdout, stderr)
            return Response(content_type=_MULTIPLEXED, stream=stream)
        record = self.containers.resolve(name)
        config = record.config
        if not (config.tty or config.open_stdin):
            output = self.containers.attach(name, stdout, stderr)

            async def copy_output(_: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                  __: bytes) -> None:
                async for chunk in output:
                    writer.write(chunk)
                    await writer.drain()

            return Response.hijacked(copy_output, _MULTIPLEXED)
        options = AttachOptions(
            stdin=request.flag("stdin") and config.open_stdin, stdout=stdout, stderr=stderr,
            tty=config.tty, stdin_once=config.stdin_once,
            detach_keys=parse_detach_keys(request.arg("detachKeys") or ""))
        pending = await self.containers.open_attach(name)

        async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          leftover: bytes) -> None:
            try:
                shim = await pending
            finally:
                pending.cancel()
            if shim is not None:
                await relay(shim, (reader, writer), leftover, options)

        return Response.hijacked(session, _RAW if config.tty else _MULTIPLEXED)

    async def resize(self, request: Request) -> Response:
        rows, cols = request.int_arg("h", 0) or 0, request.int_arg("w", 0) or 0
        await self.containers.resize(request.params["name"], rows, cols)
        return Response.empty(200)

    async def top(self, request: Request) -> Response:
        ps_args = request.arg("ps_args")
        if ps_args and ps_args != "-ef":
            raise InvalidArgument(f"top: ps_args are not supported by pycontain (got "
                                  f"{ps_args!r}): its columns are ps -ef's")
        return Response.json(self.containers.top(request.params["name"]))

    async def stats(self, request: Request) -> Response:
        """One sample (``stream=false``); a stream of samples is not served."""
        if (request.arg("stream") or "true").lower() not in ("0", "false", "no"):
            raise InvalidArgument("stats: only stream=false is supported by pycontain")
        record, usage, networks = self.containers.usage(request.params["name"])
        return Response.json(views.container_stats(record, usage, networks,
                                                   hostinfo.host_cpu_memory()))

    async def rename(self, request: Request) -> Response:
        new_name = request.arg("name")
        if not new_name:
            raise InvalidArgument("rename: the new name is required (name=...)")
        await self.containers.rename(request.params["name"], new_name)
        return Response.empty()

    # ---------------------------------------------------------------- files (filesystem.py)

    def _archive_path(self, request: Request) -> str:
        path = request.arg("path")
        if not path:
            raise InvalidArgument("archive: the path argument is required")
        return path

    async def stat_archive(self, request: Request) -> Response:
        path = self._archive_path(request)
        with self.containers.filesystem(request.params["name"]).root() as root:
            header = filesystem.path_stat(root, path)
        return Response(content_type="", headers={"X-Docker-Container-Path-Stat": header})

    async def get_archive(self, request: Request) -> Response:
        path = self._archive_path(request)
        out = tempfile.TemporaryFile(dir=self.data_root / "tmp")  # noqa: SIM115 (streamed)
        try:
            with self.containers.filesystem(request.params["name"]).root() as root:
                header = filesystem.path_stat(root, path)
                filesystem.read_archive(root, path, out)
        except BaseException:
            out.close()
            raise
        return Response(content_type="application/x-tar", stream=_file_stream(out),
                        headers={"X-Docker-Container-Path-Stat": header})

    async def put_archive(self, request: Request) -> Response:
        path = self._archive_path(request)
        self.containers.resolve(request.params["name"])
        upload = await self._save_upload(request)
        try:
            fs = self.containers.filesystem(request.params["name"])  # it may have stopped
            with fs.root(writable=True) as root, open(upload, "rb") as source:
                filesystem.write_archive(root, path, source)
        finally:
            upload.unlink(missing_ok=True)
        return Response(content_type="")

    async def export(self, request: Request) -> Response:
        out = tempfile.TemporaryFile(dir=self.data_root / "tmp")  # noqa: SIM115 (streamed)
        try:
            with self.containers.filesystem(request.params["name"]).root(mounts=False) as root:
                filesystem.export(root, out)
        except BaseException:
            out.close()
            raise
        return Response(content_type="application/x-tar", stream=_file_stream(out))

    async def changes(self, request: Request) -> Response:
        found = filesystem.changes(self.containers.filesystem(request.params["name"]))
        return Response.json([{"Path": c.path, "Kind": c.kind} for c in found])

    async def commit(self, request: Request) -> Response:
        from pycontain.containers.commit import commit_container

        name = request.arg("container") or ""
        record = self.containers.resolve(name)
        repo, tag = request.arg("repo"), request.arg("tag")
        reference = (f"{repo}:{tag}" if tag else repo) if repo else None
        image = commit_container(self.images, self.containers.filesystem(name), record,
                                 reference, request.arg("comment") or "")
        return Response.json({"Id": image.id}, status=201)

    async def create_exec(self, request: Request) -> Response:
        config = parse_exec_body(await request.json())
        instance = self.execs.create(request.params["name"], config)
        return Response.json({"Id": instance.id}, 201)

    async def start_exec(self, request: Request) -> Response:
        """Hijacked (``Upgrade: tcp``): the raw connection joined to the process (stdin,
        a terminal); else its output as a multiplexed stream body, until the end."""
        body = await request.json() or {}
        detach = isinstance(body, dict) and bool(body.get("Detach"))
        exec_id = request.params["name"]
        if request.wants_upgrade and not detach:
            return self._hijacked_exec(exec_id)
        instance = await self.execs.start(exec_id, detach)
        if detach:
            return Response.empty(200)
        return Response(content_type=_MULTIPLEXED, stream=instance.frames())

    def _hijacked_exec(self, exec_id: str) -> Response:
        """dockerd's order: checks first (an HTTP error), then "101 UPGRADED", and only
        then the process starts.  Its output never travels with the 101's headers, where
        a client that reads the raw socket after them (docker-py) would lose it.  A start
        that fails now is told in the stream; its exit code (126/127) is exec inspect's."""
        tty = self.execs.check_startable(exec_id).config.tty

        async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          leftover: bytes) -> None:
            try:
                instance = await self.execs.start(exec_id, False)
            except PycontainError as exc:
                text = (exc.message + "\r\n").encode()
                writer.write(text if tty else attach_frames.encode(attach_frames.STDERR, text))
                await writer.drain()
                return
            await instance.session(reader, writer, leftover)

        return Response.hijacked(session, _RAW if tty else _MULTIPLEXED)

    async def resize_exec(self, request: Request) -> Response:
        rows, cols = request.int_arg("h", 0) or 0, request.int_arg("w", 0) or 0
        self.execs.get(request.params["name"]).resize(rows, cols)
        return Response.empty(200)

    async def inspect_exec(self, request: Request) -> Response:
        return Response.json(self.execs.get(request.params["name"]).inspect())

    async def remove(self, request: Request) -> Response:
        await self.containers.remove(request.params["name"], force=request.flag("force"))
        return Response.empty()

    # ---------------------------------------------------------------- networks

    def _registry(self) -> NetworkRegistry:
        if self.containers.networks is None:
            raise InvalidArgument("this daemon has no bridge networks")
        return self.containers.networks

    def _network_view(self, name: str) -> dict[str, Any]:
        info, _ = self._registry().get(name)
        members = {
            r.id: {"Name": r.name, "EndpointID": r.id, "MacAddress": r.state.mac_address,
                   "IPv4Address": r.state.ip_address, "IPv6Address": ""}
            for r in self.containers.network_members(info.name) if r.state.ip_address}
        return {
            "Name": info.name, "Id": info.id, "Created": rfc3339_nano(int(info.created * 1e9)),
            "Scope": "local", "Driver": "bridge", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Config": [
                {"Subnet": str(info.subnet), "Gateway": str(info.subnet[1])}]},
            "Internal": False, "Attachable": False,
            "Options": {"com.docker.network.bridge.name": info.bridge},
            "Containers": members, "Labels": {},
        }

    async def list_networks(self, request: Request) -> Response:
        """Filters: name (substring), id (prefix), driver, type (builtin or custom)."""
        filters = views.parse_filters(request.arg("filters"))
        found = [self._network_view(name) for name in self._registry().infos]
        tests: dict[str, Callable[[dict[str, Any], str], bool]] = {
            "name": lambda n, v: v in n["Name"],
            "id": lambda n, v: n["Id"].startswith(v),
            "driver": lambda n, v: v == n["Driver"],
            "type": lambda n, v: v == ("builtin" if n["Name"] == "bridge" else "custom"),
        }
        for key, values in filters.items():
            if key not in tests:
                raise InvalidArgument(f"invalid filter '{key}'")
            found = [n for n in found if any(tests[key](n, v) for v in values)]
        return Response.json(found)

    async def inspect_network(self, request: Request) -> Response:
        return Response.json(self._network_view(request.params["name"]))

    async def create_network(self, request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("Name"), str):
            raise InvalidArgument("network create: Name is required")
        driver = body.get("Driver") or "bridge"
        if driver != "bridge":
            raise InvalidArgument(f"network driver {driver!r} is not supported: use bridge")
        refuse_unsupported_network(body)
        configs = ((body.get("IPAM") or {}).get("Config") or [{}])
        subnet = configs[0].get("Subnet") if isinstance(configs[0], dict) else None
        info = await self._registry().create(body["Name"], subnet)
        self.containers.events.emit_object("network", "create", info.id, name=info.name,
                                           type="bridge")
        return Response.json({"Id": info.id, "Warning": ""}, 201)

    async def _network_body(self, request: Request) -> str:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("Container"), str):
            raise InvalidArgument("the body needs Container: the container's name or id")
        refuse_unsupported_endpoint(body.get("EndpointConfig"))
        return str(body["Container"])

    async def connect_network(self, request: Request) -> Response:
        container = await self._network_body(request)
        await self.containers.connect_network(container, request.params["name"])
        return Response(content_type="")

    async def disconnect_network(self, request: Request) -> Response:
        container = await self._network_body(request)
        await self.containers.disconnect_network(container, request.params["name"])
        return Response(content_type="")

    async def prune_networks(self, request: Request) -> Response:
        """User networks no container is on."""
        if views.parse_filters(request.arg("filters")):
            raise InvalidArgument("network prune: filters are not supported by pycontain")
        registry = self._registry()
        deleted = []
        for name in list(registry.infos):
            if name == "bridge" or self.containers.network_members(name):
                continue
            info, _ = registry.get(name)
            await registry.remove(name, [])
            self.containers.events.emit_object("network", "destroy", info.id, name=name,
                                               type="bridge")
            deleted.append(name)
        return Response.json({"NetworksDeleted": deleted or None})

    async def remove_network(self, request: Request) -> Response:
        info, _ = self._registry().get(request.params["name"])
        attached = [r.id for r in self.containers.network_members(info.name)
                    if r.state.ip_address]
        await self._registry().remove(info.name, attached)
        self.containers.events.emit_object("network", "destroy", info.id, name=info.name,
                                           type="bridge")
        return Response.empty()

    # ---------------------------------------------------------------- images

    async def list_images(self, request: Request) -> Response:
        return Response.json([views.image_summary(i) for i in self.images.list()])

    async def tag_image(self, request: Request) -> Response:
        repo, tag = request.arg("repo"), request.arg("tag")
        if not repo:
            raise InvalidArgument("tag: repo is required")
        image = self.images.get(request.params["name"])
        name = self.images.tag(image.id, f"{repo}:{tag}" if tag else repo)
        self.containers.events.emit_object("image", "tag", image.id, name=name)
        return Response(status=201, content_type="")

    async def image_history(self, request: Request) -> Response:
        image = self.images.get(request.params["name"])
        return Response.json(views.image_history(image, self.images.layer_sizes(image)))

    async def save_image(self, request: Request) -> Response:
        return await self._save([request.params["name"]])

    async def save_images(self, request: Request) -> Response:
        names = request.query.get("names") or []
        if not names:
            raise InvalidArgument("save: give at least one image (names=...)")
        return await self._save(names)

    async def _save(self, names: list[str]) -> Response:
        """A docker-archive (``docker save``) of the images: written to a temporary file
        first, so that a failure is an HTTP error rather than a cut stream."""
        from pycontain.images.save import save_images

        out = tempfile.TemporaryFile(dir=self.data_root / "tmp")  # noqa: SIM115 (streamed)
        try:
            save_images(self.images, names, out)
        except BaseException:
            out.close()
            raise
        return Response(content_type="application/x-tar", stream=_file_stream(out))

    async def inspect_image(self, request: Request) -> Response:
        return Response.json(views.image_inspect(self.images.get(request.params["name"])))

    async def remove_image(self, request: Request) -> Response:
        ref = request.params["name"]
        try:
            image = self.images.get(ref)
        except NoSuchImage:
            if request.flag("force"):  # an image whose stored config is unreadable
                return Response.json(self.images.untag_or_remove(ref, force=True))
            raise
        users = [r for r in self.containers.records.values() if r.image_id == image.id]
        short = image.id.removeprefix("sha256:")[:12]
        by_id = is_image_id(ref) or short.startswith(ref.removeprefix("sha256:"))
        if users and not request.flag("force"):
            if by_id:
                raise ImageInUse(f"conflict: unable to delete {short} (must be forced) - image "
                                 f"is being used by container {users[0].short_id}")
            if len(image.repo_tags) <= 1:  # untagging the last name would orphan the image
                raise ImageInUse(
                    f'conflict: unable to remove repository reference "{ref}" (must force) '
                    f"- container {users[0].short_id} is using its referenced image {short}")
        return Response.json(self.images.untag_or_remove(ref, request.flag("force")))

    async def _save_upload(self, request: Request) -> Path:
        tmp_dir = self.data_root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".tar", dir=tmp_dir)
        path = Path(name)
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.iter_body():
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        raise InvalidArgument("upload too large")
                    f.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    async def load(self, request: Request) -> Response:
        path = await self._save_upload(request)
        try:
            lines = self.images.load_archive(path, name="the uploaded archive")
        finally:
            path.unlink(missing_ok=True)
        return _json_stream([{"stream": line + "\n"} for line in lines])

    async def create_image(self, request: Request) -> Response:
        source = request.arg("fromSrc")
        if request.arg("fromImage"):
            return await self._pull(request)
        if source != "-":
            raise InvalidArgument("fromSrc must be \"-\" (the tarball in the request body)")
        repo, tag = request.arg("repo"), request.arg("tag")
        reference = None
        if repo:
            reference = f"{repo}:{tag}" if tag else repo
        path = await self._save_upload(request)
        try:
            image = self.images.import_rootfs(path, reference, name="the uploaded tarball")
        finally:
            path.unlink(missing_ok=True)
        return _json_stream([{"status": image.id}])

    async def _pull(self, request: Request) -> Response:
        """``fromImage=NAME[&tag=TAG|DIGEST]``: Docker's JSON progress lines.  An error
        before the first line is an HTTP error; later ones are an ``errorDetail`` line."""
        from pycontain.images.pull import Puller, pull_and_clean
        from pycontain.images.registry import Credentials

        name, tag = request.arg("fromImage") or "", request.arg("tag")
        if tag:
            name += f"@{tag}" if tag.startswith("sha256:") else f":{tag}"
        reference = Puller.reference(name)
        credentials = Credentials.from_registry_auth(request.headers.get("x-registry-auth"))
        if self._puller is None:
            self._puller = Puller(self.images, self.insecure_registries)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        task = asyncio.create_task(pull_and_clean(self._puller, reference, queue.put_nowait,
                                                  credentials))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        first = await queue.get()
        if first is None:
            await task  # an error before any progress: the reply is an HTTP error

        async def stream() -> AsyncIterator[bytes]:
            message = first
            try:
                while message is not None:
                    yield json.dumps(message).encode() + b"\r\n"
                    message = await queue.get()
                error = task.exception()
                if error is not None:
                    text = (error.message if isinstance(error, PycontainError)
                            else f"internal error: {error}")
                    yield json.dumps({"errorDetail": {"message": text},
                                      "error": text}).encode() + b"\r\n"
            finally:
                task.cancel()

        return Response(stream=stream())


async def _file_stream(source: IO[bytes]) -> AsyncIterator[bytes]:
    """The content of a temporary file, from its start; the file is closed at the end."""
    with source:
        source.seek(0)
        while chunk := source.read(256 * 1024):
            yield chunk


def _json_stream(messages: list[dict[str, Any]]) -> Response:
    async def stream() -> AsyncIterator[bytes]:
        for message in messages:
            yield json.dumps(message).encode() + b"\n"

    return Response(content_type="application/json", stream=stream())


def _time_arg(value: str | None) -> int | None:
    """Docker's since/until: Unix seconds (with an optional fraction) -> nanoseconds."""
    if not value:
        return None
    try:
        return int(float(value) * 1_000_000_000)
    except ValueError as exc:
        raise InvalidArgument(f"invalid time {value!r}: use Unix seconds") from exc


def _until_ns(value: str) -> int:
    """A prune filter's ``until``: Unix seconds (with a fraction) or RFC 3339 (UTC)."""
    try:
        return int(float(value) * 1_000_000_000)
    except ValueError:
        pass
    try:
        return parse_rfc3339_nano(value)
    except ValueError as exc:
        raise InvalidArgument(f"invalid until {value!r}: use Unix seconds or RFC 3339") \
            from exc


def _label_matches(labels: dict[str, str], expr: str) -> bool:
    key, sep, value = expr.partition("=")
    return key in labels and (not sep or labels[key] == value)
