"""Docker's default confinement, checked from inside containers on the real kernel,
and the API socket checked from the host with unprivileged credentials."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontain.client import Client
from pycontain.errors import PycontainError
from tests.conftest import (
    BIN,
    Daemon,
    free_subnet,
    leftovers,
    remove_cgroup_parents,
    remove_network,
)

pytestmark = pytest.mark.root

DEFAULT_CAPS = "00000000a80425fb"  # Docker's 14


def status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def run(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return daemon.cli("run", "--rm", *args)


def container_status(daemon: Daemon, *flags: str) -> dict[str, str]:
    result = run(daemon, *flags, "busybox", "cat", "/proc/self/status")
    assert result.returncode == 0, result.stderr
    return status_fields(result.stdout)


# ---------------------------------------------------------------- capabilities, nnp, seccomp

def test_default_confinement_is_dockers(daemon: Daemon) -> None:
    status = container_status(daemon)
    for key in ("CapBnd", "CapPrm", "CapEff"):
        assert status[key] == DEFAULT_CAPS, (key, status[key])
    assert status["CapInh"] == "0000000000000000"
    assert status["CapAmb"] == "0000000000000000"
    assert status["NoNewPrivs"] == "0"
    assert status["Seccomp"] == "2"


def test_no_new_privileges(daemon: Daemon) -> None:
    assert container_status(daemon, "--security-opt", "no-new-privileges")["NoNewPrivs"] == "1"
    assert container_status(daemon, "--security-opt",
                            "no-new-privileges=false")["NoNewPrivs"] == "0"


def test_cap_drop_all_and_cap_add(daemon: Daemon) -> None:
    status = container_status(daemon, "--cap-drop", "ALL", "--cap-add", "net_admin",
                              "--cap-add", "CAP_SYS_TIME")
    expected = f"{(1 << 12) | (1 << 25):016x}"
    assert status["CapBnd"] == status["CapEff"] == expected
    dropped = container_status(daemon, "--cap-drop", "chown", "--cap-drop", "NET_RAW")
    assert int(dropped["CapBnd"], 16) == int(DEFAULT_CAPS, 16) & ~(1 << 0) & ~(1 << 13)
    refused = run(daemon, "--cap-drop", "chown", "busybox", "chown", "1:1", "/tmp")
    assert refused.returncode != 0
    assert "Operation not permitted" in refused.stderr


def test_unknown_capability_is_refused_at_create(daemon: Daemon) -> None:
    result = daemon.cli("create", "--cap-add", "CAP_FLY", "busybox")
    assert result.returncode == 125
    assert "unknown capability: 'CAP_FLY'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_privileged_gets_every_capability_and_no_filter(daemon: Daemon) -> None:
    with open(f"/proc/{daemon.process.pid}/status") as f:
        host = status_fields(f.read())
    status = container_status(daemon, "--privileged")
    assert status["CapBnd"] == status["CapEff"] == host["CapBnd"]
    assert status["Seccomp"] == "0"
    mounts = run(daemon, "--privileged", "busybox", "grep", " /sys ", "/proc/mounts").stdout
    assert " rw," in mounts


def test_user_1000_runs_without_capabilities(daemon: Daemon) -> None:
    result = run(daemon, "-u", "1000", "busybox", "sh", "-c",
                 "id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:2] == ["1000", "1000"]
    fields = status_fields(result.stdout.split("\n", 2)[2])
    assert fields["CapEff"] == fields["CapPrm"] == "0000000000000000"
    assert fields["CapBnd"] == DEFAULT_CAPS


def test_namespace_and_mount_syscalls_are_refused(daemon: Daemon) -> None:
    script = ("unshare -m true; echo unshare=$?; unshare -U true; echo userns=$?; "
              "mount -t tmpfs none /mnt; echo mount=$?; ls /proc/self/ns/ >/dev/null; "
              "nsenter -t 1 -m true; echo setns=$?")
    result = run(daemon, "busybox", "sh", "-c", script)
    codes = dict(line.split("=") for line in result.stdout.split())
    assert all(code != "0" for code in codes.values()), result
    assert "Operation not permitted" in result.stderr


def test_cap_sys_admin_unlocks_the_namespace_syscalls(daemon: Daemon) -> None:
    result = run(daemon, "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                 "grep Seccomp: /proc/self/status; unshare -m true && echo unshared")
    assert result.returncode == 0, result.stderr
    assert "Seccomp:\t2" in result.stdout
    assert "unshared" in result.stdout


def test_seccomp_unconfined_and_a_profile_of_ones_own(daemon: Daemon, tmp_path: Path) -> None:
    assert container_status(daemon, "--security-opt", "seccomp=unconfined")["Seccomp"] == "0"
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13}]}))
    result = run(daemon, "--security-opt", f"seccomp={profile}", "busybox", "sh", "-c",
                 "grep Seccomp: /proc/self/status; mkdir /x")
    assert "Seccomp:\t2" in result.stdout
    assert result.returncode == 1
    assert "Permission denied" in result.stderr


def test_a_bad_seccomp_profile_is_refused_at_create(daemon: Daemon, tmp_path: Path) -> None:
    profile = tmp_path / "bad.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_DANCE"}))
    result = daemon.cli("create", "--security-opt", f"seccomp={profile}", "busybox")
    assert result.returncode == 125
    assert "invalid seccomp profile: unknown defaultAction 'SCMP_ACT_DANCE'" in result.stderr
    missing = daemon.cli("create", "--security-opt", f"seccomp={tmp_path}/none.json", "busybox")
    assert missing.returncode == 125
    assert "none.json" in missing.stderr
    other = daemon.cli("create", "--security-opt", "apparmor=unconfined", "busybox")
    assert other.returncode == 125
    assert "apparmor=unconfined" in other.stderr


# ---------------------------------------------------------------- /proc, /sys, cgroups

def test_kernel_paths_are_masked_or_read_only(daemon: Daemon) -> None:
    script = ("for f in /proc/kcore /proc/interrupts /proc/timer_list /proc/keys; do "
              "  [ -e $f ] && echo $f $(cat $f | wc -c); done; "
              "ls -A /proc/acpi 2>/dev/null | wc -l; "
              "echo h > /proc/sysrq-trigger 2>/dev/null; echo sysrq=$?; "
              "echo x > /proc/sys/kernel/hostname; echo sys=$?; "
              "touch /sys/kernel/x; echo sysfs=$?; "
              "mkdir /sys/fs/cgroup/memory/x; echo cgroup=$?")
    result = run(daemon, "busybox", "sh", "-c", script)
    out = result.stdout.split("\n")
    sizes = [line.split() for line in out if line.startswith("/proc/")]
    assert sizes, result.stdout
    assert all(size == "0" for _, size in sizes), sizes   # masked: empty
    assert out[len(sizes)] == "0"                         # /proc/acpi: an empty dir
    codes = dict(line.split("=") for line in out[len(sizes) + 1:] if "=" in line)
    assert all(code != "0" for code in codes.values()), result
    assert "/proc/sys/kernel/hostname: Read-only file system" in result.stderr
    assert "/sys/kernel/x: Read-only file system" in result.stderr


def test_cgroup_namespace_shows_only_the_containers_cgroup(daemon: Daemon) -> None:
    result = run(daemon, "busybox", "sh", "-c",
                 "cat /proc/self/cgroup; readlink /proc/self/ns/cgroup")
    lines = result.stdout.splitlines()
    assert all(line.endswith(":/") for line in lines[:-1]), lines
    assert lines[-1] != os.readlink("/proc/self/ns/cgroup")


def test_only_stdio_reaches_the_container(daemon: Daemon) -> None:
    result = run(daemon, "busybox", "ls", "/proc/self/fd")
    assert result.stdout.split() == ["0", "1", "2", "3"]   # 3: the listing's own


def test_read_only_root_with_a_tmpfs(daemon: Daemon) -> None:
    result = run(daemon, "--read-only", "--tmpfs", "/tmp:size=1m", "busybox", "sh", "-c",
                 "touch /x; echo root=$?; touch /tmp/x && echo tmp=0; grep ' /tmp ' /proc/mounts")
    assert "root=1" in result.stdout
    assert "tmp=0" in result.stdout
    assert "Read-only file system" in result.stderr
    assert re.search(r"tmpfs /tmp tmpfs rw,nosuid,nodev,noexec,.*size=1024k", result.stdout)
    bad = daemon.cli("create", "--tmpfs", "/tmp:size=1m,fast", "busybox")
    assert bad.returncode == 125
    assert "invalid tmpfs option 'fast' for /tmp" in bad.stderr


# ---------------------------------------------------------------- devices

V1_DEVICES = Path("/sys/fs/cgroup/devices")
DEVICE_RULES = {"c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                "c 10:200 rwm"}


def a_host_block_device() -> str:
    """major:minor of a block device the host has (a loop device at worst)."""
    found = sorted(os.listdir("/sys/dev/block"))
    return found[0] if found else "7:0"


def test_mknod_nodes_cannot_be_opened_anywhere(daemon: Daemon, tmp_path: Path) -> None:
    major, minor = a_host_block_device().split(":")
    places = {"root": "/tmp", "dev": "/dev", "shm": "/dev/shm", "tmpfs": "/scratch",
              "volume": "/vol"}
    script = "".join(
        f"mknod {d}/disk b {major} {minor}; echo {k}_mknod=$?; "
        f"head -c1 {d}/disk >/dev/null; echo {k}_disk=$?; "
        f"mknod {d}/null13 c 1 3; echo x > {d}/null13; echo {k}_null=$?; "
        for k, d in places.items())
    result = run(daemon, "--tmpfs", "/scratch:dev,exec", "-v", f"{tmp_path}:/vol",
                 "busybox", "sh", "-c", script)
    codes = dict(line.split("=") for line in result.stdout.split())
    for place in places:
        assert codes[f"{place}_mknod"] == "0", (place, result.stderr)  # CAP_MKNOD, "m"
        assert codes[f"{place}_disk"] != "0", place
        assert codes[f"{place}_null"] != "0", place  # 1:3 is allowed: refused by nodev
    denied = re.findall(r"(Permission denied|Operation not permitted)", result.stderr)
    assert len(denied) == 2 * len(places), result.stderr


def test_the_default_devices_work(daemon: Daemon) -> None:
    script = ("echo x > /dev/null; echo null=$?; "
              "echo zero=$(head -c3 /dev/zero | od -An -tx1 | tr -d ' '); "
              "echo urandom=$(head -c8 /dev/urandom | wc -c); "
              "echo random=$(head -c8 /dev/random | wc -c); "
              "echo x > /dev/full; echo full=$?; "
              "head -c0 /dev/tty; echo tty=$?; "
              "exec 3<>/dev/ptmx; echo pts=$(ls /dev/pts | tr '\n' ,); exec 3>&-; "
              "echo x > /dev/shm/f; echo shm=$(cat /dev/shm/f); "
              "chmod 600 /dev/null; echo chmod=$?")
    result = run(daemon, "busybox", "sh", "-c", script)
    values = dict(line.split("=", 1) for line in result.stdout.split())
    assert values == {"null": "0", "zero": "000000", "urandom": "8", "random": "8",
                      "full": "1", "tty": "1", "pts": "0,ptmx,", "shm": "x",
                      "chmod": "1"}, result.stderr
    assert "write error: No space left on device" in result.stderr
    assert "/dev/tty: No such device or address" in result.stderr
    assert "Read-only file system" in result.stderr  # the host's /dev/null keeps its mode
    assert oct(os.stat("/dev/null").st_mode & 0o777) == "0o666"


def test_writable_mounts_are_nodev_and_default_devices_are_host_binds(daemon: Daemon) -> None:
    result = run(daemon, "--tmpfs", "/scratch:dev", "busybox", "cat", "/proc/self/mountinfo")
    options = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        options[fields[4]] = (fields[5].split(","), line.split(" - ")[1].split()[0])
    for target in ("/", "/dev", "/dev/shm", "/scratch", "/dev/mqueue"):
        assert "nodev" in options[target][0], (target, options[target])
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        flags, fstype = options[f"/dev/{name}"]
        assert "nodev" not in flags and "ro" in flags and fstype == "devtmpfs", (name, flags)
    assert options["/dev/pts"][1] == "devpts"
    read_only = run(daemon, "--read-only", "busybox", "grep", " / / ", "/proc/self/mountinfo")
    assert {"ro", "nodev"} <= set(read_only.stdout.split()[5].split(",")), read_only.stdout


@pytest.mark.skipif(not (V1_DEVICES / "devices.list").exists(),
                    reason="no cgroup v1 devices hierarchy (v2: nodev mounts alone)")
def test_the_v1_devices_cgroup_holds_dockers_allow_list(daemon: Daemon) -> None:
    started = daemon.cli("run", "-d", "busybox", "sleep", "60", check=True)
    container_id = started.stdout.strip()
    try:
        listing = V1_DEVICES / daemon.cgroup_parent / container_id / "devices.list"
        rules = listing.read_text().splitlines()
    finally:
        daemon.cli("rm", "-f", container_id, check=True)
    assert sorted(rules) == sorted(DEVICE_RULES)


def test_privileged_can_use_the_nodes_it_makes(daemon: Daemon) -> None:
    script = ("mknod /tmp/null c 1 3 && echo x > /tmp/null && echo root=ok; "
              "mknod /dev/null2 c 1 3 && echo x > /dev/null2 && echo dev=ok; "
              "grep ' / / ' /proc/self/mountinfo")
    result = run(daemon, "--privileged", "busybox", "sh", "-c", script)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["root=ok", "dev=ok"], result.stderr
    assert "nodev" not in lines[2].split()[5]
    # Beyond the default allow-list (here /dev/kmsg, c 1:11): the privileged container's
    # devices cgroup lets it open the node; a default container's refuses it.
    script = "mknod /tmp/kmsg c 1 11 && exec 3</tmp/kmsg && echo opened"
    assert run(daemon, "--privileged", "busybox", "sh", "-c", script).stdout == "opened\n"
    refused = run(daemon, "--cap-add", "SYSLOG", "busybox", "sh", "-c", script)
    assert refused.stdout == ""
    assert "not permitted" in refused.stderr.lower() or "denied" in refused.stderr.lower()


# ---------------------------------------------------------------- hostile images and paths

def _import_image(daemon: Daemon, tmp_path: Path, name: str, links: dict[str, str]) -> str:
    """A flat rootfs with the given symlinks (and empty /bin, /etc), imported as ``name``."""
    archive = tmp_path / f"{name}.tar"
    with tarfile.open(archive, "w") as tar:
        for directory in ("bin", "etc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, target in links.items():
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        info = tarfile.TarInfo("etc/passwd")
        data = b"root:x:0:0:root:/root:/bin/sh\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    daemon.cli("import", str(archive), f"{name}:latest", check=True)
    return f"{name}:latest"


def _host_mounts() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


@pytest.mark.parametrize("link", ["proc", "dev", "sys"])
def test_an_image_whose_kernel_mount_point_is_a_symlink_is_refused(
        daemon: Daemon, tmp_path: Path, link: str) -> None:
    sentinel = tmp_path / "outside"
    sentinel.mkdir()
    image = _import_image(daemon, tmp_path, f"evil-{link}", {link: str(sentinel)})
    before = _host_mounts()
    result = daemon.cli("run", "--rm", image, "/bin/true")
    assert result.returncode == 125
    assert f"mount target '/{link}' is a symbolic link in the image" in result.stderr
    assert _host_mounts() == before
    assert list(sentinel.iterdir()) == []
    daemon.cli("rmi", image, check=True)


def test_a_volume_target_through_a_symlink_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    image = _import_image(daemon, tmp_path, "evil-volume", {"data": "/etc", "up": "../../.."})
    source = tmp_path / "src"
    source.mkdir()
    for target in ("/data/passwd", "/up/x", "/data"):
        result = daemon.cli("run", "--rm", "-v", f"{source}:{target}", image, "/bin/true")
        assert result.returncode == 125, target
        assert "is a symbolic link in the image" in result.stderr
    assert str(source) not in _host_mounts()
    daemon.cli("rmi", image, check=True)


def test_a_workdir_through_a_magic_link_is_refused(daemon: Daemon) -> None:
    result = run(daemon, "-w", "/proc/self/fd/5", "busybox", "pwd")
    assert result.returncode != 0
    assert result.stdout == ""
    ok = run(daemon, "-w", "/proc/self/root/tmp", "busybox", "pwd")
    assert ok.stdout.strip() in ("/tmp", "/proc/self/root/tmp"), ok.stderr


# ---------------------------------------------------------------- the API socket

OUTSIDER, MEMBER_GROUP = 64101, 64100


@pytest.fixture(scope="module")
def private_daemon(test_images: Path) -> Iterator[tuple[Path, Path]]:
    """A daemon whose socket sits in a world-traversable directory, owned by group 64100."""
    tag = secrets.token_hex(4)
    root = Path(tempfile.mkdtemp(prefix=f"pycontain-test-{tag}-"))
    os.chmod(root, 0o755)
    sock = root / "api.sock"
    log_path = root / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "pycontaind"), "--data-root", str(root / "data"), "--exec-root",
             str(root / "exec"), "-H", f"unix://{sock}", "--cgroup-parent",
             f"pycontain-test-{tag}", "--group", str(MEMBER_GROUP), "--bridge", f"pct{tag}",
             "--subnet", str(free_subnet())],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert sock.exists(), log_path.read_text()
        yield sock, log_path
    finally:
        proc.terminate()
        proc.wait(20)
        left = leftovers(tag, root / "data") + remove_network(f"pct{tag}")
        remove_cgroup_parents(tag)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, left


def _ping_as(sock: Path, uid: int, gid: int, groups: list[int]) -> tuple[int, str]:
    """GET /_ping from a forked child holding these credentials: (0, reply) or (1, error)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code, text = 1, ""
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            reply = Client(f"unix://{sock}", timeout=5).request("GET", "/_ping").read()
            code, text = 0, reply.decode()
        except PycontainError as exc:
            text = str(exc)
        except BaseException as exc:
            text = repr(exc)
        finally:
            os.write(write_end, f"{code}{text}".encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read().decode()
    os.waitpid(pid, 0)
    return int(data[0]), data[1:]


def test_the_socket_is_0660_and_owned_by_its_group(private_daemon: tuple[Path, Path]) -> None:
    sock, _ = private_daemon
    st = sock.stat()
    assert oct(st.st_mode & 0o7777) == "0o660"
    assert (st.st_uid, st.st_gid) == (0, MEMBER_GROUP)


def test_root_and_group_members_may_use_the_socket(private_daemon: tuple[Path, Path]) -> None:
    sock, _ = private_daemon
    assert _ping_as(sock, 0, 0, []) == (0, "OK")
    assert _ping_as(sock, OUTSIDER, OUTSIDER, [MEMBER_GROUP]) == (0, "OK")


def test_others_are_refused(private_daemon: tuple[Path, Path]) -> None:
    sock, log_path = private_daemon
    code, message = _ping_as(sock, OUTSIDER, OUTSIDER, [])
    assert code == 1
    assert "permission denied" in message
    # Even with the socket's mode loosened by mistake, the peer check refuses them.
    os.chmod(sock, 0o666)
    try:
        code, message = _ping_as(sock, OUTSIDER, OUTSIDER, [])
    finally:
        os.chmod(sock, 0o660)
    assert code == 1
    assert message == (f"permission denied: uid {OUTSIDER} is neither root nor a member of "
                       f"group {MEMBER_GROUP} (gid {MEMBER_GROUP}), which owns the API socket")
    assert "API connection refused: pid " in log_path.read_text()
    assert f"uid {OUTSIDER} gid {OUTSIDER}: not root nor in group {MEMBER_GROUP}" in \
        log_path.read_text()
