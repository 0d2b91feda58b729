"""Container networking end to end: the run's own bridge and subnet, published ports,
--network none|host|container:, /etc/hosts, and nothing left after rm.

Traffic goes only to 127.0.0.1 and to this run's containers on this run's bridge."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.root

HTTPD = ["sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && "
         "exec httpd -f -p 80 -h /www"]


def _inspect(daemon: Daemon, name: str) -> dict[str, object]:
    return daemon.inspect(name)


def _get(url: str, attempts: int = 50) -> str:
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return str(reply.read().decode())
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"GET {url}: {last}")


def _nft_rules(table: str) -> str:
    return subprocess.run(["nft", "list", "table", "inet", table], capture_output=True,
                          text=True).stdout


def test_bridge_address_published_port_and_cleanup(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "--name", "web", "-p", "80", "busybox", *HTTPD,
                     check=True).stdout.strip()
    info = _inspect(daemon, "web")
    settings = info["NetworkSettings"]
    assert isinstance(settings, dict)
    address = IPv4Address(settings["IPAddress"])
    assert address in daemon.subnet and settings["Gateway"] == str(daemon.subnet[1])
    assert re.fullmatch(r"02:42(:[0-9a-f]{2}){4}", settings["MacAddress"])
    host_port = int(settings["Ports"]["80/tcp"][0]["HostPort"])
    port_line = daemon.cli("port", "web", check=True).stdout.strip()
    assert port_line == f"80/tcp -> 0.0.0.0:{host_port}"
    ps = daemon.cli("ps", "--filter", "name=web", "--format", "{{.Ports}}").stdout.strip()
    assert ps == f"0.0.0.0:{host_port}->80/tcp"
    inside = daemon.cli("run", "--rm", "busybox", "ip", "route").stdout
    assert f"default via {daemon.subnet[1]}" in inside
    # From the host: through the published port on 127.0.0.1, and directly on the bridge.
    expected = f"hello-from-{cid[:12]}\n"
    assert _get(f"http://127.0.0.1:{host_port}/") == expected
    assert _get(f"http://{address}/") == expected
    # From another container on the same bridge.
    peer = daemon.cli("run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", str(address))
    assert peer.returncode == 0, peer.stdout + peer.stderr
    veth = "pcv" + cid[:10]
    assert Path(f"/sys/class/net/{veth}").exists()
    assert cid in _nft_rules(f"pycontain_{daemon.bridge}")
    daemon.cli("rm", "-f", "web", check=True)
    assert not Path(f"/sys/class/net/{veth}").exists()
    assert cid not in _nft_rules(f"pycontain_{daemon.bridge}")
    leases = json.loads((daemon.data_root / "network" / f"ipam-{daemon.bridge}.json")
                        .read_text())
    assert cid not in json.dumps(leases)


def test_hosts_and_hostname_files(daemon: Daemon) -> None:
    out = daemon.cli("run", "--rm", "--hostname", "box", "busybox", "sh", "-c",
                     "cat /etc/hostname; grep box /etc/hosts; ip -o -4 addr show eth0",
                     check=True).stdout.splitlines()
    assert out[0] == "box"
    address = out[1].split()[0]
    assert IPv4Address(address) in daemon.subnet
    assert IPv4Interface(out[2].split()[3]).ip == IPv4Address(address)


def test_fixed_host_port_and_a_conflict(daemon: Daemon) -> None:
    daemon.cli("run", "-d", "--name", "fixed", "-p", "127.0.0.1::80", "busybox", *HTTPD,
               check=True)
    port = int(daemon.cli("port", "fixed", "80", check=True).stdout.split(":")[1])
    assert _get(f"http://127.0.0.1:{port}/").startswith("hello-from-")
    clash = daemon.cli("run", "-d", "--name", "clash", "-p", f"127.0.0.1:{port}:80",
                       "busybox", *HTTPD)
    assert clash.returncode == 125 and "already allocated" in clash.stderr
    assert daemon.cli("port", "fixed", "81").returncode == 1
    daemon.cli("rm", "-f", "fixed", "clash", check=True)


def test_network_none_host_and_container(daemon: Daemon) -> None:
    none = daemon.cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link",
                      check=True).stdout
    assert [line.split(":")[1].strip() for line in none.splitlines()] == ["lo"]
    host = daemon.cli("run", "--rm", "--network", "host", "busybox", "readlink",
                      "/proc/self/ns/net", check=True).stdout.strip()
    assert host == os.readlink("/proc/self/ns/net")
    daemon.cli("run", "-d", "--name", "netowner", "busybox", "sleep", "300", check=True)
    owner_pid = _inspect(daemon, "netowner")["State"]["Pid"]  # type: ignore[index]
    shared = daemon.cli("run", "--rm", "--network", "container:netowner", "busybox",
                        "readlink", "/proc/self/ns/net", check=True).stdout.strip()
    assert shared == os.readlink(f"/proc/{owner_pid}/ns/net")
    refused = daemon.cli("run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert refused.returncode == 125 and "nosuchnet" in refused.stderr
    daemon.cli("rm", "-f", "netowner", check=True)


def test_addresses_are_not_handed_out_twice(daemon: Daemon) -> None:
    names = [f"addr{i}" for i in range(5)]
    for name in names:
        daemon.cli("run", "-d", "--name", name, "busybox", "sleep", "300", check=True)
    addresses = {str(_inspect(daemon, n)["NetworkSettings"]["IPAddress"])  # type: ignore[index]
                 for n in names}
    assert len(addresses) == 5
    daemon.cli("rm", "-f", *names, check=True)
