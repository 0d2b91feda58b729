"""The daemon's cgroup under systemd delegation (cgroups/delegation.py), on a fake v2 tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pycontain.cgroups import CgroupV2Manager, Resources, open_cgroup_manager
from pycontain.cgroups.delegation import (
    DAEMON_LEAF,
    delegated_unit_cgroup,
    enter_daemon_leaf,
    enter_delegated_subtree,
    own_v2_cgroup,
)
from pycontain.cgroups.testing import FakeCgroupfs
from pycontain.errors import PycontainError

UNIT = "system.slice/pycontaind.service"


def test_own_cgroup_is_the_v2_line() -> None:
    text = "12:pids:/x\n0::/system.slice/pycontaind.service\n"
    assert own_v2_cgroup(text) == UNIT
    with pytest.raises(PycontainError, match="no cgroup v2"):
        own_v2_cgroup("4:memory:/x\n")


def test_the_delegated_cgroup_is_the_one_above_our_leaf(tmp_path: Path) -> None:
    def marked(path: Path) -> bool:
        return path == tmp_path / UNIT

    # systemd < 254 starts us in the unit's cgroup itself: no delegation (see delegation.py)
    assert delegated_unit_cgroup(UNIT, tmp_path, marked) is None
    assert delegated_unit_cgroup(f"{UNIT}/{DAEMON_LEAF}", tmp_path, marked) == UNIT
    assert delegated_unit_cgroup(f"{UNIT}/other", tmp_path, marked) is None
    assert delegated_unit_cgroup("user.slice/session-1.scope", tmp_path, marked) is None
    assert delegated_unit_cgroup("", tmp_path, lambda path: True) is None


def fake_v2_host(tmp_path: Path, kernel: FakeCgroupfs) -> tuple[Path, Path]:
    root = kernel.add_v2_hierarchy(tmp_path / "cgroup", ("cpu", "memory", "pids"))
    for part in ("system.slice", UNIT):
        (root / part).mkdir()
        for name in ("cgroup.procs", "cgroup.subtree_control"):
            (root / part / name).write_text("")
        (root / part / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / UNIT / "cgroup.procs").write_text(f"{os.getpid()}\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"30 1 0:26 / {root} rw - cgroup2 cgroup2 rw\n")
    return root, mountinfo


def test_enter_moves_this_process_into_the_leaf(tmp_path: Path) -> None:
    kernel = FakeCgroupfs()
    root, _ = fake_v2_host(tmp_path, kernel)
    leaf = enter_daemon_leaf(root, UNIT, kernel)
    assert leaf == root / UNIT / DAEMON_LEAF
    assert (leaf / "cgroup.procs").read_text().split() == [str(os.getpid())]


def test_enter_delegated_subtree_only_when_started_by_systemd(tmp_path: Path) -> None:
    kernel = FakeCgroupfs()
    root, mountinfo = fake_v2_host(tmp_path, kernel)
    proc_self_cgroup = tmp_path / "cgroup-of-self"
    proc_self_cgroup.write_text(f"0::/{UNIT}/{DAEMON_LEAF}\n")

    def enter(environ: dict[str, str]) -> str | None:
        return enter_delegated_subtree(
            environ, mountinfo=mountinfo, cgroup_mount_point=root,
            proc_self_cgroup=proc_self_cgroup, is_delegated=lambda p: p == root / UNIT,
            ops=kernel)

    assert enter({}) is None
    assert not (root / UNIT / DAEMON_LEAF).exists()
    assert enter({"INVOCATION_ID": "abc"}) == UNIT  # gathers the unit's processes in the leaf
    assert (root / UNIT / DAEMON_LEAF / "cgroup.procs").read_text().strip() == str(os.getpid())
    proc_self_cgroup.write_text(f"0::/{UNIT}\n")  # an older systemd: left alone
    assert enter({"INVOCATION_ID": "abc"}) is None


def test_v1_hosts_are_left_alone(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("30 1 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    assert enter_delegated_subtree({"INVOCATION_ID": "abc"}, mountinfo=mountinfo,
                                   cgroup_mount_point=tmp_path / "none",
                                   is_delegated=lambda p: True) is None


def test_a_delegated_manager_enables_controllers_from_the_unit_down(tmp_path: Path) -> None:
    kernel = FakeCgroupfs()
    root, mountinfo = fake_v2_host(tmp_path, kernel)
    manager = open_cgroup_manager("pycontain", mountinfo=mountinfo, cgroup_mount_point=root,
                                  ops=kernel, delegated=UNIT)
    assert isinstance(manager, CgroupV2Manager)
    assert manager.parent == f"{UNIT}/pycontain"
    manager.create("c1", Resources(memory=64 * 1024 * 1024, pids_limit=5))

    assert (root / UNIT / "pycontain" / "c1" / "memory.max").read_text().strip() == "67108864"
    written = (root / UNIT / "cgroup.subtree_control").read_text().split()
    assert {name.lstrip("+") for name in written} == {"cpu", "memory", "pids"}
    # Nothing above the delegated cgroup is written.
    assert (root / "system.slice" / "cgroup.subtree_control").read_text() == ""
    assert (root / "cgroup.subtree_control").read_text().strip() in ("", "cpu memory pids")
    assert manager.list_ids() == ["c1"]
    manager.destroy("c1")
    manager.remove_parent()
    assert not (root / UNIT / "pycontain").exists()
