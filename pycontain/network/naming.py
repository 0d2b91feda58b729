"""Names the network package derives from a container id, checked in one place."""

from __future__ import annotations

import re

from pycontain.errors import InvalidArgument

__all__ = ["VETH_PREFIX", "check_container_id", "check_ifname", "veth_name"]

VETH_PREFIX = "pcv"
"""Host ends of the project's veth pairs are ``pcv`` + the first 10 hex digits of the id."""

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")


def check_container_id(container_id: str) -> str:
    """Return ``container_id`` if it is a full container id (64 lowercase hex digits).

    Raises InvalidArgument otherwise: the id ends up in interface names, nft comments
    and file contents, so nothing else is let through.
    """
    if not _CONTAINER_ID.fullmatch(container_id):
        raise InvalidArgument(f"network: invalid container id {container_id!r}")
    return container_id


def check_ifname(name: str) -> str:
    """Return ``name`` if it is a valid Linux interface name (1 to 15 safe characters).

    Raises InvalidArgument otherwise.
    """
    if not _IFNAME.fullmatch(name) or name in (".", ".."):
        raise InvalidArgument(f"network: invalid interface name {name!r} "
                              "(1 to 15 letters, digits, '_', '.', '-')")
    return name


def veth_name(container_id: str) -> str:
    """The host end of a container's veth pair: ``pcv`` + 10 hex digits (13 characters).

    Raises InvalidArgument for a malformed id.
    """
    return VETH_PREFIX + check_container_id(container_id)[:10]
