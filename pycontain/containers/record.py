"""A container's record on disk: ``<data-root>/containers/<id>/config.json``, written atomically.

The record is the daemon's memory of a container; everything else (shim, cgroup,
overlay mount) can be rebuilt or cleaned up from it.  API request bodies are
validated into ``ContainerConfig``/``HostConfig`` once, at the edge.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pycontain.containers.state import Status
from pycontain.containers.unsupported import mounts_as_binds, refuse_unsupported
from pycontain.errors import InvalidArgument
from pycontain.fsutil import atomic_write_json
from pycontain.security import policy as security_policy
from pycontain.units import parse_bytes


@dataclass(frozen=True)
class ContainerConfig:
    image: str
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    working_dir: str = ""
    hostname: str = ""
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    tty: bool = False               # -t: a terminal
    open_stdin: bool = False        # -i: stdin open, fed by attached clients
    stdin_once: bool = False        # the first attached client's end of input closes it


@dataclass(frozen=True)
class HostConfig:
    memory: int = 0
    memory_swap: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    pids_limit: int = 0
    binds: tuple[str, ...] = ()
    auto_remove: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    security_opt: tuple[str, ...] = ()
    readonly_rootfs: bool = False
    tmpfs: dict[str, str] = field(default_factory=dict)
    restart_policy: str = "no"       # no | on-failure | always | unless-stopped
    restart_max_retries: int = 0     # on-failure's limit; 0 = no limit
    network_mode: str = "bridge"     # bridge | none | host | container:<name> | a user network
    port_bindings: tuple[str, ...] = ()  # "[IP:][HOSTPORT:]CTRPORT/PROTO", as -p takes them
    log_config: dict[str, str] = field(default_factory=dict)  # json-file's max-size, max-file
    console_size: tuple[int, int] = (0, 0)  # the terminal's rows and columns at the start


@dataclass
class ContainerState:
    status: Status = Status.CREATED
    pid: int = 0
    shim_pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: int = 0      # ns since the epoch; 0 = never
    finished_at: int = 0
    restart_count: int = 0
    stopped_by_user: bool = False  # an explicit stop/kill: restart policies stand down
    ip_address: str = ""           # "10.88.0.2/16" on the bridge network while it runs
    gateway: str = ""
    mac_address: str = ""
    ports: tuple[str, ...] = ()    # published, resolved: "0.0.0.0:8080->80/tcp"


@dataclass
class ContainerRecord:
    id: str
    name: str
    created: int             # ns since the epoch
    image_id: str
    config: ContainerConfig
    host_config: HostConfig
    path: str                # the program (entrypoint + cmd, resolved at create)
    args: tuple[str, ...]
    namespaces: dict[str, str] = field(default_factory=dict)
    state: ContainerState = field(default_factory=ContainerState)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def command_line(self) -> list[str]:
        return [self.path, *self.args]

    def save(self, directory: Path) -> None:
        data = asdict(self)
        data["state"]["status"] = self.state.status.value
        atomic_write_json(directory / "config.json", data, mode=0o600)

    @classmethod
    def load(cls, directory: Path) -> ContainerRecord:
        raw = json.loads((directory / "config.json").read_bytes())
        config = raw.pop("config")
        for key in ("cmd", "entrypoint"):
            if config[key] is not None:
                config[key] = tuple(config[key])
        config["env"] = tuple(config["env"])
        host = raw.pop("host_config")
        for key in ("binds", "cap_add", "cap_drop", "security_opt", "port_bindings"):
            host[key] = tuple(host.get(key, ()))
        host["console_size"] = _console_size(host.get("console_size"))
        state = raw.pop("state")
        state["status"] = Status(state["status"])
        state["ports"] = tuple(state.get("ports", ()))
        return cls(config=ContainerConfig(**config), host_config=HostConfig(**host),
                   state=ContainerState(**state), args=tuple(raw.pop("args")), **raw)


def _str_list(body: dict[str, Any], key: str) -> tuple[str, ...] | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,) if value else ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key} must be a list of strings")
    return tuple(value)


def _int(body: dict[str, Any], key: str) -> int:
    value = body.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"HostConfig.{key} must be an integer")
    return value


def parse_create_body(body: Any) -> tuple[ContainerConfig, HostConfig]:
    """Validate a POST /containers/create body (Docker's shape) into typed configs."""
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    image = body.get("Image")
    if not isinstance(image, str) or not image:
        raise InvalidArgument("config error: no image specified")
    host = body.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise InvalidArgument("HostConfig must be an object")
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict):
        raise InvalidArgument("Labels must be an object")
    for key in ("WorkingDir", "Hostname", "User"):
        if not isinstance(body.get(key) or "", str):
            raise InvalidArgument(f"{key} must be a string")
    memory = _int(host, "Memory")
    if memory and memory < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    for key in ("NanoCpus", "CpuShares", "PidsLimit"):
        if _int(host, key) < 0 and key != "PidsLimit":
            raise InvalidArgument(f"HostConfig.{key} cannot be negative")
    working_dir = body.get("WorkingDir") or ""
    if working_dir and not working_dir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{working_dir}' is invalid, it needs to be an absolute path")
    config = ContainerConfig(
        image=image,
        cmd=_str_list(body, "Cmd"),
        entrypoint=_str_list(body, "Entrypoint"),
        env=_str_list(body, "Env") or (),
        working_dir=working_dir,
        hostname=body.get("Hostname") or "",
        user=body.get("User") or "",
        labels={str(k): str(v) for k, v in labels.items()},
        tty=bool(body.get("Tty")),
        open_stdin=bool(body.get("OpenStdin")),
        stdin_once=bool(body.get("StdinOnce")),
    )
    policy, max_retries = _restart_policy(host.get("RestartPolicy"))
    if policy != "no" and host.get("AutoRemove"):
        raise InvalidArgument("Conflicting options: RestartPolicy and AutoRemove")
    binds = (_str_list(host, "Binds") or ()) + mounts_as_binds(host.get("Mounts"))
    for bind in binds:
        parse_bind(bind)
    network_mode = _network_mode(host.get("NetworkMode"))
    refuse_unsupported(body, network_mode)
    host_config = HostConfig(
        memory=memory,
        memory_swap=_int(host, "MemorySwap"),
        nano_cpus=_int(host, "NanoCpus"),
        cpu_shares=_int(host, "CpuShares"),
        pids_limit=_int(host, "PidsLimit"),
        binds=binds,
        auto_remove=bool(host.get("AutoRemove")),
        **_security_fields(host),
        restart_policy=policy,
        restart_max_retries=max_retries,
        network_mode=network_mode,
        port_bindings=_port_bindings(host.get("PortBindings")),
        log_config=_log_config(host.get("LogConfig")),
        console_size=_console_size(host.get("ConsoleSize")),
    )
    return config, host_config


def _console_size(value: Any) -> tuple[int, int]:
    """``ConsoleSize``: [rows, columns] (Docker's [height, width]); (0, 0) when unset."""
    if not value:
        return 0, 0
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and 0 <= v < 65536 for v in value)):
        raise InvalidArgument("HostConfig.ConsoleSize must be [height, width]")
    return int(value[0]), int(value[1])


def rotation_limits(options: dict[str, str]) -> tuple[int, int]:
    """json-file's ``max-size`` (bytes; 0: unlimited) and ``max-file`` (at least 1) from
    ``--log-opt`` options.  Raises ``InvalidArgument`` for an unknown or bad option."""
    for key in options:
        if key not in ("max-size", "max-file"):
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    size = parse_bytes(options["max-size"]) if options.get("max-size", "-1") != "-1" else 0
    text = options.get("max-file", "1")
    if not text.isdigit() or int(text) < 1:
        raise InvalidArgument(f"invalid value for max-file: {text!r}: at least 1")
    if int(text) > 1 and not size:
        raise InvalidArgument("max-file cannot be set without max-size")
    return size, int(text)


def _log_config(raw: Any) -> dict[str, str]:
    """HostConfig.LogConfig: {"Type": "json-file", "Config": {"max-size", "max-file"}}."""
    if not raw:
        return {}
    if not isinstance(raw, dict) or not isinstance(raw.get("Config") or {}, dict):
        raise InvalidArgument("HostConfig.LogConfig must be an object")
    if raw.get("Type") not in (None, "", "json-file"):
        raise InvalidArgument(f"logging driver {raw.get('Type')} is not supported: "
                              "only json-file is")
    options = {str(k): str(v) for k, v in (raw.get("Config") or {}).items()}
    rotation_limits(options)
    return options


def _network_mode(raw: Any) -> str:
    """HostConfig.NetworkMode: "", default, bridge, none, host or container:NAME."""
    mode = raw or "bridge"
    if not isinstance(mode, str):
        raise InvalidArgument("HostConfig.NetworkMode must be a string")
    if mode == "default":
        return "bridge"
    if mode.startswith("container:") and not mode[10:]:
        raise InvalidArgument("container: needs the name or id of a container")
    return mode  # a user network's name is checked by the container service


def _port_bindings(raw: Any) -> tuple[str, ...]:
    """Docker's {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]} -> ("8080:80/tcp",)."""
    if not raw:
        return ()
    if not isinstance(raw, dict):
        raise InvalidArgument("HostConfig.PortBindings must be an object")
    from pycontain.network.ports import parse_port_spec

    specs = []
    for container_port, bindings in raw.items():
        port, _, protocol = str(container_port).partition("/")
        for binding in bindings or [{}]:
            if not isinstance(binding, dict):
                raise InvalidArgument(f"HostConfig.PortBindings[{container_port!r}]: "
                                      "each binding must be an object")
            host_ip = binding.get("HostIp") or ""
            host_port = binding.get("HostPort") or ""
            spec = f"{host_ip}:{host_port}:{port}/{protocol or 'tcp'}"
            spec = spec.removeprefix("::") if not host_ip and not host_port else spec
            spec = spec.removeprefix(":") if not host_ip else spec
            parse_port_spec(spec)  # InvalidArgument for a bad one
            specs.append(spec)
    return tuple(specs)


RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def _restart_policy(raw: Any) -> tuple[str, int]:
    """HostConfig.RestartPolicy {"Name": ..., "MaximumRetryCount": n} -> (name, n)."""
    if not raw:
        return "no", 0
    if not isinstance(raw, dict):
        raise InvalidArgument("HostConfig.RestartPolicy must be an object")
    name = raw.get("Name") or "no"
    retries = raw.get("MaximumRetryCount") or 0
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    if not isinstance(retries, int) or retries < 0:
        raise InvalidArgument("maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise InvalidArgument(
            f"maximum retry count cannot be used with restart policy '{name}'")
    return name, retries


def _security_fields(host: dict[str, Any]) -> dict[str, Any]:
    """CapAdd, CapDrop, Privileged, SecurityOpt, ReadonlyRootfs, Tmpfs: checked, as fields."""
    tmpfs = host.get("Tmpfs") or {}
    if not isinstance(tmpfs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tmpfs.items()):
        raise InvalidArgument("HostConfig.Tmpfs must be an object of mount point: options")
    for key in ("Privileged", "ReadonlyRootfs"):
        if not isinstance(host.get(key) or False, bool):
            raise InvalidArgument(f"HostConfig.{key} must be a boolean")
    cap_add = _str_list(host, "CapAdd") or ()
    cap_drop = _str_list(host, "CapDrop") or ()
    privileged = bool(host.get("Privileged"))
    security_opt = _str_list(host, "SecurityOpt") or ()
    security_policy.validate(cap_add, cap_drop, privileged, security_opt, tmpfs)
    return {"cap_add": cap_add, "cap_drop": cap_drop, "privileged": privileged,
            "security_opt": security_opt, "readonly_rootfs": bool(host.get("ReadonlyRootfs")),
            "tmpfs": dict(tmpfs)}


def parse_bind(bind: str) -> tuple[str, str, bool]:
    """``/host:/ctr[:ro|rw]`` -> (source, target, readonly); InvalidArgument otherwise."""
    parts = bind.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{bind}'")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise InvalidArgument(f"invalid mode: {mode}")
    if not parts[0].startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{bind}': named volumes are not supported; "
            "use an absolute host path")
    if not parts[1].startswith("/"):
        raise InvalidArgument(
            f"invalid volume specification: '{bind}': mount path must be absolute")
    return parts[0], parts[1], mode == "ro"
