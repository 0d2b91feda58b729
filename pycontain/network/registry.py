"""The daemon's networks: the default ``bridge`` and user-defined ones (``network create``).

Each network is a ``BridgeNetwork`` (its own Linux bridge, subnet and IPAM state); all of
a daemon's networks share its nftables table.  User networks are remembered in
``<state_dir>/networks.json`` (atomic writes) and come back at daemon start.

    name        bridge           subnet
    bridge      --bridge         --subnet (default pycontain0, 10.88.0.0/16)
    <user>      pcb<8 hex>       --subnet, or the first free 10.89.N.0/24
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pycontain.errors import Conflict, InvalidArgument, NoSuchNetwork, PycontainError
from pycontain.fsutil import atomic_write_json, read_json
from pycontain.network.service import BridgeNetwork, NetworkConfig

DEFAULT_NETWORK = "bridge"
RESERVED = ("bridge", "host", "none", "default")
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
USER_SUBNETS = IPv4Network("10.89.0.0/16")


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    id: str
    bridge: str
    subnet: IPv4Network
    created: float


def host_routes() -> list[IPv4Network]:
    """The IPv4 networks in the host's main routing table (from /proc/net/route)."""
    found = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                dest = IPv4Address(bytes.fromhex(fields[1])[::-1])
                mask = IPv4Address(bytes.fromhex(fields[7])[::-1])
                if int(mask):
                    found.append(IPv4Network(f"{dest}/{mask}", strict=False))
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return found


def _default_network_id(bridge: str) -> str:
    """A stable id for the default network (the same across daemon restarts)."""
    return hashlib.sha256(f"pycontain network bridge {bridge}".encode()).hexdigest()


class NetworkRegistry:
    """Raises NoSuchNetwork, Conflict (name taken, network in use, overlapping subnet),
    InvalidArgument (bad name or subnet) and what BridgeNetwork raises."""

    def __init__(self, state_dir: Path, default: NetworkConfig) -> None:
        self.state_dir = state_dir
        self.nat_table = default.nat_table
        self.file = state_dir / "networks.json"
        state_dir.mkdir(parents=True, exist_ok=True)
        self.networks: dict[str, BridgeNetwork] = {
            DEFAULT_NETWORK: BridgeNetwork(state_dir, default)}
        self.infos: dict[str, NetworkInfo] = {DEFAULT_NETWORK: NetworkInfo(
            DEFAULT_NETWORK, _default_network_id(default.bridge), default.bridge,
            default.subnet, 0.0)}
        for info in self._load():
            self._open(info)

    def _load(self) -> list[NetworkInfo]:
        try:
            raw = read_json(self.file)
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise PycontainError(f"read {self.file}: {exc}") from exc
        return [NetworkInfo(n["name"], n["id"], n["bridge"], IPv4Network(n["subnet"]),
                            float(n["created"])) for n in raw]

    def _save(self) -> None:
        atomic_write_json(self.file, [
            {"name": i.name, "id": i.id, "bridge": i.bridge, "subnet": str(i.subnet),
             "created": i.created} for i in self.infos.values() if i.name != DEFAULT_NETWORK])

    def _open(self, info: NetworkInfo) -> BridgeNetwork:
        network = BridgeNetwork(self.state_dir, NetworkConfig(
            bridge=info.bridge, subnet=info.subnet, nat_table=self.nat_table))
        self.networks[info.name] = network
        self.infos[info.name] = info
        return network

    def get(self, name: str) -> tuple[NetworkInfo, BridgeNetwork]:
        if name == "default":
            name = DEFAULT_NETWORK
        for info in self.infos.values():
            if name in (info.name, info.id) or (len(name) >= 4 and info.id.startswith(name)):
                return info, self.networks[info.name]
        raise NoSuchNetwork(name)

    async def setup(self) -> None:
        for network in self.networks.values():
            await network.setup()

    async def create(self, name: str, subnet: str | None) -> NetworkInfo:
        if not _NAME.fullmatch(name):
            raise InvalidArgument(f"invalid network name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]")
        if name in RESERVED:
            raise Conflict(f"{name} is a pre-defined network and cannot be created")
        if name in self.infos:
            raise Conflict(f"network with name {name} already exists")
        taken = [i.subnet for i in self.infos.values()] + host_routes()
        chosen: IPv4Network | None
        if subnet:
            try:
                chosen = IPv4Network(subnet)
            except ValueError as exc:
                raise InvalidArgument(f"invalid subnet {subnet}: {exc}") from exc
            if any(chosen.overlaps(t) for t in taken):
                raise Conflict(f"subnet {chosen} overlaps with another network or a route")
        else:
            chosen = next((c for c in USER_SUBNETS.subnets(new_prefix=24)
                           if not any(c.overlaps(t) for t in taken)), None)
        if chosen is None:
            raise PycontainError("no free subnet left in 10.89.0.0/16: give --subnet")
        network_id = secrets.token_hex(32)
        info = NetworkInfo(name, network_id, f"pcb{network_id[:8]}", chosen, time.time())
        network = self._open(info)
        try:
            await network.setup()
        except BaseException:
            del self.networks[name], self.infos[name]
            raise
        self._save()
        return info

    async def remove(self, name: str, attached: list[str]) -> None:
        info, network = self.get(name)
        if info.name == DEFAULT_NETWORK:
            raise Conflict(f"{info.name} is a pre-defined network and cannot be removed")
        if attached:
            raise Conflict(f"error while removing network: network {info.name} id {info.id} "
                           "has active endpoints")
        await network.teardown()
        network.close()
        del self.networks[info.name], self.infos[info.name]
        self._save()

    def close(self) -> None:
        for network in self.networks.values():
            network.close()
