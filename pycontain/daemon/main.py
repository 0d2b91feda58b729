"""pycontaind: the daemon's entry point.

Start-up order matters: the fork server is forked first, while this process is
still small and single-threaded; only then are asyncio, h11 and the stores loaded.
Under systemd with Delegate=yes on cgroup v2, the daemon first moves itself into
the leaf ``<its cgroup>/daemon`` (``cgroups/delegation.py``), so that the fork
server and the shims are forked there and the containers' parent can have
controllers enabled above it.
Stopping the daemon (SIGTERM, SIGINT, or kill -9) never stops the containers:
their shims keep them, and the next daemon re-adopts them.
"""

from __future__ import annotations

import argparse
import fcntl
import grp
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pycontain.runtime.spawner import ForkServer

if TYPE_CHECKING:
    from pycontain.network.registry import NetworkRegistry

log = logging.getLogger("pycontain.daemon")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pycontaind", description="The pycontain daemon.")
    parser.add_argument("--data-root", default="/var/lib/pycontain", type=Path,
                        help="images, layers and container records (default %(default)s)")
    parser.add_argument("--exec-root", default="/run/pycontain", type=Path,
                        help="runtime state: shim exit files, lock (default %(default)s)")
    parser.add_argument("-H", "--host", default="unix:///run/pycontain.sock",
                        help="the API socket, unix:///PATH (default %(default)s)")
    parser.add_argument("--bridge", default="pycontain0",
                        help="the default network's bridge (default %(default)s)")
    parser.add_argument("--subnet", default="10.88.0.0/16",
                        help="the default network's subnet (default %(default)s)")
    parser.add_argument("--cgroup-parent", default="pycontain",
                        help="parent cgroup of every container (default %(default)s)")
    parser.add_argument("-G", "--group", default="pycontain",
                        help="group (name or gid) that owns the API socket and may use it; "
                        "membership equals root (default %(default)s)")
    parser.add_argument("--insecure-registry", action="append", default=[], metavar="HOST[:PORT]",
                        help="a registry that may be pulled from over plain HTTP (repeatable; "
                        "localhost and 127.0.0.1 always may)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.host.startswith("unix://"):
        sys.exit(f"pycontaind: unsupported host {args.host!r}: use unix:///PATH")
    if os.geteuid() != 0:
        sys.exit("pycontaind: must run as root (namespaces, mounts and cgroups need it)")
    args.exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    delegated = _enter_delegated_cgroup()
    spawner = ForkServer.start()  # first, and before the lock: shims must not inherit it
    try:
        lock = _lock_exec_root(args.exec_root)
    except SystemExit:
        spawner.stop()
        raise
    try:
        _serve(args, spawner, delegated)
    finally:
        spawner.stop()
        os.close(lock)


def _enter_delegated_cgroup() -> str | None:
    """Under systemd delegation (v2): move into the leaf; the delegated cgroup, or None."""
    from pycontain.cgroups.delegation import enter_delegated_subtree
    from pycontain.errors import PycontainError

    try:
        return enter_delegated_subtree()
    except PycontainError as exc:
        sys.exit(f"pycontaind: enter the cgroup systemd delegated: {exc}")


def _lock_exec_root(exec_root: Path) -> int:
    fd = os.open(exec_root / "pycontaind.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"pycontaind: another daemon is using {exec_root}")
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _serve(args: argparse.Namespace, spawner: ForkServer, delegated: str | None) -> None:
    import asyncio
    import signal

    from pycontain import faults
    from pycontain.cgroups import open_cgroup_manager
    from pycontain.containers.manager import ContainerManager
    from pycontain.daemon.http import HttpServer
    from pycontain.daemon.routes import API_VERSION, Api
    from pycontain.errors import PycontainError
    from pycontain.images import ImageStore

    faults.enable_from_environment()
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    socket_path = Path(args.host[len("unix://"):])

    async def run() -> None:
        try:
            cgroups = open_cgroup_manager(args.cgroup_parent, delegated=delegated)
            scratch = args.data_root / "tmp"
            scratch.mkdir(parents=True, exist_ok=True)
            for stale in scratch.glob("upload-*"):  # bodies of requests a crash cut off
                stale.unlink(missing_ok=True)
            images = ImageStore(args.data_root / "image")
            network = _networks(args)
            containers = ContainerManager(args.data_root, args.exec_root, images, cgroups,
                                          spawner, network)
            containers.load_all()
            await containers.recover_network()
        except PycontainError as exc:
            sys.exit(f"pycontaind: {exc}")
        api = Api(containers, images, args.data_root, cgroups.parent, args.insecure_registry)
        listener, gid, group = _bind_api_socket(socket_path, args.group)
        http = HttpServer(api.router(), {
            "Api-Version": API_VERSION, "Server": "pycontaind", "Ostype": "linux",
            "Docker-Experimental": "false"}, authorize=_socket_access(gid, group))
        server = await asyncio.start_unix_server(http.handle_connection, sock=listener)
        log.info("pycontaind listening on unix://%s (cgroup v%s, parent %s, data root %s)",
                 socket_path, cgroups.version, cgroups.parent, args.data_root)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
        server.close()
        await containers.shutdown()
        network.close()
        socket_path.unlink(missing_ok=True)
        log.info("pycontaind stopped; running containers stay up")

    asyncio.run(run())


def nat_table_for(bridge: str) -> str:
    """The nftables table of a bridge: ``pycontain`` for the default one, else its own."""
    return "pycontain" if bridge == "pycontain0" else f"pycontain_{bridge}"


def _networks(args: argparse.Namespace) -> NetworkRegistry:
    from ipaddress import IPv4Network

    from pycontain.errors import InvalidArgument
    from pycontain.network.registry import NetworkRegistry
    from pycontain.network.service import NetworkConfig

    try:
        subnet = IPv4Network(args.subnet)
    except ValueError as exc:
        raise InvalidArgument(f"--subnet {args.subnet}: {exc}") from exc
    config = NetworkConfig(bridge=args.bridge, subnet=subnet,
                           nat_table=nat_table_for(args.bridge))
    return NetworkRegistry(args.data_root / "network", config)


def _bind_api_socket(path: Path, group: str) -> tuple[socket.socket, int, str]:
    """The API socket, bound 0600 root:root (umask) and only then given to the group (0660).

    Its mode is never wider than the final one, and it listens only once that is set.
    Without the group (``--group`` names none that exists) it stays root:root 0660.
    """
    try:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        log.info("group %s does not exist: the API socket is root's only", group)
        gid, group = 0, "root"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        sys.exit(f"pycontaind: bind the API socket {path}: {exc.strerror}")
    finally:
        os.umask(previous)
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    return sock, gid, group


def _socket_access(gid: int, group: str) -> Callable[[socket.socket], str | None]:
    """SO_PEERCRED on every connection: root and members of the socket's group only."""
    from pycontain.security.peer import access_refusal, peer_credentials

    def authorize(sock: socket.socket) -> str | None:
        try:
            peer = peer_credentials(sock)
        except OSError as exc:
            log.warning("API connection refused: cannot read its peer credentials: %s", exc)
            return "permission denied: the daemon cannot tell who is connecting"
        refusal = access_refusal(peer, gid, group)
        if refusal is not None:
            log.warning("API connection refused: pid %d uid %d gid %d: not root nor in group %s",
                        peer.pid, peer.uid, peer.gid, group)
        return refusal

    return authorize


if __name__ == "__main__":
    main()
