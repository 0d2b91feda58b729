"""The cgroup v1 (legacy and hybrid hosts) backend.

Each controller is its own hierarchy, mounted somewhere (``/sys/fs/cgroup/memory``;
co-mounted controllers share one, like ``/sys/fs/cgroup/cpu,cpuacct``).  A
container's cgroup is ``<mount>/<parent>/<container_id>`` in the hierarchy of
every managed controller; a hierarchy shared by several controllers is one
directory, made, joined and removed once.

The devices controller holds Docker's default allow-list: a device node the
container makes (mknod is allowed for every device) can be opened only if it is
one of the default devices, the ptys or tun.
"""

from __future__ import annotations

from collections.abc import Mapping
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

__all__ = ["DEFAULT_DEVICE_RULES", "MANAGED_CONTROLLERS", "CgroupV1Manager"]

_UNLIMITED_BYTES = 2**62
"""memory.limit_in_bytes at or above this is the kernel's "no limit" (page-rounded 2^63-1)."""

MANAGED_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "devices")
"""The v1 controllers a container joins, where the host mounts them."""

DEFAULT_DEVICE_RULES = (
    "c *:* m",  # mknod of any device; opening it is another matter
    "b *:* m",
    "c 1:3 rwm",  # null
    "c 1:5 rwm",  # zero
    "c 1:7 rwm",  # full
    "c 1:8 rwm",  # random
    "c 1:9 rwm",  # urandom
    "c 5:0 rwm",  # tty
    "c 5:1 rwm",  # console
    "c 5:2 rwm",  # ptmx
    "c 136:* rwm",  # the ptys of /dev/pts
    "c 10:200 rwm",  # net/tun
)
"""Docker's default device allow-list, in devices.allow syntax, written after "a" is denied."""

_UNLIMITED = "-1"
_DEFAULT_CPU_SHARES = 1024
_FROZEN = "FROZEN"
_THAWED = "THAWED"


class CgroupV1Manager:
    """Container cgroups below ``<mount>/<parent>`` in each v1 controller hierarchy.

    ``controller_mounts`` maps a controller name to the mount point of its
    hierarchy (``detect.find_v1_controller_mounts`` reads them from mountinfo;
    unit tests pass a temporary fake tree).  Controllers outside
    ``MANAGED_CONTROLLERS`` are ignored.  ``timeout`` bounds, in seconds, each
    wait for the kernel: freezing, thawing and the removal of a busy cgroup.

    Raises (constructor):
        InvalidArgument: ``parent`` is not a relative cgroup path.
    """

    version = 1
    driver = "cgroupfs"

    def __init__(
        self,
        controller_mounts: Mapping[str, Path],
        parent: str = "pycontain",
        *,
        ops: KernelOps | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.controller_mounts = {
            name: Path(mount)
            for name, mount in controller_mounts.items()
            if name in MANAGED_CONTROLLERS
        }
        self.parent = validate_cgroup_parent(parent)
        self.ops = ops or KernelOps()
        self.timeout = timeout

    def hierarchies(self) -> list[Path]:
        """The distinct mount points of the managed controllers, sorted."""
        return sorted(set(self.controller_mounts.values()))

    def parent_dirs(self) -> list[Path]:
        return [mount / self.parent for mount in self.hierarchies()]

    def controller_path(self, controller: str, container_id: str) -> Path | None:
        """The container's directory in ``controller``'s hierarchy; None if it is not mounted.

        Raises:
            InvalidArgument: the id cannot name a cgroup directory.
        """
        mount = self.controller_mounts.get(controller)
        if mount is None:
            return None
        return mount / self.parent / validate_container_id(container_id)

    def cgroup_dirs(self, container_id: str) -> list[Path]:
        """The container's directory in every managed hierarchy.

        Raises:
            InvalidArgument: the id cannot name a cgroup directory.
        """
        validate_container_id(container_id)
        return [parent_dir / container_id for parent_dir in self.parent_dirs()]

    def create(self, container_id: str, resources: Resources) -> None:
        """See ``CgroupManager.create``.

        Raises:
            InvalidArgument: invalid resources, or a limit for a controller that is not mounted.
            NotFound: a controller's mount point does not exist.
            PycontainError: a directory or file could not be made or written.
        """
        resources.validate()
        resources.refuse_unless_available(self.controller_mounts, "(cgroup v1: not mounted)")
        cgroups = self.cgroup_dirs(container_id)
        with fs.removed_on_error(self, container_id, new=not any(p.is_dir() for p in cgroups)):
            for mount in self.hierarchies():
                fs.make_cgroup_dirs(self.ops, mount, f"{self.parent}/{container_id}")
            memory = self.controller_path("memory", container_id)
            if memory is not None:
                self.apply_memory_limit(memory, resources)
            cpu = self.controller_path("cpu", container_id)
            if cpu is not None:
                self.apply_cpu_limit(cpu, resources)
            pids = self.controller_path("pids", container_id)
            if pids is not None:
                self.apply_pids_limit(pids, resources)
            devices = self.controller_path("devices", container_id)
            if devices is not None:
                self.apply_device_rules(devices, resources)

    def apply_memory_limit(self, cgroup: Path, resources: Resources) -> None:
        """Write memory.limit_in_bytes and, with swap accounting, memory.memsw.limit_in_bytes.

        The kernel keeps memsw >= memory at every moment, so when the memory+swap
        limit grows it is written first, otherwise last.

        Raises:
            InvalidArgument: the kernel refused a value.
            PycontainError: a write failed.
        """
        memory_file = cgroup / "memory.limit_in_bytes"
        memory = str(resources.memory) if resources.memory else _UNLIMITED
        memsw_file = cgroup / "memory.memsw.limit_in_bytes"
        if not memsw_file.exists():
            fs.write_file(memory_file, memory)
            return
        memsw_limit = resources.memory_and_swap_bytes()
        memsw = str(memsw_limit)
        if memsw_limit == -1 or memsw_limit > int(fs.read_file(memsw_file)):
            fs.write_file(memsw_file, memsw)
            fs.write_file(memory_file, memory)
        else:
            fs.write_file(memory_file, memory)
            fs.write_file(memsw_file, memsw)

    def apply_cpu_limit(self, cgroup: Path, resources: Resources) -> None:
        """Write cpu.cfs_period_us, cpu.cfs_quota_us and cpu.shares.

        Raises:
            InvalidArgument: the kernel refused a value.
            PycontainError: a write failed.
        """
        fs.write_file(cgroup / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        fs.write_file(cgroup / "cpu.cfs_quota_us", str(resources.cfs_quota_us()))
        shares = resources.cpu_shares or _DEFAULT_CPU_SHARES
        fs.write_file(cgroup / "cpu.shares", str(shares))

    def apply_pids_limit(self, cgroup: Path, resources: Resources) -> None:
        """Write pids.max.

        Raises:
            InvalidArgument: the kernel refused the value.
            PycontainError: the write failed.
        """
        limit = str(resources.pids_limit) if resources.limits_pids() else "max"
        fs.write_file(cgroup / "pids.max", limit)

    def apply_device_rules(self, cgroup: Path, resources: Resources) -> None:
        """Allow every device (``all_devices``), or deny all and allow the default list.

        The kernel takes one rule per write; "a" clears the list and sets the default.

        Raises:
            InvalidArgument: the kernel refused a rule.
            PycontainError: a write failed (EPERM: the parent cgroup denies that device).
        """
        if resources.all_devices:
            fs.write_file(cgroup / "devices.allow", "a")
            return
        fs.write_file(cgroup / "devices.deny", "a")
        for rule in DEFAULT_DEVICE_RULES:
            fs.write_file(cgroup / "devices.allow", rule)

    def join_files(self, container_id: str) -> list[str]:
        return [str(cgroup / "cgroup.procs") for cgroup in self.cgroup_dirs(container_id)]

    def pids(self, container_id: str) -> list[int]:
        """See ``CgroupManager.pids``: the union over every managed hierarchy."""
        return fs.pids_below(self.existing_cgroup_dirs(container_id))

    def freeze(self, container_id: str) -> None:
        """See ``CgroupManager.freeze``; FREEZING is retried until freezer.state says FROZEN."""
        self.set_freezer_state(container_id, _FROZEN)

    def thaw(self, container_id: str) -> None:
        """See ``CgroupManager.thaw``."""
        self.set_freezer_state(container_id, _THAWED)

    def set_freezer_state(self, container_id: str, wanted: str) -> None:
        """Write ``wanted`` to freezer.state until the kernel reads it back.

        Writing again while the state reads FREEZING retries the freeze of tasks
        that were busy in the kernel the first time.

        Raises:
            NotFound: the cgroup does not exist.
            PycontainError: no freezer hierarchy, or the state did not settle within
                ``timeout`` (a failed freeze is undone before raising).
        """
        state_file = self.freezer_path(container_id) / "freezer.state"

        def settled() -> bool:
            fs.write_file(state_file, wanted)
            return fs.read_file(state_file) == wanted

        if fs.wait_until(settled, self.timeout):
            return
        last_state = fs.read_file(state_file)
        if wanted == _FROZEN:
            fs.write_file(state_file, _THAWED)
        raise PycontainError(
            f"write {state_file}: still {last_state!r} instead of {wanted} after {self.timeout:g} s"
        )

    def is_frozen(self, container_id: str) -> bool:
        if "freezer" not in self.controller_mounts:
            self.existing_cgroup_dirs(container_id)
            return False
        return fs.read_file(self.freezer_path(container_id) / "freezer.state") == _FROZEN

    def freezer_path(self, container_id: str) -> Path:
        """The container's freezer cgroup.

        Raises:
            NotFound: it does not exist.
            PycontainError: the freezer controller is not mounted.
        """
        cgroup = self.controller_path("freezer", container_id)
        if cgroup is None:
            raise PycontainError("cannot freeze: the freezer cgroup v1 controller is not mounted")
        if not cgroup.is_dir():
            raise NotFound(f"no cgroup {cgroup}")
        return cgroup

    def oom_kill_count(self, container_id: str) -> int:
        """See ``CgroupManager.oom_kill_count``: "oom_kill" of memory.oom_control (Linux 4.13+)."""
        self.existing_cgroup_dirs(container_id)
        cgroup = self.controller_path("memory", container_id)
        if cgroup is None:
            return 0
        return fs.read_counter(cgroup / "memory.oom_control", "oom_kill")

    def usage(self, container_id: str) -> Usage:
        """See ``CgroupManager.usage``: memory.usage_in_bytes, cpuacct.usage, pids.current."""
        self.existing_cgroup_dirs(container_id)

        def number(controller: str, name: str) -> int:
            cgroup = self.controller_path(controller, container_id)
            return 0 if cgroup is None else fs.read_usage_number(cgroup / name)

        memory = self.controller_path("memory", container_id)
        limit = number("memory", "memory.limit_in_bytes")
        return Usage(
            memory_usage=number("memory", "memory.usage_in_bytes"),
            memory_max_usage=number("memory", "memory.max_usage_in_bytes"),
            memory_limit=0 if limit >= _UNLIMITED_BYTES else limit,
            memory_stat={} if memory is None else fs.read_usage_numbers(memory / "memory.stat"),
            cpu_total_ns=number("cpuacct", "cpuacct.usage"),
            cpu_user_ns=number("cpuacct", "cpuacct.usage_user"),
            cpu_system_ns=number("cpuacct", "cpuacct.usage_sys"),
            pids_current=number("pids", "pids.current"),
            pids_limit=number("pids", "pids.max"),
        )

    def read_limits(self, container_id: str) -> dict[str, str]:
        self.existing_cgroup_dirs(container_id)
        limit_files = {
            "memory": ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
            "cpu": ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"),
            "pids": ("pids.max",),
        }
        limits: dict[str, str] = {}
        for controller, names in limit_files.items():
            cgroup = self.controller_path(controller, container_id)
            if cgroup is None:
                continue
            for name in names:
                if (cgroup / name).exists():
                    limits[name] = fs.read_file(cgroup / name)
        return limits

    def destroy(self, container_id: str) -> None:
        """See ``CgroupManager.destroy``.

        Frozen tasks cannot die in v1, and new ones may be forked while the old
        are killed; so the cgroup is frozen, every task killed, then thawed.
        """
        cgroups = [path for path in self.cgroup_dirs(container_id) if path.is_dir()]
        if not cgroups:
            return
        freezer = self.controller_path("freezer", container_id)
        state_file = freezer / "freezer.state" if freezer is not None else None

        def kill_leftovers() -> None:
            frozen = state_file is not None and fs.write_if_present(state_file, _FROZEN)
            try:
                fs.kill_pids(self.ops, fs.pids_below(cgroups))
            finally:
                if frozen and state_file is not None:
                    fs.write_if_present(state_file, _THAWED)

        kill_leftovers()
        fs.remove_cgroup_trees(self.ops, cgroups, kill_leftovers, self.timeout)

    def list_ids(self) -> list[str]:
        return fs.child_cgroup_names(self.parent_dirs())

    def remove_parent(self) -> None:
        """See ``CgroupManager.remove_parent``: the parent in every managed hierarchy.

        Raises:
            Conflict: container cgroups still exist under the parent.
            PycontainError: rmdir failed.
        """
        fs.remove_parent_cgroups(self.ops, self.parent_dirs())

    def existing_cgroup_dirs(self, container_id: str) -> list[Path]:
        """The container's directories that exist.

        Raises:
            InvalidArgument: the id cannot name a cgroup directory.
            NotFound: none exists.
        """
        cgroups = [path for path in self.cgroup_dirs(container_id) if path.is_dir()]
        if not cgroups:
            raise NotFound(f"no cgroup {self.parent}/{container_id} in any v1 hierarchy")
        return cgroups
