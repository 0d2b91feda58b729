"""Container cgroups: one ``CgroupManager`` protocol, a v1 and a v2 backend.

Layering: ``base`` (limits, protocol, kernel seam) <- ``_cgroupfs`` (interface
file I/O, the one place ``OSError`` is mapped) <- ``v1`` / ``v2`` (one backend
each) <- ``detect`` (reads mountinfo and picks exactly one backend).
"""

from pycontain.cgroups.base import CgroupManager, KernelOps, Resources
from pycontain.cgroups.detect import detect_cgroup_version, open_cgroup_manager
from pycontain.cgroups.v1 import CgroupV1Manager
from pycontain.cgroups.v2 import CgroupV2Manager, cpu_weight_from_shares

__all__ = [
    "CgroupManager",
    "CgroupV1Manager",
    "CgroupV2Manager",
    "KernelOps",
    "Resources",
    "cpu_weight_from_shares",
    "detect_cgroup_version",
    "open_cgroup_manager",
]
