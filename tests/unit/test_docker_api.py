"""The Docker API's edges without a daemon: the options refused when set, the API
version range of versioned paths, and the image history's shape."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
import pytest

from pycontain.containers.record import parse_create_body
from pycontain.containers.unsupported import refuse_unsupported_network
from pycontain.daemon.http import Request, Response, Router
from pycontain.daemon.views import image_history
from pycontain.errors import InvalidArgument
from pycontain.images.config import Image, ImageConfig

# What the docker CLI 28 sends for `docker run busybox true` (no flag given).
CLI_BODY: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "Tty": False, "OpenStdin": False,
    "Env": None, "Cmd": ["true"], "Image": "busybox", "Volumes": {}, "WorkingDir": "",
    "Entrypoint": None, "OnBuild": None, "Labels": {},
    "HostConfig": {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no",
        "MaximumRetryCount": 0}, "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None,
        "ConsoleSize": [0, 0], "CapAdd": None, "CapDrop": None, "CgroupnsMode": "", "Dns": [],
        "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None, "IpcMode": "",
        "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False,
        "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "",
        "UsernsMode": "", "ShmSize": 0, "Isolation": "", "CpuShares": 0, "Memory": 0,
        "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
        "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0,
        "MemorySwap": 0, "MemorySwappiness": -1, "OomKillDisable": False, "PidsLimit": 0,
        "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None},
    "NetworkingConfig": {"EndpointsConfig": {"default": {
        "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
        "DriverOpts": None, "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "",
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "DNSNames": None}}},
    "SomeFieldOfAFutureApi": {"x": 1},
}


def _with(section: str | None, **fields: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(CLI_BODY))
    (body if section is None else body[section]).update(fields)
    return body


def test_the_clis_defaults_and_unknown_fields_are_accepted() -> None:
    config, host = parse_create_body(CLI_BODY)
    assert config.cmd == ("true",) and host.network_mode == "bridge"


@pytest.mark.parametrize(("section", "field", "value"), [
    ("HostConfig", "Devices", [{"PathOnHost": "/dev/fuse"}]),
    ("HostConfig", "Dns", ["192.0.2.1"]),
    ("HostConfig", "CpuQuota", 50000),
    ("HostConfig", "MemorySwappiness", 0),
    ("HostConfig", "OomKillDisable", True),
    ("HostConfig", "PidMode", "host"),
    (None, "Volumes", {"/data": {}}),
    (None, "StopSignal", "SIGINT"),
    (None, "Healthcheck", {"Test": ["CMD", "true"]}),
])
def test_a_set_unsupported_option_is_refused_by_name(section: str | None, field: str,
                                                     value: Any) -> None:
    with pytest.raises(InvalidArgument) as refused:
        parse_create_body(_with(section, **{field: value}))
    where = f"{section}." if section else ""
    assert f"{where}{field} is not supported by pycontain" in refused.value.message


@pytest.mark.parametrize(("section", "field", "value"), [
    ("HostConfig", "MemorySwappiness", -1),
    ("HostConfig", "IpcMode", "private"),
    ("HostConfig", "UsernsMode", "host"),
    ("HostConfig", "Isolation", "default"),
    (None, "StopSignal", "SIGTERM"),
])
def test_an_option_at_its_default_is_not_set(section: str | None, field: str,
                                             value: Any) -> None:
    parse_create_body(_with(section, **{field: value}))


def test_networking_config_describes_only_the_containers_network() -> None:
    body = _with("HostConfig", NetworkMode="appnet")
    body["NetworkingConfig"] = {"EndpointsConfig": {"appnet": {"Aliases": None}}}
    assert parse_create_body(body)[1].network_mode == "appnet"
    body["NetworkingConfig"] = {"EndpointsConfig": {"appnet": {"Aliases": ["web"]}}}
    with pytest.raises(InvalidArgument, match=r"\['appnet'\]\.Aliases is not supported"):
        parse_create_body(body)
    body["NetworkingConfig"] = {"EndpointsConfig": {"appnet": {}, "other": {}}}
    with pytest.raises(InvalidArgument, match="one network only"):
        parse_create_body(body)
    body["NetworkingConfig"] = {"EndpointsConfig": {"appnet": {
        "IPAMConfig": {"IPv4Address": "10.89.0.9"}}}}
    with pytest.raises(InvalidArgument, match="IPAMConfig is not supported"):
        parse_create_body(body)


def test_network_create_options() -> None:
    cli = {"Name": "n", "CheckDuplicate": True, "Driver": "bridge", "Scope": "",
           "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": {}, "Config": []},
           "Internal": False, "Attachable": False, "Ingress": False, "ConfigOnly": False,
           "ConfigFrom": None, "Options": {}, "Labels": {}}
    refuse_unsupported_network(cli)
    for field, value in (("Internal", True), ("EnableIPv6", True),
                         ("Options", {"com.docker.network.bridge.name": "br9"})):
        with pytest.raises(InvalidArgument, match=f"^{field} is not supported"):
            refuse_unsupported_network({**cli, field: value})
    with pytest.raises(InvalidArgument, match=r"IPAM\.Config\.Gateway"):
        refuse_unsupported_network({**cli, "IPAM": {"Config": [
            {"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.254"}]}})


def _dispatch(router: Router, target: str) -> Response:
    async def receive() -> h11.Event:
        return h11.EndOfMessage()

    event = h11.Request(method="GET", target=target, headers=[("Host", "x")])
    request = Request(h11.Connection(h11.SERVER), event, receive)
    return asyncio.run(router.dispatch(request))


def test_versioned_paths_within_the_range_are_served() -> None:
    router = Router("1.24", "1.50")

    async def version(request: Request) -> Response:
        return Response.json({"asked": request.api_version, "path": request.path})

    router.add("GET", "/version", version)
    for target, asked in (("/version", None), ("/v1.24/version", "1.24"),
                          ("/v1.41/version", "1.41"), ("/v1.50/version", "1.50")):
        assert json.loads(_dispatch(router, target).body) == {"asked": asked,
                                                              "path": "/version"}
    with pytest.raises(InvalidArgument, match=r"client version 1\.51 is too new\. Maximum "
                                              r"supported API version is 1\.50"):
        _dispatch(router, "/v1.51/version")
    with pytest.raises(InvalidArgument, match=r"client version 1\.12 is too old"):
        _dispatch(router, "/v1.12/version")


def _image(history: list[dict[str, Any]], diff_ids: tuple[str, ...]) -> Image:
    return Image(id="sha256:" + "a" * 64, repo_tags=("x:1",), created="2024-01-01T00:00:00Z",
                 architecture="amd64", os="linux", diff_ids=diff_ids, size=30,
                 config=ImageConfig(), raw_config={"history": history})


def test_image_history_newest_first_with_layer_sizes() -> None:
    image = _image([
        {"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs"},
        {"created": "2024-01-01T00:00:01Z", "created_by": "ENV X=1", "empty_layer": True},
        {"created": "2024-01-01T00:00:02Z", "created_by": "RUN make", "comment": "c"},
    ], ("sha256:" + "1" * 64, "sha256:" + "2" * 64))
    rows = image_history(image, [10, 20])
    assert [(r["CreatedBy"], r["Size"]) for r in rows] == [
        ("RUN make", 20), ("ENV X=1", 0), ("ADD rootfs", 10)]
    assert rows[0]["Id"] == image.id and rows[0]["Tags"] == ["x:1"]
    assert [r["Id"] for r in rows[1:]] == ["<missing>", "<missing>"]
    assert rows[0]["Created"] == 1704067202 and rows[0]["Comment"] == "c"


def test_bind_mounts_become_binds_other_mounts_are_refused() -> None:
    body = _with("HostConfig", Binds=["/srv:/srv"], Mounts=[
        {"Type": "bind", "Source": "/tmp/a", "Target": "/a"},
        {"Type": "bind", "Source": "/tmp/b", "Target": "/b", "ReadOnly": True,
         "BindOptions": {"Propagation": "rprivate"}, "Consistency": "default"}])
    assert parse_create_body(body)[1].binds == ("/srv:/srv", "/tmp/a:/a", "/tmp/b:/b:ro")
    for mount, message in (
            ({"Type": "volume", "Target": "/data"}, r"Mounts\[0\]\.Type 'volume' is not"),
            ({"Type": "tmpfs", "Target": "/t"}, r"Mounts\[0\]\.Type 'tmpfs' is not"),
            ({"Type": "bind", "Source": "/x", "Target": "/x",
              "BindOptions": {"Propagation": "rshared"}},
             r"Mounts\[0\]\.BindOptions\.Propagation is not supported"),
            ({"Type": "bind", "Source": "relative", "Target": "/x"},
             "invalid volume specification")):
        with pytest.raises(InvalidArgument, match=message):
            parse_create_body(_with("HostConfig", Mounts=[mount]))
