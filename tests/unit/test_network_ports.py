"""``-p`` specifications and the host-side names the network package derives."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Address

import pytest

from pycontain.errors import InvalidArgument
from pycontain.network.naming import check_ifname, veth_name
from pycontain.network.ports import PortMapping, parse_port_spec


@pytest.mark.parametrize("spec, expected", [
    ("80", PortMapping(80)),
    ("8080:80", PortMapping(80, "tcp", 8080)),
    ("8080:80/udp", PortMapping(80, "udp", 8080)),
    ("53/udp", PortMapping(53, "udp")),
    ("127.0.0.1:8080:80", PortMapping(80, "tcp", 8080, IPv4Address("127.0.0.1"))),
    ("127.0.0.1::80", PortMapping(80, "tcp", None, IPv4Address("127.0.0.1"))),
    ("0.0.0.0:8080:80/tcp", PortMapping(80, "tcp", 8080)),
])
def test_docker_port_specs(spec: str, expected: PortMapping) -> None:
    assert parse_port_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "http", "0", "65536", "8080:0", "80/sctp", "1-2:1-2",
                                  "[::1]:80:80", "300.1.1.1:80:80", "a:b:c:d", "8080:80/"])
def test_bad_port_specs_are_invalid_arguments(spec: str) -> None:
    with pytest.raises(InvalidArgument, match="port"):
        parse_port_spec(spec)


def test_port_mappings_render_as_dockers_ports_column() -> None:
    assert str(PortMapping(80, "tcp", 8080)) == "0.0.0.0:8080->80/tcp"
    assert str(PortMapping(53, "udp", 5353, IPv4Address("127.0.0.1"))) == \
        "127.0.0.1:5353->53/udp"


def test_veth_names_fit_ifnamsiz() -> None:
    assert veth_name("0123456789abcdef" * 4) == "pcv0123456789"
    with pytest.raises(InvalidArgument):
        veth_name("0123456789")
    for bad in ("", "a" * 16, "a b", "a/b", ".."):
        with pytest.raises(InvalidArgument):
            check_ifname(bad)


def test_port_parsing_stays_off_the_heavy_imports() -> None:
    """The CLI's fast path may parse -p: importing it must not pull in pyroute2."""
    code = "import sys, pycontain.network.ports; print(sorted(sys.modules))"
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
    assert "pyroute2" not in modules and "asyncio" not in modules
