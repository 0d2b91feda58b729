"""The cgroup v2 (unified hierarchy) backend.

A container's cgroup is ``<root>/<parent>/<container_id>``.  The controllers the
limits need (memory, cpu, pids) are enabled in ``cgroup.subtree_control`` of
every level from the root down to the parent, as far as each level offers them.
Under systemd delegation (``delegation.py``) the parent lies inside the delegated
cgroup, ``<root>/<delegated>/<parent>``, and nothing above ``<delegated>`` is written.
"""

from __future__ import annotations

from pathlib import Path

from pycontain.cgroups import _cgroupfs as fs
from pycontain.cgroups.base import (
    CPU_PERIOD_US,
    KernelOps,
    Resources,
    Usage,
    validate_cgroup_parent,
    validate_container_id,
)
from pycontain.errors import NotFound, PycontainError

__all__ = ["WANTED_CONTROLLERS", "CgroupV2Manager", "cpu_weight_from_shares"]

WANTED_CONTROLLERS = ("memory", "cpu", "pids")
"""Controllers enabled for container cgroups when the hierarchy offers them."""

_LIMIT_FILES = ("memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max")

_MIN_CPU_SHARES = 2
_MAX_CPU_SHARES = 262_144
_MAX_CPU_WEIGHT = 10_000


def cpu_weight_from_shares(shares: int) -> int:
    """Map v1 ``cpu.shares`` [2, 262144] linearly onto v2 ``cpu.weight`` [1, 10000], as runc does.

    Out-of-range shares are clamped first, as the v1 kernel clamps them; so the
    default 1024 shares give weight 39, not the v2 default 100.
    """
    clamped = min(max(shares, _MIN_CPU_SHARES), _MAX_CPU_SHARES)
    span = _MAX_CPU_SHARES - _MIN_CPU_SHARES
    return 1 + (clamped - _MIN_CPU_SHARES) * (_MAX_CPU_WEIGHT - 1) // span


class CgroupV2Manager:
    """Container cgroups below ``<root>/<parent>`` on a unified (v2) hierarchy.

    ``root`` is the cgroup2 mount point (``/sys/fs/cgroup`` on a v2 host; a
    temporary fake tree in unit tests).  ``delegated``, the cgroup systemd
    delegated to the daemon (relative to ``root``), puts the parent inside it.
    ``timeout`` bounds, in seconds, each wait for the kernel: freezing, thawing
    and the removal of a busy cgroup.

    Raises (constructor):
        InvalidArgument: ``parent`` is not a relative cgroup path.
    """

    version = 2
    driver = "cgroupfs"

    def __init__(
        self,
        root: Path,
        parent: str = "pycontain",
        *,
        ops: KernelOps | None = None,
        timeout: float = 5.0,
        delegated: str | None = None,
    ) -> None:
        self.root = root
        self.delegated = validate_cgroup_parent(delegated) if delegated else ""
        parent = validate_cgroup_parent(parent)
        self.parent = f"{self.delegated}/{parent}" if self.delegated else parent
        self.ops = ops or KernelOps()
        self.timeout = timeout

    @property
    def parent_path(self) -> Path:
        return self.root / self.parent

    def cgroup_path(self, container_id: str) -> Path:
        """``<root>/<parent>/<container_id>``.

        Raises:
            InvalidArgument: the id cannot name a cgroup directory.
        """
        return self.parent_path / validate_container_id(container_id)

    def create(self, container_id: str, resources: Resources) -> None:
        """See ``CgroupManager.create``.

        Raises:
            InvalidArgument: invalid resources, or a limit for a controller the parent lacks.
            NotFound: ``root`` does not exist.
            PycontainError: a directory or file could not be made or written.
        """
        resources.validate()
        cgroup = self.cgroup_path(container_id)
        available = self.make_parent()
        resources.refuse_unless_available(available, f"in {self.parent_path}")
        with fs.removed_on_error(self, container_id, new=not cgroup.is_dir()):
            fs.make_cgroup_dirs(self.ops, self.parent_path, container_id)
            if "memory" in available:
                self.apply_memory_limit(cgroup, resources)
            if "cpu" in available:
                self.apply_cpu_limit(cgroup, resources)
            if "pids" in available:
                self.apply_pids_limit(cgroup, resources)

    def make_parent(self) -> set[str]:
        """Make the parent cgroup level by level, enabling ``WANTED_CONTROLLERS`` on the way.

        Each level's cgroup.subtree_control gets the wanted controllers its
        cgroup.controllers offers before the next level is made, from the root,
        or from the delegated cgroup when there is one.  Returns the controllers
        the container cgroups get.

        Raises:
            NotFound, PycontainError: a level could not be made, or a cgroup.controllers or
                cgroup.subtree_control file read or written (EBUSY: a level has processes).
        """
        available = set(WANTED_CONTROLLERS)
        level = self.root / self.delegated if self.delegated else self.root
        below = self.parent.removeprefix(self.delegated).strip("/")
        for child in [*below.split("/"), None]:
            available &= set(fs.read_file(level / "cgroup.controllers").split())
            subtree_control = level / "cgroup.subtree_control"
            missing = sorted(available - set(fs.read_file(subtree_control).split()))
            if missing:
                fs.write_file(subtree_control, " ".join(f"+{name}" for name in missing))
            if child is not None:
                level = fs.make_cgroup_dirs(self.ops, level, child)
        return available

    def apply_memory_limit(self, cgroup: Path, resources: Resources) -> None:
        """Write memory.max and, with swap accounting, memory.swap.max (swap beyond memory).

        Raises:
            InvalidArgument: the kernel refused a value.
            PycontainError: a write failed.
        """
        fs.write_file(cgroup / "memory.max", str(resources.memory) if resources.memory else "max")
        swap_max = cgroup / "memory.swap.max"
        if swap_max.exists():
            total = resources.memory_and_swap_bytes()
            memory = resources.memory or 0
            fs.write_file(swap_max, "max" if total == -1 else str(total - memory))

    def apply_cpu_limit(self, cgroup: Path, resources: Resources) -> None:
        """Write cpu.max ("<quota> <period>") and cpu.weight (converted from shares).

        Raises:
            InvalidArgument: the kernel refused a value.
            PycontainError: a write failed.
        """
        quota = resources.cfs_quota_us()
        fs.write_file(cgroup / "cpu.max", f"{'max' if quota == -1 else quota} {CPU_PERIOD_US}")
        shares = resources.cpu_shares
        fs.write_file(cgroup / "cpu.weight", str(cpu_weight_from_shares(shares) if shares else 100))

    def apply_pids_limit(self, cgroup: Path, resources: Resources) -> None:
        """Write pids.max.

        Raises:
            InvalidArgument: the kernel refused a value.
            PycontainError: a write failed.
        """
        limit = str(resources.pids_limit) if resources.limits_pids() else "max"
        fs.write_file(cgroup / "pids.max", limit)

    def join_files(self, container_id: str) -> list[str]:
        return [str(self.cgroup_path(container_id) / "cgroup.procs")]

    def pids(self, container_id: str) -> list[int]:
        cgroup = self.existing_cgroup(container_id)
        return fs.pids_below([cgroup])

    def freeze(self, container_id: str) -> None:
        """See ``CgroupManager.freeze``; waits for "frozen 1" in cgroup.events."""
        self.set_frozen(container_id, frozen=True)

    def thaw(self, container_id: str) -> None:
        """See ``CgroupManager.thaw``; waits for "frozen 0" in cgroup.events."""
        self.set_frozen(container_id, frozen=False)

    def set_frozen(self, container_id: str, frozen: bool) -> None:
        """Write cgroup.freeze and wait until cgroup.events agrees.

        Raises:
            NotFound: the cgroup does not exist.
            PycontainError: the kernel did not settle within ``timeout`` (a failed
                freeze is undone before raising).
        """
        cgroup = self.existing_cgroup(container_id)
        wanted = "1" if frozen else "0"
        fs.write_file(cgroup / "cgroup.freeze", wanted)
        events = cgroup / "cgroup.events"
        if fs.wait_until(lambda: fs.read_flat_keyed(events).get("frozen") == wanted, self.timeout):
            return
        if frozen:
            fs.write_file(cgroup / "cgroup.freeze", "0")
        operation = "freeze" if frozen else "thaw"
        raise PycontainError(
            f"{operation} {cgroup}: {events} did not report frozen {wanted}"
            f" within {self.timeout:g} s"
        )

    def is_frozen(self, container_id: str) -> bool:
        events = self.existing_cgroup(container_id) / "cgroup.events"
        return fs.read_flat_keyed(events).get("frozen") == "1"

    def oom_kill_count(self, container_id: str) -> int:
        memory_events = self.existing_cgroup(container_id) / "memory.events"
        if not memory_events.exists():
            return 0
        return fs.read_counter(memory_events, "oom_kill")

    def usage(self, container_id: str) -> Usage:
        """See ``CgroupManager.usage``: memory.current, cpu.stat, pids.current."""
        cgroup = self.existing_cgroup(container_id)
        cpu = fs.read_usage_numbers(cgroup / "cpu.stat")
        return Usage(
            memory_usage=fs.read_usage_number(cgroup / "memory.current"),
            memory_max_usage=fs.read_usage_number(cgroup / "memory.peak"),
            memory_limit=fs.read_usage_number(cgroup / "memory.max"),
            memory_stat=fs.read_usage_numbers(cgroup / "memory.stat"),
            cpu_total_ns=cpu.get("usage_usec", 0) * 1000,
            cpu_user_ns=cpu.get("user_usec", 0) * 1000,
            cpu_system_ns=cpu.get("system_usec", 0) * 1000,
            pids_current=fs.read_usage_number(cgroup / "pids.current"),
            pids_limit=fs.read_usage_number(cgroup / "pids.max"),
        )

    def read_limits(self, container_id: str) -> dict[str, str]:
        cgroup = self.existing_cgroup(container_id)
        return {
            name: fs.read_file(cgroup / name) for name in _LIMIT_FILES if (cgroup / name).exists()
        }

    def destroy(self, container_id: str) -> None:
        """See ``CgroupManager.destroy``; uses cgroup.kill where the kernel has it (5.14+)."""
        cgroup = self.cgroup_path(container_id)
        if not cgroup.is_dir():
            return

        def kill_leftovers() -> None:
            if not fs.write_if_present(cgroup / "cgroup.kill", "1"):
                fs.kill_pids(self.ops, fs.pids_below([cgroup]))

        kill_leftovers()
        fs.remove_cgroup_trees(self.ops, [cgroup], kill_leftovers, self.timeout)

    def list_ids(self) -> list[str]:
        return fs.child_cgroup_names([self.parent_path])

    def remove_parent(self) -> None:
        """See ``CgroupManager.remove_parent``.

        Raises:
            Conflict: container cgroups still exist under the parent.
            PycontainError: rmdir failed.
        """
        fs.remove_parent_cgroups(self.ops, [self.parent_path])

    def existing_cgroup(self, container_id: str) -> Path:
        """The container's cgroup directory.

        Raises:
            InvalidArgument: the id cannot name a cgroup directory.
            NotFound: the cgroup does not exist.
        """
        cgroup = self.cgroup_path(container_id)
        if not cgroup.is_dir():
            raise NotFound(f"no cgroup {cgroup}")
        return cgroup
