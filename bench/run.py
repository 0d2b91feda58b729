"""Side-by-side benchmarks (`make bench`): medians over repeated runs, printed as ratios.

- `pycontain run --rm busybox true` against `runc run` of the same busybox rootfs, and
  against podman and docker when they are installed and answer;
- 50 containers started 10 at a time (create + start through the API);
- the daemon's idle RSS and the private memory (USS) of one container's shim;
- a soak: 200 `run --rm true` cycles from 10 parallel clients, in containers a second;
- the docker CLI driving pycontaind (DOCKER_HOST at its socket): `docker run --rm busybox
  true` and `docker run -d` + `docker rm -f`, and `run --rm --network none` against
  dockerd too when one answers on `$DOCKERD_HOST` or its default socket (the bench
  installs and starts none).

It runs its own daemon with its own data root, socket and cgroup parent, and removes
everything it made.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from ipaddress import IPv4Network
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BUSYBOX_TAR = REPO / "rootfs" / "out" / "busybox.tar"
DOCKER = shutil.which("docker")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
sys.path.insert(0, str(REPO))

from pycontain.client import Client  # noqa: E402
from pycontain.network.registry import host_routes  # noqa: E402


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def run_quiet(args: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env)


def docker_run_detached_then_rm(env: dict[str, str] | None = None) -> None:
    """`docker run -d busybox sleep 60` then `docker rm -f` of it: a create, start and
    remove through the docker CLI without an attach."""
    assert DOCKER is not None
    out = subprocess.run([DOCKER, "run", "-d", "busybox:latest", "sleep", "60"], check=True,
                         capture_output=True, text=True, env=env).stdout.strip()
    run_quiet([DOCKER, "rm", "-f", out], env=env)


def docker_cli_env(host: str, config_dir: Path) -> dict[str, str]:
    """The docker CLI's environment to talk to pycontaind (a throwaway config dir)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(config_dir),
            "DOCKER_HOST": host, "DOCKER_CONFIG": str(config_dir)}


def bench_docker_cli(host: str, workdir: Path, runs: int) -> dict[str, float]:
    """The docker CLI against pycontaind, then against dockerd if one answers (on
    ``$DOCKERD_HOST``, else its default socket): the same commands, the same image, and
    ``--network none`` on both, since a dockerd started without its bridge and iptables
    (the only way it may run beside the project here) has no other network."""
    results: dict[str, float] = {}
    if DOCKER is None:
        print("(docker CLI: not installed; `make setup` installs docker.io; skipped)")
        return results
    config_dir = workdir / "docker-config"
    config_dir.mkdir(exist_ok=True)
    env = docker_cli_env(host, config_dir)
    run_none = [DOCKER, "run", "--rm", "--network", "none", "busybox:latest", "true"]
    results["docker CLI -> pycontaind: run --rm true"] = median_ms(
        partial(run_quiet, [DOCKER, "run", "--rm", "busybox:latest", "true"], env), runs)
    results["docker CLI -> pycontaind: run --rm --network none true"] = median_ms(
        partial(run_quiet, run_none, env), runs)
    results["docker CLI -> pycontaind: run -d + rm -f"] = median_ms(
        partial(docker_run_detached_then_rm, env), runs)
    dockerd_env = docker_cli_env(os.environ.get("DOCKERD_HOST", "unix:///var/run/docker.sock"),
                                 config_dir)
    if engine_works([DOCKER], dockerd_env):
        run_quiet([DOCKER, "load", "-i", str(BUSYBOX_TAR)], dockerd_env)
        results["docker CLI -> dockerd: run --rm --network none true"] = median_ms(
            partial(run_quiet, run_none, dockerd_env), runs)
    else:
        print("(dockerd not available: the docker CLI is measured against pycontaind only)")
    return results


def run_quiet_allowing_failure(args: list[str]) -> None:
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_subnet() -> IPv4Network:
    """A 10.250.N.0/24 that overlaps none of the host's routes: the bench's own bridge."""
    used = host_routes()
    return next(c for c in IPv4Network("10.250.0.0/16").subnets(new_prefix=24)
                if not any(c.overlaps(u) for u in used))


class BenchDaemon:
    def __init__(self) -> None:
        self.tag = secrets.token_hex(4)
        self.root = Path(tempfile.mkdtemp(prefix=f"pycontain-bench-{self.tag}-"))
        self.socket = self.root / "api.sock"
        self.host = f"unix://{self.socket}"
        self.parent = f"pycontain-bench-{self.tag}"
        self.bridge = f"pcx{self.tag}"
        self.ip_forward = IP_FORWARD.read_text()  # the daemon turns it on, as Docker does
        self.proc = subprocess.Popen(
            [str(BIN / "pycontaind"), "--data-root", str(self.root / "data"), "--exec-root",
             str(self.root / "exec"), "-H", self.host, "--cgroup-parent", self.parent,
             "--bridge", self.bridge, "--subnet", str(free_subnet()),
             "--log-level", "warning"], stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                Client(self.host).request("GET", "/_ping").read()
                break
            except Exception:
                time.sleep(0.05)
        self.cli("load", "-i", str(BUSYBOX_TAR))

    def cli(self, *args: str) -> None:
        run_quiet([str(BIN / "pycontain"), "-H", self.host, *args])

    def close(self) -> None:
        client = Client(self.host)
        for c in client.json("GET", "/containers/json", query={"all": 1}):
            client.request("DELETE", f"/containers/{c['Id']}", query={"force": 1}).read()
        self.proc.terminate()
        self.proc.wait(20)
        run_quiet_allowing_failure(["ip", "link", "del", self.bridge])
        IP_FORWARD.write_text(self.ip_forward)
        run_quiet_allowing_failure(["nft", "delete", "table", "inet", f"pycontain_{self.bridge}"])
        for controller in Path("/sys/fs/cgroup").iterdir():
            parent = controller / self.parent
            if parent.is_dir():
                parent.rmdir()
        if (Path("/sys/fs/cgroup") / self.parent).is_dir():
            (Path("/sys/fs/cgroup") / self.parent).rmdir()
        shutil.rmtree(self.root, ignore_errors=True)


def runc_bundle(workdir: Path) -> Path | None:
    if not shutil.which("runc"):
        return None
    bundle = workdir / "bundle"
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True)
    with tarfile.open(BUSYBOX_TAR) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                inner.extractall(rootfs, filter="fully_trusted")
    subprocess.run(["runc", "spec", "-b", str(bundle)], check=True)
    spec_path = bundle / "config.json"
    spec = json.loads(spec_path.read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    spec_path.write_text(json.dumps(spec))
    return bundle


def engine_works(cmd: list[str], env: dict[str, str] | None = None) -> bool:
    if not shutil.which(cmd[0]):
        return False
    return subprocess.run([*cmd, "info"], capture_output=True, timeout=20,
                          env=env).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--docker-only", action="store_true",
                        help="only the docker CLI measures (and pycontain run for reference)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench needs root")
    results: dict[str, float] = {}
    daemon = BenchDaemon()
    workdir = Path(tempfile.mkdtemp(prefix="pycontain-bench-runc-"))
    try:
        pc = [str(BIN / "pycontain"), "-H", daemon.host, "run", "--rm", "busybox", "true"]
        results["pycontain run --rm busybox true"] = median_ms(lambda: run_quiet(pc), args.runs)
        results.update(bench_docker_cli(daemon.host, workdir, args.runs))
        if args.docker_only:
            print_docker_results(results)
            return
        no_net = [*pc[:4], "--network", "none", *pc[4:]]
        results["pycontain run --rm --network none (no bridge)"] = median_ms(
            lambda: run_quiet(no_net), args.runs)
        results["python3 -c pass (interpreter start)"] = median_ms(
            lambda: run_quiet([sys.executable, "-S", "-c", "pass"]), args.runs)
        bundle = runc_bundle(workdir)
        if bundle is not None:
            results["runc run (same rootfs) true"] = median_ms(
                lambda: run_quiet(["runc", "run", "-b", str(bundle), f"b{secrets.token_hex(4)}"]),
                args.runs)
        if engine_works(["podman"]):
            run_quiet(["podman", "load", "-i", str(BUSYBOX_TAR)])
            results["podman run --rm busybox true"] = median_ms(
                partial(run_quiet, ["podman", "run", "--rm", "busybox:latest", "true"]),
                args.runs)
        else:
            print("(podman: not installed or not running; skipped)")

        def soak(cmd: list[str]) -> float:
            """200 `run --rm true` cycles from 10 parallel clients: containers a second."""
            t0 = time.perf_counter()
            with ThreadPoolExecutor(10) as pool:
                list(pool.map(run_quiet, [cmd] * 200))
            return 200 / (time.perf_counter() - t0)

        throughput = {"pycontain": soak(pc)}
        for engine in (["podman"], ["docker"]):
            if engine_works(engine):
                throughput[engine[0]] = soak([*engine, "run", "--rm", "busybox:latest", "true"])

        client = Client(daemon.host)

        def start_one(i: int) -> str:
            c = Client(daemon.host)
            cid: str = c.json("POST", "/containers/create", query={"name": f"b{i}"},
                              body={"Image": "busybox", "Cmd": ["sleep", "600"]})["Id"]
            c.request("POST", f"/containers/{cid}/start").read()
            return cid

        t0 = time.perf_counter()
        with ThreadPoolExecutor(10) as pool:
            ids = list(pool.map(start_one, range(50)))
        results["50 containers, 10 at a time (total)"] = (time.perf_counter() - t0) * 1000
        time.sleep(1)
        shims = []
        for cid in ids[:10]:
            pid = client.json("GET", f"/containers/{cid}/json")["State"]["Pid"]
            shims.append(psutil.Process(pid).parent())
        uss = statistics.median(p.memory_full_info().uss for p in shims) / 1e6
        for cid in ids:
            client.request("DELETE", f"/containers/{cid}", query={"force": 1}).read()
        time.sleep(1)
        rss = psutil.Process(daemon.proc.pid).memory_info().rss / 1e6
    finally:
        daemon.close()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{'benchmark':<56}{'median ms':>12}")
    for name, value in results.items():
        print(f"{name:<56}{value:>12.1f}")
    base = results.get("pycontain run --rm busybox true", 0)
    for name, value in results.items():
        if name.endswith("true") and "pycontain" not in name and "docker CLI" not in name:
            print(f"ratio pycontain / {name.split(' ')[0]}: {base / value:.2f}x")
    print_docker_ratios(results)
    for name, rate in throughput.items():
        print(f"soak, 200 run --rm cycles from 10 clients: {name} {rate:.1f} containers/s")
    if "docker" in throughput:
        ratio = throughput["pycontain"] / throughput["docker"]
        print(f"soak ratio pycontain / docker: {ratio:.1f}x (target >= 5x)")
    print(f"daemon idle RSS: {rss:.1f} MB (target < 40 MB)")
    print(f"shim private memory (USS, median of 10): {uss:.2f} MB (target < 2 MB)")
    print(f"50 containers 10 at a time: {results['50 containers, 10 at a time (total)']:.0f} ms "
          "(target < 1500 ms)")


def print_docker_ratios(results: dict[str, float]) -> None:
    own = results.get("pycontain run --rm busybox true")
    via_docker = results.get("docker CLI -> pycontaind: run --rm true")
    if own and via_docker:
        print(f"docker CLI / pycontain CLI, run --rm true against pycontaind: "
              f"{via_docker / own:.2f}x")
    dockerd = results.get("docker CLI -> dockerd: run --rm --network none true")
    ours = results.get("docker CLI -> pycontaind: run --rm --network none true")
    if ours and dockerd:
        print(f"docker CLI run --rm --network none true: pycontaind is {dockerd / ours:.2f}x "
              "faster than dockerd (target >= 3x)")


def print_docker_results(results: dict[str, float]) -> None:
    print(f"\n{'benchmark':<56}{'median ms':>12}")
    for name, value in results.items():
        print(f"{name:<56}{value:>12.1f}")
    print_docker_ratios(results)


if __name__ == "__main__":
    main()
