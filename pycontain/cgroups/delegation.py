"""The daemon under systemd with ``Delegate=yes``, on cgroup v2: its own subtree.

systemd hands a service with ``Delegate=yes`` its cgroup (say
``/sys/fs/cgroup/system.slice/pycontaind.service``) to manage, and marks it with
the extended attribute ``trusted.delegate=1`` (systemd 251 and later).  Inside it
the daemon must follow the v2 no-internal-processes rule: a cgroup whose
cgroup.subtree_control enables controllers for its children cannot hold
processes itself.  systemd 254 and later start the daemon in the leaf
``<unit>/daemon`` (the unit's ``DelegateSubgroup=daemon``), on every start and
restart; the fork server and every shim are forked there after it.  The controllers
are then enabled on ``<unit>`` for the containers' parent ``<unit>/<--cgroup-parent>``
(``CgroupV2Manager`` with ``delegated=<unit>``).

It applies only when the daemon was started by systemd (``INVOCATION_ID`` in the
environment) in the leaf of a cgroup that carries the delegation mark.  An older
systemd (Debian 12's 252) ignores ``DelegateSubgroup`` and starts the daemon in
``<unit>`` itself; were the daemon to move to the leaf and enable controllers on
``<unit>``, that systemd could not start it again there on a restart while containers
run (status 219/CGROUP).  So there, as when started any other way or on v1, the
daemon uses ``--cgroup-parent`` below the hierarchy's root, as Docker's cgroupfs
driver does.  Whether the host is v1 or v2 is still decided by
``detect_cgroup_version`` alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path

from pycontain.cgroups import _cgroupfs as fs
from pycontain.cgroups.base import KernelOps
from pycontain.cgroups.detect import (
    CGROUP_MOUNT_POINT,
    MOUNTINFO,
    detect_cgroup_version,
    read_mountinfo,
)
from pycontain.errors import PycontainError

__all__ = [
    "DAEMON_LEAF",
    "DELEGATE_XATTR",
    "delegated_unit_cgroup",
    "enter_daemon_leaf",
    "enter_delegated_subtree",
    "has_delegation_mark",
    "own_v2_cgroup",
]

DAEMON_LEAF = "daemon"
"""The leaf cgroup, below the delegated one, that holds the daemon, its fork server and shims."""

DELEGATE_XATTR = "trusted.delegate"
"""The extended attribute systemd sets to "1" on the cgroup of a unit with Delegate=yes."""

PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def own_v2_cgroup(proc_cgroup_text: str) -> str:
    """The cgroup v2 path of /proc/self/cgroup's "0::/path" line, without the leading "/".

    Raises:
        PycontainError: there is no "0::" line.
    """
    for line in proc_cgroup_text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip().strip("/")
    raise PycontainError(f"read {PROC_SELF_CGROUP}: no cgroup v2 (0::) line")


def has_delegation_mark(path: Path) -> bool:
    """Whether ``path`` carries ``trusted.delegate=1`` (False when it cannot be read)."""
    try:
        return os.getxattr(path, DELEGATE_XATTR) == b"1"
    except OSError:
        return False


def delegated_unit_cgroup(
    own: str, root: Path, is_delegated: Callable[[Path], bool] = has_delegation_mark
) -> str | None:
    """The delegated cgroup the daemon manages, relative to ``root``, or None.

    That is the parent of ``own`` when ``own`` is the leaf ``DAEMON_LEAF`` of a
    delegated cgroup (where systemd 254's ``DelegateSubgroup`` starts the daemon).
    A daemon in the delegated cgroup itself (an older systemd) manages none.
    """
    unit, _, leaf = own.rpartition("/")
    if leaf == DAEMON_LEAF and unit and is_delegated(root / unit):
        return unit
    return None


def enter_daemon_leaf(root: Path, unit: str, ops: KernelOps | None = None) -> Path:
    """Move every process of ``root/unit`` (this one included) into ``root/unit/daemon``.

    Returns the leaf.  Processes already in the leaf stay there.

    Raises:
        PycontainError: the leaf could not be made or a process not moved.
    """
    ops = ops or KernelOps()
    leaf = fs.make_cgroup_dirs(ops, root / unit, DAEMON_LEAF)
    me = os.getpid()
    fs.write_file(leaf / "cgroup.procs", str(me))
    for pid in fs.read_pids(root / unit / "cgroup.procs"):
        if pid != me:
            with suppress(PycontainError):  # it exited meanwhile (ESRCH)
                fs.write_file(leaf / "cgroup.procs", str(pid))
    return leaf


def enter_delegated_subtree(
    environ: Mapping[str, str] = os.environ,
    *,
    mountinfo: Path = MOUNTINFO,
    cgroup_mount_point: Path = CGROUP_MOUNT_POINT,
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
    is_delegated: Callable[[Path], bool] = has_delegation_mark,
    ops: KernelOps | None = None,
) -> str | None:
    """Under systemd delegation on v2 (systemd 254+): gather the unit's processes in the
    leaf the daemon was started in and return the delegated cgroup.

    Returns None, touching nothing, when the daemon was not started by systemd,
    the host is v1, or the daemon is not in the leaf of a delegated cgroup.

    Raises:
        PycontainError: mountinfo or /proc/self/cgroup cannot be read, or the move failed.
    """
    if not environ.get("INVOCATION_ID"):
        return None
    if detect_cgroup_version(read_mountinfo(mountinfo), cgroup_mount_point) != 2:
        return None
    try:
        text = proc_self_cgroup.read_text()
    except OSError as exc:
        raise PycontainError(f"read {proc_self_cgroup}: {exc.strerror or exc}") from exc
    unit = delegated_unit_cgroup(own_v2_cgroup(text), cgroup_mount_point, is_delegated)
    if unit is None:
        return None
    enter_daemon_leaf(cgroup_mount_point, unit, ops)
    return unit
