"""detect_cgroup_version and open_cgroup_manager on sample mountinfo files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycontain.cgroups import CgroupV1Manager, CgroupV2Manager, detect_cgroup_version
from pycontain.cgroups.detect import (
    find_v1_controller_mounts,
    open_cgroup_manager,
    parse_mountinfo,
)
from pycontain.errors import PycontainError

ROOT_AND_PROC = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
"""

UNIFIED = ROOT_AND_PROC + (
    "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4"
    " - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
)

HYBRID = (
    ROOT_AND_PROC
    + """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
)

CO_MOUNTED = (
    ROOT_AND_PROC
    + """\
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 22 0:32 /docker/abc /mnt/memory\\040copy rw - cgroup cgroup rw,memory
"""
)


def write_mountinfo(tmp_path: Path, text: str) -> Path:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(text)
    return mountinfo


def test_a_cgroup2_mount_at_sys_fs_cgroup_is_v2() -> None:
    assert detect_cgroup_version(parse_mountinfo(UNIFIED)) == 2


def test_a_hybrid_host_with_an_empty_unified_mount_is_v1() -> None:
    assert detect_cgroup_version(parse_mountinfo(HYBRID)) == 1
    assert find_v1_controller_mounts(parse_mountinfo(HYBRID)) == {
        "cpu": Path("/sys/fs/cgroup/cpu"),
        "cpuacct": Path("/sys/fs/cgroup/cpuacct"),
        "memory": Path("/sys/fs/cgroup/memory"),
        "freezer": Path("/sys/fs/cgroup/freezer"),
        "pids": Path("/sys/fs/cgroup/pids"),
    }


def test_co_mounted_controllers_share_the_first_mount_point() -> None:
    mounts = find_v1_controller_mounts(parse_mountinfo(CO_MOUNTED))

    assert mounts == {
        "cpu": Path("/sys/fs/cgroup/cpu,cpuacct"),
        "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct"),
        "memory": Path("/sys/fs/cgroup/memory"),
    }


def test_mount_points_are_unescaped() -> None:
    entries = parse_mountinfo(CO_MOUNTED)

    assert entries[-1].mount_point == Path("/mnt/memory copy")


def test_the_last_mount_stacked_on_sys_fs_cgroup_decides() -> None:
    covered = UNIFIED + "50 30 0:40 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"

    with pytest.raises(PycontainError, match="no cgroup2 mount at /sys/fs/cgroup"):
        detect_cgroup_version(parse_mountinfo(covered))


def test_no_cgroup_mount_at_all_is_an_error() -> None:
    with pytest.raises(PycontainError, match="no cgroup v1 controller mounted"):
        detect_cgroup_version(parse_mountinfo(ROOT_AND_PROC))


def test_a_malformed_line_is_an_error() -> None:
    with pytest.raises(PycontainError, match="parse mountinfo: malformed line"):
        parse_mountinfo("22 1 8:1 / / rw\n")


def test_an_unreadable_mountinfo_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PycontainError, match=r"read .*/absent: No such file"):
        open_cgroup_manager(mountinfo=tmp_path / "absent")


def test_open_cgroup_manager_builds_the_v2_backend(tmp_path: Path) -> None:
    mountinfo = write_mountinfo(tmp_path, UNIFIED.replace("/sys/fs/cgroup", str(tmp_path)))

    manager = open_cgroup_manager("p", mountinfo=mountinfo, cgroup_mount_point=tmp_path)

    assert isinstance(manager, CgroupV2Manager)
    assert (manager.version, manager.driver, manager.parent) == (2, "cgroupfs", "p")
    assert manager.join_files("c") == [str(tmp_path / "p/c/cgroup.procs")]


def test_open_cgroup_manager_builds_the_v1_backend(tmp_path: Path) -> None:
    manager = open_cgroup_manager("/p/", mountinfo=write_mountinfo(tmp_path, CO_MOUNTED))

    assert isinstance(manager, CgroupV1Manager)
    assert (manager.version, manager.parent) == (1, "p")
    assert manager.join_files("c") == [
        "/sys/fs/cgroup/cpu,cpuacct/p/c/cgroup.procs",
        "/sys/fs/cgroup/memory/p/c/cgroup.procs",
    ]
