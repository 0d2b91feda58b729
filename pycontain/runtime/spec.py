"""A plain description of what to run: the runtime's only input.

Like runc's split between ``Container`` and ``Process``: the daemon decides
everything (paths, limits, the command line) and hands the runtime a
``ContainerSpec``; the runtime only carries it out.  The spec crosses a process
boundary (daemon -> fork server -> shim), so it is plain JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class BindMount:
    source: str
    target: str
    readonly: bool = False


@dataclass(frozen=True)
class TmpfsSpec:
    target: str
    flags: int          # mount flags (MS_*)
    data: str           # tmpfs options: size=, mode=, ...


@dataclass(frozen=True)
class SecuritySpec:
    """What confines the process; the defaults here confine nothing (the daemon fills it in)."""

    capabilities: tuple[int, ...] = ()     # bounding = permitted = effective
    no_new_privileges: bool = False
    seccomp_bpf: str = ""                  # hex of the compiled filter; "" = unconfined
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    readonly_rootfs: bool = False
    writable_sysfs: bool = False           # --privileged: /sys and /sys/fs/cgroup writable
    nodev_mounts: bool = False             # every writable mount nodev (not --privileged)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SecuritySpec:
        """From ``asdict`` of one (after a JSON round trip: lists for the tuples)."""
        sec = dict(raw)
        return cls(capabilities=tuple(sec.pop("capabilities")),
                   masked_paths=tuple(sec.pop("masked_paths")),
                   readonly_paths=tuple(sec.pop("readonly_paths")), **sec)


@dataclass(frozen=True)
class ProcessSpec:
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str = "/"
    user: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ProcessSpec:
        return cls(args=tuple(raw["args"]), env=tuple(raw["env"]), cwd=raw["cwd"],
                   user=raw["user"])


@dataclass(frozen=True)
class ContainerSpec:
    id: str
    hostname: str
    lowerdirs: tuple[str, ...]          # image layer directories, top-most first
    upperdir: str
    workdir: str
    rootfs: str                         # the overlay's mount point
    process: ProcessSpec
    log_path: str                       # json-lines log the shim appends to
    state_dir: str                      # exec-root/<id>: shim.json, exit.json
    cgroup_join_files: tuple[str, ...] = ()
    binds: tuple[BindMount, ...] = field(default_factory=tuple)
    tmpfs: tuple[TmpfsSpec, ...] = field(default_factory=tuple)
    security: SecuritySpec = field(default_factory=SecuritySpec)
    # "bridge": a new network namespace the daemon wires before the process starts;
    # "none": a new one with loopback only; "host": the host's; "container": join_netns.
    network_mode: str = "none"
    join_netns: str = ""
    log_max_size: int = 0               # bytes before the log rotates; 0: never
    log_max_files: int = 1              # the live log and its rotated files
    tty: bool = False                   # a terminal from the container's devpts (console.py)
    open_stdin: bool = False            # stdin a pipe the attach socket feeds, not /dev/null
    console_size: tuple[int, int] = (0, 0)  # the terminal's rows and columns at the start

    @property
    def interactive(self) -> bool:
        """Attached clients need the shim's attach socket (runtime/attach.py)."""
        return self.tty or self.open_stdin

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerSpec:
        """From ``to_dict`` after a JSON round trip (lists for the tuples)."""
        raw = dict(data)
        process = ProcessSpec.from_dict(raw.pop("process"))
        binds = tuple(BindMount(**b) for b in raw.pop("binds"))
        tmpfs = tuple(TmpfsSpec(**t) for t in raw.pop("tmpfs"))
        security = SecuritySpec.from_dict(raw.pop("security"))
        return cls(
            process=process,
            binds=binds,
            tmpfs=tmpfs,
            security=security,
            lowerdirs=tuple(raw.pop("lowerdirs")),
            cgroup_join_files=tuple(raw.pop("cgroup_join_files")),
            console_size=_size(raw.pop("console_size", (0, 0))),
            **raw,
        )


def _size(value: Any) -> tuple[int, int]:
    rows, cols = value
    return int(rows), int(cols)
