"""Container init: what runs between the shim's fork and the container's execve.

This code runs as PID 1 of the container's new PID namespace.  It must not import
anything (the fork server imported it all beforehand) and must never return: it
ends in execve, or in ``os._exit`` after reporting the failure on ``error_fd``
as one JSON line ``{"message": ..., "exit_code": ...}``.

Order of work:

    close inherited fds -> join cgroup -> unshare(NS|UTS|IPC|CGROUP) -> non-dumpable
    -> / made rprivate -> overlay on rootfs -> binds, tmpfs -> /proc /dev /dev/pts /dev/shm
    /dev/mqueue /sys /sys/fs/cgroup -> pivot_root -> read-only and masked paths
    -> hostname, lo up -> user, cwd (checked to be inside), env -> the terminal (-t:
    a pair from the container's devpts, the master sent to the shim) -> read-only root
    -> bounding set, inheritable, ambient -> no_new_privs -> default signals -> close fds
    -> seccomp -> setgroups/setgid/setuid -> permitted/effective -> execve

Every mount target inside the image is reached one component at a time with
O_PATH|O_NOFOLLOW and mounted on through /proc/self/fd: a symlink in the image
(/proc -> /, a volume target -> /etc) is refused, never followed out of the root.

Devices: every writable mount (the overlay root, volumes, tmpfs mounts, /dev, /dev/shm)
is nodev unless the container is privileged, so a node the container mknods anywhere
cannot be opened.  The default devices are the host's own nodes, each bound read-only
(so that a chmod in the container cannot reach the host's inode) on an empty file of
the nodev /dev tmpfs; /dev/pts is a devpts of its own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from pycontain.runtime import syscalls as sc
from pycontain.runtime.console import become_console_client
from pycontain.runtime.spec import BindMount, ContainerSpec, ProcessSpec, SecuritySpec
from pycontain.security import confine

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# (name, major, minor): Docker's default device nodes, bound from the host's /dev.
DEFAULT_DEVICES = (
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7),
    ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
)
DEV_SYMLINKS = (
    ("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx"), ("/proc/kcore", "core"),
)


class StartError(Exception):
    """A failure of container setup, with Docker's exit code for it."""

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def run_container_init(spec: ContainerSpec, error_fd: int) -> NoReturn:
    """Set up the container and execve its process.  Never returns."""
    run_reporting_failure(error_fd, "container init", _setup_and_exec, spec, error_fd)


def run_reporting_failure(error_fd: int, what: str, setup_and_exec: Callable[..., None],
                          *args: Any) -> NoReturn:
    """Run ``setup_and_exec`` (which ends in execve) in a forked child; if it fails, write
    ``{"message", "exit_code"}`` on ``error_fd`` and exit with the code.  Never returns."""
    try:
        setup_and_exec(*args)
        message, code = "execve returned", 125
    except StartError as exc:
        message, code = exc.message, exc.exit_code
    except OSError as exc:
        message, code = f"{what}: {exc}", 125
    except BaseException as exc:  # never let a Python error escape a forked child
        message, code = f"{what}: {exc!r}", 125
    try:
        os.write(error_fd, json.dumps({"message": message, "exit_code": code}).encode() + b"\n")
    finally:
        os._exit(code)


def _setup_and_exec(spec: ContainerSpec, error_fd: int) -> None:
    close_inherited_fds(error_fd)  # nothing of the daemon, fork server or shim gets in
    join_cgroup(spec.cgroup_join_files)
    # The network namespace is the shim's doing (shim.py: enter_network_namespace).
    sc.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWCGROUP)
    confine.make_non_dumpable()
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)

    security = spec.security
    mount_rootfs(spec)
    pivot_into(spec.rootfs)
    protect_kernel_paths(security)
    sc.sethostname(spec.hostname)
    if spec.network_mode in ("bridge", "none"):  # a namespace of its own: lo starts down
        sc.bring_interface_up("lo")

    user = enter_process_context(spec.process, spec.hostname)
    if spec.tty:  # fd 0 is the shim's console socket until now
        become_console_client(0, user.uid, spec.console_size)
    if security.readonly_rootfs:  # a bind remount sets every flag: keep nodev
        nodev = sc.MS_NODEV if security.nodev_mounts else 0
        sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | nodev)
    confine_and_exec(spec.process.args, user, security, error_fd)


@dataclass(frozen=True)
class ProcessUser:
    """Who the process runs as, and its environment (resolved from the image's files)."""

    uid: int
    gid: int
    groups: list[int]
    env: list[str]


def enter_process_context(process: ProcessSpec, hostname: str) -> ProcessUser:
    """Resolve the user and the environment and chdir into the working directory.

    Inside the container's root: the container init's and an exec'd process's step.
    """
    uid, gid, groups, home = resolve_user(process.user)
    env = build_env(process.env, hostname, home)
    enter_workdir(process.cwd, uid, gid)
    return ProcessUser(uid, gid, groups, env)


def confine_and_exec(args: tuple[str, ...], user: ProcessUser, security: SecuritySpec,
                     error_fd: int) -> None:
    """Capabilities, no_new_privs, signals, fds, seccomp, the user's ids, then execve.

    Raises StartError (126/127) when the command cannot be run.
    """
    executable = look_path(args[0], user.env)
    confine.drop_bounding_set(security.capabilities)
    confine.clear_inheritable_and_ambient()
    if security.no_new_privileges:
        confine.set_no_new_privs()
    reset_signals()
    close_inherited_fds(error_fd)
    if security.seccomp_bpf:  # last: everything after it must be allowed by the profile
        confine.load_seccomp(bytes.fromhex(security.seccomp_bpf))
    os.setgroups(user.groups)
    os.setgid(user.gid)
    os.setuid(user.uid)
    if user.uid == 0:
        confine.limit_to(security.capabilities)
    try:
        os.execve(executable, list(args), env_dict(user.env))
    except OSError as exc:
        raise exec_error(args[0], exc) from exc


def join_cgroup(join_files: tuple[str, ...]) -> None:
    """Move this process into the container's cgroup (one cgroup.procs file per hierarchy)."""
    for path in join_files:
        with open(path, "w") as f:
            f.write("0")


def close_inherited_fds(keep: int) -> None:
    """Close every fd but 0, 1, 2 and ``keep`` (the error pipe, close-on-exec)."""
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)


def reset_signals() -> None:
    """Default dispositions and an empty mask: ignored signals would survive execve.

    (Python ignores SIGPIPE and SIGXFSZ; the shims ignore SIGHUP and SIGPIPE.)
    """
    for number in range(1, signal.NSIG):
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def mount_rootfs(spec: ContainerSpec) -> None:
    """The overlay of the image's layers, binds and tmpfs, and the kernel filesystems."""
    rootfs = spec.rootfs
    nodev = sc.MS_NODEV if spec.security.nodev_mounts else 0
    # Relative lowerdirs keep the option string under the kernel's one-page limit.
    base = os.path.commonpath(spec.lowerdirs) if len(spec.lowerdirs) > 1 else "/"
    os.chdir(base)
    lower = ":".join(os.path.relpath(d, base) for d in spec.lowerdirs)
    sc.mount("overlay", rootfs, "overlay", nodev,
             f"lowerdir={lower},upperdir={spec.upperdir},workdir={spec.workdir}")
    os.chdir("/")
    for bind in spec.binds:
        mount_bind(rootfs, bind, nodev=bool(nodev))
    for tmpfs in spec.tmpfs:
        mount_in_root(rootfs, tmpfs.target, "tmpfs", "tmpfs", tmpfs.flags | nodev,
                      tmpfs.data or None)

    nosuid_nodev_noexec = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    mount_in_root(rootfs, "/proc", "proc", "proc", nosuid_nodev_noexec)
    dev = mount_in_root(rootfs, "/dev", "tmpfs", "tmpfs",
                        sc.MS_NOSUID | sc.MS_STRICTATIME | nodev, "mode=755,size=65536k")
    for name, major, minor in DEFAULT_DEVICES:
        bind_host_device(rootfs, name, major, minor)
    os.mkdir(f"{dev}/pts", 0o755)
    sc.mount("devpts", f"{dev}/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.mkdir(f"{dev}/shm", 0o1777)
    sc.mount("shm", f"{dev}/shm", "tmpfs", nosuid_nodev_noexec, "mode=1777,size=65536k")
    os.mkdir(f"{dev}/mqueue", 0o755)
    sc.mount("mqueue", f"{dev}/mqueue", "mqueue", nosuid_nodev_noexec)
    for target, name in DEV_SYMLINKS:
        os.symlink(target, f"{dev}/{name}")
    writable = spec.security.writable_sysfs
    sysfs = mount_in_root(rootfs, "/sys", "sysfs", "sysfs",
                          nosuid_nodev_noexec | (0 if writable else sc.MS_RDONLY))
    mount_cgroups(f"{sysfs}/fs/cgroup", writable)


def mount_cgroups(target: str, writable: bool) -> None:
    """The container's own cgroup (the cgroup namespace's root) at /sys/fs/cgroup.

    cgroup v2 alone: one cgroup2 mount.  v1 or hybrid: a tmpfs holding one mount per
    hierarchy the init belongs to, named as on the host (cpu, memory, systemd, unified).
    """
    hierarchies: list[tuple[str, str, str | None]] = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, _ = line.rstrip("\n").split(":", 2)
            if not controllers:
                hierarchies.append(("unified", "cgroup2", None))
            elif controllers.startswith("name="):
                hierarchies.append((controllers[5:], "cgroup", f"none,{controllers}"))
            else:
                hierarchies.append((controllers, "cgroup", controllers))
    flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    readonly = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | flags
    if [h[1] for h in hierarchies] == ["cgroup2"]:
        sc.mount("cgroup2", target, "cgroup2", flags)
    else:
        sc.mount("tmpfs", target, "tmpfs", flags, "mode=755,size=64k")
        for name, fstype, options in hierarchies:
            os.mkdir(f"{target}/{name}", 0o755)
            sc.mount(fstype, f"{target}/{name}", fstype, flags, options)
            if not writable:
                sc.mount(None, f"{target}/{name}", None, readonly)
    if not writable:
        sc.mount(None, target, None, readonly)


def mount_bind(rootfs: str, bind: BindMount, nodev: bool) -> None:
    """A volume: the host path bound (recursively) on its target.

    ``:ro`` and nodev are set on the whole bound tree with mount_setattr, which keeps the
    other flags each mount has on the host (a bind remount would clear them).
    """
    if not os.path.exists(bind.source):
        os.makedirs(bind.source, 0o755)
    is_dir = os.path.isdir(bind.source)
    mount_in_root(rootfs, bind.target, bind.source, None, sc.MS_BIND | sc.MS_REC,
                  directory=is_dir)
    attrs = ((sc.MOUNT_ATTR_RDONLY if bind.readonly else 0)
             | (sc.MOUNT_ATTR_NODEV if nodev else 0))
    if attrs:
        fd = open_target(rootfs, bind.target, is_dir)  # now the bound tree's root
        try:
            sc.mount_setattr_tree(fd, attrs, bind.target)
        except OSError as exc:
            raise StartError(f"restrict the mount on {bind.target}: "
                             f"{os.strerror(exc.errno or 0)}") from exc
        finally:
            os.close(fd)


def bind_host_device(rootfs: str, name: str, major: int, minor: int) -> None:
    """Bind the host's /dev/<name> on /dev/<name> of the container, read-only.

    The source is checked to be the expected character device before it is bound
    (through its fd: what is checked is what is bound).  Read-only is for the inode
    (mode, owner, times); reads and writes of a device ignore it.
    """
    host_path = f"/dev/{name}"
    source = os.open(host_path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(source)
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(major, minor):
            raise StartError(f"default device {host_path}: the host's is not "
                             f"the character device {major}:{minor}")
        target = f"/dev/{name}"
        mount_in_root(rootfs, target, f"/proc/self/fd/{source}", None, sc.MS_BIND,
                      directory=False)
        mount_in_root(rootfs, target, None, None,
                      sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NOEXEC,
                      directory=False)
    finally:
        os.close(source)


def mount_in_root(rootfs: str, path: str, source: str | None, fstype: str | None, flags: int,
                  data: str | None = None, directory: bool = True) -> str:
    """Mount on ``path`` inside rootfs, reached without following any symlink; its host path."""
    fd = open_target(rootfs, path, directory)
    try:
        sc.mount(source, f"/proc/self/fd/{fd}", fstype, flags, data)
    except OSError as exc:
        raise StartError(f"mount {fstype or source or 'remount'} on {path}: "
                         f"{os.strerror(exc.errno or 0)}") from exc
    finally:
        os.close(fd)
    return rootfs + "/" + "/".join(p for p in path.split("/") if p and p != ".")


def open_target(rootfs: str, path: str, directory: bool = True) -> int:
    """An O_PATH fd on a mount point inside rootfs, created if missing.

    Each component is opened with O_NOFOLLOW relative to its parent: a symlink
    anywhere on the way (``/proc -> /``, ``/data -> /etc``) is refused.
    """
    parts = [p for p in path.split("/") if p and p != "."]
    fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            if part == "..":
                raise StartError(f"mount target {path!r} leaves the container's root")
            last = i == len(parts) - 1
            try:
                child = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                if last and not directory:
                    os.close(os.open(part, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, 0o644, dir_fd=fd))
                else:
                    os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = child
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                raise StartError(f"mount target {path!r} is a symbolic link in the image")
            if not last and not stat.S_ISDIR(mode):
                raise StartError(f"mount target {path!r}: {part} is not a directory")
    except BaseException:
        os.close(fd)
        raise
    return fd


def protect_kernel_paths(security: SecuritySpec) -> None:
    """Read-only paths bound over themselves and remounted read-only; masked paths hidden
    (/dev/null over a file, an empty read-only tmpfs over a directory).  After pivot_root."""
    flags = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
    for path in security.readonly_paths:
        if not os.path.lexists(path):
            continue
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
        sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | flags)
    for path in security.masked_paths:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY | flags)
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)


def pivot_into(rootfs: str) -> None:
    """pivot_root(2) into rootfs and detach the old root (runc's "." trick)."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    os.chdir(rootfs)
    sc.pivot_root(".", ".")
    os.fchdir(old_root)
    os.close(old_root)
    sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
    sc.umount(".", sc.MNT_DETACH)
    os.chdir("/")


def _read_colon_file(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip()
                    and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(user: str) -> tuple[int, int, list[int], str]:
    """uid, gid, supplementary groups and home for ``user[:group]``, from the image's files."""
    name, _, group = (user or "0").partition(":")
    passwd = _read_colon_file("/etc/passwd")
    home = "/"
    if name.isdigit():
        uid = int(name)
        entry = next((e for e in passwd if len(e) >= 6 and e[2] == name), None)
        gid = int(entry[3]) if entry and entry[3].isdigit() else uid if uid else 0
        if entry:
            home = entry[5] or "/"
            name = entry[0]
    else:
        entry = next((e for e in passwd if len(e) >= 6 and e[0] == name), None)
        if entry is None:
            raise StartError(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5] or "/"
    group_file = _read_colon_file("/etc/group")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            match = next((g for g in group_file if len(g) >= 3 and g[0] == group), None)
            if match is None:
                raise StartError(f"unable to find group {group}: no matching entries in group file")
            gid = int(match[2])
    groups = sorted({gid} | {int(g[2]) for g in group_file if len(g) >= 4 and g[2].isdigit()
                             and name in g[3].split(",")})
    return uid, gid, groups, home


def build_env(env: tuple[str, ...], hostname: str, home: str) -> list[str]:
    keys = {e.partition("=")[0] for e in env}
    extra = []
    if "PATH" not in keys:
        extra.append(f"PATH={DEFAULT_PATH}")
    if "HOSTNAME" not in keys:
        extra.append(f"HOSTNAME={hostname}")
    if "HOME" not in keys:
        extra.append(f"HOME={home}")
    return extra + list(env)


def env_dict(env: list[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        result[key] = value
    return result


def enter_workdir(cwd: str, uid: int, gid: int) -> None:
    """chdir into the working directory; create it (owned by the user) if missing, like Docker.

    Then check that it is inside the container's root: a WORKDIR such as /proc/self/fd/N
    (an fd leaked from the host) must not leave the process in a host directory.
    """
    path = cwd or "/"
    if not os.path.isdir(path):
        os.makedirs(path, 0o755, exist_ok=True)
        os.chown(path, uid, gid)
    os.chdir(path)
    try:
        here = os.getcwd()  # ENOENT when the directory is not reachable from our root
        same = os.path.samestat(os.stat(here), os.stat("."))
    except OSError:
        same = False
    if not same:
        raise StartError(f"working directory {path!r} is outside the container's root")


def look_path(command: str, env: list[str]) -> str:
    """Find the executable like Go's exec.LookPath, inside the container's root."""
    if "/" in command:
        try:
            st = os.stat(command)
        except OSError as exc:
            raise exec_error(command, exc) from exc
        if stat.S_ISDIR(st.st_mode):
            raise exec_error(command, OSError(errno.EACCES, "permission denied"))
        return command
    path = env_dict(env).get("PATH", DEFAULT_PATH)
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", command)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return candidate
    raise StartError(f'exec: "{command}": executable file not found in $PATH', 127)


def exec_error(command: str, exc: OSError) -> StartError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return StartError(f'exec: "{command}": stat {command}: no such file or directory', 127)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.ENOEXEC, errno.EISDIR):
        return StartError(f'exec: "{command}": permission denied', 126)
    return StartError(f'exec: "{command}": {exc.strerror}', 126)
