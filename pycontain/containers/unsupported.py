"""The options of Docker's create body that pycontain does not implement.

Real clients send every field, most of them at their zero value (the docker CLI sends
``"Devices": []``, ``"MemorySwappiness": -1``, ``"ShmSize": 0`` ...).  A field at its
zero or default value is not "set" and is ignored; a field pycontain does not know at
all is ignored too, as dockerd ignores unknown fields.  A known option that pycontain
cannot honour and that is *set* is refused with a 400 that names it: a container must
never run without a limit or a setting its user asked for.

The fields pycontain implements are validated by ``record.parse_create_body``; the TTY
and stdin fields (Tty, OpenStdin, StdinOnce, AttachStdin, ConsoleSize) belong to attach.
"""

from __future__ import annotations

from typing import Any, Final

from pycontain.errors import InvalidArgument

__all__ = [
    "mounts_as_binds",
    "refuse_unsupported",
    "refuse_unsupported_endpoint",
    "refuse_unsupported_network",
]

# field -> the values that mean "not set" besides the empty ones (None, "", 0, False, [], {})
_CONFIG: Final[dict[str, tuple[Any, ...]]] = {
    "Domainname": (),
    "Volumes": (),
    "Healthcheck": (),
    "StopSignal": ("SIGTERM", "15", "TERM"),
    "StopTimeout": (),
    "MacAddress": (),
    "NetworkDisabled": (),
}

_HOST_CONFIG: Final[dict[str, tuple[Any, ...]]] = {
    "VolumeDriver": (),
    "VolumesFrom": (),
    "CgroupnsMode": ("private",),   # pycontain always unshares the cgroup namespace
    "Dns": (),
    "DnsOptions": (),
    "DnsSearch": (),
    "ExtraHosts": (),
    "GroupAdd": (),
    "IpcMode": ("private", "shareable"),  # a container's IPC namespace is its own
    "Cgroup": (),
    "Links": (),
    "OomScoreAdj": (),
    "PidMode": ("private",),
    "PublishAllPorts": (),
    "UTSMode": (),
    "UsernsMode": ("host",),        # no user namespace: that is "host"
    "ShmSize": (),
    "Sysctls": (),
    "Runtime": ("pycontain",),
    "Isolation": ("default",),
    "CgroupParent": (),             # the daemon's --cgroup-parent holds every container
    "BlkioWeight": (),
    "BlkioWeightDevice": (),
    "BlkioDeviceReadBps": (),
    "BlkioDeviceWriteBps": (),
    "BlkioDeviceReadIOps": (),
    "BlkioDeviceWriteIOps": (),
    "CpuPeriod": (),
    "CpuQuota": (),
    "CpuRealtimePeriod": (),
    "CpuRealtimeRuntime": (),
    "CpusetCpus": (),
    "CpusetMems": (),
    "CpuCount": (),
    "CpuPercent": (),
    "Devices": (),
    "DeviceCgroupRules": (),
    "DeviceRequests": (),
    "KernelMemory": (),
    "KernelMemoryTCP": (),
    "MemoryReservation": (),
    "MemorySwappiness": (-1,),
    "OomKillDisable": (),
    "Init": (),
    "Ulimits": (),
    "IOMaximumIOps": (),
    "IOMaximumBandwidth": (),
    "MaskedPaths": (),
    "ReadonlyPaths": (),
    "StorageOpt": (),
    "Annotations": (),
}

_ENDPOINT: Final[dict[str, tuple[Any, ...]]] = {
    "IPAMConfig": (),
    "Links": (),
    "Aliases": (),
    "MacAddress": (),
    "DriverOpts": (),
    "IPAddress": (),
    "GlobalIPv6Address": (),
}

_EMPTY: Final[tuple[Any, ...]] = (None, "", 0, False, [], {})


# Fields whose zero is a real setting (swappiness 0): only null and these defaults are unset.
_ZERO_IS_SET: Final = frozenset({"MemorySwappiness"})
# Objects whose keys are fixed (IPAMConfig's IPv4Address...): all values empty is unset.
_FIXED_KEYS: Final = frozenset({"IPAMConfig"})


def _is_set(key: str, value: Any, defaults: tuple[Any, ...]) -> bool:
    if key in _FIXED_KEYS and isinstance(value, dict) and all(
            v in _EMPTY for v in value.values()):
        return False
    unset = (None, *defaults) if key in _ZERO_IS_SET else (*_EMPTY, *defaults)
    return not any(value == d and type(value) is type(d) for d in unset)


def _refuse(section: dict[str, Any], table: dict[str, tuple[Any, ...]], where: str) -> None:
    for key, defaults in table.items():
        if key in section and _is_set(key, section[key], defaults):
            raise InvalidArgument(
                f"{where}{key} is not supported by pycontain (got {section[key]!r}); "
                "leave it unset")


def refuse_unsupported(body: dict[str, Any], network_mode: str) -> None:
    """Raise ``InvalidArgument`` naming the first unsupported option ``body`` sets.

    ``network_mode`` is the container's network (after "default" became "bridge"):
    NetworkingConfig may only describe that one, without fixed addresses or aliases.
    """
    _refuse(body, _CONFIG, "")
    host = body.get("HostConfig")
    if isinstance(host, dict):
        _refuse(host, _HOST_CONFIG, "HostConfig.")
    networking = body.get("NetworkingConfig")
    if not isinstance(networking, dict):
        return
    endpoints = networking.get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig must be an object")
    for name, endpoint in endpoints.items():
        if name not in (network_mode, "default") and not (
                name == "bridge" and network_mode == "bridge"):
            raise InvalidArgument(
                f"NetworkingConfig.EndpointsConfig: {name!r} is not the container's network "
                f"({network_mode}): a pycontain container is on one network only")
        refuse_unsupported_endpoint(endpoint, f"NetworkingConfig.EndpointsConfig[{name!r}].")


def refuse_unsupported_endpoint(endpoint: Any, where: str = "EndpointConfig.") -> None:
    """An endpoint's fixed addresses, aliases, links and driver options: refused when set."""
    if isinstance(endpoint, dict):
        _refuse(endpoint, _ENDPOINT, where)


_NETWORK: Final[dict[str, tuple[Any, ...]]] = {
    "EnableIPv6": (),
    "Internal": (),
    "Attachable": (),
    "Ingress": (),
    "ConfigOnly": (),
    "ConfigFrom": (),
    "Options": (),
    "Labels": (),
    "Scope": ("local",),
}

_IPAM: Final[dict[str, tuple[Any, ...]]] = {"Driver": ("default",), "Options": ()}
_IPAM_CONFIG: Final[dict[str, tuple[Any, ...]]] = {
    "IPRange": (), "Gateway": (), "AuxiliaryAddresses": ()}


def refuse_unsupported_network(body: dict[str, Any]) -> None:
    """POST /networks/create: only a bridge with at most one subnet is implemented."""
    _refuse(body, _NETWORK, "")
    ipam = body.get("IPAM")
    if not isinstance(ipam, dict):
        return
    _refuse(ipam, _IPAM, "IPAM.")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or len(configs) > 1:
        raise InvalidArgument("IPAM.Config: pycontain networks have one IPv4 subnet")
    for config in configs:
        if isinstance(config, dict):
            _refuse(config, _IPAM_CONFIG, "IPAM.Config.")


_BIND_MOUNT: Final[dict[str, tuple[Any, ...]]] = {
    "VolumeOptions": (), "TmpfsOptions": (), "ClusterOptions": (), "ImageOptions": ()}
_BIND_OPTIONS: Final[dict[str, tuple[Any, ...]]] = {
    "Propagation": ("rprivate",), "NonRecursive": (), "CreateMountpoint": (),
    "ReadOnlyNonRecursive": (), "ReadOnlyForceRecursive": ()}


def mounts_as_binds(raw: Any) -> tuple[str, ...]:
    """HostConfig.Mounts (``--mount``, docker-py's ``mounts``): bind mounts become ``Binds``
    entries ("SRC:DST[:ro]"); any other type, or a bind option set, is refused by name."""
    if not raw:
        return ()
    if not isinstance(raw, list):
        raise InvalidArgument("HostConfig.Mounts must be a list")
    binds = []
    for index, mount in enumerate(raw):
        where = f"HostConfig.Mounts[{index}]."
        if not isinstance(mount, dict):
            raise InvalidArgument(f"{where[:-1]} must be an object")
        kind = mount.get("Type") or ""
        if kind != "bind":
            raise InvalidArgument(f"{where}Type {kind!r} is not supported by pycontain: only "
                                  "bind mounts are")
        _refuse(mount, _BIND_MOUNT, where)
        if isinstance(mount.get("BindOptions"), dict):
            _refuse(mount["BindOptions"], _BIND_OPTIONS, f"{where}BindOptions.")
        source, target = mount.get("Source"), mount.get("Target")
        if not isinstance(source, str) or not isinstance(target, str):
            raise InvalidArgument(f"{where[:-1]}: Source and Target must be strings")
        binds.append(f"{source}:{target}{':ro' if mount.get('ReadOnly') else ''}")
    return tuple(binds)
