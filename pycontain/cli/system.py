"""``version`` and ``info``.

API calls:
    version  GET /version
    info     GET /info
"""

from __future__ import annotations

import platform
from typing import Any

from pycontain.cli.common import Context, Verb
from pycontain.cli.flags import Command, Options
from pycontain.errors import PycontainError

__all__ = ["VERBS", "client_version"]

API_VERSION = "1.41"

VERSION = Command("version", "", "Show the pycontain version information", max_args=0)
INFO = Command("info", "", "Display system-wide information", max_args=0)


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


VERBS = {
    "version": Verb(VERSION, cmd_version),
    "info": Verb(INFO, cmd_info),
}
