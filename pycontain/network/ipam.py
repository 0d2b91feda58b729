"""IP address management for one IPv4 subnet, persisted atomically as JSON.

One file per network (``<state_dir>/ipam-<network>.json``) holds the subnet, its gateway,
the leases (container id -> address) and the last address handed out. Addresses are
handed out round-robin after the last one, as Docker and the CNI host-local plugin do,
so that a freed address is not reused at once (peers may still hold it in their ARP
caches). An address is never handed out twice while it is leased; the file is rewritten
(temp file, fsync, rename) after every change, so a restarted daemon reloads exactly the
leases it had.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from pycontain.errors import Conflict, InvalidArgument, PycontainError
from pycontain.fsutil import atomic_write_json, read_json
from pycontain.network.naming import check_container_id

__all__ = ["DEFAULT_SUBNET", "IPAM", "parse_subnet"]

DEFAULT_SUBNET = IPv4Network("10.88.0.0/16")
_STATE_VERSION = 1


def parse_subnet(subnet: str | IPv4Network, gateway: str | IPv4Address | None = None,
                 ) -> tuple[IPv4Network, IPv4Address]:
    """Validate a subnet (at most /30: a gateway and one container) and its gateway.

    The gateway defaults to the first host address (``.1``). Raises InvalidArgument for a
    malformed subnet, one with host bits set, one too small, or a gateway outside its
    host addresses.
    """
    try:
        network = IPv4Network(subnet)
        gw = IPv4Address(gateway) if gateway is not None else network.network_address + 1
    except ValueError as exc:
        raise InvalidArgument(f"network: invalid subnet {subnet!s} or gateway "
                              f"{gateway!s}: {exc}") from exc
    if network.prefixlen > 30:
        raise InvalidArgument(f"network: subnet {network} is too small "
                              "(at most /30: a gateway and one container)")
    if not network.network_address < gw < network.broadcast_address:
        raise InvalidArgument(f"network: gateway {gw} is not a host address of {network}")
    return network, gw


class IPAM:
    """The address leases of one subnet, kept in ``<state_dir>/ipam-<name>.json``.

    The constructor reloads the file if there is one. Raises InvalidArgument for a bad
    subnet or gateway, Conflict if the file holds leases of another subnet, and
    PycontainError if the file cannot be read or is malformed.
    """

    def __init__(self, state_dir: Path, subnet: str | IPv4Network = DEFAULT_SUBNET,
                 gateway: str | IPv4Address | None = None, name: str = "bridge") -> None:
        self._network, self._gateway = parse_subnet(subnet, gateway)
        self.name = name
        self.path = Path(state_dir) / f"ipam-{name}.json"
        self._leases: dict[str, IPv4Address] = {}
        self._last = self._gateway
        if self.path.exists():
            self._load()

    @property
    def subnet(self) -> IPv4Network:
        return self._network

    @property
    def gateway(self) -> IPv4Interface:
        """The gateway with the subnet's prefix (the bridge's own address)."""
        return IPv4Interface(f"{self._gateway}/{self._network.prefixlen}")

    def leases(self) -> dict[str, IPv4Interface]:
        """Every lease: container id -> address with the subnet's prefix."""
        return {cid: self._with_prefix(addr) for cid, addr in self._leases.items()}

    def lookup(self, container_id: str) -> IPv4Interface | None:
        """The address leased to ``container_id``, or None."""
        address = self._leases.get(container_id)
        return None if address is None else self._with_prefix(address)

    def allocate(self, container_id: str) -> IPv4Interface:
        """Lease a free address to ``container_id`` (its current one if it has a lease).

        Raises InvalidArgument for a malformed id, PycontainError when every address of
        the subnet is leased or the state cannot be written.
        """
        check_container_id(container_id)
        existing = self.lookup(container_id)
        if existing is not None:
            return existing
        taken = set(self._leases.values())
        first = int(self._network.network_address) + 1
        count = self._network.num_addresses - 2  # neither the network nor the broadcast
        start = int(self._last) - first + 1
        for step in range(count):
            candidate = IPv4Address(first + (start + step) % count)
            if candidate != self._gateway and candidate not in taken:
                break
        else:
            raise PycontainError(
                f"allocate an address in {self._network} (network {self.name}) for container "
                f"{container_id[:12]}: no free address left ({len(taken)} leased)")
        self._leases[container_id] = candidate
        self._last = candidate
        try:
            self._save()
        except PycontainError:
            del self._leases[container_id]
            raise
        return self._with_prefix(candidate)

    def release(self, container_id: str) -> IPv4Interface | None:
        """Free the lease of ``container_id``; return its address, or None if it had none.

        Raises PycontainError if the state cannot be written.
        """
        address = self._leases.pop(container_id, None)
        if address is None:
            return None
        self._save()
        return self._with_prefix(address)

    def release_all_except(self, live_ids: Iterable[str]) -> list[str]:
        """Free the leases of every container not in ``live_ids`` (startup recovery).

        Returns the ids whose leases were freed. Raises PycontainError if the state
        cannot be written.
        """
        live = set(live_ids)
        stale = sorted(cid for cid in self._leases if cid not in live)
        if stale:
            for cid in stale:
                del self._leases[cid]
            self._save()
        return stale

    # ------------------------------------------------------------------ persistence

    def _with_prefix(self, address: IPv4Address) -> IPv4Interface:
        return IPv4Interface(f"{address}/{self._network.prefixlen}")

    def _save(self) -> None:
        state = {
            "version": _STATE_VERSION,
            "subnet": str(self._network),
            "gateway": str(self._gateway),
            "last": str(self._last),
            "leases": {cid: str(addr) for cid, addr in sorted(self._leases.items())},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, state, mode=0o600)
        except OSError as exc:
            raise PycontainError(f"write IPAM state {self.path}: {exc}") from exc

    def _load(self) -> None:
        try:
            state: Any = read_json(self.path)
            network = IPv4Network(state["subnet"])
            gateway = IPv4Address(state["gateway"])
            last = IPv4Address(state["last"])
            leases = {check_container_id(str(cid)): IPv4Address(addr)
                      for cid, addr in dict(state["leases"]).items()}
        except (OSError, ValueError, KeyError, TypeError, InvalidArgument) as exc:
            raise PycontainError(f"read IPAM state {self.path}: {exc}") from exc
        if network != self._network or gateway != self._gateway:
            if leases:
                raise Conflict(
                    f"open IPAM state {self.path}: {len(leases)} addresses are leased in "
                    f"{network} (gateway {gateway}), not in {self._network} (gateway "
                    f"{self._gateway}); remove those containers before changing the subnet")
            return  # no lease: the new subnet simply replaces the old one
        bad = [str(a) for a in leases.values() if a not in network or a == gateway]
        if bad or len(set(leases.values())) != len(leases):
            raise PycontainError(f"read IPAM state {self.path}: invalid or duplicate "
                                 f"leases {', '.join(bad) or '(duplicates)'}")
        self._leases = leases
        self._last = last if last in network else gateway
