"""Which cgroup version the host runs, decided in one place from mountinfo.

The rule: when ``/sys/fs/cgroup`` itself is a cgroup2 mount the host is v2
(unified).  Otherwise it is v1, with each controller's hierarchy wherever
mountinfo says it is mounted, co-mounted controllers (``cpu,cpuacct``) sharing
one.  A hybrid host's extra cgroup2 mount at ``/sys/fs/cgroup/unified`` holds no
controllers and so still means v1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pycontain.cgroups.base import CgroupManager, KernelOps
from pycontain.cgroups.v1 import MANAGED_CONTROLLERS, CgroupV1Manager
from pycontain.cgroups.v2 import CgroupV2Manager
from pycontain.errors import PycontainError

__all__ = [
    "CGROUP_MOUNT_POINT",
    "MOUNTINFO",
    "V1_CONTROLLERS",
    "MountInfoEntry",
    "detect_cgroup_version",
    "find_v1_controller_mounts",
    "open_cgroup_manager",
    "parse_mountinfo",
    "read_mountinfo",
]

MOUNTINFO = Path("/proc/self/mountinfo")
CGROUP_MOUNT_POINT = Path("/sys/fs/cgroup")

V1_CONTROLLERS = frozenset(
    {
        *MANAGED_CONTROLLERS,
        *("cpuset", "blkio", "devices", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma"),
        "misc",
    }
)
"""Names of cgroup v1 controllers, to tell them from the other options of a cgroup mount."""

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountInfoEntry:
    """The fields of one /proc/self/mountinfo line that cgroup detection needs."""

    mount_point: Path
    fs_type: str
    super_options: tuple[str, ...]


def _unescape(field: str) -> str:
    """Undo the kernel's octal escapes of space, tab, newline and backslash."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountInfoEntry]:
    """Parse mountinfo text, in mount order.

    Raises:
        PycontainError: a line lacks the " - " separator or the fields around it.
    """
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        before, separator, after = line.partition(" - ")
        fields, tail = before.split(" "), after.split(" ")
        if not separator or len(fields) < 6 or len(tail) < 3:
            raise PycontainError(f"parse mountinfo: malformed line {line!r}")
        entries.append(
            MountInfoEntry(
                mount_point=Path(_unescape(fields[4])),
                fs_type=tail[0],
                super_options=tuple(tail[2].split(",")),
            )
        )
    return entries


def read_mountinfo(mountinfo: Path = MOUNTINFO) -> list[MountInfoEntry]:
    """Read and parse a mountinfo file.

    Raises:
        PycontainError: it cannot be read or parsed.
    """
    try:
        text = mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise PycontainError(f"read {mountinfo}: {exc.strerror or exc}") from exc
    return parse_mountinfo(text)


def _top_mount_at(entries: list[MountInfoEntry], mount_point: Path) -> MountInfoEntry | None:
    """The mount visible at ``mount_point``: the last one mounted there."""
    found = None
    for entry in entries:
        if entry.mount_point == mount_point:
            found = entry
    return found


def find_v1_controller_mounts(entries: list[MountInfoEntry]) -> dict[str, Path]:
    """Map each mounted cgroup v1 controller to its hierarchy's first mount point.

    Named hierarchies without a controller (``name=systemd``) are left out.
    """
    mounts: dict[str, Path] = {}
    for entry in entries:
        if entry.fs_type != "cgroup":
            continue
        for option in entry.super_options:
            if option in V1_CONTROLLERS:
                mounts.setdefault(option, entry.mount_point)
    return mounts


def detect_cgroup_version(
    mounts: list[MountInfoEntry] | None = None,
    cgroup_mount_point: Path = CGROUP_MOUNT_POINT,
) -> int:
    """Return 2 when ``cgroup_mount_point`` is a cgroup2 mount, 1 when v1 controllers are mounted.

    This is the one place the decision is made.  ``mounts`` defaults to this
    process's /proc/self/mountinfo.

    Raises:
        PycontainError: mountinfo cannot be read or parsed, or neither kind is mounted.
    """
    if mounts is None:
        mounts = read_mountinfo()
    top = _top_mount_at(mounts, cgroup_mount_point)
    if top is not None and top.fs_type == "cgroup2":
        return 2
    if find_v1_controller_mounts(mounts):
        return 1
    raise PycontainError(
        f"no cgroup2 mount at {cgroup_mount_point} and no cgroup v1 controller mounted"
    )


def open_cgroup_manager(
    parent: str = "pycontain",
    *,
    mountinfo: Path = MOUNTINFO,
    cgroup_mount_point: Path = CGROUP_MOUNT_POINT,
    ops: KernelOps | None = None,
    timeout: float = 5.0,
    delegated: str | None = None,
) -> CgroupManager:
    """The manager for this host's cgroup version, for container cgroups below ``parent``.

    ``delegated`` (v2 only: what ``delegation.enter_delegated_subtree`` returned)
    puts ``parent`` inside the cgroup systemd delegated to the daemon.

    Raises:
        InvalidArgument: ``parent`` is not a relative cgroup path.
        PycontainError: as ``detect_cgroup_version``.
    """
    entries = read_mountinfo(mountinfo)
    if detect_cgroup_version(entries, cgroup_mount_point) == 2:
        return CgroupV2Manager(cgroup_mount_point, parent, ops=ops, timeout=timeout,
                               delegated=delegated)
    return CgroupV1Manager(find_v1_controller_mounts(entries), parent, ops=ops, timeout=timeout)
