"""The Linux bridge and one veth pair per container, through netlink (pyroute2).

The daemon is one asyncio thread, and pyroute2's synchronous ``IPRoute`` cannot run
inside a running event loop, so everything here is ``async`` over ``AsyncIPRoute``.

**A namespace is configured without forking.** pyroute2 (0.9) reaches another network
namespace (``IPRoute(netns=...)``, ``NetNS``, ``netns.create_socket``) through a
``ChildProcess``: it forks, the child calls setns() and sends the socket back. The
daemon must never fork, so we do what that child does on the calling thread instead:

1. open the namespace file (``/proc/<pid>/ns/net`` or a bind-mounted netns file);
2. ``setns(fd, CLONE_NEWNET)`` on the calling thread (setns() of a network namespace
   affects that thread only), create an ``AF_NETLINK``/``NETLINK_ROUTE`` socket, and at
   once ``setns()`` back to the thread's own namespace (kept open as
   ``/proc/thread-self/ns/net``). No ``await``, no other code runs in between;
3. a socket belongs for its whole life to the namespace it was created in, so
   ``AsyncIPRoute(use_socket=sock)`` then configures the container's namespace from the
   daemon's.

The container end of a pair is created directly inside the container's namespace with
its final name (``RTM_NEWLINK`` with the peer's ``IFLA_NET_NS_FD`` and ``IFLA_IFNAME``
``eth0``): this is ``ip link add pcvX type veth peer name eth0 netns /proc/PID/ns/net``,
the same result as creating, moving and renaming it, in one message and with no
transient name on the host. The host end is ``pcv`` + 10 hex digits of the container id;
its interface alias (``IFLA_IFALIAS``) holds the full id, so recovery finds the owner
of every veth on the bridge. Deleting the host end deletes its peer.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pycontain.errors import Conflict, NotFound, PycontainError
from pycontain.network.naming import VETH_PREFIX, check_container_id, check_ifname, veth_name
from pycontain.runtime import syscalls

__all__ = [
    "DEFAULT_BRIDGE",
    "Endpoint",
    "attach",
    "delete_bridge",
    "detach",
    "endpoints",
    "ensure_bridge",
    "mac_address_for",
    "netlink_socket_in",
    "remove_stale_endpoints",
]

DEFAULT_BRIDGE = "pycontain0"
_NETLINK_ROUTE = 0
_SYSCTL_CONF = Path("/proc/sys/net/ipv4/conf")


@dataclass(frozen=True)
class Endpoint:
    """A container's place on a bridge: its veth pair and its addresses."""

    container_id: str
    bridge: str
    host_ifname: str
    ifname: str
    address: IPv4Interface
    gateway: IPv4Address
    mac_address: str


def mac_address_for(address: IPv4Address) -> str:
    """Docker's MAC for a container address: 02:42 and the four bytes of the address."""
    return "02:42:" + ":".join(f"{byte:02x}" for byte in address.packed)


@contextmanager
def netlink_socket_in(netns_path: str) -> Iterator[socket.socket]:
    """A NETLINK_ROUTE socket of the network namespace ``netns_path``, without forking.

    The calling thread enters the namespace only to create the socket and returns to its
    own at once (see the module docstring). Raises NotFound if the namespace file does not
    exist, PycontainError if it cannot be entered (not a network namespace, no privilege).
    """
    with _open_netns(netns_path) as nsfd, _netlink_socket_in_fd(nsfd, netns_path) as sock:
        yield sock


@contextmanager
def _open_netns(netns_path: str) -> Iterator[int]:
    try:
        nsfd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NotFound(f"open network namespace {netns_path}: no such file") from exc
    except OSError as exc:
        raise PycontainError(f"open network namespace {netns_path}: {exc}") from exc
    try:
        yield nsfd
    finally:
        os.close(nsfd)


@contextmanager
def _netlink_socket_in_fd(nsfd: int, netns_path: str) -> Iterator[socket.socket]:
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            syscalls.setns(nsfd, syscalls.CLONE_NEWNET)
        except OSError as exc:
            raise PycontainError(f"enter network namespace {netns_path}: {exc}") from exc
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                                 _NETLINK_ROUTE)
        finally:
            # Back to our own namespace before anything else can run on this thread.
            syscalls.setns(own, syscalls.CLONE_NEWNET)
    finally:
        os.close(own)
    with sock:
        yield sock


def _netlink_error(operation: str, exc: NetlinkError) -> PycontainError:
    message = f"{operation}: {os.strerror(exc.code) if exc.code > 0 else exc}"
    if exc.code == errno.EEXIST:
        return Conflict(message)
    if exc.code == errno.ENODEV:
        return NotFound(message)
    return PycontainError(message)


async def _link_index(ipr: AsyncIPRoute, ifname: str) -> int | None:
    indexes: list[int] = await ipr.link_lookup(ifname=ifname)
    return indexes[0] if indexes else None


async def _links(ipr: AsyncIPRoute, **filters: Any) -> list[Any]:
    return [link async for link in await ipr.link("dump", **filters)]


def _write_sysctl(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise PycontainError(f"write sysctl {path}: {exc}") from exc


async def ensure_bridge(name: str, gateway: IPv4Interface) -> int:
    """Make sure the bridge ``name`` exists, holds ``gateway`` (address/prefix) and is up.

    Also enables, on this bridge only, IPv4 forwarding (traffic coming in from the
    containers may be routed) and ``route_localnet`` (connections from the host's
    127.0.0.1 may be DNATed to a container: see nat.py). Idempotent. Returns the bridge's
    interface index. Raises InvalidArgument for a bad name, Conflict if ``name`` is an
    interface of another kind, PycontainError if netlink refuses.
    """
    check_ifname(name)
    async with AsyncIPRoute() as ipr:
        index = await _link_index(ipr, name)
        if index is None:
            try:
                # A fixed MAC: a bridge without one takes its ports' lowest, which
                # changes as containers come and go and upsets their ARP caches.
                await ipr.link("add", ifname=name, kind="bridge",
                               address=mac_address_for(gateway.ip))
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:  # created meanwhile by someone else: fine
                    raise _netlink_error(f"create bridge {name}", exc) from exc
            index = await _link_index(ipr, name)
            if index is None:
                raise PycontainError(f"create bridge {name}: it vanished right after creation")
        else:
            (link,) = await ipr.link("get", index=index)
            kind = link.get(("linkinfo", "kind"))
            if kind != "bridge":
                raise Conflict(f"use {name} as the containers' bridge: it is an interface of "
                               f"kind {kind or 'unknown'}, not a bridge")
        addresses = {(a.get("address"), a["prefixlen"])
                     async for a in await ipr.addr("dump", index=index, family=socket.AF_INET)}
        if (str(gateway.ip), gateway.network.prefixlen) not in addresses:
            try:
                await ipr.addr("add", index=index, address=str(gateway.ip),
                               prefixlen=gateway.network.prefixlen)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise _netlink_error(f"add address {gateway} to bridge {name}", exc) from exc
        try:
            await ipr.link("set", index=index, state="up")
        except NetlinkError as exc:
            raise _netlink_error(f"bring bridge {name} up", exc) from exc
    _write_sysctl(_SYSCTL_CONF / name / "forwarding", "1")
    _write_sysctl(_SYSCTL_CONF / name / "route_localnet", "1")
    return index


async def delete_bridge(name: str) -> bool:
    """Delete the bridge ``name`` (and with it its addresses and sysctls).

    Returns False if there was none. Raises Conflict if veths are still attached to it,
    PycontainError if netlink refuses.
    """
    check_ifname(name)
    async with AsyncIPRoute() as ipr:
        index = await _link_index(ipr, name)
        if index is None:
            return False
        ports = await _links(ipr, master=index)
        if ports:
            raise Conflict(f"delete bridge {name}: {len(ports)} interfaces are still attached")
        try:
            await ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise _netlink_error(f"delete bridge {name}", exc) from exc
    return True


async def attach(bridge: str, container_id: str, netns_path: str, address: IPv4Interface,
                 gateway: IPv4Address, ifname: str = "eth0") -> Endpoint:
    """Connect the network namespace ``netns_path`` to ``bridge`` with a veth pair.

    Inside the namespace: ``ifname`` with ``address`` and a Docker-style MAC, up, lo up,
    a default route via ``gateway``. On the host: ``pcv<id[:10]>`` attached to the bridge
    and up. A failure removes the pair again. Raises NotFound if the bridge or the
    namespace file is missing, Conflict if the host end or ``ifname`` in the namespace
    already exists, PycontainError for any other refusal of the kernel.
    """
    check_container_id(container_id)
    check_ifname(ifname)
    host_ifname = veth_name(container_id)
    mac = mac_address_for(address.ip)
    what = f"veth {host_ifname} of container {container_id[:12]}"
    async with AsyncIPRoute() as ipr:
        bridge_index = await _link_index(ipr, bridge)
        if bridge_index is None:
            raise NotFound(f"attach {what}: no bridge {bridge}")
        # One open of the namespace file serves both the peer's IFLA_NET_NS_FD and the
        # socket inside: both surely address the same namespace.
        with _open_netns(netns_path) as nsfd, \
                _netlink_socket_in_fd(nsfd, netns_path) as ns_sock:
            try:
                await ipr.link("add", ifname=host_ifname, kind="veth",
                               peer={"ifname": ifname, "net_ns_fd": nsfd, "address": mac})
            except NetlinkError as exc:
                raise _netlink_error(f"create {what} (peer {ifname} in {netns_path})",
                                     exc) from exc
            try:
                await _configure_inside(ns_sock, ifname, address, gateway, netns_path)
                host_index = await _link_index(ipr, host_ifname)
                if host_index is None:
                    raise NotFound(f"attach {what}: it vanished right after creation")
                try:
                    await ipr.link("set", index=host_index, master=bridge_index,
                                   ifalias=container_id, state="up")
                except NetlinkError as exc:
                    raise _netlink_error(f"attach {what} to bridge {bridge}", exc) from exc
            except BaseException:
                try:
                    await ipr.link("del", ifname=host_ifname)
                except NetlinkError as exc:
                    if exc.code != errno.ENODEV:
                        raise _netlink_error(f"roll back {what}", exc) from exc
                raise
    return Endpoint(container_id=container_id, bridge=bridge, host_ifname=host_ifname,
                    ifname=ifname, address=address, gateway=gateway, mac_address=mac)


async def _configure_inside(sock: socket.socket, ifname: str, address: IPv4Interface,
                            gateway: IPv4Address, netns_path: str) -> None:
    async with AsyncIPRoute(use_socket=sock) as ns:
        index = await _link_index(ns, ifname)
        if index is None:
            raise NotFound(f"configure {ifname} in {netns_path}: no such interface")
        steps: list[tuple[str, str, str, dict[str, Any]]] = [
            ("bring lo up", "link", "set", {"ifname": "lo", "state": "up"}),
            (f"add address {address} to {ifname}", "addr", "add",
             {"index": index, "address": str(address.ip),
              "prefixlen": address.network.prefixlen}),
            (f"bring {ifname} up", "link", "set", {"index": index, "state": "up"}),
            (f"add the default route via {gateway}", "route", "add",
             {"dst": "default", "gateway": str(gateway), "oif": index}),
        ]
        for what, method, command, arguments in steps:
            try:
                await getattr(ns, method)(command, **arguments)
            except NetlinkError as exc:
                raise _netlink_error(f"{what} in network namespace {netns_path}",
                                     exc) from exc


async def detach(container_id: str) -> bool:
    """Delete the veth pair of ``container_id`` (its peer goes with it).

    Idempotent: returns False if there was none. Raises PycontainError if netlink refuses.
    """
    host_ifname = veth_name(container_id)
    async with AsyncIPRoute() as ipr:
        try:
            await ipr.link("del", ifname=host_ifname)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise _netlink_error(f"delete veth {host_ifname} of container "
                                 f"{container_id[:12]}", exc) from exc
    return True


async def endpoints(bridge: str) -> dict[str, str]:
    """The project's veths attached to ``bridge``: container id -> host interface name.

    A ``pcv`` veth whose alias is not a container id maps from its own name. Returns an
    empty dict if there is no bridge.
    """
    async with AsyncIPRoute() as ipr:
        index = await _link_index(ipr, bridge)
        if index is None:
            return {}
        found: dict[str, str] = {}
        for link in await _links(ipr, master=index):
            name = link.get("ifname") or ""
            if not name.startswith(VETH_PREFIX):
                continue
            found[link.get("ifalias") or name] = name
        return found


async def remove_stale_endpoints(bridge: str, live_ids: Iterable[str]) -> list[str]:
    """Delete the project's veths on ``bridge`` whose container is not in ``live_ids``.

    For startup recovery. Returns the names of the interfaces deleted. Raises
    PycontainError if netlink refuses.
    """
    live = set(live_ids)
    stale = [name for owner, name in sorted((await endpoints(bridge)).items())
             if owner not in live]
    async with AsyncIPRoute() as ipr:
        for name in stale:
            try:
                await ipr.link("del", ifname=name)
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise _netlink_error(f"delete stale veth {name}", exc) from exc
    return stale
