"""Records and images rendered in the Docker Engine API's JSON shapes (v1.41)."""

from __future__ import annotations

import time
from typing import Any

from pycontain.cli.render import container_status_text
from pycontain.containers.record import ContainerRecord, parse_bind
from pycontain.containers.state import Status
from pycontain.errors import InvalidArgument
from pycontain.images import Image
from pycontain.network.ports import port_bindings
from pycontain.timefmt import parse_rfc3339_nano, rfc3339_nano


def _seconds(ns: int) -> float:
    return ns / 1e9


def status_text(record: ContainerRecord, now: float | None = None) -> str:
    state = record.state
    return container_status_text(
        state.status.value, _seconds(state.started_at), _seconds(state.finished_at),
        state.exit_code, time.time() if now is None else now)


def _mounts(record: ContainerRecord) -> list[dict[str, Any]]:
    mounts = []
    for bind in record.host_config.binds:
        source, target, readonly = parse_bind(bind)
        mounts.append({"Type": "bind", "Source": source, "Destination": target, "Mode": "",
                       "RW": not readonly, "Propagation": "rprivate"})
    return mounts


def _published(record: ContainerRecord) -> list[tuple[str, int, int, str]]:
    """(host ip, host port, container port, protocol) of each published port."""
    found = []
    for text in record.state.ports:  # "0.0.0.0:8080->80/tcp"
        host, _, inside = text.partition("->")
        host_ip, _, host_port = host.rpartition(":")
        port, _, protocol = inside.partition("/")
        found.append((host_ip, int(host_port), int(port), protocol))
    return found


def _network_settings(record: ContainerRecord) -> dict[str, Any]:
    state = record.state
    address, _, prefix = state.ip_address.partition("/")
    ports: dict[str, list[dict[str, str]]] = {}
    for host_ip, host_port, port, protocol in _published(record):
        ports.setdefault(f"{port}/{protocol}", []).append(
            {"HostIp": host_ip, "HostPort": str(host_port)})
    endpoint = {"IPAddress": address, "IPPrefixLen": int(prefix or 0),
                "Gateway": state.gateway, "MacAddress": state.mac_address}
    mode = record.host_config.network_mode
    networks = {mode if mode in ("bridge", "host", "none") else "container":
                {**endpoint, "NetworkID": mode}}
    return {**endpoint, "Ports": ports, "Networks": networks}


def container_summary(record: ContainerRecord, image_name: str) -> dict[str, Any]:
    """An item of GET /containers/json."""
    return {
        "Id": record.id,
        "Names": ["/" + record.name],
        "Image": image_name,
        "ImageID": record.image_id,
        "Command": " ".join(record.command_line),
        "Created": record.created // 1_000_000_000,
        "Ports": [{"IP": ip, "PrivatePort": port, "PublicPort": host_port, "Type": protocol}
                  for ip, host_port, port, protocol in _published(record)],
        "Labels": record.config.labels,
        "State": record.state.status.value,
        "Status": status_text(record),
        "HostConfig": {"NetworkMode": record.host_config.network_mode},
        "NetworkSettings": {"Networks": _network_settings(record)["Networks"]},
        "Mounts": _mounts(record),
    }


def container_inspect(record: ContainerRecord, log_path: str, lowerdirs: list[str],
                      container_dir: str, cgroup_parent: str) -> dict[str, Any]:
    """GET /containers/{id}/json.  State.Pid is the host pid; Namespaces is pycontain's own."""
    state, config, host = record.state, record.config, record.host_config
    running = state.status in (Status.RUNNING, Status.PAUSED)
    return {
        "Id": record.id,
        "Created": rfc3339_nano(record.created),
        "Path": record.path,
        "Args": list(record.args),
        "State": {
            "Status": state.status.value,
            "Running": running,
            "Paused": state.status is Status.PAUSED,
            "Restarting": state.status is Status.RESTARTING,
            "OOMKilled": state.oom_killed,
            "Dead": state.status is Status.DEAD,
            "Pid": state.pid if running else 0,
            "ExitCode": state.exit_code,
            "Error": state.error,
            "StartedAt": rfc3339_nano(state.started_at),
            "FinishedAt": rfc3339_nano(state.finished_at),
        },
        "Image": record.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": log_path,
        "Name": "/" + record.name,
        "RestartCount": state.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "HostConfig": {
            "Binds": list(host.binds),
            "NetworkMode": host.network_mode,
            "PortBindings": port_bindings(host.port_bindings),
            "AutoRemove": host.auto_remove,
            "RestartPolicy": {"Name": host.restart_policy,
                              "MaximumRetryCount": host.restart_max_retries},
            "CapAdd": list(host.cap_add) or None,
            "CapDrop": list(host.cap_drop) or None,
            "Privileged": host.privileged,
            "SecurityOpt": [o if not o.startswith("seccomp={") else "seccomp=<profile>"
                            for o in host.security_opt] or None,
            "ReadonlyRootfs": host.readonly_rootfs,
            "Tmpfs": host.tmpfs or None,
            "CgroupParent": cgroup_parent,
            "Memory": host.memory,
            "MemorySwap": host.memory_swap,
            "NanoCpus": host.nano_cpus,
            "CpuShares": host.cpu_shares,
            "PidsLimit": host.pids_limit or None,
            "LogConfig": {"Type": "json-file", "Config": {}},
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": ":".join(lowerdirs),
                "UpperDir": f"{container_dir}/upper",
                "WorkDir": f"{container_dir}/work",
                "MergedDir": f"{container_dir}/merged",
            },
        },
        "Mounts": _mounts(record),
        "Config": {
            "Hostname": config.hostname,
            "Domainname": "",
            "User": config.user,
            "AttachStdin": config.open_stdin,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": config.tty,
            "OpenStdin": config.open_stdin,
            "StdinOnce": config.stdin_once,
            "Env": list(config.env),
            "Cmd": list(config.cmd) if config.cmd is not None else None,
            "Image": config.image,
            "WorkingDir": config.working_dir,
            "Entrypoint": list(config.entrypoint) if config.entrypoint is not None else None,
            "Labels": config.labels,
        },
        "NetworkSettings": _network_settings(record),
        "Namespaces": record.namespaces if running else {},
    }


def _image_created_seconds(image: Image) -> int:
    try:
        return parse_rfc3339_nano(_utc_z(image.created)) // 1_000_000_000
    except ValueError:
        return 0


def _utc_z(created: str) -> str:
    return created[:-6] + "Z" if created.endswith("+00:00") else created


def image_summary(image: Image) -> dict[str, Any]:
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": list(image.repo_tags) or ["<none>:<none>"],
        "RepoDigests": [],
        "Created": _image_created_seconds(image),
        "Size": image.size,
        "VirtualSize": image.size,
        "SharedSize": -1,
        "Labels": image.config.labels or None,
        "Containers": -1,
    }


def image_inspect(image: Image) -> dict[str, Any]:
    raw_config = image.raw_config.get("config") or {}
    return {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": [],
        "Parent": "",
        "Comment": image.raw_config.get("comment", ""),
        "Created": image.created,
        "Container": "",
        "DockerVersion": image.raw_config.get("docker_version", ""),
        "Author": image.raw_config.get("author", ""),
        "Config": raw_config,
        "Architecture": image.architecture,
        "Os": image.os,
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {"Name": "overlay", "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


def parse_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` query: {"status": ["exited"]}, or the old {"status": {"exited": 1}}."""
    if not raw:
        return {}
    import json

    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid filters: {raw}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid filters: {raw}")
    result: dict[str, list[str]] = {}
    for key, values in data.items():
        if isinstance(values, dict):
            result[key] = [str(v) for v, on in values.items() if on]
        elif isinstance(values, list):
            result[key] = [str(v) for v in values]
        else:
            raise InvalidArgument(f"invalid filter value for {key!r}")
    return result
