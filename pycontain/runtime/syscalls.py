"""The few Linux system calls Python's os module lacks (3.11), through ctypes.

Each wrapper raises OSError with the errno and a message naming the operation and
its object, so that a failure inside a container's setup reads like
``mount overlay on /var/lib/pycontain/containers/x/merged: [Errno 22] Invalid argument``.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

# mount_setattr(2) (Linux 5.12): per-mount attributes set on a whole mount tree at once.
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000

_SYS_PIVOT_ROOT = 155  # x86_64
_SYS_PIDFD_SEND_SIGNAL = 424
_SYS_MOUNT_SETATTR = 442

def _load_libc() -> ctypes.CDLL:
    # The soname first: ctypes.util.find_library imports subprocess, shutil and tempfile,
    # which would weigh on the fork server (and so on every shim) for one lookup.
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = LIBC = _load_libc()
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), f"unshare(0x{flags:x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    result = _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    _check(result, f"mount {fstype or source or ''} on {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    result = _libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old))
    _check(int(result), f"pivot_root {new_root}")


def mount_setattr_tree(fd: int, attr_set: int, what: str) -> None:
    """Add ``attr_set`` (MOUNT_ATTR_*) to the mount at ``fd`` and every mount below it.

    Unlike a bind remount, this leaves the mounts' other flags as they are.
    """
    attr = struct.pack("=QQQQ", attr_set, 0, 0, 0)  # struct mount_attr, MOUNT_ATTR_SIZE_VER0
    result = _libc.syscall(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH | _AT_RECURSIVE,
                           attr, len(attr))
    _check(int(result), f"mount_setattr 0x{attr_set:x} on {what}")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname {name}")


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    result = _libc.syscall(_SYS_PIDFD_SEND_SIGNAL, pidfd, sig, None, 0)
    _check(int(result), f"pidfd_send_signal {sig}")


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def bring_interface_up(name: str) -> None:
    """Set IFF_UP on an interface of the current network namespace (used for lo)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | _IFF_UP))
