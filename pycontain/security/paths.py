"""The /proc and /sys paths a container may not read (masked) or write (read-only), as Docker.

Masked: a file gets /dev/null bound over it, a directory an empty read-only tmpfs.
Read-only: bound over itself, then remounted read-only.  --privileged sets neither.
"""

from __future__ import annotations

__all__ = ["MASKED_PATHS", "READONLY_PATHS"]

MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)
