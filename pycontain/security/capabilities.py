"""Capability names and Docker's rules for the set a container keeps.

A container's bounding, permitted and effective sets are all the same set (its
inheritable and ambient sets are empty): Docker's default 14, adjusted by
``--cap-add``/``--cap-drop`` (``ALL`` accepted in both), or every capability the
kernel knows with ``--privileged``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pycontain.errors import InvalidArgument

__all__ = ["ALL_CAPABILITIES", "DEFAULT_CAPABILITIES", "capability_numbers",
           "container_capabilities", "normalize_capability"]

# The kernel's numbering (include/uapi/linux/capability.h).
ALL_CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(ALL_CAPABILITIES.values())


def normalize_capability(name: str) -> str:
    """``net_admin``, ``NET_ADMIN``, ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ``all`` -> ``ALL``."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in ALL_CAPABILITIES:
        raise InvalidArgument(f"unknown capability: {name!r}")
    return full


def container_capabilities(cap_add: Iterable[str], cap_drop: Iterable[str],
                           privileged: bool) -> tuple[str, ...]:
    """The container's capability set, in the kernel's order.

    Docker's rules: ``--privileged`` keeps every capability; otherwise start from the
    default set (every capability if ``ALL`` is added, none if ``ALL`` is dropped),
    remove what is dropped and add what is added (an add wins over a drop).
    Raises InvalidArgument for an unknown name.
    """
    known = {n for n, v in ALL_CAPABILITIES.items() if v <= _last_cap()}
    adds = {normalize_capability(c) for c in cap_add}
    drops = {normalize_capability(c) for c in cap_drop}
    if privileged or "ALL" in adds:
        kept = set(known)
    elif "ALL" in drops:
        kept = set()
    else:
        kept = set(DEFAULT_CAPABILITIES)
    if not privileged:
        kept -= drops - adds
        kept |= adds - {"ALL"}
    return tuple(sorted(kept & known, key=ALL_CAPABILITIES.__getitem__))


def capability_numbers(names: Iterable[str]) -> tuple[int, ...]:
    return tuple(sorted(ALL_CAPABILITIES[n] for n in names))
