"""What every cgroup backend offers: the resource limits and the manager protocol.

A container's cgroup is ``<parent>/<container_id>`` below each hierarchy the
backend uses (v2: one unified tree; v1: one tree per controller).  The parent
name comes from the daemon's ``--cgroup-parent`` flag, so that test runs use
their own parent and never see each other's cgroups.

The kernel side effects a manager needs beyond reading and writing interface
files (making and removing cgroup directories, killing leftover processes) go
through ``KernelOps``; unit tests pass a recording fake that emulates cgroupfs
in a temporary directory.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pycontain.errors import InvalidArgument

__all__ = [
    "CPU_PERIOD_US",
    "MIN_MEMORY_BYTES",
    "CgroupManager",
    "KernelOps",
    "Resources",
    "Usage",
    "validate_cgroup_parent",
    "validate_container_id",
]

CPU_PERIOD_US = 100_000
"""The CFS period pycontain uses for ``NanoCpus`` limits, as Docker does."""

MIN_MEMORY_BYTES = 6 * 1024 * 1024
"""Docker's smallest accepted memory limit (6 MiB)."""

_NANO_CPUS_PER_CPU = 1_000_000_000
_MIN_CFS_QUOTA_US = 1_000


@dataclass(frozen=True)
class Resources:
    """The limits of one container, in Docker's HostConfig units.

    ``None`` (and 0 where Docker gives 0 that meaning) leaves the kernel default,
    which is "unlimited" for every field but ``cpu_shares``.
    """

    memory: int | None = None
    """Bytes (HostConfig.Memory); None or 0 = unlimited."""
    memory_swap: int | None = None
    """Bytes of memory plus swap (HostConfig.MemorySwap); -1 = unlimited swap;
    None or 0 with ``memory`` set = twice ``memory``, as Docker does."""
    nano_cpus: int | None = None
    """HostConfig.NanoCpus: 1e9 = one CPU, enforced as a CFS quota per 100 ms period."""
    cpu_shares: int | None = None
    """Relative CPU weight (HostConfig.CpuShares); None or 0 = the default 1024."""
    pids_limit: int | None = None
    """Most tasks in the cgroup (HostConfig.PidsLimit); None, 0 or -1 = unlimited."""
    all_devices: bool = False
    """Every device allowed (HostConfig.Privileged); otherwise only Docker's default
    devices, where the backend has a device controller (v1)."""

    def validate(self) -> None:
        """Check the values the way Docker's daemon does.

        Raises:
            InvalidArgument: a value is out of range or the combination is impossible;
                the message is Docker's where Docker has one.
        """
        if self.memory is not None and self.memory < 0:
            raise InvalidArgument(f"invalid memory limit {self.memory}: must not be negative")
        if self.memory and self.memory < MIN_MEMORY_BYTES:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        if self.memory_swap is not None and self.memory_swap < -1:
            raise InvalidArgument(f"invalid memory+swap limit {self.memory_swap}")
        if self.memory_swap is not None and self.memory_swap > 0:
            if not self.memory:
                raise InvalidArgument(
                    "You should always set the Memory limit when using Memoryswap limit"
                )
            if self.memory_swap < self.memory:
                raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit")
        if self.nano_cpus is not None and self.nano_cpus < 0:
            raise InvalidArgument(f"invalid NanoCpus {self.nano_cpus}: must not be negative")
        if self.nano_cpus and self.cfs_quota_us() < _MIN_CFS_QUOTA_US:
            raise InvalidArgument(f"invalid NanoCpus {self.nano_cpus}: the minimum is 0.01 CPU")
        if self.cpu_shares is not None and self.cpu_shares < 0:
            raise InvalidArgument(f"invalid CPU shares {self.cpu_shares}: must not be negative")

    def cfs_quota_us(self) -> int:
        """The CFS quota in microseconds per ``CPU_PERIOD_US`` for ``nano_cpus``; -1 = none."""
        if not self.nano_cpus:
            return -1
        return self.nano_cpus * CPU_PERIOD_US // _NANO_CPUS_PER_CPU

    def memory_and_swap_bytes(self) -> int:
        """Docker's effective memory+swap limit in bytes; -1 = unlimited."""
        if not self.memory or self.memory_swap == -1:
            return -1
        if self.memory_swap:
            return self.memory_swap
        return 2 * self.memory

    def limits_pids(self) -> bool:
        return self.pids_limit is not None and self.pids_limit > 0

    def controllers_needed(self) -> set[str]:
        """The controllers that must be present for the limits that are set."""
        needed = set()
        if self.memory:
            needed.add("memory")
        if self.nano_cpus or self.cpu_shares:
            needed.add("cpu")
        if self.limits_pids():
            needed.add("pids")
        return needed

    def refuse_unless_available(self, controllers: Collection[str], where: str) -> None:
        """Check that every controller a set limit needs is in ``controllers``.

        Raises:
            InvalidArgument: one is missing; ``where`` says where it was looked for.
        """
        missing = sorted(self.controllers_needed() - set(controllers))
        if missing:
            raise InvalidArgument(
                f"cannot set a {missing[0]} limit: the {missing[0]} controller is not"
                f" available {where}"
            )


@dataclass(frozen=True)
class Usage:
    """What a container's cgroup has used, read once from its interface files (``stats``).

    Bytes, nanoseconds and counts; a limit of 0 means none is set.
    """

    memory_usage: int = 0
    memory_max_usage: int = 0
    memory_limit: int = 0
    memory_stat: dict[str, int] | None = None
    cpu_total_ns: int = 0
    cpu_user_ns: int = 0
    cpu_system_ns: int = 0
    pids_current: int = 0
    pids_limit: int = 0


class KernelOps:
    """The kernel actions of a manager other than reading and writing interface files.

    Each method raises ``OSError`` as the system call does; the managers map it.
    Tests subclass this to emulate cgroupfs (a new cgroup directory comes with its
    interface files) in a temporary directory and to record kills.
    """

    def make_directory(self, path: Path) -> None:
        os.mkdir(path)

    def remove_directory(self, path: Path) -> None:
        os.rmdir(path)

    def kill_process(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)


class CgroupManager(Protocol):
    """One backend (v1 or v2) managing the cgroups below one parent.

    Every method that takes a container id raises ``InvalidArgument`` when the id
    cannot be a single cgroup directory name.
    """

    version: int
    """1 or 2."""
    driver: str
    """Docker's CgroupDriver: always "cgroupfs"."""
    parent: str
    """The parent cgroup, relative to each hierarchy's root."""

    def create(self, container_id: str, resources: Resources) -> None:
        """Make the container's cgroup (idempotent) and write every limit in ``resources``.

        Raises:
            InvalidArgument: invalid resources, or a limit for a controller the host lacks.
            PycontainError: a directory or interface file could not be made or written.
        """
        ...

    def join_files(self, container_id: str) -> list[str]:
        """The files a process writes "0" to, to move itself into the container's cgroup."""
        ...

    def pids(self, container_id: str) -> list[int]:
        """Host pids in the container's cgroup and its descendants, sorted.

        Raises:
            NotFound: the cgroup does not exist.
        """
        ...

    def freeze(self, container_id: str) -> None:
        """Freeze every process of the container and wait until the kernel says frozen.

        Raises:
            NotFound: the cgroup does not exist.
            PycontainError: no freezer, or the cgroup did not freeze in time (it is thawed again).
        """
        ...

    def thaw(self, container_id: str) -> None:
        """Undo ``freeze`` and wait until the kernel says thawed.

        Raises:
            NotFound: the cgroup does not exist.
            PycontainError: no freezer, or the cgroup did not thaw in time.
        """
        ...

    def is_frozen(self, container_id: str) -> bool:
        """Whether the kernel reports the cgroup frozen (False without a freezer).

        Raises:
            NotFound: the cgroup does not exist.
        """
        ...

    def oom_kill_count(self, container_id: str) -> int:
        """How many processes the OOM killer killed in the cgroup (0 where not reported).

        Raises:
            NotFound: the cgroup does not exist.
        """
        ...

    def usage(self, container_id: str) -> Usage:
        """Memory, CPU time and pids the cgroup uses now (a controller the host lacks
        reads as 0).

        Raises:
            NotFound: the cgroup does not exist.
        """
        ...

    def read_limits(self, container_id: str) -> dict[str, str]:
        """The raw values of the limit files, keyed by file name (for tests and inspect).

        Raises:
            NotFound: the cgroup does not exist.
        """
        ...

    def destroy(self, container_id: str) -> None:
        """SIGKILL whatever still runs in the cgroup, then remove its directories.

        No error when the cgroup does not exist.

        Raises:
            PycontainError: a directory is still busy when the timeout ends.
        """
        ...

    def list_ids(self) -> list[str]:
        """The container cgroups under the parent (for cleanup at daemon start), sorted."""
        ...

    def remove_parent(self) -> None:
        """Remove the parent cgroup itself (tests, uninstall); no error when absent.

        Only the last component of a nested parent is removed.

        Raises:
            Conflict: container cgroups still exist under the parent.
            PycontainError: the directory could not be removed.
        """
        ...


def validate_container_id(container_id: str) -> str:
    """Return ``container_id`` if it can name one cgroup directory.

    Raises:
        InvalidArgument: empty, ".", "..", or it holds "/" or a NUL byte.
    """
    if container_id in ("", ".", "..") or "/" in container_id or "\0" in container_id:
        raise InvalidArgument(f"invalid container id for a cgroup name: {container_id!r}")
    return container_id


def validate_cgroup_parent(parent: str) -> str:
    """Normalise a cgroup parent ("/a/b/" -> "a/b") and check it stays inside the hierarchy.

    Raises:
        InvalidArgument: empty, or a component is "." or "..", or it holds a NUL byte.
    """
    parts = [part for part in parent.split("/") if part]
    if not parts or any(part in (".", "..") or "\0" in part for part in parts):
        raise InvalidArgument(f"invalid cgroup parent: {parent!r}")
    return "/".join(parts)
