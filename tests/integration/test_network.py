"""The network package on the real kernel: bridge, veth pairs, IPAM, nftables NAT.

Each run has its own bridge (``pct`` + random hex), its own /24 (random, clear of every
route of the host), its own nft table and its own IPAM directory. Its two "containers"
are network namespaces made as the runtime makes them (a child that unshares
CLONE_NEWNET: ``unshare --net sleep``), passed as /proc/<pid>/ns/net. Traffic goes only
to 127.0.0.1, to the run's own bridge address and to its namespaces' addresses on that
bridge; the host's interfaces, routes and other nft tables are never touched. The module
fixture removes everything and checks that nothing of the run is left.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute

from pycontain.errors import Conflict, InvalidArgument, NotFound, PycontainError
from pycontain.network import bridge as bridge_links
from pycontain.network.libnft import Nftables
from pycontain.network.naming import veth_name
from pycontain.network.nat import NatTable
from pycontain.network.ports import PortMapping, parse_port_spec
from pycontain.network.service import BridgeNetwork, NetworkConfig
from tests.conftest import free_subnet

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: bridges, veths, nftables"),
]


def netns_of(pid: int) -> str:
    return f"/proc/{pid}/ns/net"


def in_netns(pid: int, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={netns_of(pid)}", *argv], capture_output=True,
                          text=True, timeout=timeout)


def nft_tables() -> list[tuple[str, str]]:
    with Nftables() as nft:
        items = nft.run_json("list tables", "list tables")
    return [(t["table"]["family"], t["table"]["name"]) for t in items if "table" in t]


def link_names() -> list[str]:
    with IPRoute() as ipr:
        return [link.get("ifname") for link in ipr.link("dump")]


def free_host_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


FETCH = ("import sys, urllib.request; "
         "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")


def wait_until_listening(pid: int, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if f":{port} " in in_netns(pid, "ss", "-Htln").stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} in the namespace of {pid}")


@dataclass
class Run:
    tag: str
    bridge: str
    subnet: IPv4Network
    table: str
    state_dir: Path
    network: BridgeNetwork
    namespaces: list[subprocess.Popen[bytes]]

    @property
    def gateway(self) -> IPv4Address:
        return self.subnet.network_address + 1

    def new_namespace(self) -> int:
        process = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        self.namespaces.append(process)
        deadline = time.monotonic() + 5
        while os.readlink(netns_of(process.pid)) == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline, "unshare --net did not take effect"
            time.sleep(0.01)
        return process.pid


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tag = secrets.token_hex(4)
    bridge = f"pct{tag}"  # 11 characters
    subnet = free_subnet()
    config = NetworkConfig(bridge=bridge, subnet=subnet, nat_table=f"pct{tag}")
    state_dir = tmp_path_factory.mktemp("network")
    network = BridgeNetwork(state_dir, config)
    the_run = Run(tag, bridge, subnet, config.nat_table, state_dir, network, [])
    try:
        asyncio.run(network.setup())
        yield the_run
    finally:
        for cid in list(network.ipam.leases()):
            asyncio.run(network.disconnect(cid))
        for process in the_run.namespaces:
            process.kill()
            process.wait()
        asyncio.run(bridge_links.remove_stale_endpoints(bridge, ()))
        asyncio.run(bridge_links.delete_bridge(bridge))
        network.nat.destroy()
        network.close()
    assert not [name for name in link_names() if name.startswith(f"pct{tag}")]
    assert ("inet", config.nat_table) not in nft_tables()
    assert all(p.poll() is not None for p in the_run.namespaces)


@pytest.fixture
def containers(run: Run) -> Iterator[tuple[str, int, str, int]]:
    """Two connected "containers": (id, namespace pid) each; disconnected afterwards."""
    a, b = secrets.token_hex(32), secrets.token_hex(32)
    pid_a, pid_b = run.new_namespace(), run.new_namespace()
    asyncio.run(run.network.connect(a, netns_of(pid_a)))
    asyncio.run(run.network.connect(b, netns_of(pid_b)))
    yield a, pid_a, b, pid_b
    for cid in (a, b):
        asyncio.run(run.network.disconnect(cid))


def eth0_of(pid: int) -> dict[str, Any]:
    result = in_netns(pid, "ip", "-j", "addr", "show", "dev", "eth0")
    assert result.returncode == 0, result.stderr
    (link,) = json.loads(result.stdout)
    return dict(link)


def test_the_bridge_has_the_gateway_a_fixed_mac_and_its_own_sysctls(run: Run) -> None:
    asyncio.run(run.network.setup())  # idempotent
    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname=run.bridge)
        (link,) = ipr.link("get", index=index)
        addresses = [(a.get("address"), a["prefixlen"])
                     for a in ipr.addr("dump", index=index, family=socket.AF_INET)]
    assert link.get(("linkinfo", "kind")) == "bridge"
    assert link.get("operstate") in ("UP", "UNKNOWN", "DOWN") and link["flags"] & 1  # IFF_UP
    assert link.get("address") == bridge_links.mac_address_for(run.gateway)
    assert addresses == [(str(run.gateway), 24)]
    conf = Path("/proc/sys/net/ipv4/conf") / run.bridge
    assert (conf / "forwarding").read_text().strip() == "1"
    assert (conf / "route_localnet").read_text().strip() == "1"


def test_a_bridge_name_taken_by_another_kind_of_interface_is_a_conflict(run: Run) -> None:
    name = f"pct{run.tag}d"
    with IPRoute() as ipr:
        ipr.link("add", ifname=name, kind="veth", peer=f"pct{run.tag}e")
    try:
        with pytest.raises(Conflict, match=f"{name}.*not a bridge"):
            asyncio.run(bridge_links.ensure_bridge(name, run.network.ipam.gateway))
    finally:
        with IPRoute() as ipr:
            ipr.link("del", ifname=name)


def test_each_namespace_gets_eth0_with_its_address_route_and_lo(
        run: Run, containers: tuple[str, int, str, int]) -> None:
    a, pid_a, b, pid_b = containers
    for cid, pid in ((a, pid_a), (b, pid_b)):
        address = run.network.ipam.lookup(cid)
        assert address is not None and address.network == run.subnet
        eth0 = eth0_of(pid)
        assert "UP" in eth0["flags"]
        assert eth0["address"] == bridge_links.mac_address_for(address.ip)
        assert [(i["local"], i["prefixlen"]) for i in eth0["addr_info"]
                if i["family"] == "inet"] == [(str(address.ip), 24)]
        routes = json.loads(in_netns(pid, "ip", "-j", "route", "show", "default").stdout)
        assert [(r["gateway"], r["dev"]) for r in routes] == [(str(run.gateway), "eth0")]
        lo = json.loads(in_netns(pid, "ip", "-j", "link", "show", "lo").stdout)[0]
        assert "UP" in lo["flags"]
        links = json.loads(in_netns(pid, "ip", "-j", "link").stdout)
        assert sorted(link["ifname"] for link in links) == ["eth0", "lo"]
    assert asyncio.run(bridge_links.endpoints(run.bridge)) == {
        a: veth_name(a), b: veth_name(b)}


def test_the_namespaces_ping_each_other_and_the_gateway(
        run: Run, containers: tuple[str, int, str, int]) -> None:
    a, pid_a, b, pid_b = containers
    address_a, address_b = run.network.ipam.lookup(a), run.network.ipam.lookup(b)
    assert address_a is not None and address_b is not None
    for pid, target in ((pid_a, address_b.ip), (pid_b, address_a.ip), (pid_a, run.gateway),
                        (pid_b, run.gateway)):
        result = in_netns(pid, "busybox", "ping", "-c", "1", "-W", "3", str(target))
        assert result.returncode == 0, f"{target}: {result.stdout}{result.stderr}"


def test_a_published_port_is_reachable_from_the_host_and_by_hairpin(
        run: Run, tmp_path: Path) -> None:
    server_id, client_id = secrets.token_hex(32), secrets.token_hex(32)
    pid, client_pid = run.new_namespace(), run.new_namespace()
    token = secrets.token_hex(8)
    (tmp_path / "index.html").write_text(token)
    fixed = free_host_port()
    ports = [parse_port_spec("8000"), parse_port_spec(f"{fixed}:8000"),
             parse_port_spec("127.0.0.1::8000"), parse_port_spec("5353/udp")]
    attachment = asyncio.run(run.network.connect(server_id, netns_of(pid), ports))
    asyncio.run(run.network.connect(client_id, netns_of(client_pid)))
    server = subprocess.Popen(
        ["nsenter", f"--net={netns_of(pid)}", sys.executable, "-m", "http.server", "8000",
         "--bind", "0.0.0.0", "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(pid, 8000)
        random_port, fixed_mapping, local_only, udp = attachment.ports
        assert random_port.host_port is not None and random_port.host_port != fixed
        assert fixed_mapping.host_port == fixed
        assert local_only.host_ip == IPv4Address("127.0.0.1") and local_only.host_port
        assert udp.protocol == "udp" and udp.host_port
        published = run.network.nat.published()[server_id]
        assert published == list(attachment.ports)
        address = attachment.endpoint.address.ip
        assert fetch(f"http://127.0.0.1:{random_port.host_port}/") == token
        assert fetch(f"http://127.0.0.1:{fixed}/") == token
        assert fetch(f"http://127.0.0.1:{local_only.host_port}/") == token
        assert fetch(f"http://{run.gateway}:{fixed}/") == token
        assert fetch(f"http://{address}:8000/") == token
        # from the other namespace, through the host's published port (hairpin NAT)
        hairpin = in_netns(client_pid, sys.executable, "-c", FETCH,
                           f"http://{run.gateway}:{fixed}/")
        assert hairpin.stdout == token, hairpin.stderr
        # a port bound to 127.0.0.1 only is not published on the bridge address
        with pytest.raises(OSError):
            fetch(f"http://{run.gateway}:{local_only.host_port}/", timeout=1)
    finally:
        server.kill()
        server.wait()
        for cid in (server_id, client_id):
            asyncio.run(run.network.disconnect(cid))
    assert server_id not in run.network.nat.published()
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{fixed}/", timeout=1)


def test_port_conflicts_and_foreign_addresses_are_refused_without_leftovers(
        run: Run) -> None:
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    pid, other = run.new_namespace(), run.new_namespace()
    fixed = free_host_port()
    asyncio.run(run.network.connect(first, netns_of(pid), [PortMapping(80, "tcp", fixed)]))
    try:
        with pytest.raises(Conflict, match=f"127.0.0.1:{fixed}/tcp.*already allocated"):
            asyncio.run(run.network.connect(
                second, netns_of(other), [PortMapping(80, "tcp", fixed,
                                                      IPv4Address("127.0.0.1"))]))
        with pytest.raises(InvalidArgument, match="not an address of this host"):
            asyncio.run(run.network.connect(second, netns_of(other),
                                            [parse_port_spec("192.0.2.254:8081:80")]))
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            with pytest.raises(Conflict, match="in use on the host"):
                asyncio.run(run.network.connect(second, netns_of(other),
                                                [parse_port_spec(f"127.0.0.1:{port}:80")]))
        # each failure unwound: no lease, no veth, no rule, the namespace has only lo
        assert run.network.ipam.lookup(second) is None
        assert veth_name(second) not in link_names()
        assert second not in run.network.nat.published()
        links = json.loads(in_netns(other, "ip", "-j", "link").stdout)
        assert [link["ifname"] for link in links] == ["lo"]
        # the udp port of the same number is free
        udp = asyncio.run(run.network.connect(second, netns_of(other),
                                              [PortMapping(80, "udp", fixed)]))
        assert udp.ports == (PortMapping(80, "udp", fixed),)
    finally:
        for cid in (first, second):
            asyncio.run(run.network.disconnect(cid))


def test_a_missing_namespace_is_not_found_and_leaves_nothing(run: Run) -> None:
    cid = secrets.token_hex(32)
    with pytest.raises(NotFound, match="open network namespace /proc/0/ns/net"):
        asyncio.run(run.network.connect(cid, "/proc/0/ns/net"))
    assert run.network.ipam.lookup(cid) is None
    assert veth_name(cid) not in link_names()


def test_configuring_a_namespace_never_forks_nor_moves_the_calling_thread(
        run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = secrets.token_hex(32)
    pid = run.new_namespace()
    own = os.readlink("/proc/thread-self/ns/net")

    def refuse_to_fork(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the network package forked")

    monkeypatch.setattr(os, "fork", refuse_to_fork)
    monkeypatch.setattr(multiprocessing.Process, "start", refuse_to_fork)
    monkeypatch.setattr(subprocess, "Popen", refuse_to_fork)
    try:
        attachment = asyncio.run(run.network.connect(cid, netns_of(pid),
                                                     [parse_port_spec("80")]))
        assert os.readlink("/proc/thread-self/ns/net") == own
        assert attachment.endpoint.ifname == "eth0"
    finally:
        asyncio.run(run.network.disconnect(cid))
    assert os.readlink("/proc/thread-self/ns/net") == own


def test_disconnect_removes_veth_rules_and_lease_and_is_idempotent(run: Run) -> None:
    cid = secrets.token_hex(32)
    pid = run.new_namespace()
    attachment = asyncio.run(run.network.connect(cid, netns_of(pid), [parse_port_spec("80")]))
    assert veth_name(cid) in link_names()
    asyncio.run(run.network.disconnect(cid))
    asyncio.run(run.network.disconnect(cid))
    assert veth_name(cid) not in link_names()
    assert cid not in run.network.nat.published()
    assert run.network.ipam.lookup(cid) is None
    links = json.loads(in_netns(pid, "ip", "-j", "link").stdout)
    assert [link["ifname"] for link in links] == ["lo"]  # the peer went with the host end
    # the address can be leased again
    again = asyncio.run(run.network.connect(cid, netns_of(pid)))
    assert again.endpoint.address.network == attachment.endpoint.address.network
    asyncio.run(run.network.disconnect(cid))


def test_recover_removes_what_belongs_to_gone_containers_only(run: Run) -> None:
    live, gone, exited = (secrets.token_hex(32) for _ in range(3))
    pids = {cid: run.new_namespace() for cid in (live, gone, exited)}
    for cid in (live, gone, exited):
        asyncio.run(run.network.connect(cid, netns_of(pids[cid]), [parse_port_spec("80")]))
    # a container whose namespace died: the kernel took its veth, the rest stays
    process = next(p for p in run.namespaces if p.pid == pids[exited])
    process.kill()
    process.wait()
    deadline = time.monotonic() + 5
    while veth_name(exited) in link_names():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # a restarted daemon reloads the leases from disk
    restarted = BridgeNetwork(run.state_dir, run.network.config)
    try:
        asyncio.run(restarted.setup())
        report = asyncio.run(restarted.recover([live]))
        assert sorted(report.leases) == sorted([gone, exited])
        assert report.veths == [veth_name(gone)]
        assert sorted(report.rules) == sorted([gone, exited])
        assert set(restarted.ipam.leases()) == {live}
        assert set(restarted.nat.published()) == {live}
        assert asyncio.run(bridge_links.endpoints(run.bridge)) == {live: veth_name(live)}
        assert asyncio.run(restarted.recover([live])) == type(report)()  # idempotent
    finally:
        asyncio.run(restarted.disconnect(live))
        restarted.close()
    run.network.ipam = restarted.ipam  # the fixture's network must not resurrect leases


def test_the_nat_table_never_touches_other_tables_and_is_destroyed_whole(run: Run) -> None:
    other = f"pct{run.tag}other"
    with Nftables() as nft:
        nft.run(f"add table inet {other}\nadd chain inet {other} c\n"
                f'add rule inet {other} c accept comment "keep"', "add another table")
    try:
        before = nft_tables()
        table = NatTable(f"pct{run.tag}x")
        try:
            cid = secrets.token_hex(32)
            table.ensure(run.subnet, run.bridge)
            table.ensure(run.subnet, run.bridge)  # idempotent: the base rules once
            table.publish(cid, run.gateway + 1, [PortMapping(80, "tcp", free_host_port())])
            assert table.unpublish(cid) == 2  # prerouting and output
            assert table.unpublish(cid) == 0
            assert table.exists()  # removing the last container rule leaves the table
            assert table.remove_bridge_rules(run.bridge) == 3
            assert table.destroy() is True
            assert table.destroy() is False
        finally:
            table.close()
        assert nft_tables() == before
        with Nftables() as nft:
            listing = nft.run(f"list table inet {other}", "list the other table")
        assert 'accept comment "keep"' in listing
    finally:
        with Nftables() as nft:
            nft.run(f"delete table inet {other}", "delete the other table")


def test_a_bridge_with_attached_veths_is_not_deleted(
        run: Run, containers: tuple[str, int, str, int]) -> None:
    with pytest.raises(Conflict, match=f"delete bridge {run.bridge}: 2 interfaces"):
        asyncio.run(bridge_links.delete_bridge(run.bridge))
    assert run.bridge in link_names()


def test_a_failure_inside_the_namespace_rolls_the_veth_pair_back(run: Run) -> None:
    cid = secrets.token_hex(32)
    pid = run.new_namespace()
    address = run.network.ipam.gateway.network.network_address + 200
    with pytest.raises(PycontainError, match=r"add the default route via 192\.0\.2\.77 in network "
                                        rf"namespace {netns_of(pid)}"):
        asyncio.run(bridge_links.attach(run.bridge, cid, netns_of(pid),
                                        IPv4Interface(f"{address}/24"),
                                        IPv4Address("192.0.2.77")))  # not on the subnet
    assert veth_name(cid) not in link_names()
    links = json.loads(in_netns(pid, "ip", "-j", "link").stdout)
    assert [link["ifname"] for link in links] == ["lo"]


def test_attaching_a_container_twice_is_a_conflict(run: Run) -> None:
    cid = secrets.token_hex(32)
    pid, other = run.new_namespace(), run.new_namespace()
    asyncio.run(run.network.connect(cid, netns_of(pid)))
    try:
        address = run.network.ipam.lookup(cid)
        assert address is not None
        with pytest.raises(Conflict, match=f"create veth {veth_name(cid)}"):
            asyncio.run(bridge_links.attach(run.bridge, cid, netns_of(other), address,
                                            run.gateway))
    finally:
        asyncio.run(run.network.disconnect(cid))
