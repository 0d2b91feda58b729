"""The docker CLI (the real Go client, /usr/bin/docker or /usr/local/bin/docker) drives
pycontaind: DOCKER_HOST points at the daemon's socket and DOCKER_CONFIG at a throwaway
directory.  No dockerd runs; the CLI negotiates its API version down to the daemon's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pexpect
import pytest

from tests.conftest import Daemon
from tests.registry_server import LocalRegistry

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def daemon(module_daemon: Daemon) -> Daemon:
    return module_daemon

DOCKER = shutil.which("docker")


@dataclass
class DockerCli:
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        assert DOCKER is not None
        result = subprocess.run([DOCKER, *args], input=input, capture_output=True, text=True,
                                timeout=timeout, env=self.env)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def docker(daemon: Daemon) -> Iterator[DockerCli]:
    assert DOCKER is not None, "no docker client on PATH: `make setup` installs docker.io"
    config = tempfile.mkdtemp(prefix="pycontain-docker-config-")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": config,
           "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": config}
    yield DockerCli(env)
    shutil.rmtree(config, ignore_errors=True)


@pytest.fixture
def names(docker: DockerCli) -> Iterator[list[str]]:
    """Names of the containers a test makes; removed (forced) at its end."""
    made: list[str] = []
    yield made
    if made:
        docker("rm", "-f", *made, check=False)


def _name(prefix: str, names: list[str]) -> str:
    name = f"dc-{prefix}-{os.urandom(3).hex()}"
    names.append(name)
    return name


def test_version_and_info(docker: DockerCli) -> None:
    version = docker("version").stdout
    assert "Server: pycontain" in version
    assert "API version:      1.41 (minimum version 1.24)" in version
    # the client's API: its own when it is 1.41 (Debian 12's docker.io, 20.10), else
    # negotiated down to the daemon's ("1.41 (downgraded from 1.50)" for 28.x)
    client_api = docker("version", "--format", "{{.Client.APIVersion}}").stdout.strip()
    assert client_api == "1.41"
    server = docker("version", "--format", "{{.Server.Version}} {{.Server.APIVersion}} "
                    "{{.Server.Os}}").stdout.split()
    assert server == ["0.1.0", "1.41", "linux"]
    info = docker("info")
    # nothing the CLI could not read; older clients print WARNING lines for the features
    # the daemon says it lacks (CPUSet, bridge-nf-call-iptables), which is right
    assert all(line.startswith("WARNING:") for line in info.stderr.splitlines()), info.stderr
    assert "Server Version: 0.1.0" in info.stdout and "Swarm: inactive" in info.stdout
    fields = json.loads(docker("info", "--format", "{{json .}}").stdout)
    assert fields["OSType"] == "linux" and fields["Driver"] == "overlay"
    assert isinstance(fields["NCPU"], int) and fields["NCPU"] >= 1


def test_run_detached_ps_logs_stop_rm(docker: DockerCli, names: list[str]) -> None:
    name = _name("life", names)
    container_id = docker("run", "-d", "--name", name, "busybox", "sh", "-c",
                          "echo to-out; echo to-err >&2; exec sleep 300").stdout.strip()
    assert len(container_id) == 64
    listed = docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
    assert any(line.startswith(f"{name} Up ") for line in listed)
    logs = docker("logs", name)
    assert (logs.stdout, logs.stderr) == ("to-out\n", "to-err\n")
    assert docker("stop", "-t", "1", name).stdout.strip() == name
    status = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout
    assert status.split() == ["exited", "137"]  # sleep ignores nothing: SIGKILL after 1 s
    listed = docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
    assert any(line.startswith(f"{name} Exited (137)") for line in listed)
    assert name not in docker("ps", "--format", "{{.Names}}").stdout.split()
    assert docker("rm", name).stdout.strip() == name
    assert name not in docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    missing = docker("rm", name, check=False)
    assert missing.returncode == 1 and f"No such container: {name}" in missing.stderr


def test_run_rm_output_and_exit_codes(docker: DockerCli) -> None:
    out = docker("run", "--rm", "busybox", "echo", "hi")
    assert out.stdout == "hi\n"
    failed = docker("run", "--rm", "busybox", "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert (failed.returncode, failed.stderr) == (3, "oops\n")
    missing = docker("run", "--rm", "busybox", "no-such-command", check=False)
    assert missing.returncode == 127
    piped = docker("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input="shout\n")
    assert piped.stdout == "SHOUT\n"


def test_exec_and_start_attached(docker: DockerCli, names: list[str]) -> None:
    name = _name("exec", names)
    docker("run", "-d", "--name", name, "busybox", "sleep", "300")
    out = docker("exec", name, "sh", "-c", "echo out; echo err >&2; exit 4", check=False)
    assert (out.returncode, out.stdout, out.stderr) == (4, "out\n", "err\n")
    assert docker("exec", "-e", "X=1", "-w", "/tmp", name, "sh", "-c",
                  "echo $X $(pwd)").stdout == "1 /tmp\n"
    assert docker("exec", "-i", name, "cat", input="fed\n").stdout == "fed\n"
    assert docker("exec", name, "no-such-command", check=False).returncode == 127
    once = _name("once", names)
    docker("create", "--name", once, "busybox", "sh", "-c", "echo started; exit 2")
    attached = docker("start", "-a", once, check=False)
    assert (attached.returncode, attached.stdout) == (2, "started\n")


def test_run_interactive_terminal(daemon: Daemon, docker: DockerCli) -> None:
    assert DOCKER is not None
    child = pexpect.spawn(DOCKER, ["run", "-it", "--rm", "busybox", "sh"], env=docker.env,
                          timeout=30, encoding="utf-8", dimensions=(30, 100))
    try:
        child.expect(r"[#$] ")
        child.sendline("stty size; tty; echo $((6 * 7))")
        child.expect("30 100")
        child.expect("/dev/pts/")
        child.expect("42")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5


def test_images_pull_tag_rmi_save_load(docker: DockerCli, registry: LocalRegistry,
                                       tmp_path: Path) -> None:
    images = docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert any(line.startswith("busybox:latest ") for line in images.splitlines())
    repository = f"{registry.address}/library/busybox"
    pulled = docker("pull", repository)
    assert f"Status: Downloaded newer image for {repository}:latest" in pulled.stdout
    assert pulled.stdout.strip().endswith(f"{repository}:latest")
    again = docker("pull", repository)
    assert f"Status: Image is up to date for {repository}:latest" in again.stdout
    assert docker("run", "--rm", repository, "echo", "from-registry").stdout == \
        "from-registry\n"
    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert f"{repository}:latest" in listed
    untagged = docker("rmi", repository).stdout
    assert f"Untagged: {repository}:latest" in untagged
    missing = docker("pull", f"{repository}:no-such-tag", check=False)
    assert missing.returncode == 1 and "no-such-tag" in missing.stderr

    tag = f"dc-test/saved:{os.urandom(2).hex()}"
    docker("tag", "busybox", tag)
    assert docker("image", "inspect", "-f", "{{.RepoTags}}", tag).stdout.count(tag) == 1
    history = docker("history", "--format", "{{.ID}} {{.Size}}", tag).stdout.splitlines()
    assert history and history[0].split()[0] != "<missing>"
    archive = tmp_path / "saved.tar"
    docker("save", "-o", str(archive), tag)
    docker("rmi", tag)
    loaded = docker("load", "-i", str(archive)).stdout
    assert f"Loaded image: {tag}" in loaded
    assert docker("run", "--rm", tag, "cat", "/etc/hostname").returncode == 0
    docker("rmi", tag)


def test_rename_inspect_stats_top(docker: DockerCli, names: list[str]) -> None:
    name = _name("rename", names)
    docker("run", "-d", "--name", name, "--memory", "32m", "busybox", "sleep", "300")
    new_name = _name("renamed", names)
    docker("rename", name, new_name)
    assert docker("inspect", "-f", "{{.Name}}", new_name).stdout.strip() == f"/{new_name}"
    assert docker("inspect", name, check=False).returncode == 1
    started = docker("inspect", "-f", "{{.State.StartedAt}}", new_name).stdout.strip()
    assert started.endswith("Z") and len(started.split(".")[1]) == 10  # 9 digits + Z
    limit = docker("inspect", "-f", "{{.HostConfig.Memory}}", new_name).stdout.strip()
    assert limit == str(32 * 1024 * 1024)
    stats = docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}",
                   new_name).stdout.split()
    assert stats[0] == new_name and stats[-1] == "1" and "32MiB" in " ".join(stats)
    assert "sleep 300" in docker("top", new_name).stdout
    docker("pause", new_name)
    assert docker("inspect", "-f", "{{.State.Status}}", new_name).stdout.strip() == "paused"
    docker("unpause", new_name)
    docker("restart", "-t", "1", new_name)
    assert docker("inspect", "-f", "{{.State.Running}}", new_name).stdout.strip() == "true"


def test_networks(docker: DockerCli, names: list[str]) -> None:
    network = f"dc-net-{os.urandom(3).hex()}"
    network_id = docker("network", "create", network).stdout.strip()
    try:
        assert network in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        subnet = docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
                        network).stdout.strip()
        prefix = subnet.rsplit(".", 1)[0] + "."
        server = _name("server", names)
        docker("run", "-d", "--name", server, "--network", network, "busybox", "sleep", "300")
        address = docker("inspect", "-f",
                         f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                         server).stdout.strip()
        assert address.startswith(prefix)
        client = _name("client", names)
        docker("run", "-d", "--name", client, "--network", network, "busybox", "sleep", "300")
        assert docker("exec", client, "ping", "-c", "1", "-W", "5", server).returncode == 0
        members = docker("network", "inspect", "-f",
                         "{{range .Containers}}{{.Name}} {{end}}", network).stdout.split()
        assert sorted(members) == sorted([server, client])

        docker("network", "disconnect", network, client)
        assert docker("inspect", "-f", "{{.HostConfig.NetworkMode}}", client).stdout.strip() \
            == "none"
        assert "eth0" not in docker("exec", client, "ip", "-o", "link").stdout
        docker("network", "connect", network, client)
        assert docker("exec", client, "ping", "-c", "1", "-W", "5", server).returncode == 0
        busy = docker("network", "rm", network, check=False)
        assert busy.returncode == 1 and "active endpoints" in busy.stderr
        docker("rm", "-f", server, client)
    finally:
        docker("network", "rm", network, check=False)
    assert network not in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert docker("network", "inspect", network_id, check=False).returncode == 1


def test_unsupported_options_are_refused_by_name(docker: DockerCli) -> None:
    for flag, value, field in (("--device", "/dev/fuse", "HostConfig.Devices"),
                               ("--dns", "192.0.2.1", "HostConfig.Dns"),
                               ("--cpu-quota", "50000", "HostConfig.CpuQuota"),
                               ("--ulimit", "nofile=10:10", "HostConfig.Ulimits"),
                               ("--add-host", "a:192.0.2.1", "HostConfig.ExtraHosts")):
        refused = docker("run", "--rm", flag, value, "busybox", "true", check=False)
        assert refused.returncode == 125, (flag, refused.stderr)
        assert f"{field} is not supported by pycontain" in refused.stderr
    unknown_cap = docker("run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true",
                         check=False)
    assert unknown_cap.returncode == 125 and "unknown capability" in unknown_cap.stderr
    assert docker("run", "--rm", "--cpu-quota", "0", "busybox", "true").returncode == 0


def test_system_df_and_prune(docker: DockerCli) -> None:
    df = docker("system", "df").stdout
    assert df.splitlines()[0].split()[:2] == ["TYPE", "TOTAL"] and "Images" in df
    docker("container", "prune", "-f")
    assert "Total reclaimed space" in docker("image", "prune", "-f").stdout


def test_bind_mounts_by_v_and_by_mount(docker: DockerCli, tmp_path: Path) -> None:
    (tmp_path / "note").write_text("from the host\n")
    by_v = docker("run", "--rm", "-v", f"{tmp_path}:/data:ro", "busybox", "cat", "/data/note")
    assert by_v.stdout == "from the host\n"
    spec = f"type=bind,source={tmp_path},target=/data,readonly"
    by_mount = docker("run", "--rm", "--mount", spec, "busybox", "sh", "-c",
                      "cat /data/note; touch /data/new", check=False)
    assert by_mount.stdout == "from the host\n" and by_mount.returncode == 1
    assert "Read-only file system" in by_mount.stderr and not (tmp_path / "new").exists()
    volume = docker("run", "--rm", "--mount", "type=volume,target=/v", "busybox", "true",
                    check=False)
    assert volume.returncode == 125
    assert "HostConfig.Mounts[0].Type 'volume' is not supported" in volume.stderr


def test_published_port_and_docker_port(docker: DockerCli, names: list[str]) -> None:
    name = _name("web", names)
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::8080", "busybox", "sh", "-c",
           "echo served > /tmp/index.html; exec httpd -f -p 8080 -h /tmp")
    published = docker("port", name, "8080").stdout.strip()
    host, _, port = published.partition(":")
    assert host == "127.0.0.1" and int(port) > 0
    listed = docker("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout
    assert f"127.0.0.1:{port}->8080/tcp" in listed
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html",
                                        timeout=5) as reply:
                assert reply.read() == b"served\n"
                break
        except OSError:
            assert time.monotonic() < deadline, "the published port never answered"
            time.sleep(0.1)
