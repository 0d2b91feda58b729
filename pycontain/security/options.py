"""``HostConfig.SecurityOpt`` and ``HostConfig.Tmpfs``, validated at the API's edge.

SecurityOpt entries, in Docker's spelling (``=`` or ``:`` between key and value):

    no-new-privileges[=true|false]
    seccomp=unconfined | seccomp=<the profile's JSON text>   (the CLI reads the file)

Anything else (apparmor, label, ...) is refused: pycontain does not implement it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pycontain.errors import InvalidArgument

__all__ = ["SecurityOptions", "TmpfsMount", "parse_security_options", "parse_tmpfs"]

UNCONFINED = "unconfined"

# tmpfs flags Docker accepts, as (mount flags to set, mount flags to clear).
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_SYNCHRONOUS, _MS_NOATIME, _MS_NODIRATIME, _MS_STRICTATIME = 16, 1024, 2048, 1 << 24
_TMPFS_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (_MS_RDONLY, 0), "rw": (0, _MS_RDONLY),
    "nosuid": (_MS_NOSUID, 0), "suid": (0, _MS_NOSUID),
    "nodev": (_MS_NODEV, 0), "dev": (0, _MS_NODEV),
    "noexec": (_MS_NOEXEC, 0), "exec": (0, _MS_NOEXEC),
    "sync": (_MS_SYNCHRONOUS, 0), "async": (0, _MS_SYNCHRONOUS),
    "noatime": (_MS_NOATIME, 0), "atime": (0, _MS_NOATIME),
    "nodiratime": (_MS_NODIRATIME, 0), "diratime": (0, _MS_NODIRATIME),
    "strictatime": (_MS_STRICTATIME, 0),
}
_TMPFS_DATA = ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks")
TMPFS_DEFAULT_FLAGS = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC


@dataclass(frozen=True)
class SecurityOptions:
    no_new_privileges: bool = False
    seccomp: str = ""             # "" = the default profile, "unconfined", or a profile's JSON


@dataclass(frozen=True)
class TmpfsMount:
    target: str
    flags: int
    data: str


def _bool(text: str, entry: str) -> bool:
    if text.lower() in ("", "true", "1"):
        return True
    if text.lower() in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid --security-opt {entry!r}: expected true or false")


def parse_security_options(entries: tuple[str, ...]) -> SecurityOptions:
    """Raises InvalidArgument for an entry pycontain does not know or cannot honour."""
    no_new_privileges = False
    seccomp = ""
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep and ":" in entry:
            key, sep, value = entry.partition(":")
        if key == "no-new-privileges":
            no_new_privileges = _bool(value, entry)
        elif key == "seccomp" and sep and value:
            seccomp = value
        elif key == "seccomp":
            raise InvalidArgument(f"invalid --security-opt {entry!r}: seccomp needs a profile")
        else:
            raise InvalidArgument(
                f"invalid --security-opt {entry!r}: pycontain supports no-new-privileges "
                "and seccomp=unconfined|PROFILE")
    return SecurityOptions(no_new_privileges=no_new_privileges, seccomp=seccomp)


def parse_tmpfs(target: str, options: str) -> TmpfsMount:
    """One ``HostConfig.Tmpfs`` entry ``{"/tmp": "size=64m,mode=1777"}`` -> mount flags and data.

    Docker's defaults: nosuid, nodev, noexec.  Raises InvalidArgument for a relative
    target or an unknown option.
    """
    if not target.startswith("/") or ".." in target.split("/"):
        raise InvalidArgument(f"invalid tmpfs mount point {target!r}: it must be an absolute path")
    flags = TMPFS_DEFAULT_FLAGS
    data = []
    for option in filter(None, (o.strip() for o in options.split(","))):
        name, eq, value = option.partition("=")
        if not eq and name in _TMPFS_FLAGS:
            set_flags, clear_flags = _TMPFS_FLAGS[name]
            flags = (flags | set_flags) & ~clear_flags
        elif eq and name in _TMPFS_DATA and value and all(c.isalnum() for c in value):
            data.append(f"{name}={value}")
        else:
            raise InvalidArgument(f"invalid tmpfs option {option!r} for {target}")
    return TmpfsMount(target=target, flags=flags, data=",".join(data))
