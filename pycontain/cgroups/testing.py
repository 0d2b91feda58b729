"""A fake cgroupfs in an ordinary directory, for tests that have no root.

``FakeCgroupfs`` is the ``KernelOps`` of a manager whose hierarchies live in a
temporary directory.  It does what the kernel does that a plain directory does
not: a new cgroup comes with its interface files (on v2 only those of the
controllers the parent enables), rmdir refuses while processes or child cgroups
remain and then removes the interface files too, and SIGKILL takes the pid out
of every cgroup.procs.  Kills are recorded instead of sent.  It does not react to
writes: a test that freezes sets cgroup.events or freezer.state itself.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from pycontain.cgroups.base import KernelOps

__all__ = ["V1_FILES", "V2_FILES", "FakeCgroupfs"]

_UNLIMITED_V1_BYTES = "9223372036854771712"

V2_FILES = {
    "cgroup.procs": "",
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "memory.max": "max\n",
    "memory.swap.max": "max\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "cpu.max": "max 100000\n",
    "cpu.weight": "100\n",
    "pids.max": "max\n",
}
"""Interface files of a new v2 cgroup and their initial content."""

V1_FILES = {
    "memory": {
        "memory.limit_in_bytes": _UNLIMITED_V1_BYTES + "\n",
        "memory.memsw.limit_in_bytes": _UNLIMITED_V1_BYTES + "\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    },
    "cpu": {"cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n", "cpu.shares": "1024\n"},
    "cpuacct": {"cpuacct.usage": "0\n"},
    "pids": {"pids.max": "max\n"},
    "freezer": {"freezer.state": "THAWED\n"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
}
"""Interface files of a new v1 cgroup, per controller, and their initial content."""

_V1_COMMON_FILES = {"cgroup.procs": "", "tasks": ""}


@dataclass
class _Hierarchy:
    mount: Path
    unified: bool
    files: dict[str, str]


class FakeCgroupfs(KernelOps):
    """The kernel side of fake hierarchies made with ``add_v1_hierarchy``, ``add_v2_hierarchy``."""

    def __init__(self) -> None:
        self.hierarchies: list[_Hierarchy] = []
        self.killed: list[int] = []

    def add_v2_hierarchy(
        self, mount: Path, controllers: tuple[str, ...] = ("cpu", "memory", "pids")
    ) -> Path:
        """Make a fake cgroup2 root at ``mount`` offering ``controllers``; return ``mount``."""
        mount.mkdir(parents=True, exist_ok=True)
        (mount / "cgroup.procs").write_text("")
        (mount / "cgroup.controllers").write_text(" ".join(controllers) + "\n")
        (mount / "cgroup.subtree_control").write_text("")
        self.hierarchies.append(_Hierarchy(mount, unified=True, files=dict(V2_FILES)))
        return mount

    def add_v1_hierarchy(self, mount: Path, controllers: tuple[str, ...]) -> Path:
        """Make a fake v1 hierarchy at ``mount``, ``controllers`` co-mounted; return ``mount``."""
        files = dict(_V1_COMMON_FILES)
        for controller in controllers:
            files.update(V1_FILES.get(controller, {}))
        mount.mkdir(parents=True, exist_ok=True)
        self._write_files(mount, files)
        self.hierarchies.append(_Hierarchy(mount, unified=False, files=files))
        return mount

    def add_process(self, cgroup: Path, pid: int) -> None:
        """Pretend ``pid`` runs in ``cgroup``."""
        with open(cgroup / "cgroup.procs", "a") as f:
            f.write(f"{pid}\n")

    def make_directory(self, path: Path) -> None:
        hierarchy = self._hierarchy_of(path)
        os.mkdir(path)
        if not hierarchy.unified:
            self._write_files(path, hierarchy.files)
            return
        enabled = (path.parent / "cgroup.subtree_control").read_text().split()
        controllers = [token.lstrip("+") for token in enabled]
        files = {
            name: content
            for name, content in hierarchy.files.items()
            if name.split(".")[0] in ("cgroup", *controllers)
        }
        files["cgroup.controllers"] = " ".join(controllers) + "\n"
        self._write_files(path, files)

    def remove_directory(self, path: Path) -> None:
        if not path.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        procs = (path / "cgroup.procs").read_text().split()
        kill_file = path / "cgroup.kill"
        if procs and kill_file.exists() and kill_file.read_text().strip() == "1":
            self.killed.extend(int(pid) for pid in procs)
            procs = []
        if procs or any(entry.is_dir() for entry in path.iterdir()):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        for entry in path.iterdir():
            entry.unlink()
        os.rmdir(path)

    def kill_process(self, pid: int) -> None:
        self.killed.append(pid)
        for hierarchy in self.hierarchies:
            for procs_file in hierarchy.mount.rglob("cgroup.procs"):
                remaining = [line for line in procs_file.read_text().split() if line != str(pid)]
                procs_file.write_text("".join(f"{line}\n" for line in remaining))

    def _hierarchy_of(self, path: Path) -> _Hierarchy:
        for hierarchy in self.hierarchies:
            if path.is_relative_to(hierarchy.mount):
                return hierarchy
        raise FileNotFoundError(errno.ENOENT, "not below a fake cgroup hierarchy", str(path))

    @staticmethod
    def _write_files(directory: Path, files: dict[str, str]) -> None:
        for name, content in files.items():
            (directory / name).write_text(content)
