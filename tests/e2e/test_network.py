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


def test_user_network_name_resolution_and_removal(daemon: Daemon) -> None:
    name = f"net{daemon.tag}"
    network_id = daemon.cli("network", "create", name, check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", network_id)
    listed = daemon.cli("network", "ls", check=True).stdout
    assert name in listed and "bridge" in listed
    info = json.loads(daemon.cli("network", "inspect", name, check=True).stdout)[0]
    subnet = info["IPAM"]["Config"][0]["Subnet"]
    bridge = info["Options"]["com.docker.network.bridge.name"]
    assert Path(f"/sys/class/net/{bridge}").exists()
    try:
        daemon.cli("run", "-d", "--name", "alpha", "--network", name, "busybox", "sleep",
                   "300", check=True)
        daemon.cli("run", "-d", "--name", "beta", "--network", name, "busybox", "sleep", "300",
                   check=True)
        alpha_ip = str(daemon.inspect("alpha")["NetworkSettings"]["IPAddress"])  # type: ignore[index]
        assert IPv4Address(alpha_ip) in IPv4Interface(subnet).network
        # beta reaches alpha by name and by address; alpha's hosts file learnt beta.
        by_name = daemon.cli("run", "--rm", "--network", name, "busybox", "ping", "-c", "1",
                             "-W", "2", "alpha")
        assert by_name.returncode == 0, by_name.stdout + by_name.stderr
        assert alpha_ip in by_name.stdout
        hosts = (daemon.data_root / "containers" /
                 str(daemon.inspect("alpha")["Id"]) / "hosts").read_text()
        assert re.search(r"\sbeta(\s|$)", hosts), hosts
        members = json.loads(daemon.cli("network", "inspect", name).stdout)[0]["Containers"]
        assert {m["Name"] for m in members.values()} == {"alpha", "beta"}
        busy = daemon.cli("network", "rm", name)
        assert busy.returncode == 1 and "active endpoints" in busy.stderr
        unknown = daemon.cli("run", "--rm", "--network", "no-such-net", "busybox", "true")
        assert unknown.returncode == 125 and "network no-such-net not found" in unknown.stderr
    finally:
        daemon.cli("rm", "-f", "alpha", "beta")
    assert daemon.cli("network", "rm", name, check=True).stdout.strip() == name
    assert not Path(f"/sys/class/net/{bridge}").exists()
    assert name not in daemon.cli("network", "ls").stdout


def test_no_leftovers_after_kill_and_daemon_restart(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "--name", "killed", "-p", "80", "busybox", "sleep", "300",
                     check=True).stdout.strip()
    pid = int(daemon.inspect("killed")["State"]["Pid"])  # type: ignore[call-overload]
    os.kill(pid, 9)  # the container's process dies outside any pycontain verb
    for _ in range(100):
        if daemon.inspect("killed")["State"]["Status"] == "exited":  # type: ignore[index]
            break
        time.sleep(0.05)
    table = f"pycontain_{daemon.bridge}"
    assert cid not in _nft_rules(table)
    assert not Path(f"/sys/class/net/pcv{cid[:10]}").exists()
    daemon.cli("rm", "killed", check=True)
    # A daemon killed while a container runs; the container exits while it is down.
    cid = daemon.cli("run", "-d", "--name", "orphaned", "-p", "80", "busybox", "sh", "-c",
                     "sleep 1", check=True).stdout.strip()
    daemon.kill()
    time.sleep(1.5)
    assert cid in _nft_rules(table)  # nobody cleaned yet
    daemon.start()
    for _ in range(100):
        if cid not in _nft_rules(table):
            break
        time.sleep(0.05)
    assert cid not in _nft_rules(table)
    leases = (daemon.data_root / "network" / f"ipam-{daemon.bridge}.json").read_text()
    assert cid not in leases
    daemon.cli("rm", "orphaned", check=True)


def test_two_daemons_side_by_side(daemon: Daemon, test_images: Path) -> None:
    from tests.conftest import isolated_daemon

    with isolated_daemon(test_images) as other:
        assert other.bridge != daemon.bridge and not other.subnet.overlaps(daemon.subnet)
        for d in (daemon, other):
            d.cli("run", "-d", "--name", "side", "-p", "80", "busybox", *HTTPD, check=True)
        for d in (daemon, other):
            port = int(d.cli("port", "side", "80", check=True).stdout.split(":")[1])
            cid = str(d.inspect("side")["Id"])
            assert _get(f"http://127.0.0.1:{port}/") == f"hello-from-{cid[:12]}\n"
            d.cli("rm", "-f", "side", check=True)
