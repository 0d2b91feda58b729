"""From a container's HostConfig to what its init applies (the daemon's side).

``validate`` runs at create, so that a bad flag is an error of ``create``;
``security_spec`` and ``tmpfs_specs`` run at each start.
"""

from __future__ import annotations

from collections.abc import Mapping

from pycontain.runtime.spec import SecuritySpec, TmpfsSpec
from pycontain.security.capabilities import capability_numbers, container_capabilities
from pycontain.security.options import UNCONFINED, parse_security_options, parse_tmpfs
from pycontain.security.paths import MASKED_PATHS, READONLY_PATHS
from pycontain.security.seccomp import compile_profile, parse_profile

__all__ = ["security_spec", "tmpfs_specs", "validate"]


def validate(cap_add: tuple[str, ...], cap_drop: tuple[str, ...], privileged: bool,
             security_opt: tuple[str, ...], tmpfs: Mapping[str, str]) -> None:
    """Raises InvalidArgument for an unknown capability, option, profile or tmpfs option."""
    container_capabilities(cap_add, cap_drop, privileged)
    options = parse_security_options(security_opt)
    if options.seccomp and options.seccomp != UNCONFINED:
        parse_profile(options.seccomp)
    for target, text in tmpfs.items():
        parse_tmpfs(target, text)


def security_spec(cap_add: tuple[str, ...], cap_drop: tuple[str, ...], privileged: bool,
                  security_opt: tuple[str, ...], readonly_rootfs: bool) -> SecuritySpec:
    """Docker's default confinement, loosened only by what the container's flags ask."""
    names = container_capabilities(cap_add, cap_drop, privileged)
    options = parse_security_options(security_opt)
    program = b""
    if not privileged and options.seccomp != UNCONFINED:
        program = compile_profile(options.seccomp, frozenset(names))
    return SecuritySpec(
        capabilities=capability_numbers(names),
        no_new_privileges=options.no_new_privileges,
        seccomp_bpf=program.hex(),
        masked_paths=() if privileged else MASKED_PATHS,
        readonly_paths=() if privileged else READONLY_PATHS,
        readonly_rootfs=readonly_rootfs,
        writable_sysfs=privileged,
        nodev_mounts=not privileged,
    )


def tmpfs_specs(tmpfs: Mapping[str, str]) -> tuple[TmpfsSpec, ...]:
    mounts = (parse_tmpfs(target, text) for target, text in sorted(tmpfs.items()))
    return tuple(TmpfsSpec(target=m.target, flags=m.flags, data=m.data) for m in mounts)
