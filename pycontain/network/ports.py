"""Published ports as ``-p`` writes them, parsed once into ``PortMapping``.

Standard library only: the CLI's fast path may import this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

from pycontain.errors import InvalidArgument

__all__ = ["PROTOCOLS", "PortMapping", "parse_port_spec"]

PROTOCOLS = ("tcp", "udp")
_PORT_SPEC = re.compile(
    r"(?:(?:(?P<ip>[0-9.]+):)?(?P<host>[0-9]*):)?(?P<ctr>[0-9]+)(?:/(?P<proto>[a-z]+))?")


@dataclass(frozen=True)
class PortMapping:
    """One published port: ``host_ip:host_port -> container_port/protocol``.

    ``host_ip`` None means every address of the host (Docker's ``0.0.0.0``);
    ``host_port`` None means a free port chosen when the container is published.
    """

    container_port: int
    protocol: str = "tcp"
    host_port: int | None = None
    host_ip: IPv4Address | None = None

    def __post_init__(self) -> None:
        for port in (self.container_port, self.host_port):
            if port is not None and not 1 <= port <= 65535:
                raise InvalidArgument(f"publish port {port}: not between 1 and 65535")
        if self.protocol not in PROTOCOLS:
            raise InvalidArgument(f"publish port {self.container_port}: protocol "
                                  f"{self.protocol!r} is neither tcp nor udp")

    def __str__(self) -> str:
        """Docker's form, as in the PORTS column: ``0.0.0.0:8080->80/tcp``."""
        host = f"{self.host_ip or '0.0.0.0'}:{self.host_port or ''}"
        return f"{host}->{self.container_port}/{self.protocol}"


def parse_port_spec(spec: str) -> PortMapping:
    """Parse ``-p`` as Docker does: ``[[HOSTIP:][HOSTPORT]:]CTRPORT[/tcp|udp]``.

    ``80`` (a free host port), ``8080:80``, ``8080:80/udp``, ``127.0.0.1:8080:80``,
    ``127.0.0.1::80``. Raises InvalidArgument for anything else (ranges and IPv6 host
    addresses are not supported).
    """
    match = _PORT_SPEC.fullmatch(spec.strip())
    if match is None:
        raise InvalidArgument(f"invalid port specification {spec!r}: expected "
                              "[[HOSTIP:][HOSTPORT]:]CTRPORT[/tcp|udp]")
    try:
        host_ip = IPv4Address(match["ip"]) if match["ip"] else None
    except ValueError as exc:
        raise InvalidArgument(f"invalid port specification {spec!r}: {exc}") from exc
    if host_ip is not None and host_ip.is_unspecified:
        host_ip = None
    try:
        return PortMapping(container_port=int(match["ctr"]), protocol=match["proto"] or "tcp",
                           host_port=int(match["host"]) if match["host"] else None,
                           host_ip=host_ip)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid port specification {spec!r}: {exc}") from exc


def port_bindings(specs: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    """``-p`` specs as Docker's HostConfig.PortBindings:
    ``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``.  Raises InvalidArgument."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        mapping = parse_port_spec(spec)
        bindings.setdefault(f"{mapping.container_port}/{mapping.protocol}", []).append(
            {"HostIp": str(mapping.host_ip or ""), "HostPort": str(mapping.host_port or "")})
    return bindings
