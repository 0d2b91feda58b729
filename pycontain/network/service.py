"""The default bridge network: IPAM, bridge and NAT behind the three calls the container
manager needs (connect at start, disconnect at exit or rm, recover at daemon startup).

Every network object a container owns (its lease, its veth pair, its nft rules) is
created by ``connect`` and removed by ``disconnect`` or ``recover``, never elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pycontain.network import bridge as bridge_links
from pycontain.network.bridge import DEFAULT_BRIDGE, Endpoint
from pycontain.network.ipam import DEFAULT_SUBNET, IPAM
from pycontain.network.nat import DEFAULT_TABLE, NatTable
from pycontain.network.ports import PortMapping

__all__ = ["Attachment", "BridgeNetwork", "NetworkConfig", "RecoveryReport"]


@dataclass(frozen=True)
class NetworkConfig:
    """The daemon's ``--bridge``, ``--subnet`` (and gateway) and the nft table's name."""

    bridge: str = DEFAULT_BRIDGE
    subnet: IPv4Network = DEFAULT_SUBNET
    gateway: IPv4Address | None = None
    nat_table: str = DEFAULT_TABLE


@dataclass(frozen=True)
class Attachment:
    """What ``connect`` made for a container (inspect's NetworkSettings, ps's PORTS)."""

    endpoint: Endpoint
    ports: tuple[PortMapping, ...]


@dataclass
class RecoveryReport:
    """What ``recover`` removed: container ids of leases and rules, veth names."""

    leases: list[str] = field(default_factory=list)
    veths: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)


class BridgeNetwork:
    """One bridge network: its IPAM state in ``state_dir``, its bridge, its NAT rules.

    Raises what IPAM and NatTable raise on construction (a bad subnet or table name,
    unreadable IPAM state, no libnftables). Call ``close()`` when done.
    """

    def __init__(self, state_dir: Path, config: NetworkConfig = NetworkConfig()) -> None:
        self.config = config
        self.ipam = IPAM(state_dir, config.subnet, config.gateway, name=config.bridge)
        self.nat = NatTable(config.nat_table)

    def close(self) -> None:
        self.nat.close()

    async def setup(self) -> None:
        """Create the bridge and the NAT base rules if needed (idempotent, daemon start).

        Raises PycontainError (or Conflict if the bridge's name is taken by another kind
        of interface).
        """
        await bridge_links.ensure_bridge(self.config.bridge, self.ipam.gateway)
        self.nat.ensure(self.ipam.subnet, self.config.bridge)

    async def connect(self, container_id: str, netns_path: str,
                      ports: Sequence[PortMapping] = ()) -> Attachment:
        """Lease an address, attach the namespace ``netns_path`` with a veth pair, publish
        ``ports``. A failure undoes every step. Raises what the steps raise: PycontainError
        for a full subnet, NotFound for a missing namespace, Conflict for a taken port.
        """
        address = self.ipam.allocate(container_id)
        try:
            endpoint = await bridge_links.attach(self.config.bridge, container_id, netns_path,
                                                 address, self.ipam.gateway.ip)
            try:
                published = self.nat.publish(container_id, address.ip, ports)
            except BaseException:
                await bridge_links.detach(container_id)
                raise
        except BaseException:
            self.ipam.release(container_id)
            raise
        return Attachment(endpoint, tuple(published))

    async def disconnect(self, container_id: str) -> None:
        """Remove the container's rules, veth pair and lease. Idempotent.

        Raises PycontainError if the kernel refuses; the steps are attempted in an order
        that lets a retry finish the job (rules, veth, then the lease).
        """
        self.nat.unpublish(container_id)
        await bridge_links.detach(container_id)
        self.ipam.release(container_id)

    async def recover(self, live_ids: Iterable[str]) -> RecoveryReport:
        """Remove the rules, veths and leases of every container not in ``live_ids``.

        For daemon startup, after ``setup``. Raises PycontainError if the kernel refuses.
        """
        live = set(live_ids)
        report = RecoveryReport()
        report.rules = self.nat.remove_stale(self.ipam.subnet, live)
        report.veths = await bridge_links.remove_stale_endpoints(self.config.bridge, live)
        report.leases = self.ipam.release_all_except(live)
        return report

    async def teardown(self) -> None:
        """Delete the bridge and its base NAT rules (``network rm``; the tests).

        Raises Conflict if containers are still attached, PycontainError otherwise.
        """
        await bridge_links.delete_bridge(self.config.bridge)
        self.nat.remove_bridge_rules(self.config.bridge)
