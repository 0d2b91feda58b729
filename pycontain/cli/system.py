"""``version``, ``info`` and ``system df|prune``.

API calls:
    version       GET /version
    info          GET /info
    system df     GET /system/df
    system prune  POST /containers/prune, then POST /images/prune[?filters={"dangling":["false"]}]
"""

from __future__ import annotations

import platform
from typing import Any

from pycontain.cli.common import Context, Verb
from pycontain.cli.flags import Command, Flag, Options
from pycontain.errors import PycontainError

__all__ = ["VERBS", "client_version"]

API_VERSION = "1.41"

VERSION = Command("version", "", "Show the pycontain version information", max_args=0)
INFO = Command("info", "", "Display system-wide information", max_args=0)
SYSTEM = Command(
    "system", "df|prune", "Manage pycontain: disk usage (df), remove unused data (prune)",
    (Flag("all", "a", help="prune: remove all unused images, not just dangling ones"),
     Flag("force", "f", help="prune: do not prompt for confirmation")),
    min_args=1, max_args=1,
)


def client_version() -> str:
    from pycontain import __version__

    return __version__


_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def _field(label: str, value: Any, indent: int = 1) -> str:
    """`` Version:           0.1.0``: values line up at column 20 whatever the indent."""
    return f"{' ' * indent}{(label + ':').ljust(20 - indent)}{value}"


def cmd_version(ctx: Context, opts: Options) -> int:
    ctx.line("Client:")
    ctx.line(_field("Version", client_version()))
    ctx.line(_field("API version", API_VERSION))
    ctx.line(_field("Python version", platform.python_version()))
    arch = _GO_ARCH.get(platform.machine(), platform.machine())
    ctx.line(_field("OS/Arch", f"{platform.system().lower()}/{arch}"))
    ctx.out.flush()
    try:
        server = ctx.client.json("GET", "/version") or {}
    except PycontainError:
        ctx.line("")
        raise
    api = str(server.get("ApiVersion", ""))
    if server.get("MinAPIVersion"):
        api += f" (minimum version {server['MinAPIVersion']})"
    ctx.line("")
    ctx.line("Server:")
    ctx.line(" Engine:")
    ctx.line(_field("Version", server.get("Version", ""), 2))
    ctx.line(_field("API version", api, 2))
    ctx.line(_field("OS/Arch", f"{server.get('Os', '')}/{server.get('Arch', '')}", 2))
    if server.get("KernelVersion"):
        ctx.line(_field("Kernel version", server["KernelVersion"], 2))
    return 0


def cmd_info(ctx: Context, opts: Options) -> int:
    info = ctx.client.json("GET", "/info") or {}
    from pycontain.units import format_size_binary

    lines = [
        "Server:",
        f" Containers: {info.get('Containers', 0)}",
        f"  Running: {info.get('ContainersRunning', 0)}",
        f"  Paused: {info.get('ContainersPaused', 0)}",
        f"  Stopped: {info.get('ContainersStopped', 0)}",
        f" Images: {info.get('Images', 0)}",
        f" Server Version: {info.get('ServerVersion', '')}",
        f" Storage Driver: {info.get('Driver', '')}",
        f" Cgroup Driver: {info.get('CgroupDriver', '')}",
        f" Cgroup Version: {info.get('CgroupVersion', '')}",
        f" Kernel Version: {info.get('KernelVersion', '')}",
        f" Operating System: {info.get('OperatingSystem', '')}",
        f" OSType: {info.get('OSType', '')}",
        f" Architecture: {info.get('Architecture', '')}",
        f" CPUs: {info.get('NCPU', 0)}",
        f" Total Memory: {format_size_binary(int(info.get('MemTotal') or 0))}",
        f" Name: {info.get('Name', '')}",
        f" Pycontain Root Dir: {info.get('DockerRootDir', '')}",
    ]
    for line in lines:
        ctx.line(line)
    return 0


def _size(size: int) -> str:
    from pycontain.units import format_size_decimal

    return format_size_decimal(size)


def _reclaimable(size: int, total: int) -> str:
    percent = f" ({100 * size // total}%)" if total else ""
    return _size(size) + percent


def cmd_system(ctx: Context, opts: Options) -> int:
    action = opts.args[0]
    if action == "df":
        return _system_df(ctx)
    if action == "prune":
        return _system_prune(ctx, opts)
    ctx.error(f'pycontain: unknown command "system {action}": use df or prune')
    return 125


def _system_df(ctx: Context) -> int:
    from pycontain.cli.render import tabulate

    df = ctx.client.json("GET", "/system/df")
    images, containers = df.get("Images") or [], df.get("Containers") or []
    layers = int(df.get("LayersSize") or 0)
    unused_images = [i for i in images if not i.get("Containers")]
    image_reclaim = sum(int(i.get("Size", 0)) - int(i.get("SharedSize", 0))
                        for i in unused_images)
    rw = sum(int(c.get("SizeRw", 0)) for c in containers)
    stopped_rw = sum(int(c.get("SizeRw", 0)) for c in containers
                     if c.get("State") not in ("running", "paused", "restarting"))
    running = sum(1 for c in containers if c.get("State") in ("running", "paused"))
    rows = [["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
            ["Images", str(len(images)), str(len(images) - len(unused_images)), _size(layers),
             _reclaimable(max(image_reclaim, 0), layers)],
            ["Containers", str(len(containers)), str(running), _size(rw),
             _reclaimable(stopped_rw, rw)],
            ["Local Volumes", "0", "0", "0B", "0B"],
            ["Build Cache", "0", "0", "0B", "0B"]]
    ctx.out.write(tabulate(rows))
    return 0


def _system_prune(ctx: Context, opts: Options) -> int:
    if not opts.flag("force"):
        what = "all images without at least one container associated to them" if opts.flag(
            "all") else "all dangling images"
        ctx.out.write("WARNING! This will remove:\n  - all stopped containers\n"
                      f"  - {what}\n\nAre you sure you want to continue? [y/N] ")
        ctx.out.flush()
        answer = input() if ctx.interactive() else ""
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    containers = ctx.client.json("POST", "/containers/prune")
    query = {"filters": {"dangling": ["false"]}} if opts.flag("all") else None
    images = ctx.client.json("POST", "/images/prune", query=query)
    deleted = containers.get("ContainersDeleted") or []
    if deleted:
        ctx.line("Deleted Containers:")
        for container_id in deleted:
            ctx.line(container_id)
        ctx.line("")
    if images.get("ImagesDeleted"):
        ctx.line("Deleted Images:")
        for item in images["ImagesDeleted"]:
            for key, value in item.items():
                ctx.line(f"{key.lower()}: {value}")
        ctx.line("")
    total = int(containers.get("SpaceReclaimed", 0)) + int(images.get("SpaceReclaimed", 0))
    ctx.line(f"Total reclaimed space: {_size(total)}")
    return 0


VERBS = {
    "system": Verb(SYSTEM, cmd_system),
    "version": Verb(VERSION, cmd_version),
    "info": Verb(INFO, cmd_info),
}
