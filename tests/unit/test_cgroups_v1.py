"""CgroupV1Manager against fake per-controller hierarchies in a temporary directory.

The fake host co-mounts cpu and cpuacct, as many distributions do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pycontain.cgroups import CgroupV1Manager, Resources
from pycontain.cgroups import _cgroupfs as cgroupfs
from pycontain.cgroups.testing import FakeCgroupfs
from pycontain.errors import Conflict, InvalidArgument, NotFound, PycontainError

MiB = 1024 * 1024
UNLIMITED = "9223372036854771712"
HIERARCHIES = {
    "memory": ("memory",),
    "cpu,cpuacct": ("cpu", "cpuacct"),
    "pids": ("pids",),
    "freezer": ("freezer",),
    "devices": ("devices",),
}
DEVICES = ("1:3", "1:5", "1:7", "1:8", "1:9", "5:0", "5:1", "5:2", "136:*", "10:200")
"""Docker's default devices (and the ptys and tun), all "rwm"."""


def make_manager(
    tmp_path: Path, kernel: FakeCgroupfs, hierarchies: dict[str, tuple[str, ...]] = HIERARCHIES
) -> CgroupV1Manager:
    mounts: dict[str, Path] = {}
    for directory, controllers in hierarchies.items():
        mount = kernel.add_v1_hierarchy(tmp_path / directory, controllers)
        mounts.update(dict.fromkeys(controllers, mount))
    return CgroupV1Manager(mounts, "pycontain-test", ops=kernel, timeout=0.05)


def cgroup_of(manager: CgroupV1Manager, controller: str, container_id: str = "c1") -> Path:
    path = manager.controller_path(controller, container_id)
    assert path is not None
    return path


@pytest.fixture
def kernel() -> FakeCgroupfs:
    return FakeCgroupfs()


@pytest.fixture
def manager(tmp_path: Path, kernel: FakeCgroupfs) -> CgroupV1Manager:
    return make_manager(tmp_path, kernel)


def test_create_makes_one_directory_per_hierarchy(manager: CgroupV1Manager, tmp_path: Path) -> None:
    manager.create("c1", Resources())

    assert manager.join_files("c1") == [
        str(tmp_path / hierarchy / "pycontain-test/c1/cgroup.procs")
        for hierarchy in ("cpu,cpuacct", "devices", "freezer", "memory", "pids")
    ]
    assert all(Path(path).exists() for path in manager.join_files("c1"))


def test_create_writes_every_limit(manager: CgroupV1Manager) -> None:
    manager.create(
        "c1", Resources(memory=64 * MiB, nano_cpus=500_000_000, cpu_shares=512, pids_limit=50)
    )

    assert manager.read_limits("c1") == {
        "memory.limit_in_bytes": str(64 * MiB),
        "memory.memsw.limit_in_bytes": str(128 * MiB),
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "50000",
        "cpu.shares": "512",
        "pids.max": "50",
    }


def test_create_without_limits_writes_the_defaults(manager: CgroupV1Manager) -> None:
    manager.create("c1", Resources())

    assert manager.read_limits("c1") == {
        "memory.limit_in_bytes": "-1",
        "memory.memsw.limit_in_bytes": "-1",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.shares": "1024",
        "pids.max": "max",
    }


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str]]:
    """Every interface file write, in order, after the v1 rule memsw >= memory is checked."""
    recorded: list[tuple[Path, str]] = []
    write_file = cgroupfs.write_file

    def limit(path: Path) -> int:
        text = path.read_text().strip()
        return int(UNLIMITED) if text == "-1" else int(text)

    def checked_write_file(path: Path, value: str) -> None:
        write_file(path, value)
        recorded.append((path, value))
        memsw = path.parent / "memory.memsw.limit_in_bytes"
        if path.name.startswith("memory.") and memsw.exists():
            assert limit(memsw) >= limit(path.parent / "memory.limit_in_bytes")

    monkeypatch.setattr(cgroupfs, "write_file", checked_write_file)
    return recorded


@pytest.mark.parametrize(
    ("new_memory", "expected_order"),
    [
        (256 * MiB, ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),
        (32 * MiB, ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]),
        (0, ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]),
    ],
)
def test_memsw_is_written_in_the_order_the_kernel_accepts(
    manager: CgroupV1Manager,
    writes: list[tuple[Path, str]],
    new_memory: int,
    expected_order: list[str],
) -> None:
    manager.create("c1", Resources(memory=64 * MiB, memory_swap=96 * MiB))
    writes.clear()

    manager.create("c1", Resources(memory=new_memory))

    memory_writes = [path.name for path, _ in writes if path.name.startswith("memory.")]
    assert memory_writes == expected_order


def test_without_swap_accounting_only_the_memory_limit_is_written(
    tmp_path: Path, kernel: FakeCgroupfs
) -> None:
    manager = make_manager(tmp_path, kernel)
    kernel.hierarchies[0].files.pop("memory.memsw.limit_in_bytes")

    manager.create("c1", Resources(memory=8 * MiB, memory_swap=16 * MiB))

    limits = manager.read_limits("c1")
    assert limits["memory.limit_in_bytes"] == str(8 * MiB)
    assert "memory.memsw.limit_in_bytes" not in limits


def test_a_limit_for_an_unmounted_controller_is_refused(
    tmp_path: Path, kernel: FakeCgroupfs
) -> None:
    manager = make_manager(tmp_path, kernel, {"memory": ("memory",), "freezer": ("freezer",)})

    with pytest.raises(
        InvalidArgument, match=r"pids controller is not available \(cgroup v1: not mounted\)"
    ):
        manager.create("c1", Resources(pids_limit=5))
    manager.create("c2", Resources(memory=8 * MiB))

    assert manager.read_limits("c2")["memory.limit_in_bytes"] == str(8 * MiB)


def test_devices_deny_all_then_allow_dockers_default_list(
    manager: CgroupV1Manager, writes: list[tuple[Path, str]]
) -> None:
    manager.create("c1", Resources())

    devices = cgroup_of(manager, "devices")
    assert [(path.name, value) for path, value in writes if path.parent == devices] == [
        ("devices.deny", "a"),
        ("devices.allow", "c *:* m"),
        ("devices.allow", "b *:* m"),
        *(
            ("devices.allow", f"c {device} rwm")
            for device in DEVICES
        ),
    ]


def test_all_devices_allows_everything(
    manager: CgroupV1Manager, writes: list[tuple[Path, str]]
) -> None:
    manager.create("c1", Resources(all_devices=True))

    devices = cgroup_of(manager, "devices")
    assert [(path.name, value) for path, value in writes if path.parent == devices] == [
        ("devices.allow", "a")
    ]


def test_without_a_devices_hierarchy_no_rule_is_written(
    tmp_path: Path, kernel: FakeCgroupfs, writes: list[tuple[Path, str]]
) -> None:
    manager = make_manager(tmp_path, kernel, {"memory": ("memory",)})

    manager.create("c1", Resources())

    assert not [path for path, _ in writes if path.name.startswith("devices.")]


def test_pids_are_the_union_over_the_hierarchies(
    manager: CgroupV1Manager, kernel: FakeCgroupfs
) -> None:
    manager.create("c1", Resources())
    memory_cgroup, pids_cgroup = cgroup_of(manager, "memory"), cgroup_of(manager, "pids")
    kernel.add_process(memory_cgroup, 5)
    kernel.add_process(pids_cgroup, 5)
    kernel.add_process(pids_cgroup, 3)

    assert manager.pids("c1") == [3, 5]


def test_freeze_and_thaw_write_freezer_state(manager: CgroupV1Manager) -> None:
    manager.create("c1", Resources())
    state = cgroup_of(manager, "freezer") / "freezer.state"

    manager.freeze("c1")
    assert state.read_text() == "FROZEN"
    assert manager.is_frozen("c1")
    manager.thaw("c1")
    assert state.read_text() == "THAWED"
    assert not manager.is_frozen("c1")


def test_a_freeze_that_does_not_settle_is_undone(
    manager: CgroupV1Manager, writes: list[tuple[Path, str]]
) -> None:
    manager.create("c1", Resources())
    state = cgroup_of(manager, "freezer") / "freezer.state"
    state.unlink()
    state.symlink_to("/dev/null")  # accepts every write, never reads back FROZEN

    with pytest.raises(PycontainError, match=r"freezer.state: still '' instead of FROZEN"):
        manager.freeze("c1")
    assert writes[-1] == (state, "THAWED")


def test_without_a_freezer_freeze_raises_and_is_frozen_is_false(
    tmp_path: Path, kernel: FakeCgroupfs
) -> None:
    manager = make_manager(tmp_path, kernel, {"memory": ("memory",)})
    manager.create("c1", Resources())

    with pytest.raises(PycontainError, match="freezer cgroup v1 controller is not mounted"):
        manager.freeze("c1")
    assert not manager.is_frozen("c1")


def test_oom_kill_count_reads_memory_oom_control(manager: CgroupV1Manager) -> None:
    manager.create("c1", Resources(memory=8 * MiB))
    oom_control = cgroup_of(manager, "memory") / "memory.oom_control"
    oom_control.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n")

    assert manager.oom_kill_count("c1") == 4


def test_queries_on_a_missing_cgroup_raise_not_found(manager: CgroupV1Manager) -> None:
    for query in (manager.pids, manager.is_frozen, manager.oom_kill_count, manager.read_limits):
        with pytest.raises(NotFound, match=r"no cgroup .*pycontain-test/absent"):
            query("absent")


def test_destroy_kills_leftovers_frozen_and_removes_every_directory(
    manager: CgroupV1Manager, kernel: FakeCgroupfs
) -> None:
    manager.create("c1", Resources())
    cgroups = manager.cgroup_dirs("c1")
    for cgroup in cgroups:
        kernel.add_process(cgroup, 11)
    kernel.add_process(cgroups[0], 12)

    manager.destroy("c1")

    assert sorted(kernel.killed) == [11, 12]
    assert not any(cgroup.exists() for cgroup in cgroups)
    assert manager.list_ids() == []


def test_destroy_of_an_absent_cgroup_is_quiet(manager: CgroupV1Manager) -> None:
    manager.destroy("absent")


def test_list_ids_and_remove_parent(manager: CgroupV1Manager, tmp_path: Path) -> None:
    manager.create("c1", Resources())
    manager.create("c2", Resources())

    assert manager.list_ids() == ["c1", "c2"]
    with pytest.raises(Conflict, match="container cgroups remain"):
        manager.remove_parent()
    manager.destroy("c1")
    manager.destroy("c2")
    manager.remove_parent()

    assert not list(tmp_path.glob("*/pycontain-test"))


def test_a_create_that_fails_half_way_leaves_no_directory(
    manager: CgroupV1Manager, kernel: FakeCgroupfs
) -> None:
    kernel.hierarchies[2].files.pop("pids.max")

    with pytest.raises(NotFound, match=r"write .*/pids/pycontain-test/c1/pids.max"):
        manager.create("c1", Resources(pids_limit=3))

    assert manager.list_ids() == []
    assert not any(cgroup.exists() for cgroup in manager.cgroup_dirs("c1"))


def test_usage_reads_memory_cpu_and_pids(manager: CgroupV1Manager) -> None:
    manager.create("c1", Resources(memory=64 * MiB, pids_limit=50))
    memory, cpu, pids = (cgroup_of(manager, c) for c in ("memory", "cpuacct", "pids"))
    (memory / "memory.usage_in_bytes").write_text("4096\n")
    (memory / "memory.max_usage_in_bytes").write_text("8192\n")
    (memory / "memory.stat").write_text("cache 0\nrss 4096\ntotal_inactive_file 0\n")
    (cpu / "cpuacct.usage").write_text("123456789\n")
    (pids / "pids.current").write_text("3\n")

    usage = manager.usage("c1")

    assert (usage.memory_usage, usage.memory_max_usage, usage.memory_limit) == \
        (4096, 8192, 64 * MiB)
    assert usage.memory_stat == {"cache": 0, "rss": 4096, "total_inactive_file": 0}
    assert (usage.cpu_total_ns, usage.cpu_user_ns) == (123456789, 0)  # no usage_user: 0
    assert (usage.pids_current, usage.pids_limit) == (3, 50)


def test_usage_reports_no_limit_as_zero(manager: CgroupV1Manager) -> None:
    manager.create("c1", Resources())
    (cgroup_of(manager, "memory") / "memory.limit_in_bytes").write_text(UNLIMITED + "\n")
    (cgroup_of(manager, "pids") / "pids.max").write_text("max\n")
    usage = manager.usage("c1")
    assert (usage.memory_limit, usage.pids_limit) == (0, 0)
    with pytest.raises(NotFound):
        manager.usage("c2")
