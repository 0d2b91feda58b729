"""A container's files seen from the host: ``cp`` (archive GET, PUT and HEAD), ``export``
and ``diff``; ``commit`` (containers/commit.py) reads the upperdir through ``write_tree``.

Security model.  Everything under the container's root belongs to whoever runs in it, so
no path inside it is ever handed to the kernel as a string from the host's side:

- the root is a directory fd: ``/proc/<pid>/root`` of a running container, else its
  overlay mounted in a private scratch dir, opened, and detached at once (the fd keeps
  the mount alive; nothing is left mounted, even if the daemon dies);
- a container path is cleaned lexically, then walked one component at a time with
  ``O_PATH | O_NOFOLLOW`` relative to the directory fd before it; a symlink met on the
  way is read and followed *inside* the root (an absolute target restarts at the root,
  ``..`` stops at it), as Docker's ``FollowSymlinkInScope`` does; the last component is
  never followed;
- files are read and written through fds opened relative to their directory's fd,
  created with ``O_EXCL | O_NOFOLLOW``; a tar member's parent is resolved the same way.

So ``/evil -> /etc`` inside a container means the container's /etc, never the host's.
Blocking file work runs on the daemon's one thread; each call is one bounded copy.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import posixpath
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from pycontain.errors import InvalidArgument, NotFound, PycontainError
from pycontain.runtime import syscalls
from pycontain.timefmt import rfc3339_nano

__all__ = [
    "Change",
    "ContainerFilesystem",
    "changes",
    "export",
    "path_stat",
    "read_archive",
    "write_archive",
    "write_tree",
]

_MAX_SYMLINKS: Final = 40
_COPY_CHUNK: Final = 1 << 20
_OPAQUE_XATTR: Final = "trusted.overlay.opaque"
# Go's os.FileMode bits, as Docker's X-Docker-Container-Path-Stat carries them.
_GO_MODE_DIR: Final = 1 << 31
_GO_MODE_SYMLINK: Final = 1 << 27

# A member of a tree being written to a tar: (dir fd, name, lstat) -> the tar entries
# for it, or None for the default ones.  ``commit`` turns whiteouts back into .wh. files.
EntryHook = Callable[[int, str, os.stat_result, str], list[tarfile.TarInfo] | None]


@dataclass(frozen=True)
class ContainerFilesystem:
    """Where a container's files are: its init's pid while it runs, its overlay's dirs."""

    id: str
    pid: int                      # 0 when it is not running
    upperdir: Path
    workdir: Path
    lowerdirs: tuple[Path, ...]   # the image's layers, top first
    scratch: Path                 # a directory on the data root for private mounts

    @contextmanager
    def root(self, writable: bool = False, mounts: bool = True) -> Iterator[int]:
        """An ``O_PATH`` fd of the container's "/".  ``mounts``: a running container's
        own view (volumes included, as ``cp``); otherwise its root file system alone
        (``export``), mounted read-only unless ``writable`` (a stopped container only)."""
        if self.pid and mounts:
            try:
                fd = os.open(f"/proc/{self.pid}/root", os.O_PATH | os.O_DIRECTORY)
            except OSError as exc:
                raise PycontainError(f"open the root of container {self.id}: {exc}") from exc
        else:
            fd = self._mount_overlay(writable and not self.pid)
        try:
            yield fd
        finally:
            os.close(fd)

    def _mount_overlay(self, writable: bool) -> int:
        self.scratch.mkdir(parents=True, exist_ok=True)
        target = tempfile.mkdtemp(prefix="rootfs-", dir=self.scratch)
        lowers = ":".join(str(d) for d in self.lowerdirs)
        flags = syscalls.MS_NODEV | syscalls.MS_NOSUID
        if writable:
            options = f"lowerdir={lowers},upperdir={self.upperdir},workdir={self.workdir}"
        else:
            options = f"lowerdir={self.upperdir}:{lowers}"
            flags |= syscalls.MS_RDONLY
        try:
            syscalls.mount("overlay", target, "overlay", flags, options)
            try:
                return os.open(target, os.O_PATH | os.O_DIRECTORY)
            finally:
                syscalls.umount(target, syscalls.MNT_DETACH)
        except OSError as exc:
            raise PycontainError(f"mount the file system of container {self.id}: {exc}") from exc
        finally:
            os.rmdir(target)


# ------------------------------------------------------------------ path resolution


def _clean(path: str) -> list[str]:
    return [p for p in posixpath.normpath("/" + path).split("/") if p]


@contextmanager
def resolve_parent(root_fd: int, path: str) -> Iterator[tuple[int, str]]:
    """The directory holding ``path`` (an fd, symlinks followed inside the root) and the
    last component ("." for the root itself).  Raises ``NotFound`` and ``InvalidArgument``."""
    parts = _clean(path)
    last = parts.pop() if parts else "."
    stack = [os.dup(root_fd)]
    try:
        hops = 0
        todo = list(reversed(parts))
        while todo:
            name = todo.pop()
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=stack[-1])
            except FileNotFoundError as exc:
                raise NotFound(f"Could not find the file {path} in container") from exc
            info = os.fstat(fd)
            if stat.S_ISLNK(info.st_mode):
                os.close(fd)
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise InvalidArgument(f"{path}: too many levels of symbolic links")
                target = os.readlink(name, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo.extend(reversed([p for p in target.split("/") if p]))
            elif stat.S_ISDIR(info.st_mode):
                stack.append(fd)
            else:
                os.close(fd)
                raise InvalidArgument(f"{path}: {name} is not a directory")
        yield stack[-1], last
    finally:
        for fd in stack:
            os.close(fd)


def _lstat(dir_fd: int, name: str, path: str) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError as exc:
        raise NotFound(f"Could not find the file {path} in container") from exc


def path_stat(root_fd: int, path: str) -> str:
    """Docker's ``X-Docker-Container-Path-Stat``: base64 of {name, size, mode, mtime,
    linkTarget} of ``path`` (not followed)."""
    with resolve_parent(root_fd, path) as (dir_fd, name):
        info = _lstat(dir_fd, name, path)
        link = os.readlink(name, dir_fd=dir_fd) if stat.S_ISLNK(info.st_mode) else ""
    mode = stat.S_IMODE(info.st_mode)
    mode |= _GO_MODE_DIR if stat.S_ISDIR(info.st_mode) else 0
    mode |= _GO_MODE_SYMLINK if stat.S_ISLNK(info.st_mode) else 0
    body = {"name": posixpath.basename(posixpath.normpath("/" + path)) or "/",
            "size": info.st_size, "mode": mode, "mtime": rfc3339_nano(info.st_mtime_ns),
            "linkTarget": link}
    return base64.b64encode(json.dumps(body).encode()).decode()


# ------------------------------------------------------------------ reading: tar of a tree


def _tar_info(arcname: str, info: os.stat_result) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(arcname)
    entry.mode = stat.S_IMODE(info.st_mode)
    entry.uid, entry.gid = info.st_uid, info.st_gid
    entry.mtime = info.st_mtime
    return entry


def write_tree(tar: tarfile.TarFile, dir_fd: int, name: str, arcname: str,
               hook: EntryHook | None = None) -> None:
    """Add ``name`` (in the directory ``dir_fd``, not followed) and everything under it to
    ``tar`` as ``arcname``; sockets are skipped, as Docker does."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    special = hook(dir_fd, name, info, arcname) if hook is not None else None
    if special is not None:
        for entry in special:
            tar.addfile(entry)
        if not stat.S_ISDIR(info.st_mode):
            return
    entry = _tar_info(arcname, info)
    mode = info.st_mode
    if stat.S_ISREG(mode):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as source:
            entry.size = os.fstat(fd).st_size
            tar.addfile(entry, source)
    elif stat.S_ISDIR(mode):
        if special is None:
            entry.type = tarfile.DIRTYPE
            tar.addfile(entry)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
        try:
            with os.scandir(fd) as listing:
                names = sorted(e.name for e in listing)
            prefix = "" if arcname in ("", ".") else arcname.rstrip("/") + "/"
            for child in names:
                write_tree(tar, fd, child, prefix + child, hook)
        finally:
            os.close(fd)
    elif stat.S_ISLNK(mode):
        entry.type = tarfile.SYMTYPE
        entry.linkname = os.readlink(name, dir_fd=dir_fd)
        tar.addfile(entry)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        entry.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        entry.devmajor, entry.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
        tar.addfile(entry)
    elif stat.S_ISFIFO(mode):
        entry.type = tarfile.FIFOTYPE
        tar.addfile(entry)


def read_archive(root_fd: int, path: str, out: IO[bytes]) -> None:
    """Write a tar of ``path`` (a file, a symlink itself or a whole directory) to ``out``,
    its entries named from the path's last component, as ``GET /archive`` does."""
    with resolve_parent(root_fd, path) as (dir_fd, name):
        _lstat(dir_fd, name, path)
        arcname = "." if name == "." else name
        try:
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                write_tree(tar, dir_fd, name, arcname)
        except OSError as exc:
            raise PycontainError(f"copy {path} from the container: {exc}") from exc


def export(root_fd: int, out: IO[bytes]) -> None:
    """A flat tar of the whole file system under ``root_fd`` (``docker export``)."""
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=root_fd)
            try:
                with os.scandir(fd) as listing:
                    names = sorted(e.name for e in listing)
                for name in names:
                    write_tree(tar, fd, name, name)
            finally:
                os.close(fd)
    except OSError as exc:
        raise PycontainError(f"export the container's file system: {exc}") from exc


# ------------------------------------------------------------------ writing: extract a tar


def write_archive(root_fd: int, path: str, source: IO[bytes]) -> None:
    """Extract the tar ``source`` into the directory ``path`` of the container (``PUT
    /archive``): each member's parent resolved inside the root, nothing followed out of
    it, an existing file replaced, an existing directory kept.  Raises ``NotFound`` when
    ``path`` is missing, ``InvalidArgument`` for a bad archive or destination."""
    with resolve_parent(root_fd, path) as (dir_fd, name):
        info = os.stat(name, dir_fd=dir_fd)  # the destination itself may be a link to a dir
        if not stat.S_ISDIR(info.st_mode):
            raise InvalidArgument(f"extraction point {path} is not a directory")
    base = posixpath.normpath("/" + path)
    try:
        with tarfile.open(fileobj=source, mode="r|") as tar:
            for member in tar:
                parts = [p for p in member.name.split("/") if p not in ("", ".")]
                if not parts:
                    continue
                if ".." in parts or "\0" in member.name:
                    raise InvalidArgument(f"copy into {path}: refused entry {member.name!r}")
                _extract_member(root_fd, tar, member, posixpath.join(base, *parts))
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(f"copy into {path}: corrupt archive: {exc}") from exc
    except OSError as exc:
        raise PycontainError(f"copy into {path}: {exc}") from exc


def _extract_member(root_fd: int, tar: tarfile.TarFile, member: tarfile.TarInfo,
                    target: str) -> None:
    with resolve_parent(root_fd, target) as (dir_fd, name):
        existing: os.stat_result | None = None
        with contextlib.suppress(FileNotFoundError):
            existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            if not member.isdir():
                raise InvalidArgument(f"cannot overwrite directory {target} with a non-directory")
        elif existing is not None:
            os.unlink(name, dir_fd=dir_fd)
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            _own(fd, member)
        elif member.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                         dir_fd=dir_fd)
            data = tar.extractfile(member)
            assert data is not None  # a regular member always has data
            with os.fdopen(os.dup(fd), "wb") as out:
                while chunk := data.read(_COPY_CHUNK):
                    out.write(chunk)
            _own(fd, member)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=dir_fd)
            os.chown(name, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)
        elif member.islnk():
            with resolve_parent(root_fd, member.linkname) as (src_fd, src_name):
                os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=dir_fd,
                        follow_symlinks=False)
        elif member.isfifo():
            os.mkfifo(name, stat.S_IMODE(member.mode), dir_fd=dir_fd)
        else:
            raise InvalidArgument(f"copy into the container: {target}: unsupported entry type")


def _own(fd: int, member: tarfile.TarInfo) -> None:
    try:
        os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, stat.S_IMODE(member.mode))
        os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)


# ------------------------------------------------------------------ diff


@dataclass(frozen=True)
class Change:
    path: str
    kind: int  # Docker's: 0 modified, 1 added, 2 deleted

    @property
    def letter(self) -> str:
        return "CAD"[self.kind]


def is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def changes(fs: ContainerFilesystem) -> list[Change]:
    """What the container changed, from its upperdir (``docker diff``): a whiteout is a
    deletion, a path that some image layer has is a change, anything else an addition."""
    found: list[Change] = []
    fd = os.open(fs.upperdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _walk_changes(fd, "", fs.lowerdirs, found)
    finally:
        os.close(fd)
    return sorted(found, key=lambda c: c.path)


def _walk_changes(dir_fd: int, prefix: str, lowers: tuple[Path, ...],
                  found: list[Change]) -> None:
    with os.scandir(dir_fd) as listing:
        names = [e.name for e in listing]
    for name in names:
        path = f"{prefix}/{name}"
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if is_whiteout(info):
            found.append(Change(path, 2))
            continue
        found.append(Change(path, 0 if _in_lowers(lowers, path) else 1))
        if stat.S_ISDIR(info.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            try:
                _walk_changes(fd, path, lowers, found)
            finally:
                os.close(fd)


def _in_lowers(lowers: tuple[Path, ...], path: str) -> bool:
    """Whether an image layer holds ``path``; no symlink in a layer is followed."""
    for layer in lowers:
        fd = os.open(layer, os.O_PATH | os.O_DIRECTORY)
        try:
            parts = path.strip("/").split("/")
            for i, part in enumerate(parts):
                try:
                    info = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    break
                if is_whiteout(info):
                    return False
                if i == len(parts) - 1:
                    return True
                if not stat.S_ISDIR(info.st_mode):
                    break
                child = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = child
        finally:
            os.close(fd)
    return False
