"""NAT and published ports with nftables, in one table of the project's own.

Everything lives in ``table inet pycontain`` (the name is a parameter, so that test runs
and side-by-side daemons can have their own); no other table is ever read or changed,
nothing is flushed. The rules go through libnftables in the daemon's own process
(libnft.py), each change one nft transaction. The table, for a bridge ``BR`` on
``SUBNET`` and one container ``CID`` at ``CIP`` publishing ``-p 8080:80``::

    table inet pycontain {
      chain prerouting {   # packets from elsewhere (other hosts, the containers)
        type nat hook prerouting priority dstnat;
        fib daddr type local meta nfproto ipv4 tcp dport 8080 dnat ip to CIP:80 comment "CID"
      }
      chain output {       # connections the host itself opens (127.0.0.1, the bridge address)
        type nat hook output priority -100;
        fib daddr type local meta nfproto ipv4 tcp dport 8080 dnat ip to CIP:80 comment "CID"
      }
      chain postrouting {
        type nat hook postrouting priority srcnat;
        ip saddr SUBNET oifname != "BR" masquerade comment "pycontain bridge BR"
        oifname "BR" ip saddr 127.0.0.0/8 masquerade comment "pycontain bridge BR"
        oifname "BR" ip saddr SUBNET ct status dnat masquerade comment "pycontain bridge BR"
      }
    }

- **masquerade**: containers reach other networks with the host's address (routing
  from the bridge needs forwarding: bridge.py enables it on the bridge itself; the reply
  path from another interface needs ``net.ipv4.ip_forward=1``, which is the host's
  global setting: ``enable_ip_forward()`` is there for the daemon to call, as Docker
  does; the tests do not need it).
- **-p with no host address** (``0.0.0.0``) matches every local address of the host
  (``fib daddr type local``); ``-p IP:HOSTPORT:CTRPORT`` matches ``ip daddr IP`` only.
- **from the host's 127.0.0.1**: locally generated packets skip prerouting, so every
  rule is also in the ``output`` chain. A packet DNATed there keeps its source 127.0.0.1
  and would then be refused by routing on its way out of the bridge (a loopback source
  on a non-loopback device is a martian): ``route_localnet=1`` on the bridge (bridge.py,
  that one interface only) lets it through, and the second masquerade rule rewrites the
  source to the bridge's address, so the container answers to the gateway and conntrack
  maps the answer back to 127.0.0.1. This is what Docker does with its userland proxy
  off.
- **hairpin**: a container reaching a published port of the host gets masqueraded when
  its connection is DNATed back onto the bridge (third rule), so that the answer comes
  back through the host and its conntrack entry.

Every rule of a container carries the container id as its comment: ``unpublish`` deletes
them by handle, ``remove_stale`` (daemon startup) deletes those of containers that are
gone. The base rules carry ``pycontain bridge BR``. Removing the last rule leaves the
(empty) table; ``destroy()`` deletes the table. A host whose own firewall drops
forwarded packets (another table's forward chain with policy drop) still blocks traffic
between other hosts and the containers: an accept in our table cannot override a drop
in another one, and we do not touch other tables.
"""

from __future__ import annotations

import errno
import random
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from pycontain.errors import Conflict, InvalidArgument, PycontainError
from pycontain.network.libnft import Nftables
from pycontain.network.naming import check_container_id, check_ifname
from pycontain.network.ports import PROTOCOLS, PortMapping

__all__ = [
    "DEFAULT_TABLE",
    "NatTable",
    "enable_ip_forward",
]

DEFAULT_TABLE = "pycontain"
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_CHAINS = (
    ("prerouting", "type nat hook prerouting priority dstnat; policy accept;"),
    ("output", "type nat hook output priority -100; policy accept;"),
    ("postrouting", "type nat hook postrouting priority srcnat; policy accept;"),
)
_IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def enable_ip_forward() -> bool:
    """Set ``net.ipv4.ip_forward=1`` (host-wide; needed for traffic between the containers
    and other hosts). Returns whether it was already on. Raises PycontainError."""
    try:
        if _IP_FORWARD.read_text().strip() == "1":
            return True
        _IP_FORWARD.write_text("1")
    except OSError as exc:
        raise PycontainError(f"enable IPv4 forwarding ({_IP_FORWARD}): {exc}") from exc
    return False


def _quote(comment: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_. -]{1,128}", comment):
        raise InvalidArgument(f"nftables comment {comment!r}: unsafe characters")
    return f'"{comment}"'


class NatTable:
    """The project's nftables table (``inet <name>``).

    Raises InvalidArgument for a bad table name, PycontainError if libnftables cannot
    be loaded. Use as a context manager, or call ``close()``.
    """

    def __init__(self, name: str = DEFAULT_TABLE) -> None:
        if not _TABLE_NAME.fullmatch(name):
            raise InvalidArgument(f"invalid nftables table name {name!r}")
        self.name = name
        self._nft = Nftables()

    def __enter__(self) -> NatTable:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._nft.close()

    # ------------------------------------------------------------------ the table

    def exists(self) -> bool:
        """Whether the table is there. Raises PycontainError if nft fails."""
        items = self._nft.run_json("list tables inet", "list the inet nftables tables")
        return any(item.get("table", {}).get("name") == self.name for item in items)

    def ensure(self, subnet: IPv4Network, bridge: str) -> None:
        """Create the table and its chains if needed and (re)write the base rules of
        ``bridge`` (masquerade, localhost, hairpin) for ``subnet``, in one transaction.

        Idempotent. Raises InvalidArgument for a bad bridge name, PycontainError if nft
        refuses.
        """
        check_ifname(bridge)
        tag = _quote(f"pycontain bridge {bridge}")
        old = [rule for rule in self._rules() if rule.get("comment") == tag.strip('"')]
        commands = self._chain_commands() + [
            f"delete rule inet {self.name} {rule['chain']} handle {int(rule['handle'])}"
            for rule in old
        ] + [
            f"add rule inet {self.name} postrouting ip saddr {subnet} "
            f'oifname != "{bridge}" masquerade comment {tag}',
            f'add rule inet {self.name} postrouting oifname "{bridge}" '
            f"ip saddr 127.0.0.0/8 masquerade comment {tag}",
            f'add rule inet {self.name} postrouting oifname "{bridge}" '
            f"ip saddr {subnet} ct status dnat masquerade comment {tag}",
        ]
        self._nft.run("\n".join(commands), f"set up NAT for bridge {bridge} in table "
                                            f"inet {self.name}")

    def remove_bridge_rules(self, bridge: str) -> int:
        """Delete the base rules of ``bridge``; return how many. Raises PycontainError."""
        tag = f"pycontain bridge {check_ifname(bridge)}"
        return self._delete([rule for rule in self._rules() if rule.get("comment") == tag],
                            f"remove the NAT rules of bridge {bridge}")

    def destroy(self) -> bool:
        """Delete the whole table; return False if there was none. Raises PycontainError."""
        if not self.exists():
            return False
        self._nft.run(f"delete table inet {self.name}", f"delete table inet {self.name}")
        return True

    # ------------------------------------------------------------------ published ports

    def publish(self, container_id: str, container_ip: IPv4Address,
                ports: Sequence[PortMapping]) -> list[PortMapping]:
        """DNAT each of ``ports`` to ``container_ip``, in one transaction.

        A mapping without a host port gets a free one (in the host's ephemeral range,
        neither published nor bound by a host process). Returns the mappings with their
        host ports. Raises Conflict if a host port is already published or in use on the
        host, InvalidArgument if a host address is not one of the host's, PycontainError if
        nft refuses.
        """
        check_container_id(container_id)
        if not ports:
            return []
        taken = {(m.protocol, m.host_port, m.host_ip)
                 for mappings in self.published().values() for m in mappings}
        resolved: list[PortMapping] = []
        for mapping in ports:
            if mapping.host_port is None:
                mapping = replace(mapping, host_port=_free_port(mapping, taken))
            else:
                _check_port_free(mapping, taken, container_id)
            taken.add((mapping.protocol, mapping.host_port, mapping.host_ip))
            resolved.append(mapping)
        tag = _quote(container_id)
        commands = self._chain_commands()
        for mapping in resolved:
            match = (f"ip daddr {mapping.host_ip}" if mapping.host_ip is not None
                     else "fib daddr type local meta nfproto ipv4")
            rule = (f"{match} {mapping.protocol} dport {mapping.host_port} "
                    f"dnat ip to {container_ip}:{mapping.container_port} comment {tag}")
            commands += [f"add rule inet {self.name} {chain} {rule}"
                         for chain in ("prerouting", "output")]
        self._nft.run("\n".join(commands),
                      f"publish ports {', '.join(map(str, resolved))} of container "
                      f"{container_id[:12]} in table inet {self.name}")
        return resolved

    def published(self) -> dict[str, list[PortMapping]]:
        """The published ports in the table: container id -> mappings (none if no table).

        Raises PycontainError if nft fails.
        """
        found: dict[str, list[PortMapping]] = {}
        for rule in self._rules():
            if rule.get("chain") != "prerouting":
                continue
            parsed = _parse_dnat_rule(rule)
            if parsed is not None:
                found.setdefault(str(rule["comment"]), []).append(parsed[0])
        return found

    def container_addresses(self) -> dict[str, set[IPv4Address]]:
        """The DNAT targets of each container id (for recovery of one subnet)."""
        found: dict[str, set[IPv4Address]] = {}
        for rule in self._rules():
            parsed = _parse_dnat_rule(rule)
            if parsed is not None:
                found.setdefault(str(rule["comment"]), set()).add(parsed[1])
        return found

    def unpublish(self, container_id: str) -> int:
        """Delete every rule of ``container_id``; return how many (0 if none, or no table).

        Raises PycontainError if nft refuses.
        """
        check_container_id(container_id)
        return self._delete([r for r in self._rules() if r.get("comment") == container_id],
                            f"unpublish the ports of container {container_id[:12]}")

    def remove_stale(self, subnet: IPv4Network, live_ids: Iterable[str]) -> list[str]:
        """Delete the rules of containers on ``subnet`` that are not in ``live_ids``.

        For daemon startup; rules pointing into other subnets (another daemon's bridge
        sharing the table) are left alone. Returns the ids whose rules were deleted.
        Raises PycontainError if nft refuses.
        """
        live = set(live_ids)
        stale = {cid for cid, addresses in self.container_addresses().items()
                 if cid not in live and any(a in subnet for a in addresses)}
        self._delete([r for r in self._rules() if r.get("comment") in stale],
                     f"remove the stale published ports in table inet {self.name}")
        return sorted(stale)

    # ------------------------------------------------------------------ helpers

    def _chain_commands(self) -> list[str]:
        return [f"add table inet {self.name}"] + [
            f"add chain inet {self.name} {chain} {{ {spec} }}" for chain, spec in _CHAINS]

    def _rules(self) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        items = self._nft.run_json(f"list table inet {self.name}",
                                   f"list table inet {self.name}")
        return [item["rule"] for item in items if isinstance(item.get("rule"), dict)]

    def _delete(self, rules: list[dict[str, Any]], what: str) -> int:
        if rules:
            self._nft.run("\n".join(
                f"delete rule inet {self.name} {rule['chain']} handle {int(rule['handle'])}"
                for rule in rules), what)
        return len(rules)


def _parse_dnat_rule(rule: dict[str, Any]) -> tuple[PortMapping, IPv4Address] | None:
    """(mapping, container address) of one of our DNAT rules, or None for another rule."""
    comment = rule.get("comment")
    if not isinstance(comment, str) or not re.fullmatch(r"[0-9a-f]{64}", comment):
        return None
    try:
        return _dnat_of(rule.get("expr", []))
    except (ValueError, TypeError, AttributeError):
        return None  # a rule of ours someone edited by hand: not a published port


def _dnat_of(exprs: list[dict[str, Any]]) -> tuple[PortMapping, IPv4Address] | None:
    protocol = host_port = host_ip = target = container_port = None
    for expr in exprs:
        if "match" in expr:
            left, right = expr["match"].get("left", {}), expr["match"].get("right")
            payload = left.get("payload", {}) if isinstance(left, dict) else {}
            if payload.get("field") == "dport" and payload.get("protocol") in PROTOCOLS:
                protocol, host_port = payload["protocol"], int(right)
            elif payload.get("protocol") == "ip" and payload.get("field") == "daddr":
                host_ip = IPv4Address(str(right))
        elif "dnat" in expr:
            target = IPv4Address(str(expr["dnat"].get("addr")))
            container_port = int(expr["dnat"].get("port"))
    if protocol is None or host_port is None or target is None or container_port is None:
        return None
    return PortMapping(container_port, protocol, host_port, host_ip), target


def _bind_test(mapping: PortMapping, port: int) -> int:
    """0 if ``port`` can be bound on the host for ``mapping``, else the errno."""
    kind = socket.SOCK_STREAM if mapping.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((str(mapping.host_ip or "0.0.0.0"), port))
        except OSError as exc:
            return exc.errno or errno.EINVAL
    return 0


def _overlaps(mapping: PortMapping, port: int,
              taken: set[tuple[str, int | None, IPv4Address | None]]) -> bool:
    return any(proto == mapping.protocol and used == port
               and (ip is None or mapping.host_ip is None or ip == mapping.host_ip)
               for proto, used, ip in taken)


def _check_port_free(mapping: PortMapping, taken: set[tuple[str, int | None,
                     IPv4Address | None]], container_id: str) -> None:
    assert mapping.host_port is not None
    what = (f"publish {mapping.host_ip or '0.0.0.0'}:{mapping.host_port}/{mapping.protocol} "
            f"for container {container_id[:12]}")
    if _overlaps(mapping, mapping.host_port, taken):
        raise Conflict(f"{what}: port is already allocated")
    error = _bind_test(mapping, mapping.host_port)
    if error == errno.EADDRNOTAVAIL:
        raise InvalidArgument(f"{what}: {mapping.host_ip} is not an address of this host")
    if error:
        raise Conflict(f"{what}: {errno.errorcode.get(error, error)}, the port is in use "
                       "on the host")


def _free_port(mapping: PortMapping,
               taken: set[tuple[str, int | None, IPv4Address | None]]) -> int:
    try:
        low, high = (int(x) for x in _PORT_RANGE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    span = high - low + 1
    start = random.randrange(span)
    for step in range(span):
        port = low + (start + step) % span
        if not _overlaps(mapping, port, taken):
            error = _bind_test(mapping, port)
            if error == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"publish {mapping.host_ip}::{mapping.container_port}: "
                                      f"{mapping.host_ip} is not an address of this host")
            if not error:
                return port
    raise Conflict(f"publish port {mapping.container_port}/{mapping.protocol}: no free host "
                   f"port left in {low}-{high}")
