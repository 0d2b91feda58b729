"""The safe layer extractor: one layer tar -> one directory usable as an overlay lowerdir.

Security model.  The archive is hostile until proven otherwise, and nothing it holds
may create, change or remove anything outside the layer directory:

- Entry names are cleaned: a leading ``/`` is dropped (the name is rooted at the layer);
  a ``..`` component, an empty name for a non-directory, or a NUL byte refuses the layer.
- The parent directory of every entry is resolved the way containerd's ``fs.RootPath``
  does: symlinks already extracted into the layer are followed, but an absolute target
  restarts at the layer root and ``..`` stops at it, so ``a -> /etc`` then ``a/passwd``
  writes ``<layer>/etc/passwd``.  The entry's own last component is never followed: an
  existing file, symlink or device there is removed first (a directory is removed unless
  the entry is a directory too), and files are created with ``O_EXCL | O_NOFOLLOW``.
- Hardlink targets are resolved the same way and must already exist in this layer.
- Symlink targets are stored unchanged (absolute targets are normal in images); they
  only matter again when a later entry's parent resolves through them, as above.
- Extended attributes come from PAX ``SCHILY.xattr.*`` records, limited to the ``user.``
  and ``security.`` namespaces and POSIX ACLs: ``trusted.overlay.*`` is set only by the
  whiteout conversion, never copied from an archive.

Whiteouts become overlayfs whiteouts: ``.wh.NAME`` -> a character device 0/0 named NAME,
``.wh..wh..opq`` -> the xattr ``trusted.overlay.opaque=y`` on its directory.  Other
``.wh..wh.*`` names are AUFS bookkeeping and are skipped.

The whole stream is hashed while it is read; the sha256 of the uncompressed tar is the
layer's diff_id.  Layers are streamed, never read into memory.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import logging
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, Protocol

from pycontain.errors import ImageArchiveError, PycontainError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["UnpackedLayer", "unpack_layer"]

log = logging.getLogger(__name__)

WHITEOUT_PREFIX: Final = ".wh."
OPAQUE_MARKER: Final = ".wh..wh..opq"
OPAQUE_XATTR: Final = "trusted.overlay.opaque"
_XATTR_PAX_PREFIX: Final = "SCHILY.xattr."
_ALLOWED_XATTR_PREFIXES: Final = ("user.", "security.", "system.posix_acl_")
_MAX_SYMLINK_HOPS: Final = 255
_COPY_CHUNK: Final = 1 << 20

_GZIP_MAGIC: Final = b"\x1f\x8b"
_BZIP2_MAGIC: Final = b"BZh"
_XZ_MAGIC: Final = b"\xfd7zXZ\x00"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"


def _zstd_errors() -> tuple[type[Exception], ...]:
    try:
        import zstandard
    except ImportError:
        return ()
    return (zstandard.ZstdError,)


_ZSTD_ERRORS: Final = _zstd_errors()


@dataclass(frozen=True)
class UnpackedLayer:
    """What unpacking measured: the diff_id (``sha256:<hex>`` of the uncompressed tar),
    the sha256 of the bytes as read (compressed or not) and the layer's size in bytes
    (the sum of its regular files)."""

    diff_id: str
    blob_digest: str
    size: int


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _HashingReader(io.RawIOBase):
    """A read-only raw stream that hashes what passes through it."""

    def __init__(self, inner: _Readable) -> None:
        super().__init__()
        self._inner = inner
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        view[: len(data)] = data
        self._hash.update(data)
        return len(data)

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def _hashing(inner: _Readable) -> tuple[_HashingReader, io.BufferedReader]:
    raw = _HashingReader(inner)
    return raw, io.BufferedReader(raw, _COPY_CHUNK)


def _drain(stream: _Readable) -> None:
    """Read the rest of ``stream``: tar padding after the end marker is part of the digest."""
    while stream.read(_COPY_CHUNK):
        pass


@contextmanager
def _decompressed(raw: IO[bytes], what: str) -> Iterator[tuple[_HashingReader, _Readable]]:
    """Yield a hashing reader over ``raw`` and the stream decompressed from it: gzip,
    bzip2, xz and zstd are detected by their magic bytes, anything else is a plain tar.

    ``raw`` is read once, front to back (it may be a network stream): the magic bytes
    are peeked at through the buffer.  Raises ``ImageArchiveError`` for zstd when the
    ``zstandard`` module is missing.
    """
    hasher, blob = _hashing(raw)
    magic = blob.peek(len(_XZ_MAGIC))
    if magic.startswith(_GZIP_MAGIC):
        with gzip.GzipFile(fileobj=blob, mode="rb") as stream:
            yield hasher, stream
    elif magic.startswith(_BZIP2_MAGIC):
        with bz2.BZ2File(blob) as stream:
            yield hasher, stream
    elif magic.startswith(_XZ_MAGIC):
        with lzma.LZMAFile(blob) as stream:
            yield hasher, stream
    elif magic.startswith(_ZSTD_MAGIC):
        try:
            import zstandard
        except ImportError as exc:
            raise ImageArchiveError(
                f"{what}: zstd-compressed layer, and the zstandard module is missing") from exc
        decompressor = zstandard.ZstdDecompressor()
        with decompressor.stream_reader(blob, read_across_frames=True) as stream:
            yield hasher, stream
    else:
        yield hasher, blob


def unpack_layer(raw: IO[bytes], dest: Path, what: str) -> UnpackedLayer:
    """Extract the layer tar ``raw`` (plain, gzip, bzip2, xz or zstd; read once, front to
    back, so a network stream will do) into the empty directory ``dest``.

    ``what`` names the layer in error messages.  Raises ``ImageArchiveError`` for a
    corrupt, truncated or hostile layer (the message names the entry), and
    ``PycontainError`` when the host refuses an operation (disk full, no permission).
    The caller owns ``dest`` and removes it after a failure.
    """
    try:
        with _decompressed(raw, what) as (blob_hasher, stream):
            tar_hasher, tar_stream = _hashing(stream)
            with tarfile.open(fileobj=tar_stream, mode="r|") as tar:
                size = _LayerWriter(dest, what).extract_all(tar)
            _drain(tar_stream)
            _drain(stream)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ImageArchiveError(f"{what}: corrupt layer: {exc}") from exc
    except gzip.BadGzipFile as exc:
        raise ImageArchiveError(f"{what}: corrupt gzip stream: {exc}") from exc
    except _ZSTD_ERRORS as exc:
        raise ImageArchiveError(f"{what}: corrupt zstd stream: {exc}") from exc
    return UnpackedLayer(tar_hasher.digest(), blob_hasher.digest(), size)


class _LayerWriter:
    """Writes the members of one layer tar below ``root``; see the module docstring."""

    def __init__(self, root: Path, what: str) -> None:
        self.root = Path(os.path.realpath(root))
        self.what = what
        self.deferred_dir_times: list[tuple[Path, int]] = []
        self.size = 0

    def extract_all(self, tar: tarfile.TarFile) -> int:
        for member in tar:
            try:
                self.extract(tar, member)
            except ImageArchiveError:
                raise
            except ValueError as exc:
                raise self.refuse(member.name, str(exc)) from exc
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.EEXIST, errno.EISDIR):
                    raise self.refuse(member.name, exc.strerror or str(exc)) from exc
                raise PycontainError(f"{self.what}: extract {member.name!r}: {exc}") from exc
        for path, mtime_ns in reversed(self.deferred_dir_times):
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
        return self.size

    def refuse(self, name: str, reason: str) -> ImageArchiveError:
        return ImageArchiveError(f"{self.what}: refusing entry {name!r}: {reason}")

    def extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = self.clean_name(member.name)
        if not parts:
            if not member.isdir():
                raise self.refuse(member.name, "empty name")
            self.apply_metadata(self.root, member)
            return
        *parent_parts, base = parts
        if base.startswith(WHITEOUT_PREFIX):
            self.extract_whiteout(member, parent_parts, base)
            return
        parent = self.make_parent_dirs(member.name, parent_parts)
        path = parent / base
        if member.islnk():
            self.extract_hardlink(member, path)
            return
        self.remove_existing(path, keep_directory=member.isdir())
        if member.isreg():
            self.write_file(tar, member, path)
        elif member.isdir():
            if not os.path.lexists(path):
                os.mkdir(path, 0o700)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise self.refuse(member.name, f"unsupported tar entry type {member.type!r}")
        self.apply_metadata(path, member)

    def clean_name(self, name: str) -> list[str]:
        if "\x00" in name:
            raise self.refuse(name, "NUL byte in name")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise self.refuse(name, "'..' in path")
        return parts

    def resolve(self, name: str, parts: list[str]) -> Path:
        """The real path of ``parts`` below the root, following symlinks clamped to the root."""
        resolved: list[str] = []
        pending = list(reversed(parts))
        hops = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = self.root.joinpath(*resolved, part)
            try:
                mode = os.lstat(candidate).st_mode
            except FileNotFoundError:
                resolved.append(part)
                continue
            except NotADirectoryError as exc:
                raise self.refuse(name, f"{'/'.join(resolved)!r} is not a directory") from exc
            if not stat.S_ISLNK(mode):
                resolved.append(part)
                continue
            hops += 1
            if hops > _MAX_SYMLINK_HOPS:
                raise self.refuse(name, "too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved.clear()
            pending.extend(reversed(target.split("/")))
        return self.root.joinpath(*resolved)

    def make_parent_dirs(self, name: str, parent_parts: list[str]) -> Path:
        """Resolve the parent of an entry and create its missing directories (mode 0755)."""
        parent = self.resolve(name, parent_parts)
        path = self.root
        for part in parent.relative_to(self.root).parts:
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                continue
            if not stat.S_ISDIR(mode):
                raise self.refuse(name, f"parent {part!r} is not a directory")
        self.check_inside(name, parent)
        return parent

    def check_inside(self, name: str, path: Path) -> None:
        """Defence in depth: the fully resolved ``path`` must still be below the root."""
        real = os.path.realpath(path)
        if os.path.commonpath([real, self.root]) != str(self.root):
            raise self.refuse(name, "resolves outside the layer")

    def remove_existing(self, path: Path, keep_directory: bool) -> None:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            if not keep_directory:
                shutil.rmtree(path)
        else:
            os.unlink(path)

    def write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
        source = tar.extractfile(member)
        if source is None:
            raise self.refuse(member.name, "no data for regular file")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with source, os.fdopen(os.open(path, flags, 0o600), "wb") as out:
            shutil.copyfileobj(source, out, _COPY_CHUNK)
        self.size += member.size

    def extract_hardlink(self, member: tarfile.TarInfo, path: Path) -> None:
        target_parts = self.clean_name(member.linkname)
        if not target_parts:
            raise self.refuse(member.name, "hardlink without a target")
        target = self.resolve(member.name, target_parts[:-1]) / target_parts[-1]
        try:
            target_mode = os.lstat(target).st_mode
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise self.refuse(
                member.name, f"hardlink target {member.linkname!r} is not in the layer"
            ) from exc
        if stat.S_ISDIR(target_mode):
            raise self.refuse(member.name, "hardlink to a directory")
        self.check_inside(member.name, target.parent)
        if target == path:
            return
        self.remove_existing(path, keep_directory=False)
        os.link(target, path, follow_symlinks=False)

    def extract_whiteout(self, member: tarfile.TarInfo, parent_parts: list[str], base: str) -> None:
        parent = self.make_parent_dirs(member.name, parent_parts)
        if base == OPAQUE_MARKER:
            os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return
        hidden = base[len(WHITEOUT_PREFIX) :]
        if not hidden:
            raise self.refuse(member.name, "whiteout without a name")
        if hidden in (".", ".."):  # would remove the directory itself, or its parent
            raise self.refuse(member.name, f"whiteout of {hidden!r}")
        path = parent / hidden
        self.remove_existing(path, keep_directory=False)
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        os.lchown(path, member.uid, member.gid)

    def apply_metadata(self, path: Path, member: tarfile.TarInfo) -> None:
        os.lchown(path, member.uid, member.gid)
        if not member.issym():
            os.chmod(path, member.mode & 0o7777)
        self.apply_xattrs(path, member)
        mtime_ns = int(member.mtime * 1_000_000_000)
        if member.isdir():
            self.deferred_dir_times.append((path, mtime_ns))
        else:
            os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)

    def apply_xattrs(self, path: Path, member: tarfile.TarInfo) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PAX_PREFIX):
                continue
            attr = key[len(_XATTR_PAX_PREFIX) :]
            if not attr.startswith(_ALLOWED_XATTR_PREFIXES):
                log.warning("%s: %s: ignoring xattr %s", self.what, member.name, attr)
                continue
            data = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(path, attr, data, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                log.warning("%s: %s: cannot set xattr %s: %s", self.what, member.name, attr, exc)
