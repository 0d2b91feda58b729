"""What /info and stats say about the host: its OS name, memory and CPU time."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["HostCpuMemory", "host_cpu_memory", "mem_total", "os_name"]


@dataclass(frozen=True)
class HostCpuMemory:
    system_cpu_ns: int   # the host's CPU time since boot, every CPU (Docker's system_cpu_usage)
    online_cpus: int
    memory_total: int    # bytes


def os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


def system_cpu_ns() -> int:
    """The "cpu" line of /proc/stat (user to steal), in nanoseconds, as dockerd sums it."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return 0
    if not fields or fields[0] != "cpu":
        return 0
    ticks = sum(int(v) for v in fields[1:9])
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def host_cpu_memory() -> HostCpuMemory:
    return HostCpuMemory(system_cpu_ns(), len(os.sched_getaffinity(0)), mem_total())
