"""Seccomp profiles (Docker's JSON format) compiled to a BPF program with libseccomp.

The daemon validates a profile when a container is created and compiles it when the
container starts, for the capabilities the container holds (``includes``/``excludes``
by capability decide which rules apply).  The container init then only hands the
finished program to the kernel (``confine.load_seccomp``): no libseccomp in the fork
server, and a bad profile is an error of ``create``, never of a half-set-up container.

Supported: ``defaultAction``/``defaultErrnoRet``; per rule ``names`` (or ``name``),
``action`` (SCMP_ACT_ALLOW, _ERRNO, _KILL, _KILL_THREAD, _KILL_PROCESS, _TRAP, _LOG),
``errnoRet``, ``args`` (index, value, valueTwo, op), ``includes``/``excludes`` by
``caps`` and ``arches``.  Syscalls this libseccomp does not know are skipped, as Docker does.
Only the native architecture (x86_64) is in the filter: other ABIs are killed.
"""

from __future__ import annotations

import functools
import json
import platform
import tempfile
from typing import Any

from pycontain.errors import InvalidArgument
from pycontain.security.seccomp_default import DEFAULT_PROFILE

__all__ = ["compile_profile", "parse_profile"]

_ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG")
_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
        "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")
_NATIVE_ARCHES = {"x86_64": ("SCMP_ARCH_X86_64", "amd64", "x86_64")}


def _fail(what: str) -> InvalidArgument:
    return InvalidArgument(f"invalid seccomp profile: {what}")


def _check_rule(index: int, rule: Any) -> None:
    if not isinstance(rule, dict):
        raise _fail(f"syscalls[{index}] is not an object")
    names = rule.get("names", [rule["name"]] if "name" in rule else None)
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise _fail(f"syscalls[{index}] needs names, a list of syscall names")
    if rule.get("action") not in _ACTIONS:
        raise _fail(f"syscalls[{index}]: unknown action {rule.get('action')!r}")
    if not isinstance(rule.get("errnoRet", 0), int):
        raise _fail(f"syscalls[{index}]: errnoRet must be an integer")
    args = rule.get("args") or []
    if not isinstance(args, list) or len(args) > 6:
        raise _fail(f"syscalls[{index}]: args must be a list of at most 6 conditions")
    for arg in args:
        if (not isinstance(arg, dict) or arg.get("op") not in _OPS
                or not isinstance(arg.get("index"), int) or not 0 <= arg["index"] <= 5
                or not isinstance(arg.get("value", 0), int)
                or not isinstance(arg.get("valueTwo", 0), int)):
            raise _fail(f"syscalls[{index}]: bad argument condition {arg!r}")
    for key in ("includes", "excludes"):
        if not isinstance(rule.get(key) or {}, dict):
            raise _fail(f"syscalls[{index}]: {key} must be an object")


def parse_profile(text: str) -> dict[str, Any]:
    """A profile's JSON text -> the profile, checked; InvalidArgument naming what is wrong."""
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise _fail(f"not JSON: {exc}") from exc
    if not isinstance(profile, dict):
        raise _fail("not a JSON object")
    if profile.get("defaultAction") not in _ACTIONS:
        raise _fail(f"unknown defaultAction {profile.get('defaultAction')!r}")
    syscalls = profile.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise _fail("syscalls must be a list")
    for index, rule in enumerate(syscalls):
        _check_rule(index, rule)
    return profile


def _applies(rule: dict[str, Any], caps: frozenset[str]) -> bool:
    arches = _NATIVE_ARCHES.get(platform.machine(), ())
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    if includes.get("caps") and not set(includes["caps"]) <= caps:
        return False
    if includes.get("arches") and not set(includes["arches"]) & set(arches):
        return False
    if excludes.get("caps") and set(excludes["caps"]) & caps:
        return False
    return not (excludes.get("arches") and set(excludes["arches"]) & set(arches))


@functools.lru_cache(maxsize=32)
def compile_profile(text: str, caps: frozenset[str]) -> bytes:
    """The BPF program (struct sock_filter[]) for a profile; ``text`` "" = the default.

    Raises InvalidArgument for a bad profile or one libseccomp refuses.
    """
    import pyseccomp as seccomp

    profile = DEFAULT_PROFILE if not text else parse_profile(text)

    def action(name: str, errno_ret: int | None) -> int:
        if name == "SCMP_ACT_ERRNO":
            return int(seccomp.ERRNO(errno_ret if errno_ret is not None else 1))
        return int({"SCMP_ACT_ALLOW": seccomp.ALLOW, "SCMP_ACT_KILL": seccomp.KILL_THREAD,
                    "SCMP_ACT_KILL_THREAD": seccomp.KILL_THREAD,
                    "SCMP_ACT_KILL_PROCESS": seccomp.KILL_PROCESS,
                    "SCMP_ACT_TRAP": seccomp.TRAP, "SCMP_ACT_LOG": seccomp.LOG}[name])

    default = action(profile["defaultAction"], profile.get("defaultErrnoRet"))
    try:
        flt = seccomp.SyscallFilter(default)
        for rule in profile.get("syscalls") or []:
            if not _applies(rule, caps):
                continue
            act = action(rule["action"], rule.get("errnoRet"))
            if act == default:
                continue
            conditions = [
                seccomp.Arg(a["index"], _OPS.index(a["op"]) + 1, a.get("value", 0),
                            a.get("valueTwo", 0))
                for a in rule.get("args") or []]
            for name in rule.get("names", [rule.get("name")]):
                number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
                if number < 0:
                    continue  # unknown to this libseccomp (or not on this architecture)
                flt.add_rule(act, number, *conditions)
        with tempfile.TemporaryFile() as out:
            flt.export_bpf(out)
            out.seek(0)
            return out.read()
    except (OSError, ValueError) as exc:
        raise _fail(f"libseccomp: {exc}") from exc
