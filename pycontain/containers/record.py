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
from pycontain.errors import InvalidArgument
from pycontain.fsutil import atomic_write_json


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


@dataclass(frozen=True)
class HostConfig:
    memory: int = 0
    memory_swap: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    pids_limit: int = 0
    binds: tuple[str, ...] = ()
    auto_remove: bool = False


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
        host["binds"] = tuple(host["binds"])
        state = raw.pop("state")
        state["status"] = Status(state["status"])
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
    )
    binds = _str_list(host, "Binds") or ()
    for bind in binds:
        parse_bind(bind)
    host_config = HostConfig(
        memory=memory,
        memory_swap=_int(host, "MemorySwap"),
        nano_cpus=_int(host, "NanoCpus"),
        cpu_shares=_int(host, "CpuShares"),
        pids_limit=_int(host, "PidsLimit"),
        binds=binds,
        auto_remove=bool(host.get("AutoRemove")),
    )
    return config, host_config


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
