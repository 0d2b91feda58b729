"""docker-py (the Docker SDK for Python, from PyPI) drives pycontaind through its Unix
socket: the calls a real client makes for the everyday verbs, and the shapes and types it
reads back.  No dockerd is involved; the only registry is docker-registry on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import time
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import docker
import docker.errors
import docker.types
import pytest
from docker.models.containers import Container

from tests.conftest import Daemon
from tests.registry_server import LocalRegistry

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def daemon(module_daemon: Daemon) -> Daemon:
    return module_daemon

RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


@pytest.fixture(scope="module")
def client(daemon: Daemon) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=daemon.host, timeout=60)
    yield c
    c.close()


@pytest.fixture
def made(client: docker.DockerClient) -> Iterator[list[Container]]:
    """Containers a test makes; removed (forced) at its end."""
    containers: list[Container] = []
    yield containers
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def _name(prefix: str) -> str:
    return f"dp-{prefix}-{os.urandom(3).hex()}"


def test_version_ping_and_negotiation(client: docker.DockerClient, daemon: Daemon) -> None:
    assert client.ping() is True
    assert client.api.api_version == "1.41"  # version="auto" read /version's ApiVersion
    version = client.version()
    assert (version["ApiVersion"], version["MinAPIVersion"], version["Os"]) == \
        ("1.41", "1.24", "linux")
    engine = version["Components"][0]
    assert engine["Name"] == "Engine" and engine["Details"]["ApiVersion"] == "1.41"
    head = client.api.head(client.api.base_url + "/_ping")
    assert head.status_code == 200
    assert head.headers["API-Version"] == "1.41"
    assert head.headers["OSType"] == "linux"
    assert head.headers["Docker-Experimental"] == "false"
    # a client pinned to a newer API than the daemon's is still served, up to the
    # docker CLI's newest; beyond that, and below the minimum, a clear 400
    pinned = docker.APIClient(base_url=daemon.host, version="1.45")
    assert pinned.version()["ApiVersion"] == "1.41"
    pinned.close()
    too_new = client.api.get(client.api.base_url + "/v1.99/version")
    assert too_new.status_code == 400
    assert "client version 1.99 is too new" in too_new.json()["message"]
    too_old = client.api.get(client.api.base_url + "/v1.12/version")
    assert too_old.status_code == 400 and "too old" in too_old.json()["message"]
    info = client.info()
    assert isinstance(info["Containers"], int) and info["OSType"] == "linux"
    assert info["Swarm"]["LocalNodeState"] == "inactive"


def test_run_returns_the_output_and_raises_on_failure(client: docker.DockerClient) -> None:
    out = client.containers.run("busybox", ["sh", "-c", "echo out; sleep 0.1; echo err >&2"],
                                stderr=True, remove=True)
    assert out == b"out\nerr\n"
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert failed.value.exit_status == 3
    assert b"bad" in failed.value.stderr


def test_detached_run_logs_wait_and_shapes(client: docker.DockerClient,
                                           made: list[Container]) -> None:
    name = _name("detach")
    container = client.containers.run("busybox", ["sh", "-c", "echo hi; sleep 0.3; echo bye"],
                                      detach=True, name=name, labels={"suite": "docker-py"})
    made.append(container)
    assert container.wait(timeout=30) == {"StatusCode": 0, "Error": None}
    assert container.logs() == b"hi\nbye\n"
    assert container.logs(tail=1) == b"bye\n"
    container.reload()
    attrs = container.attrs
    assert container.status == "exited" and container.name == name
    assert RFC3339_NANO.match(attrs["State"]["StartedAt"])
    assert RFC3339_NANO.match(attrs["State"]["FinishedAt"])
    assert isinstance(attrs["Created"], str) and RFC3339_NANO.match(attrs["Created"])
    assert attrs["Config"]["Labels"]["suite"] == "docker-py"
    summary = client.api.containers(all=True, filters={"name": name})
    assert len(summary) == 1 and isinstance(summary[0]["Created"], int)
    assert summary[0]["Names"] == [f"/{name}"] and summary[0]["State"] == "exited"
    # wait(condition="next-exit") on a stopped container: until its next run ends
    container.start()
    assert container.wait(timeout=30, condition="next-exit")["StatusCode"] == 0


def test_lifecycle_verbs(client: docker.DockerClient, made: list[Container]) -> None:
    container = client.containers.run("busybox", ["sleep", "300"], detach=True,
                                      name=_name("life"))
    made.append(container)
    container.pause()
    container.reload()
    assert container.status == "paused"
    container.unpause()
    container.reload()
    assert container.status == "running"
    started = container.attrs["State"]["StartedAt"]
    container.restart(timeout=1)
    container.reload()
    assert container.status == "running" and container.attrs["State"]["StartedAt"] != started
    top = container.top()
    assert top["Titles"][-1] == "CMD" and any("sleep 300" in row[-1] for row in top["Processes"])
    container.kill()
    assert container.wait(timeout=30)["StatusCode"] == 137
    container.reload()
    assert container.status == "exited"


def test_exec_run(client: docker.DockerClient, made: list[Container]) -> None:
    container = client.containers.run("busybox", ["sleep", "300"], detach=True,
                                      name=_name("exec"))
    made.append(container)
    result = container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.exit_code == 3
    assert b"out\n" in result.output and b"err\n" in result.output
    split = container.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert split.exit_code == 0 and split.output == (b"out\n", b"err\n")
    env = container.exec_run(["sh", "-c", "echo $GREETING; pwd"], environment=["GREETING=hi"],
                             workdir="/tmp")
    assert env.output == b"hi\n/tmp\n"
    exec_id = client.api.exec_create(container.id, ["true"])["Id"]
    client.api.exec_start(exec_id)
    inspected = client.api.exec_inspect(exec_id)
    assert (inspected["Running"], inspected["ExitCode"]) == (False, 0)


def test_pull_from_the_local_registry(client: docker.DockerClient,
                                      registry: LocalRegistry) -> None:
    repository = f"{registry.address}/library/busybox"
    image = client.images.pull(repository, tag="latest")
    try:
        assert f"{repository}:latest" in image.tags
        assert image.id.startswith("sha256:")
        digests = image.attrs["RepoDigests"]
        assert len(digests) == 1 and digests[0].startswith(f"{repository}@sha256:")
        out = client.containers.run(f"{repository}:latest", ["echo", "pulled"], remove=True)
        assert out == b"pulled\n"
        with pytest.raises(docker.errors.APIError) as missing:
            client.images.pull(repository, tag="no-such-tag")
        assert "no-such-tag" in str(missing.value.explanation)
    finally:
        client.images.remove(f"{repository}:latest")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{repository}:latest")


def test_images_list_get_tag_history_remove(client: docker.DockerClient) -> None:
    busybox = client.images.get("busybox")
    assert "busybox:latest" in busybox.tags
    assert any("busybox:latest" in i.tags for i in client.images.list())
    assert isinstance(busybox.attrs["Created"], str) and busybox.attrs["Size"] > 0
    tag = f"dp-test/tagged:{os.urandom(2).hex()}"
    assert busybox.tag(tag) is True
    try:
        assert client.images.get(tag).id == busybox.id
        assert tag in client.images.get("busybox").tags
        listed = client.api.images(name="dp-test/tagged")
        assert [i["Id"] for i in listed] == [busybox.id] and isinstance(listed[0]["Created"],
                                                                         int)
        history = busybox.history()
        assert history[0]["Id"] == busybox.id and isinstance(history[0]["Created"], int)
        assert sum(h["Size"] for h in history) > 0
    finally:
        client.images.remove(tag)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(tag)
    assert client.images.get("busybox").id == busybox.id  # untagging one name kept the image


def test_save_and_load(client: docker.DockerClient) -> None:
    tag = f"dp-test/saved:{os.urandom(2).hex()}"
    client.images.get("busybox").tag(tag)
    archive = b"".join(client.images.get(tag).save(named=tag))
    client.images.remove(tag)
    try:
        loaded = client.images.load(io.BytesIO(archive).getvalue())
        assert [i.tags for i in loaded] == [[tag]]
        assert client.containers.run(tag, ["cat", "/etc/passwd"], remove=True).startswith(b"root:")
    finally:
        client.images.remove(tag, force=True)


def test_list_filters_rename_and_stats(client: docker.DockerClient,
                                       made: list[Container]) -> None:
    label = os.urandom(3).hex()
    running = client.containers.run("busybox", ["sleep", "300"], detach=True,
                                    name=_name("stats"), labels={"batch": label},
                                    mem_limit="64m", pids_limit=50)
    made.append(running)
    done = client.containers.run("busybox", ["true"], detach=True, name=_name("done"),
                                 labels={"batch": label})
    made.append(done)
    done.wait(timeout=30)
    batch = {"label": f"batch={label}"}
    assert {c.id for c in client.containers.list(all=True, filters=batch)} == \
        {running.id, done.id}
    assert [c.id for c in client.containers.list(filters=batch)] == [running.id]
    assert [c.id for c in client.containers.list(
        all=True, filters={**batch, "status": "exited"})] == [done.id]

    new_name = _name("renamed")
    running.rename(new_name)
    running.reload()
    assert running.name == new_name
    assert client.containers.get(new_name).id == running.id
    with pytest.raises(docker.errors.APIError) as taken:
        done.rename(new_name)
    assert taken.value.status_code == 409 and "already in use" in str(taken.value.explanation)

    stats = running.stats(stream=False)
    assert RFC3339_NANO.match(stats["read"]) and stats["id"] == running.id
    assert stats["memory_stats"]["limit"] == 64 * 1024 * 1024
    assert 0 < stats["memory_stats"]["usage"] <= 64 * 1024 * 1024
    assert stats["pids_stats"]["current"] >= 1 and stats["pids_stats"]["limit"] == 50
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["cpu_stats"]["system_cpu_usage"] > 0 and stats["cpu_stats"]["online_cpus"] >= 1
    assert "eth0" in stats["networks"] and stats["networks"]["eth0"]["tx_packets"] >= 0
    stopped = done.stats(stream=False)
    assert stopped["read"] == "0001-01-01T00:00:00Z" and stopped["memory_stats"] == {}


def test_networks_create_connect_disconnect_remove(client: docker.DockerClient,
                                                   made: list[Container]) -> None:
    network = client.networks.create(f"dp-net-{os.urandom(3).hex()}", driver="bridge")
    try:
        assert network.attrs["Driver"] == "bridge"
        subnet = IPv4Network(network.attrs["IPAM"]["Config"][0]["Subnet"])
        container = client.containers.run("busybox", ["sleep", "300"], detach=True,
                                          name=_name("net"), network=network.name)
        made.append(container)
        container.reload()
        endpoint = container.attrs["NetworkSettings"]["Networks"][network.name]
        assert endpoint["NetworkID"] == network.id
        assert IPv4Address(endpoint["IPAddress"]) in subnet
        network.reload()
        assert container.id in network.attrs["Containers"]
        assert container.id in [c.id for c in client.networks.list(
            names=[network.name])[0].containers]

        network.disconnect(container)
        container.reload()
        assert container.attrs["HostConfig"]["NetworkMode"] == "none"
        links = container.exec_run(["ip", "-o", "link"]).output.decode()
        assert "eth0" not in links
        network.connect(container)  # a running container gets its interface at once
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
        assert IPv4Address(address) in subnet
        assert address in container.exec_run(["ip", "-o", "-4", "addr"]).output.decode()

        on_bridge = client.containers.create("busybox", ["true"], name=_name("bridge"))
        made.append(on_bridge)
        with pytest.raises(docker.errors.APIError) as refused:
            network.connect(on_bridge)
        assert refused.value.status_code == 409
        assert "one network" in str(refused.value.explanation)
        with pytest.raises(docker.errors.APIError) as in_use:
            network.remove()
        assert in_use.value.status_code == 409
        container.remove(force=True)
    finally:
        for c in made:
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
        network.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get(network.id)


def test_errors_carry_the_daemons_message(client: docker.DockerClient,
                                          made: list[Container], tmp_path: Path) -> None:
    with pytest.raises(docker.errors.NotFound) as missing:
        client.containers.get("no-such-container")
    assert "No such container: no-such-container" in str(missing.value.explanation)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("no-such-image:1")
    with pytest.raises(docker.errors.APIError) as devices:
        client.containers.run("busybox", ["true"], devices=["/dev/fuse:/dev/fuse"])
    assert devices.value.status_code == 400
    assert "HostConfig.Devices is not supported" in str(devices.value.explanation)
    with pytest.raises(docker.errors.APIError) as dns:
        client.containers.create("busybox", ["true"], dns=["1.1.1.1"])
    assert "HostConfig.Dns" in str(dns.value.explanation)
    with pytest.raises(docker.errors.APIError) as volume:
        client.containers.create("busybox", ["true"],
                                 mounts=[docker.types.Mount("/data", None, type="volume")])
    assert "HostConfig.Mounts[0].Type 'volume' is not supported" in str(
        volume.value.explanation)
    (tmp_path / "note").write_text("bound\n")
    bound = client.containers.run("busybox", ["cat", "/bound/note"], remove=True,
                                  mounts=[docker.types.Mount("/bound", str(tmp_path),
                                                             type="bind", read_only=True)])
    assert bound == b"bound\n"
    # options at their defaults, and fields the daemon does not know, are no refusal
    fine = client.containers.create("busybox", ["true"], cpu_quota=0, oom_kill_disable=False,
                                    name=_name("defaults"))
    made.append(fine)
    assert fine.status == "created"
    name = _name("dup")
    made.append(client.containers.create("busybox", ["true"], name=name))
    with pytest.raises(docker.errors.APIError) as conflict:
        client.containers.create("busybox", ["true"], name=name)
    assert conflict.value.status_code == 409 and "already in use" in str(
        conflict.value.explanation)


def test_remove_force_and_prune(client: docker.DockerClient) -> None:
    running = client.containers.run("busybox", ["sleep", "300"], detach=True,
                                    name=_name("force"))
    with pytest.raises(docker.errors.APIError) as refused:
        running.remove()
    assert refused.value.status_code == 409
    running.remove(force=True, v=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(running.id)
    kept = client.containers.run("busybox", ["true"], detach=True, name=_name("kept"))
    exited = client.containers.run("busybox", ["true"], detach=True, name=_name("prune"),
                                   labels={"prune": "me"})
    for container in (kept, exited):
        container.wait(timeout=30)
    pruned = client.containers.prune(filters={"label": "prune=me"})
    assert pruned["ContainersDeleted"] == [exited.id]
    with pytest.raises(docker.errors.APIError) as bad:
        client.containers.prune(filters={"dangling": "true"})
    assert bad.value.status_code == 400 and "invalid filter 'dangling'" in str(
        bad.value.explanation)
    assert kept.id in client.containers.prune()["ContainersDeleted"]


def test_events_follow_the_verbs(client: docker.DockerClient) -> None:
    since = time.time() - 1
    container = client.containers.run("busybox", ["true"], detach=True, name=_name("events"))
    container.wait(timeout=30)
    container.remove()
    events = client.events(since=since, until=time.time() + 1, decode=True,
                           filters={"container": container.id})
    actions = [e["Action"] for e in events]
    assert actions[:2] == ["create", "start"] and actions[-1] == "destroy" and "die" in actions
