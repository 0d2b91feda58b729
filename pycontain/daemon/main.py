"""pycontaind: the daemon's entry point.

Start-up order matters: the fork server is forked first, while this process is
still small and single-threaded; only then are asyncio, h11 and the stores loaded.
Stopping the daemon (SIGTERM, SIGINT, or kill -9) never stops the containers:
their shims keep them, and the next daemon re-adopts them.
"""

from __future__ import annotations

import argparse
import fcntl
import grp
import logging
import os
import sys
from pathlib import Path

from pycontain.runtime.spawner import ForkServer

log = logging.getLogger("pycontain.daemon")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pycontaind", description="The pycontain daemon.")
    parser.add_argument("--data-root", default="/var/lib/pycontain", type=Path,
                        help="images, layers and container records (default %(default)s)")
    parser.add_argument("--exec-root", default="/run/pycontain", type=Path,
                        help="runtime state: shim exit files, lock (default %(default)s)")
    parser.add_argument("-H", "--host", default="unix:///run/pycontain.sock",
                        help="the API socket, unix:///PATH (default %(default)s)")
    parser.add_argument("--cgroup-parent", default="pycontain",
                        help="parent cgroup of every container (default %(default)s)")
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
    spawner = ForkServer.start()  # first, and before the lock: shims must not inherit it
    try:
        lock = _lock_exec_root(args.exec_root)
    except SystemExit:
        spawner.stop()
        raise
    try:
        _serve(args, spawner)
    finally:
        spawner.stop()
        os.close(lock)


def _lock_exec_root(exec_root: Path) -> int:
    fd = os.open(exec_root / "pycontaind.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"pycontaind: another daemon is using {exec_root}")
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def _serve(args: argparse.Namespace, spawner: ForkServer) -> None:
    import asyncio
    import signal

    from pycontain.cgroups import open_cgroup_manager
    from pycontain.containers.manager import ContainerManager
    from pycontain.daemon.http import HttpServer
    from pycontain.daemon.routes import API_VERSION, Api
    from pycontain.errors import PycontainError
    from pycontain.images import ImageStore

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    socket_path = Path(args.host[len("unix://"):])

    async def run() -> None:
        try:
            cgroups = open_cgroup_manager(args.cgroup_parent)
            scratch = args.data_root / "tmp"
            scratch.mkdir(parents=True, exist_ok=True)
            for stale in scratch.glob("upload-*"):  # bodies of requests a crash cut off
                stale.unlink(missing_ok=True)
            images = ImageStore(args.data_root / "image")
            containers = ContainerManager(args.data_root, args.exec_root, images, cgroups,
                                          spawner)
            containers.load_all()
        except PycontainError as exc:
            sys.exit(f"pycontaind: {exc}")
        api = Api(containers, images, args.data_root, args.cgroup_parent,
                  args.insecure_registry)
        http = HttpServer(api.router(), {
            "Api-Version": API_VERSION, "Server": "pycontaind", "Ostype": "linux",
            "Docker-Experimental": "false"})
        socket_path.parent.mkdir(parents=True, exist_ok=True)
        socket_path.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(http.handle_connection, path=str(socket_path))
        _set_socket_permissions(socket_path)
        log.info("pycontaind listening on unix://%s (cgroup v%s, data root %s)",
                 socket_path, cgroups.version, args.data_root)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
        server.close()
        await containers.shutdown()
        socket_path.unlink(missing_ok=True)
        log.info("pycontaind stopped; running containers stay up")

    asyncio.run(run())


def _set_socket_permissions(path: Path) -> None:
    os.chmod(path, 0o660)
    try:
        gid = grp.getgrnam("pycontain").gr_gid
    except KeyError:
        return
    os.chown(path, 0, gid)


if __name__ == "__main__":
    main()
