"""Records and images rendered in the Docker Engine API's JSON shapes (v1.41)."""

from __future__ import annotations

import time
from typing import Any

from pycontain.cgroups.base import Usage
from pycontain.cli.render import container_status_text
from pycontain.containers.record import ContainerRecord, parse_bind
from pycontain.containers.state import Status
from pycontain.daemon.hostinfo import HostCpuMemory
from pycontain.errors import InvalidArgument
from pycontain.images import Image
from pycontain.network.ports import port_bindings
from pycontain.timefmt import ZERO_TIME, parse_rfc3339_nano, rfc3339_nano


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


def _network_settings(record: ContainerRecord, network_id: str) -> dict[str, Any]:
    """Docker's NetworkSettings: the container's one network under its name (``bridge``,
    a user network, ``none``, ``host``), or none at all for ``container:NAME``."""
    state = record.state
    address, _, prefix = state.ip_address.partition("/")
    ports: dict[str, list[dict[str, str]]] = {}
    for host_ip, host_port, port, protocol in _published(record):
        ports.setdefault(f"{port}/{protocol}", []).append(
            {"HostIp": host_ip, "HostPort": str(host_port)})
    endpoint = {"IPAddress": address, "IPPrefixLen": int(prefix or 0),
                "Gateway": state.gateway, "MacAddress": state.mac_address}
    mode = record.host_config.network_mode
    networks: dict[str, Any] = {}
    if not mode.startswith("container:"):
        networks[mode] = {
            "IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": network_id,
            "EndpointID": record.id if address else "", **endpoint,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DriverOpts": None}
    return {"Bridge": "", "SandboxID": record.id if address else "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SandboxKey": "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": record.id if address else "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "IPv6Gateway": "",
            **endpoint, "Ports": ports, "Networks": networks}


def container_summary(record: ContainerRecord, image_name: str,
                      network_id: str = "") -> dict[str, Any]:
    """An item of GET /containers/json; ``network_id``: the id of the container's network."""
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
        "NetworkSettings": {"Networks": _network_settings(record, network_id)["Networks"]},
        "Mounts": _mounts(record),
    }


def container_inspect(record: ContainerRecord, log_path: str, lowerdirs: list[str],
                      container_dir: str, cgroup_parent: str,
                      network_id: str = "") -> dict[str, Any]:
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
        "NetworkSettings": _network_settings(record, network_id),
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
        "RepoDigests": list(image.repo_digests),
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
        "RepoDigests": list(image.repo_digests),
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


def image_history(image: Image, layer_sizes: list[int]) -> list[dict[str, Any]]:
    """GET /images/{name}/history: the config's history, newest first; an entry that made
    a layer has that layer's size; only the newest names the image (older ones are
    ``<missing>``, as for any image that was not built here)."""
    entries = [e for e in image.raw_config.get("history") or [] if isinstance(e, dict)]
    if not entries:
        entries = [{"created": image.created, "created_by": ""}
                   for _ in image.diff_ids or [""]]
    sizes = iter(layer_sizes)
    rows = []
    for entry in entries:
        empty = bool(entry.get("empty_layer"))
        created = str(entry.get("created") or "")
        try:
            seconds = parse_rfc3339_nano(_utc_z(created)) // 1_000_000_000
        except ValueError:
            seconds = 0
        rows.append({"Id": "<missing>", "Created": seconds,
                     "CreatedBy": str(entry.get("created_by") or ""), "Tags": None,
                     "Size": 0 if empty else next(sizes, 0),
                     "Comment": str(entry.get("comment") or "")})
    rows.reverse()
    rows[0].update({"Id": image.id, "Tags": list(image.repo_tags) or None})
    return rows


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


def container_stats(record: ContainerRecord, usage: Usage | None,
                    networks: dict[str, dict[str, int]], host: HostCpuMemory) -> dict[str, Any]:
    """GET /containers/{id}/stats?stream=false: one sample (``precpu_stats`` empty, as
    with one-shot).  A container that does not run gets zeros, as in Docker."""
    throttling = {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
    blkio: dict[str, None] = dict.fromkeys((
        "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
        "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
        "io_time_recursive", "sectors_recursive"))
    stats: dict[str, Any] = {
        "read": ZERO_TIME, "preread": ZERO_TIME,
        "name": "/" + record.name, "id": record.id,
        "num_procs": 0, "storage_stats": {}, "blkio_stats": blkio,
        "pids_stats": {},
        "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                    "usage_in_usermode": 0}, "throttling_data": throttling},
        "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                       "usage_in_usermode": 0}, "throttling_data": throttling},
        "memory_stats": {},
    }
    if usage is None:
        return stats
    stats["read"] = rfc3339_nano(time.time_ns())
    stats["pids_stats"] = {"current": usage.pids_current,
                           **({"limit": usage.pids_limit} if usage.pids_limit else {})}
    stats["cpu_stats"] = {
        "cpu_usage": {"total_usage": usage.cpu_total_ns,
                      "usage_in_kernelmode": usage.cpu_system_ns,
                      "usage_in_usermode": usage.cpu_user_ns},
        "system_cpu_usage": host.system_cpu_ns,
        "online_cpus": host.online_cpus,
        "throttling_data": throttling,
    }
    stats["memory_stats"] = {
        "usage": usage.memory_usage,
        "max_usage": usage.memory_max_usage,
        "stats": usage.memory_stat or {},
        "limit": usage.memory_limit or host.memory_total,
    }
    stats["networks"] = networks
    return stats
