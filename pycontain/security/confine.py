"""The container's half: applied by the container init, after its mounts, before execve.

Imported by the fork server (through runtime/init.py), so it holds only what a forked
child may call without importing anything: python-prctl and a few ctypes calls.

Order, as the init calls it (root, every capability, already inside the container's root):

    drop_bounding_set(keep) -> clear_inheritable_and_ambient()
    -> set_no_new_privs()  (if asked) -> load_seccomp(program)  (needs CAP_SYS_ADMIN or NNP)
    -> setgroups/setgid/setuid  (the init's own step)
    -> limit_to(keep)  (root keeps the set in permitted and effective; a non-root uid
                        has already lost them all, and execve gives it none)
"""

from __future__ import annotations

import ctypes
import os

import prctl

from pycontain.runtime.syscalls import LIBC

__all__ = ["clear_inheritable_and_ambient", "drop_bounding_set", "limit_to", "load_seccomp",
           "make_non_dumpable", "set_no_new_privs"]

_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_BPF_INSTRUCTION_BYTES = 8


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_libc = LIBC
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.prctl.restype = ctypes.c_int


def _prctl(option: int, arg2: int, arg3: int | None, what: str) -> None:
    if _libc.prctl(option, arg2, arg3, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def make_non_dumpable() -> None:
    """No ptrace, no /proc/<pid>/mem, no core of the runtime while it is in the container's
    namespaces (execve of the container's program makes it dumpable again)."""
    prctl.set_dumpable(False)


def drop_bounding_set(keep: tuple[int, ...]) -> None:
    """Remove every capability but ``keep`` from the bounding set (needs CAP_SETPCAP)."""
    for cap in prctl.ALL_CAPS:
        if cap not in keep and prctl.capbset_read(cap):
            prctl.capbset_drop(cap)


def clear_inheritable_and_ambient() -> None:
    prctl.cap_inheritable.limit()
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, "clear the ambient capabilities")


def limit_to(keep: tuple[int, ...]) -> None:
    """Permitted and effective limited to ``keep`` (for uid 0; a no-op once they are empty)."""
    prctl.cap_effective.limit(*keep)
    prctl.cap_permitted.limit(*keep)


def set_no_new_privs() -> None:
    prctl.set_no_new_privs(1)


def load_seccomp(program: bytes) -> None:
    """Install a compiled BPF program (struct sock_filter[]) as this process's filter."""
    count = len(program) // _BPF_INSTRUCTION_BYTES
    if not count or len(program) % _BPF_INSTRUCTION_BYTES or count > 0xFFFF:
        raise OSError(22, f"load seccomp filter: a program of {len(program)} bytes is invalid")
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(count, ctypes.cast(buffer, ctypes.c_void_p))
    _prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog),
           "load seccomp filter")
