"""The IPAM: leases persisted as JSON, never handed out twice, reloaded after a restart."""

from __future__ import annotations

import json
import secrets
import stat
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from pycontain.errors import Conflict, InvalidArgument, PycontainError
from pycontain.network.ipam import DEFAULT_SUBNET, IPAM, parse_subnet


def new_id() -> str:
    return secrets.token_hex(32)


def test_defaults_are_dockers_pycontain0_network(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path)
    assert ipam.subnet == DEFAULT_SUBNET == IPv4Network("10.88.0.0/16")
    assert ipam.gateway == IPv4Interface("10.88.0.1/16")
    assert ipam.allocate(new_id()) == IPv4Interface("10.88.0.2/16")


def test_addresses_are_unique_and_skip_network_gateway_and_broadcast(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.1.2.0/28", gateway="10.1.2.5")
    addresses = [ipam.allocate(new_id()).ip for _ in range(13)]
    assert len(set(addresses)) == 13
    assert IPv4Address("10.1.2.5") not in addresses
    assert {IPv4Address("10.1.2.0"), IPv4Address("10.1.2.15")}.isdisjoint(addresses)


def test_allocate_is_idempotent_per_container(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.1.2.0/24")
    cid = new_id()
    assert ipam.allocate(cid) == ipam.allocate(cid) == ipam.lookup(cid)
    assert len(ipam.leases()) == 1


def test_release_frees_by_container_id_and_is_idempotent(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.1.2.0/24")
    a, b = new_id(), new_id()
    address = ipam.allocate(a)
    ipam.allocate(b)
    assert ipam.release(a) == address
    assert ipam.release(a) is None
    assert ipam.lookup(a) is None
    assert set(ipam.leases()) == {b}


def test_a_freed_address_is_reused_only_after_the_others(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.1.2.0/29")  # hosts .1-.6, gateway .1: five for containers
    first = new_id()
    freed = ipam.allocate(first).ip
    ipam.release(first)
    later = [ipam.allocate(new_id()).ip for _ in range(5)]
    assert later[:4] == [IPv4Address(f"10.1.2.{n}") for n in (3, 4, 5, 6)]
    assert later[4] == freed  # round-robin came back to it


def test_a_full_subnet_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.1.2.0/30")  # .1 gateway, .2 the only container address
    ipam.allocate(new_id())
    cid = new_id()
    with pytest.raises(PycontainError, match=r"allocate an address in 10\.1\.2\.0/30.*"
                                             r"no free address left \(1 leased\)"):
        ipam.allocate(cid)
    assert ipam.lookup(cid) is None


def test_leases_survive_a_restart(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.1.2.0/24")
    ids = [new_id() for _ in range(3)]
    for cid in ids:
        ipam.allocate(cid)
    ipam.release(ids[1])
    reloaded = IPAM(tmp_path, "10.1.2.0/24")
    assert reloaded.leases() == ipam.leases()
    fresh = reloaded.allocate(new_id())
    assert fresh.ip == IPv4Address("10.1.2.5")  # after the last one handed out, not .3
    assert fresh.ip not in {a.ip for a in ipam.leases().values()}


def test_state_file_is_private_json_written_atomically(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.1.2.0/24", name="pct1")
    cid = new_id()
    ipam.allocate(cid)
    assert ipam.path == tmp_path / "ipam-pct1.json"
    assert stat.S_IMODE(ipam.path.stat().st_mode) == 0o600
    state = json.loads(ipam.path.read_text())
    assert state["leases"] == {cid: "10.1.2.2"}
    assert state["subnet"] == "10.1.2.0/24" and state["gateway"] == "10.1.2.1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ipam-pct1.json"]


def test_release_all_except_keeps_only_live_containers(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.1.2.0/24")
    live, gone = new_id(), new_id()
    ipam.allocate(live)
    ipam.allocate(gone)
    assert ipam.release_all_except([live]) == [gone]
    assert set(IPAM(tmp_path, "10.1.2.0/24").leases()) == {live}


def test_another_subnet_with_leases_is_a_conflict(tmp_path: Path) -> None:
    IPAM(tmp_path, "10.1.2.0/24").allocate(new_id())
    with pytest.raises(Conflict, match=r"1 addresses are leased in 10\.1\.2\.0/24"):
        IPAM(tmp_path, "10.9.0.0/16")


def test_another_subnet_without_leases_replaces_the_old_one(tmp_path: Path) -> None:
    old = IPAM(tmp_path, "10.1.2.0/24")
    cid = new_id()
    old.allocate(cid)
    old.release(cid)
    new = IPAM(tmp_path, "10.9.0.0/16")
    assert new.allocate(new_id()) == IPv4Interface("10.9.0.2/16")


@pytest.mark.parametrize("content", ["{not json", '{"subnet": "10.1.2.0/24"}', "[]",
                                     '{"subnet": "10.1.2.0/24", "gateway": "10.1.2.1", '
                                     '"last": "10.1.2.1", "leases": {"x": "10.1.2.2"}}'])
def test_a_corrupt_state_file_is_reported_with_its_path(tmp_path: Path, content: str) -> None:
    (tmp_path / "ipam-bridge.json").write_text(content)
    with pytest.raises(PycontainError, match=r"read IPAM state .*ipam-bridge\.json"):
        IPAM(tmp_path, "10.1.2.0/24")


def test_duplicate_leases_in_the_file_are_refused(tmp_path: Path) -> None:
    a, b = new_id(), new_id()
    (tmp_path / "ipam-bridge.json").write_text(json.dumps({
        "subnet": "10.1.2.0/24", "gateway": "10.1.2.1", "last": "10.1.2.2",
        "leases": {a: "10.1.2.2", b: "10.1.2.2"}}))
    with pytest.raises(PycontainError, match="duplicate"):
        IPAM(tmp_path, "10.1.2.0/24")


def test_an_unwritable_state_dir_fails_the_allocation_without_a_lease(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    ipam = IPAM(blocker / "sub", "10.1.2.0/24")
    cid = new_id()
    with pytest.raises(PycontainError, match="write IPAM state"):
        ipam.allocate(cid)
    assert ipam.lookup(cid) is None


@pytest.mark.parametrize("subnet, gateway", [
    ("10.1.2.0/31", None), ("10.1.2.1/24", None), ("nonsense", None),
    ("10.1.2.0/24", "10.1.3.1"), ("10.1.2.0/24", "10.1.2.255"), ("10.1.2.0/24", "10.1.2.0"),
])
def test_bad_subnets_and_gateways_are_invalid_arguments(subnet: str, gateway: str | None,
                                                        ) -> None:
    with pytest.raises(InvalidArgument):
        parse_subnet(subnet, gateway)


@pytest.mark.parametrize("cid", ["", "abc", "X" * 64, "0" * 63, "../" + "0" * 61])
def test_malformed_container_ids_are_refused(tmp_path: Path, cid: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid container id"):
        IPAM(tmp_path, "10.1.2.0/24").allocate(cid)
