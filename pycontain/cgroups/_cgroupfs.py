"""Reading and writing cgroup interface files, and the steps v1 and v2 share.

This is the boundary where ``OSError`` becomes a pycontain error.  Every message
names the operation and the file, e.g.
``write /sys/fs/cgroup/memory/p/c/memory.limit_in_bytes: Invalid argument (value '1')``.
Writes never create files: an interface file the kernel did not make is an error.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pycontain.cgroups.base import CgroupManager, KernelOps
from pycontain.errors import Conflict, InvalidArgument, NotFound, PycontainError

_FIRST_POLL_SECONDS = 0.001
_LONGEST_POLL_SECONDS = 0.05


def describe_os_error(exc: OSError) -> str:
    return exc.strerror or str(exc)


def error_for(operation: str, path: Path, exc: OSError, detail: str = "") -> PycontainError:
    """The pycontain error for ``exc`` raised by ``operation`` on ``path``.

    ENOENT becomes ``NotFound`` (the cgroup or the file is absent), EINVAL and
    ERANGE ``InvalidArgument`` (the kernel refused the value), anything else
    ``PycontainError``.
    """
    message = f"{operation} {path}: {describe_os_error(exc)}{detail}"
    if exc.errno == errno.ENOENT:
        return NotFound(message)
    if exc.errno in (errno.EINVAL, errno.ERANGE):
        return InvalidArgument(message)
    return PycontainError(message)


def read_file(path: Path) -> str:
    """The content of an interface file without the trailing newline.

    Raises:
        NotFound: the file (or its cgroup) does not exist.
        PycontainError: any other read error.
    """
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().rstrip("\n")
    except OSError as exc:
        raise error_for("read", path, exc) from exc


def write_file(path: Path, value: str) -> None:
    """Write ``value`` to an existing interface file in one write(2) (O_TRUNC, never O_CREAT).

    Raises:
        NotFound: the file does not exist.
        InvalidArgument: the kernel refused the value (EINVAL, ERANGE).
        PycontainError: any other write error.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise error_for("write", path, exc) from exc
    try:
        os.write(fd, value.encode("ascii"))
    except OSError as exc:
        raise error_for("write", path, exc, f" (value {value!r})") from exc
    finally:
        os.close(fd)


def write_if_present(path: Path, value: str) -> bool:
    """Like ``write_file``, but return False instead of raising when the file is absent.

    Raises:
        InvalidArgument, PycontainError: as ``write_file``.
    """
    try:
        write_file(path, value)
    except NotFound:
        return False
    return True


def read_flat_keyed(path: Path) -> dict[str, str]:
    """Parse a "key value" per line file (memory.events, cgroup.events, memory.oom_control).

    Raises:
        NotFound, PycontainError: as ``read_file``.
    """
    pairs: dict[str, str] = {}
    for line in read_file(path).splitlines():
        key, _, value = line.partition(" ")
        if key:
            pairs[key] = value.strip()
    return pairs


def read_counter(path: Path, key: str) -> int:
    """The integer ``key`` of a flat keyed file, 0 when the kernel does not report it.

    Raises:
        NotFound, PycontainError: as ``read_file``; PycontainError also for a non-integer value.
    """
    value = read_flat_keyed(path).get(key, "0")
    try:
        return int(value)
    except ValueError as exc:
        raise PycontainError(f"read {path}: {key} is not an integer: {value!r}") from exc


def read_usage_number(path: Path) -> int:
    """An integer interface file for ``usage``: 0 when the file is absent (a controller the
    host lacks), says "max", or holds no integer.

    Raises:
        PycontainError: a read error other than a missing file.
    """
    try:
        text = read_file(path).strip()
    except NotFound:
        return 0
    return int(text) if text.isdigit() else 0


def read_usage_numbers(path: Path) -> dict[str, int]:
    """The integer entries of a flat keyed file (memory.stat, cpu.stat); {} when absent.

    Raises:
        PycontainError: a read error other than a missing file.
    """
    try:
        pairs = read_flat_keyed(path)
    except NotFound:
        return {}
    return {key: int(value) for key, value in pairs.items() if value.isdigit()}


def read_pids(procs_file: Path) -> list[int]:
    """The pids listed in a cgroup.procs file.

    Raises:
        NotFound, PycontainError: as ``read_file``.
    """
    return [int(line) for line in read_file(procs_file).split()]


def walk_cgroup(top: Path) -> Iterator[Path]:
    """``top`` and every cgroup below it, deepest first (the order rmdir needs)."""
    for dirpath, _dirnames, _filenames in os.walk(top, topdown=False):
        yield Path(dirpath)


def pids_below(tops: Iterable[Path]) -> list[int]:
    """Sorted distinct pids in each existing cgroup of ``tops`` and its descendants.

    A cgroup that vanishes while being read counts as empty.

    Raises:
        PycontainError: a cgroup.procs file could not be read for another reason.
    """
    found: set[int] = set()
    for top in tops:
        for cgroup in walk_cgroup(top):
            try:
                found.update(read_pids(cgroup / "cgroup.procs"))
            except NotFound:
                continue
    return sorted(found)


def make_cgroup_dirs(ops: KernelOps, root: Path, relative: str) -> Path:
    """Make ``root/relative`` one level at a time (each level is a cgroup); return it.

    Raises:
        NotFound: ``root`` does not exist (the hierarchy is not mounted).
        PycontainError: a directory could not be made.
    """
    path = root
    for part in relative.split("/"):
        path = path / part
        if path.is_dir():
            continue
        try:
            ops.make_directory(path)
        except FileExistsError:
            continue
        except OSError as exc:
            raise error_for("mkdir", path, exc) from exc
    return path


def remove_empty_cgroup(ops: KernelOps, path: Path) -> None:
    """Remove one cgroup that has no children; no error when it is already gone.

    Raises:
        PycontainError: rmdir failed (EBUSY while processes remain).
    """
    try:
        ops.remove_directory(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise error_for("rmdir", path, exc) from exc


def kill_pids(ops: KernelOps, pids: Iterable[int]) -> None:
    """SIGKILL each pid, ignoring those that have already exited.

    Raises:
        PycontainError: a kill failed for another reason than ESRCH.
    """
    for pid in pids:
        try:
            ops.kill_process(pid)
        except ProcessLookupError:
            continue
        except OSError as exc:
            raise PycontainError(f"kill {pid}: {describe_os_error(exc)}") from exc


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` with a growing interval; return whether it held before ``timeout``."""
    deadline = time.monotonic() + timeout
    interval = _FIRST_POLL_SECONDS
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
        interval = min(interval * 2, _LONGEST_POLL_SECONDS)


def remove_cgroup_trees(
    ops: KernelOps, tops: list[Path], kill_leftovers: Callable[[], None], timeout: float
) -> None:
    """Remove each existing cgroup in ``tops`` with its descendants, deepest first.

    While a directory is busy (its processes are still exiting), ``kill_leftovers``
    runs again and the removal is retried until ``timeout`` seconds have passed.

    Raises:
        PycontainError: a directory is still busy at the end, naming it and its pids.
    """
    last_error: list[PycontainError] = []

    def try_remove_all() -> bool:
        last_error.clear()
        for top in tops:
            for cgroup in walk_cgroup(top):
                try:
                    remove_empty_cgroup(ops, cgroup)
                except PycontainError as exc:
                    last_error.append(exc)
                    kill_leftovers()
                    return False
        return True

    if wait_until(try_remove_all, timeout):
        return
    remaining = pids_below(tops)
    raise PycontainError(f"{last_error[0]}: still busy after {timeout:g} s, pids {remaining}")


def child_cgroup_names(parent_dirs: Iterable[Path]) -> list[str]:
    """Sorted distinct names of the cgroups directly below any of ``parent_dirs``."""
    names: set[str] = set()
    for parent_dir in parent_dirs:
        if parent_dir.is_dir():
            names.update(entry.name for entry in parent_dir.iterdir() if entry.is_dir())
    return sorted(names)


def remove_parent_cgroups(ops: KernelOps, parent_dirs: list[Path]) -> None:
    """Remove each of ``parent_dirs`` if it has no child cgroups left; absent ones are skipped.

    Raises:
        Conflict: a child cgroup remains (nothing is removed then).
        PycontainError: rmdir failed.
    """
    leftovers = child_cgroup_names(parent_dirs)
    if leftovers:
        shown = ", ".join(str(path) for path in parent_dirs)
        raise Conflict(f"rmdir {shown}: container cgroups remain: {leftovers}")
    for parent_dir in parent_dirs:
        remove_empty_cgroup(ops, parent_dir)


@contextmanager
def removed_on_error(manager: CgroupManager, container_id: str, new: bool) -> Iterator[None]:
    """Destroy the container's cgroup if the body raises and the cgroup is ``new``.

    So a create that fails half-way leaves nothing behind; a failed re-create of
    an existing cgroup leaves it in place.  The body's error is the one raised.
    """
    try:
        yield
    except BaseException:
        if new:
            with suppress(PycontainError):
                manager.destroy(container_id)
        raise
