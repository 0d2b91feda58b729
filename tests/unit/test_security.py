"""Security policy without root: capability rules, options, tmpfs, seccomp profiles and
the compiled default filter (loaded in a forked child under no_new_privs), peer checks."""

from __future__ import annotations

import ctypes
import errno
import json
import os

import pytest

from pycontain.containers.record import parse_create_body
from pycontain.errors import InvalidArgument
from pycontain.security.capabilities import DEFAULT_CAPABILITIES, container_capabilities
from pycontain.security.confine import load_seccomp
from pycontain.security.options import parse_security_options, parse_tmpfs
from pycontain.security.peer import PeerCredentials, access_refusal
from pycontain.security.seccomp import compile_profile, parse_profile
from pycontain.security.seccomp_default import DEFAULT_PROFILE


def test_default_capabilities_are_dockers_14() -> None:
    assert len(DEFAULT_CAPABILITIES) == 14
    assert set(container_capabilities((), (), False)) == set(DEFAULT_CAPABILITIES)


def test_cap_add_and_cap_drop_follow_docker() -> None:
    assert container_capabilities(("ALL",), (), False)[0] == "CAP_CHOWN"
    assert "CAP_SYS_ADMIN" in container_capabilities(("ALL",), (), False)
    assert container_capabilities(("net_admin",), ("ALL",), False) == ("CAP_NET_ADMIN",)
    assert "CAP_CHOWN" not in container_capabilities((), ("chown",), False)
    assert "CAP_CHOWN" in container_capabilities(("CHOWN",), ("chown",), False)  # add wins
    assert container_capabilities((), ("ALL",), True) == container_capabilities(("ALL",), (),
                                                                                False)
    with pytest.raises(InvalidArgument, match="unknown capability: 'CAP_NOPE'"):
        container_capabilities(("CAP_NOPE",), (), False)


def test_security_options() -> None:
    assert parse_security_options(("no-new-privileges",)).no_new_privileges
    assert parse_security_options(("no-new-privileges:true",)).no_new_privileges
    assert not parse_security_options(("no-new-privileges=false",)).no_new_privileges
    assert parse_security_options(("seccomp=unconfined",)).seccomp == "unconfined"
    for bad in ("label=disable", "no-new-privileges=maybe", "seccomp="):
        with pytest.raises(InvalidArgument, match="invalid --security-opt"):
            parse_security_options((bad,))


def test_tmpfs_options() -> None:
    mount = parse_tmpfs("/tmp", "size=64m,mode=1777,exec")
    assert mount.data == "size=64m,mode=1777"
    assert mount.flags == 2 | 4  # nosuid, nodev; exec cleared noexec
    assert parse_tmpfs("/run", "").flags == 2 | 4 | 8
    for target, options in (("tmp", ""), ("/a/../b", ""), ("/tmp", "size=1m;x"),
                            ("/tmp", "uid=0,fast")):
        with pytest.raises(InvalidArgument):
            parse_tmpfs(target, options)


def test_create_body_fields_are_checked_and_kept() -> None:
    _, host = parse_create_body({"Image": "busybox", "HostConfig": {
        "CapAdd": ["NET_ADMIN"], "CapDrop": ["ALL"], "Privileged": False,
        "SecurityOpt": ["no-new-privileges"], "ReadonlyRootfs": True,
        "Tmpfs": {"/tmp": "size=1m"}}})
    assert host.cap_add == ("NET_ADMIN",)
    assert host.cap_drop == ("ALL",)
    assert host.readonly_rootfs
    assert host.tmpfs == {"/tmp": "size=1m"}
    for bad in ({"CapAdd": ["NOPE"]}, {"Privileged": "yes"}, {"Tmpfs": ["/tmp"]},
                {"SecurityOpt": ["seccomp={"]}):
        with pytest.raises(InvalidArgument):
            parse_create_body({"Image": "busybox", "HostConfig": bad})


def test_profile_checks_name_what_is_wrong() -> None:
    cases = {
        "[]": "not a JSON object",
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "read"}]}': "names",
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
        '"action": "SCMP_ACT_ALLOW", "args": [{"index": 9, "op": "SCMP_CMP_EQ"}]}]}':
            "bad argument condition",
    }
    for text, message in cases.items():
        with pytest.raises(InvalidArgument, match=message):
            parse_profile(text)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYSCALLS = {  # x86_64 numbers
    "getpid": (39, ()), "keyctl": (250, (0, 0)), "add_key": (248, (0, 0, 0, 0, 0)),
    "bpf": (321, (0, 0, 0)), "userfaultfd": (323, (0,)), "perf_event_open": (298, (0, 0)),
    "io_uring_setup": (425, (0, 0)), "kexec_load": (246, (0, 0, 0, 0)),
    "unshare_mnt": (272, (0x00020000,)), "unshare_user": (272, (0x10000000,)),
    "setns": (308, (0, 0)), "mount": (165, (0, 0, 0, 0, 0)),
    # CLONE_NEWNS|CLONE_FS is EINVAL for the kernel: past the filter, nothing is created.
    "clone_newns": (56, (0x00020000 | 0x200, 0, 0, 0, 0)), "clone3": (435, (0, 0)),
    "umount2": (166, (0, 0)), "pivot_root": (155, (0, 0)),
}


def _errnos_under(program: bytes) -> dict[str, int]:
    """Each syscall's errno (0: it ran past the filter) in a child confined by ``program``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            import prctl
            prctl.set_no_new_privs(1)
            load_seccomp(program)
            result = {}
            for name, (number, args) in SYSCALLS.items():
                ctypes.set_errno(0)
                value = _libc.syscall(number, *[ctypes.c_long(a) for a in args])
                result[name] = ctypes.get_errno() if value == -1 else 0
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


# The default profile with a telltale errno: the filter's refusals are told apart from the
# kernel's own (EPERM for lack of a capability, EFAULT for our null arguments).
FILTERED = 133
TELLTALE_PROFILE = json.dumps({**DEFAULT_PROFILE, "defaultErrnoRet": FILTERED})
NEVER_ALLOWED = ("keyctl", "add_key", "userfaultfd", "io_uring_setup", "kexec_load")
NAMESPACE_CALLS = ("unshare_mnt", "unshare_user", "setns", "mount", "clone_newns", "umount2",
                   "pivot_root")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers are x86_64's")
def test_the_default_filter_refuses_what_docker_refuses() -> None:
    assert compile_profile("", frozenset()) != b""
    result = _errnos_under(compile_profile(TELLTALE_PROFILE, frozenset(DEFAULT_CAPABILITIES)))
    assert result.pop("getpid") == 0
    assert result.pop("clone3") == errno.ENOSYS  # the C library falls back to clone
    assert result == {name: FILTERED for name in result}, result


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers are x86_64's")
def test_cap_sys_admin_lets_the_namespace_calls_through_the_filter() -> None:
    caps = frozenset({*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON"})
    result = _errnos_under(compile_profile(TELLTALE_PROFILE, caps))
    for name in (*NAMESPACE_CALLS, "bpf", "perf_event_open", "clone3"):
        assert result[name] not in (FILTERED, errno.ENOSYS), (name, result[name])
    for name in NEVER_ALLOWED:
        assert result[name] == FILTERED, name


def test_peer_access_rules() -> None:
    root = PeerCredentials(pid=1, uid=0, gid=0, groups=())
    member = PeerCredentials(pid=2, uid=1000, gid=1000, groups=(27, 999))
    outsider = PeerCredentials(pid=3, uid=1000, gid=1000, groups=(27,))
    assert access_refusal(root, 999, "pycontain") is None
    assert access_refusal(member, 999, "pycontain") is None
    assert access_refusal(outsider, 999, "pycontain") == (
        "permission denied: uid 1000 is neither root nor a member of group pycontain "
        "(gid 999), which owns the API socket")
