"""CgroupV2Manager against a fake unified hierarchy in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycontain.cgroups import CgroupV2Manager, Resources, cpu_weight_from_shares
from pycontain.cgroups.testing import FakeCgroupfs
from pycontain.errors import Conflict, InvalidArgument, NotFound, PycontainError

MiB = 1024 * 1024


@pytest.fixture
def kernel() -> FakeCgroupfs:
    return FakeCgroupfs()


def make_manager(
    tmp_path: Path,
    kernel: FakeCgroupfs,
    parent: str = "pycontain-test",
    controllers: tuple[str, ...] = ("cpu", "memory", "pids", "io"),
) -> CgroupV2Manager:
    root = kernel.add_v2_hierarchy(tmp_path / "cgroup", controllers)
    return CgroupV2Manager(root, parent, ops=kernel, timeout=0.05)


@pytest.fixture
def manager(tmp_path: Path, kernel: FakeCgroupfs) -> CgroupV2Manager:
    return make_manager(tmp_path, kernel)


def read(path: Path) -> str:
    return path.read_text().strip()


def test_create_writes_every_limit(manager: CgroupV2Manager) -> None:
    resources = Resources(memory=64 * MiB, nano_cpus=1_500_000_000, cpu_shares=512, pids_limit=100)
    manager.create("c1", resources)

    cgroup = manager.root / "pycontain-test" / "c1"
    assert read(cgroup / "memory.max") == str(64 * MiB)
    assert read(cgroup / "memory.swap.max") == str(64 * MiB)  # Docker default: swap = memory
    assert read(cgroup / "cpu.max") == "150000 100000"
    assert read(cgroup / "cpu.weight") == str(cpu_weight_from_shares(512))
    assert read(cgroup / "pids.max") == "100"
    assert manager.read_limits("c1") == {
        "memory.max": str(64 * MiB),
        "memory.swap.max": str(64 * MiB),
        "cpu.max": "150000 100000",
        "cpu.weight": "20",
        "pids.max": "100",
    }


def test_create_without_limits_writes_the_unlimited_values(manager: CgroupV2Manager) -> None:
    manager.create("c1", Resources())

    assert manager.read_limits("c1") == {
        "memory.max": "max",
        "memory.swap.max": "max",
        "cpu.max": "max 100000",
        "cpu.weight": "100",
        "pids.max": "max",
    }


@pytest.mark.parametrize(
    ("memory_swap", "expected_swap_max"),
    [(-1, "max"), (64 * MiB, "0"), (100 * MiB, str(36 * MiB)), (None, str(64 * MiB))],
)
def test_swap_max_is_the_swap_beyond_memory(
    manager: CgroupV2Manager, memory_swap: int | None, expected_swap_max: str
) -> None:
    manager.create("c1", Resources(memory=64 * MiB, memory_swap=memory_swap))

    assert manager.read_limits("c1")["memory.swap.max"] == expected_swap_max


def test_create_enables_only_wanted_controllers_at_every_level(
    tmp_path: Path, kernel: FakeCgroupfs
) -> None:
    manager = make_manager(tmp_path, kernel, parent="/outer/inner/")

    manager.create("c1", Resources(memory=8 * MiB))

    root = manager.root
    assert manager.parent == "outer/inner"
    for level in (root, root / "outer", root / "outer" / "inner"):
        assert read(level / "cgroup.subtree_control") == "+cpu +memory +pids"
    assert read(root / "outer" / "inner" / "c1" / "cgroup.controllers") == "cpu memory pids"


def test_create_is_idempotent(manager: CgroupV2Manager) -> None:
    manager.create("c1", Resources(pids_limit=10))
    manager.create("c1", Resources(pids_limit=20))

    assert manager.read_limits("c1")["pids.max"] == "20"
    assert manager.list_ids() == ["c1"]


def test_missing_controller_refuses_only_a_limit_for_it(
    tmp_path: Path, kernel: FakeCgroupfs
) -> None:
    manager = make_manager(tmp_path, kernel, controllers=("cpu", "pids"))

    with pytest.raises(InvalidArgument, match="memory controller is not available"):
        manager.create("c1", Resources(memory=8 * MiB))
    manager.create("c2", Resources(pids_limit=5))

    assert "memory.max" not in manager.read_limits("c2")
    assert manager.oom_kill_count("c2") == 0


def test_without_swap_accounting_only_memory_max_is_written(
    tmp_path: Path, kernel: FakeCgroupfs
) -> None:
    manager = make_manager(tmp_path, kernel)
    kernel.hierarchies[0].files.pop("memory.swap.max")

    manager.create("c1", Resources(memory=8 * MiB, memory_swap=-1))

    assert manager.read_limits("c1") == {
        "memory.max": str(8 * MiB),
        "cpu.max": "max 100000",
        "cpu.weight": "100",
        "pids.max": "max",
    }


def test_invalid_resources_are_refused_before_any_mkdir(manager: CgroupV2Manager) -> None:
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        manager.create("c1", Resources(memory=1024))

    assert not (manager.root / "pycontain-test").exists()


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(2, 1), (1024, 39), (262_144, 10_000), (1, 1), (1_000_000, 10_000)],
)
def test_cpu_weight_from_shares_maps_the_ranges_linearly(shares: int, weight: int) -> None:
    assert cpu_weight_from_shares(shares) == weight


def test_join_files_names_the_one_cgroup_procs(manager: CgroupV2Manager) -> None:
    assert manager.join_files("c1") == [str(manager.root / "pycontain-test/c1/cgroup.procs")]


@pytest.mark.parametrize("bad_id", ["", ".", "..", "a/b", "x\0"])
def test_ids_that_are_not_one_directory_name_are_refused(
    manager: CgroupV2Manager, bad_id: str
) -> None:
    with pytest.raises(InvalidArgument, match="invalid container id"):
        manager.join_files(bad_id)


@pytest.mark.parametrize("bad_parent", ["", "/", "a/../b", "./a"])
def test_parents_that_leave_the_hierarchy_are_refused(tmp_path: Path, bad_parent: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid cgroup parent"):
        CgroupV2Manager(tmp_path, bad_parent)


def test_pids_include_nested_cgroups(manager: CgroupV2Manager, kernel: FakeCgroupfs) -> None:
    manager.create("c1", Resources())
    cgroup = manager.cgroup_path("c1")
    kernel.make_directory(cgroup / "nested")
    kernel.add_process(cgroup, 30)
    kernel.add_process(cgroup / "nested", 10)

    assert manager.pids("c1") == [10, 30]


def test_queries_on_a_missing_cgroup_raise_not_found(manager: CgroupV2Manager) -> None:
    for query in (manager.pids, manager.is_frozen, manager.oom_kill_count, manager.read_limits):
        with pytest.raises(NotFound, match=r"no cgroup .*/pycontain-test/absent"):
            query("absent")


def test_freeze_and_thaw_wait_for_cgroup_events(manager: CgroupV2Manager) -> None:
    manager.create("c1", Resources())
    cgroup = manager.cgroup_path("c1")

    (cgroup / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    manager.freeze("c1")
    assert read(cgroup / "cgroup.freeze") == "1"
    assert manager.is_frozen("c1")

    (cgroup / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    manager.thaw("c1")
    assert read(cgroup / "cgroup.freeze") == "0"
    assert not manager.is_frozen("c1")


def test_a_freeze_that_does_not_settle_is_undone(manager: CgroupV2Manager) -> None:
    manager.create("c1", Resources())

    with pytest.raises(PycontainError, match=r"freeze .*c1: .*cgroup.events did not report"):
        manager.freeze("c1")
    assert read(manager.cgroup_path("c1") / "cgroup.freeze") == "0"


def test_oom_kill_count_reads_memory_events(manager: CgroupV2Manager) -> None:
    manager.create("c1", Resources(memory=8 * MiB))
    (manager.cgroup_path("c1") / "memory.events").write_text("oom 3\noom_kill 2\n")

    assert manager.oom_kill_count("c1") == 2


def test_destroy_uses_cgroup_kill_and_removes_nested_cgroups(
    manager: CgroupV2Manager, kernel: FakeCgroupfs
) -> None:
    manager.create("c1", Resources())
    cgroup = manager.cgroup_path("c1")
    kernel.make_directory(cgroup / "nested")
    kernel.add_process(cgroup / "nested", 41)
    (cgroup / "nested" / "cgroup.kill").write_text("1")  # the kernel propagates cgroup.kill
    kernel.add_process(cgroup, 42)

    manager.destroy("c1")

    assert not cgroup.exists()
    assert sorted(kernel.killed) == [41, 42]
    assert manager.list_ids() == []


def test_destroy_without_cgroup_kill_signals_each_pid(
    manager: CgroupV2Manager, kernel: FakeCgroupfs
) -> None:
    manager.create("c1", Resources())
    cgroup = manager.cgroup_path("c1")
    (cgroup / "cgroup.kill").unlink()
    kernel.add_process(cgroup, 7)

    manager.destroy("c1")

    assert kernel.killed == [7]
    assert not cgroup.exists()


def test_destroy_of_an_absent_cgroup_is_quiet(manager: CgroupV2Manager) -> None:
    manager.destroy("absent")


class UnkillableKernel(FakeCgroupfs):
    """Records kills that never take effect, as with a process stuck in the kernel."""

    def kill_process(self, pid: int) -> None:
        self.killed.append(pid)


def test_destroy_names_the_busy_cgroup_when_it_times_out(tmp_path: Path) -> None:
    kernel = UnkillableKernel()
    manager = make_manager(tmp_path, kernel)
    manager.create("c1", Resources())
    cgroup = manager.cgroup_path("c1")
    (cgroup / "cgroup.kill").unlink()
    kernel.add_process(cgroup, 99)

    with pytest.raises(PycontainError, match=r"rmdir .*c1: Device or resource busy.*\[99\]"):
        manager.destroy("c1")
    assert set(kernel.killed) == {99}


def test_remove_parent_refuses_while_containers_remain(manager: CgroupV2Manager) -> None:
    manager.create("c1", Resources())
    manager.create("c2", Resources())
    assert manager.list_ids() == ["c1", "c2"]

    with pytest.raises(Conflict, match=r"container cgroups remain: \['c1', 'c2'\]"):
        manager.remove_parent()
    manager.destroy("c1")
    manager.destroy("c2")
    manager.remove_parent()

    assert not manager.parent_path.exists()
    manager.remove_parent()


def test_errors_name_the_operation_and_the_file(manager: CgroupV2Manager) -> None:
    manager.create("c1", Resources())
    (manager.cgroup_path("c1") / "pids.max").unlink()

    with pytest.raises(NotFound, match=r"^write .*/c1/pids.max: No such file or directory$"):
        manager.create("c1", Resources(pids_limit=3))


def test_a_create_that_fails_half_way_leaves_no_cgroup(
    tmp_path: Path, kernel: FakeCgroupfs
) -> None:
    manager = make_manager(tmp_path, kernel)
    kernel.hierarchies[0].files.pop("pids.max")

    with pytest.raises(NotFound, match=r"write .*/c1/pids.max"):
        manager.create("c1", Resources(pids_limit=3))

    assert manager.list_ids() == []


def test_a_refused_limit_makes_no_container_cgroup(tmp_path: Path, kernel: FakeCgroupfs) -> None:
    manager = make_manager(tmp_path, kernel, controllers=("cpu",))

    with pytest.raises(InvalidArgument, match="pids controller is not available in"):
        manager.create("c1", Resources(pids_limit=3))

    assert manager.list_ids() == []


def test_usage_reads_memory_cpu_and_pids(manager: CgroupV2Manager) -> None:
    manager.create("c1", Resources(memory=64 * 1024 * 1024))
    cgroup = manager.cgroup_path("c1")
    (cgroup / "memory.current").write_text("4096\n")
    (cgroup / "memory.stat").write_text("anon 4096\ninactive_file 0\n")
    (cgroup / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (cgroup / "pids.current").write_text("2\n")

    usage = manager.usage("c1")

    assert (usage.memory_usage, usage.memory_limit) == (4096, 64 * 1024 * 1024)
    assert usage.memory_stat == {"anon": 4096, "inactive_file": 0}
    assert (usage.cpu_total_ns, usage.cpu_user_ns, usage.cpu_system_ns) == \
        (1_500_000, 1_000_000, 500_000)
    assert (usage.pids_current, usage.pids_limit) == (2, 0)  # pids.max "max": no limit
