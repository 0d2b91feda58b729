"""``run``, ``create`` and ``start``: make a container, start it, follow it.

API calls, in Docker's order:
    create   POST /containers/create?name=N  {Image, Cmd, Entrypoint, Env, ..., HostConfig}
    attach   POST /containers/{id}/attach?stream=1&stdout=1&stderr=1   (multiplexed frames)
             POST /containers/{id}/wait?condition=next-exit|removed    (headers at once, body last)
    start    POST /containers/{id}/start
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from pycontain.cli.common import Context, Verb, each, os_error_text, quote_path
from pycontain.cli.flags import LIST, VALUE, Command, Flag, Options, to_int
from pycontain.cli.stream import copy_multiplexed
from pycontain.errors import DaemonUnreachable, InvalidArgument, NotFound, PycontainError
from pycontain.units import parse_bytes, parse_cpus

__all__ = ["VERBS", "attach_and_wait", "container_body", "start_failure_code"]


def pull_policy(text: str) -> str:
    """``--pull``: when run/create pull the image (Docker's missing, always, never)."""
    if text not in ("missing", "always", "never"):
        raise InvalidArgument(f'invalid pull option: "{text}": must be one of "always", '
                              '"missing" or "never"')
    return text


def _swap_bytes(text: str) -> int:
    return -1 if text == "-1" else parse_bytes(text)


def restart_policy(text: str) -> dict[str, Any]:
    """``on-failure:3`` -> {"Name": "on-failure", "MaximumRetryCount": 3} (Docker's shape)."""
    name, sep, count = text.partition(":")
    if name not in ("no", "on-failure", "always", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy {name}")
    if sep and name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    if sep and not count.isdigit():
        raise InvalidArgument(f"maximum retry count must be an integer: {count}")
    return {"Name": name, "MaximumRetryCount": int(count) if sep else 0}

_DETACH_KEYS = Flag("detach-keys", kind=VALUE,
                    help="Override the key sequence for detaching a container")
_CONTAINER_FLAGS = (
    Flag("interactive", "i", help="Keep STDIN open even if not attached"),
    Flag("tty", "t", help="Allocate a pseudo-TTY"),
    Flag("rm", help="Automatically remove the container when it exits"),
    Flag("name", kind=VALUE, help="Assign a name to the container"),
    Flag("env", "e", LIST, "Set environment variables", metavar="list"),
    Flag("env-file", kind=LIST, help="Read in a file of environment variables", metavar="list"),
    Flag("workdir", "w", VALUE, "Working directory inside the container"),
    Flag("hostname", "h", VALUE, "Container host name"),
    Flag("user", "u", VALUE, "Username or UID (format: <name|uid>[:<group|gid>])"),
    Flag("entrypoint", kind=VALUE, help="Overwrite the default ENTRYPOINT of the image"),
    Flag("volume", "v", LIST, "Bind mount a volume (HOST:CONTAINER[:ro])", metavar="list"),
    Flag("memory", "m", VALUE, "Memory limit", metavar="bytes", convert=parse_bytes),
    Flag("memory-swap", kind=VALUE, help="Swap limit equal to memory plus swap: '-1' to "
         "enable unlimited swap", metavar="bytes", convert=_swap_bytes),
    Flag("cpus", kind=VALUE, help="Number of CPUs", metavar="decimal", convert=parse_cpus),
    Flag("cpu-shares", "c", VALUE, "CPU shares (relative weight)", metavar="int",
         convert=to_int),
    Flag("pids-limit", kind=VALUE, help="Tune container pids limit (set -1 for unlimited)",
         metavar="int", convert=to_int),
    Flag("pull", kind=VALUE, help='Pull image before running ("always", "missing", "never")',
         convert=pull_policy),
    Flag("publish", "p", LIST, "Publish a container's port(s) to the host "
         "([[HOSTIP:][HOSTPORT]:]CTRPORT[/tcp|udp])", metavar="list"),
    Flag("network", kind=VALUE, help='Connect a container to a network: bridge (default), '
         'none, host or container:NAME'),
    Flag("restart", kind=VALUE, help='Restart policy to apply when a container exits '
         '(no, on-failure[:max-retries], always, unless-stopped) (default "no")',
         convert=restart_policy),
    Flag("cap-add", kind=LIST, help="Add Linux capabilities", metavar="list"),
    Flag("cap-drop", kind=LIST, help="Drop Linux capabilities", metavar="list"),
    Flag("privileged", help="Give extended privileges to this container"),
    Flag("security-opt", kind=LIST, help="Security Options", metavar="list"),
    Flag("read-only", help="Mount the container's root filesystem as read only"),
    Flag("tmpfs", kind=LIST, help="Mount a tmpfs directory", metavar="list"),
    Flag("log-driver", kind=VALUE, help="Logging driver for the container (json-file)"),
    Flag("log-opt", kind=LIST, help="Log driver options (max-size=10m, max-file=3)",
         metavar="list"),
)


RUN = Command(
    "run", "IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image",
    (Flag("detach", "d", help="Run container in background and print container ID"),
     _DETACH_KEYS, *_CONTAINER_FLAGS),
    min_args=1, interspersed=False,
)
CREATE = Command(
    "create", "IMAGE [COMMAND] [ARG...]", "Create a new container",
    _CONTAINER_FLAGS, min_args=1, interspersed=False,
)
START = Command(
    "start", "CONTAINER [CONTAINER...]", "Start one or more stopped containers",
    (Flag("attach", "a", help="Attach STDOUT/STDERR and forward signals"),
     Flag("interactive", "i", help="Attach container's STDIN"), _DETACH_KEYS),
    min_args=1,
)
ATTACH = Command(
    "attach", "CONTAINER", "Attach local standard input, output, and error streams to a "
    "running container",
    (Flag("no-stdin", help="Do not attach STDIN"), _DETACH_KEYS),
    min_args=1, max_args=1,
)


def _env_file(path: str) -> list[str]:
    """Docker's --env-file: ``K=V`` lines, ``K`` alone taken from our environment."""
    entries = []
    with open(path, encoding="utf-8") as file:
        for raw in file.read().splitlines():
            line = raw.lstrip()
            if not line or line.startswith("#"):
                continue
            entries.extend(env_entry(line))
    return entries


def env_entry(entry: str) -> list[str]:
    key, eq, _ = entry.partition("=")
    if not key or any(c.isspace() for c in key):
        raise InvalidArgument(f"invalid environment variable: {entry}")
    if eq:
        return [entry]
    value = os.environ.get(key)
    return [] if value is None else [f"{key}={value}"]


def container_body(opts: Options, attach: bool) -> dict[str, Any]:
    """The POST /containers/create body for run/create's flags (Docker's shape).

    Raises InvalidArgument for a bad -e entry, OSError for an unreadable --env-file.
    """
    env = [e for path in opts.texts("env-file") for e in _env_file(path)]
    env += [e for entry in opts.texts("env") for e in env_entry(entry)]
    interactive, tty = opts.flag("interactive"), opts.flag("tty")
    body: dict[str, Any] = {
        "Image": opts.args[0],
        "Env": env,
        "AttachStdin": interactive and attach,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Tty": tty,
        "OpenStdin": interactive,
        "StdinOnce": interactive and attach,
    }
    if len(opts.args) > 1:
        body["Cmd"] = opts.args[1:]
    if opts.given("entrypoint"):
        entrypoint = opts.text("entrypoint")
        body["Entrypoint"] = [entrypoint] if entrypoint else ""
    for flag, key in (("workdir", "WorkingDir"), ("hostname", "Hostname"), ("user", "User")):
        if opts.given(flag):
            body[key] = opts.text(flag)
    host: dict[str, Any] = {"AutoRemove": opts.flag("rm"), "Binds": opts.texts("volume")}
    if tty:
        from pycontain.cli.interactive import terminal_size

        host["ConsoleSize"] = list(terminal_size())
    for flag, key in (("memory", "Memory"), ("memory-swap", "MemorySwap"),
                      ("cpus", "NanoCpus"), ("cpu-shares", "CpuShares"),
                      ("pids-limit", "PidsLimit"), ("restart", "RestartPolicy")):
        if opts.given(flag):
            host[key] = opts.value(flag)
    host.update(_security_host_config(opts))
    if opts.given("network"):
        host["NetworkMode"] = opts.text("network")
    if opts.given("publish"):
        from pycontain.network.ports import port_bindings

        host["PortBindings"] = port_bindings(opts.texts("publish"))
    if opts.given("log-driver") or opts.given("log-opt"):
        host["LogConfig"] = {"Type": opts.text("log-driver") or "json-file",
                             "Config": dict(o.partition("=")[::2] for o in opts.texts("log-opt"))}
    body["HostConfig"] = host
    return body


def _security_host_config(opts: Options) -> dict[str, Any]:
    """CapAdd, CapDrop, Privileged, SecurityOpt, ReadonlyRootfs, Tmpfs, as Docker's CLI sends them.

    ``--security-opt seccomp=FILE`` sends the file's content, as Docker's does (the daemon
    cannot read the client's files).  Raises OSError for an unreadable profile.
    """
    host: dict[str, Any] = {}
    for flag, key in (("cap-add", "CapAdd"), ("cap-drop", "CapDrop")):
        if opts.given(flag):
            host[key] = opts.texts(flag)
    if opts.flag("privileged"):
        host["Privileged"] = True
    if opts.flag("read-only"):
        host["ReadonlyRootfs"] = True
    options = []
    for entry in opts.texts("security-opt"):
        key, sep, value = entry.partition("=")
        if key == "seccomp" and sep and value not in ("unconfined", ""):
            with open(value, encoding="utf-8") as profile:
                entry = f"seccomp={profile.read()}"
        options.append(entry)
    if options:
        host["SecurityOpt"] = options
    if opts.given("tmpfs"):
        host["Tmpfs"] = dict(_tmpfs_entry(entry) for entry in opts.texts("tmpfs"))
    return host


def _tmpfs_entry(entry: str) -> tuple[str, str]:
    target, _, options = entry.partition(":")
    return target, options


def _familiar(image: str) -> str:
    """``busybox`` -> ``busybox:latest`` (as Docker names an image it cannot find)."""
    if "@" in image or ":" in image.rsplit("/", 1)[-1]:
        return image
    return f"{image}:latest"


def _create(ctx: Context, opts: Options, attach: bool) -> str | None:
    """POST /containers/create; the new id, or None after a local (usage) error."""
    try:
        body = container_body(opts, attach)
    except OSError as exc:
        _usage_failure(ctx, os_error_text(exc.filename or "", exc))
        return None
    except InvalidArgument as exc:
        _usage_failure(ctx, exc.message)
        return None
    query = {"name": opts.text("name")} if opts.given("name") else None
    policy = opts.text("pull", "missing")
    if policy == "always":
        _pull(ctx, opts.args[0])
    try:
        reply = ctx.client.request("POST", "/containers/create", query=query, body=body).json()
    except NotFound as exc:
        if policy == "never" or not exc.message.startswith("No such image"):
            raise
        ctx.error(f"Unable to find image '{_familiar(opts.args[0])}' locally")
        _pull(ctx, opts.args[0])
        reply = ctx.client.request("POST", "/containers/create", query=query, body=body).json()
    for warning in reply.get("Warnings") or []:
        ctx.error(f"WARNING: {warning}")
    return str(reply["Id"])


def _pull(ctx: Context, image: str) -> None:
    """Pull for run/create: the progress goes to stderr, as Docker's does."""
    from pycontain.cli.images import pull_image

    pull_image(ctx, image, ctx.err)


def _usage_failure(ctx: Context, message: str) -> None:
    ctx.error(f"pycontain: {message}.\nSee 'pycontain {ctx.verb} --help'.")


def start_failure_code(message: str) -> int:
    """Docker's exit code for a container that could not start: 127, 126 or 125."""
    text = message.lower()
    if "not found" in text or "no such file" in text:
        return 127
    if "permission denied" in text or "cannot invoke" in text or "is a directory" in text:
        return 126
    return 125


PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


@contextlib.contextmanager
def signals_proxied(ctx: Context, container_id: str) -> Iterator[None]:
    """Docker's sig-proxy for attached containers without a terminal: the signals we get
    (Ctrl-C's SIGINT among them) go to the container's process instead of ending us."""
    import signal

    def forward(signum: int, _: object) -> None:
        with contextlib.suppress(PycontainError):
            ctx.client.request("POST", f"/containers/{quote_path(container_id)}/kill",
                               query={"signal": signal.Signals(signum).name})

    previous = {sig: signal.signal(sig, forward)
                for sig in (getattr(signal, name) for name in PROXIED_SIGNALS)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def attach_and_wait(ctx: Context, container_id: str, condition: str, start: bool) -> int:
    """Follow a container's next run to its end and return its exit code (Docker's order).

    The attach stream and the wait are registered first (the daemon answers their
    headers at once), then the container is started, so that neither its first
    output nor its exit code (even when the daemon removes it, ``--rm``) can be missed.
    """
    path = f"/containers/{quote_path(container_id)}"
    attached = ctx.client.begin("POST", f"{path}/attach",
                                query={"stream": True, "stdout": True, "stderr": True})
    waiting = ctx.client.begin("POST", f"{path}/wait", query={"condition": condition})
    try:
        output = attached.finish()
        result = waiting.finish()
        if start and (failure := _start_or_exit_code(ctx, container_id)) is not None:
            return failure
        with signals_proxied(ctx, container_id):
            copy_multiplexed(output.iter_chunks(), *ctx.binary_streams())
            reply = result.json() or {}
    finally:
        attached.close()
        waiting.close()
    error = reply.get("Error") or {}
    if isinstance(error, dict) and error.get("Message"):
        ctx.error(f"pycontain: {error['Message']}")
    return int(reply.get("StatusCode", 0))


def attach_session(ctx: Context, container_id: str, condition: str, start: bool,
                   tty: bool, stdin: bool, detach_keys: str) -> int:
    """``attach_and_wait`` over a hijacked connection, with our stdin and terminal
    (cli/interactive.py); returns the container's exit code, or 0 once detached."""
    from contextlib import nullcontext

    from pycontain.cli.interactive import run_attached

    path = f"/containers/{quote_path(container_id)}"
    connection = ctx.client.hijack(f"{path}/attach", query={
        "stream": True, "stdin": stdin, "stdout": True, "stderr": True,
        "detachKeys": detach_keys or None})
    waiting = ctx.client.begin("POST", f"{path}/wait", query={"condition": condition})
    try:
        result = waiting.finish()
        if start and (failure := _start_or_exit_code(ctx, container_id)) is not None:
            return failure
        with nullcontext() if tty else signals_proxied(ctx, container_id):
            if run_attached(connection, ctx.client, path, tty, stdin, detach_keys,
                            *ctx.binary_streams()):
                return 0  # detached
            reply = result.json() or {}
    finally:
        connection.close()
        waiting.close()
    return int(reply.get("StatusCode", 0))


def _check_terminal(ctx: Context, opts: Options) -> bool:
    """Docker refuses -it when our stdin is not a terminal."""
    import sys

    if opts.flag("tty") and opts.flag("interactive") and not sys.stdin.isatty():
        ctx.error("the input device is not a TTY")
        return False
    return True


def cmd_create(ctx: Context, opts: Options) -> int:
    container_id = _create(ctx, opts, attach=True)
    if container_id is None:
        return 125
    ctx.line(container_id)
    return 0


def cmd_run(ctx: Context, opts: Options) -> int:
    """create, then start detached (print the id) or attached (exit with the container's code).

    With ``--rm`` the daemon removes the container when it exits (AutoRemove); the
    attached CLI waits for that removal, as Docker's does.
    """
    detach = opts.flag("detach")
    if not detach and not _check_terminal(ctx, opts):
        return 1
    container_id = _create(ctx, opts, attach=not detach)
    if container_id is None:
        return 125
    if not detach:
        condition = "removed" if opts.flag("rm") else "next-exit"
        if opts.flag("interactive") or opts.flag("tty"):
            return attach_session(ctx, container_id, condition, True, opts.flag("tty"),
                                  opts.flag("interactive"), opts.text("detach-keys"))
        return attach_and_wait(ctx, container_id, condition, start=True)
    if (failure := _start_or_exit_code(ctx, container_id)) is not None:
        return failure
    ctx.line(container_id)
    return 0


def _start_or_exit_code(ctx: Context, container_id: str) -> int | None:
    """Start the container; on failure print the daemon's error and return Docker's code."""
    try:
        ctx.client.request("POST", f"/containers/{quote_path(container_id)}/start")
    except DaemonUnreachable:
        raise
    except PycontainError as exc:
        ctx.daemon_error(exc, "pycontain: ")
        return start_failure_code(exc.message)
    return None


def cmd_start(ctx: Context, opts: Options) -> int:
    if not (opts.flag("attach") or opts.flag("interactive")):
        return each(ctx, opts.args, lambda name: _start(ctx, name))
    if len(opts.args) > 1:
        ctx.error("you cannot start and attach multiple containers at once")
        return 1
    info = ctx.client.request("GET", f"/containers/{quote_path(opts.args[0])}/json").json()
    auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
    condition = "removed" if auto_remove else "next-exit"
    config = info.get("Config") or {}
    stdin = opts.flag("interactive") and bool(config.get("OpenStdin"))
    if stdin or config.get("Tty"):
        return attach_session(ctx, info["Id"], condition, True, bool(config.get("Tty")),
                              stdin, opts.text("detach-keys"))
    return attach_and_wait(ctx, info["Id"], condition, start=True)


def cmd_attach(ctx: Context, opts: Options) -> int:
    """Docker's attach: to a running container's output (and stdin, when it has one)."""
    info = ctx.client.request("GET", f"/containers/{quote_path(opts.args[0])}/json").json()
    state = info.get("State") or {}
    if not state.get("Running"):
        ctx.error("You cannot attach to a stopped container, start it first")
        return 1
    if state.get("Paused"):
        ctx.error("You cannot attach to a paused container, unpause it first")
        return 1
    config = info.get("Config") or {}
    auto_remove = bool((info.get("HostConfig") or {}).get("AutoRemove"))
    return attach_session(ctx, info["Id"], "removed" if auto_remove else "next-exit", False,
                          bool(config.get("Tty")),
                          bool(config.get("OpenStdin")) and not opts.flag("no-stdin"),
                          opts.text("detach-keys"))


def _start(ctx: Context, name: str) -> str:
    ctx.client.request("POST", f"/containers/{quote_path(name)}/start")
    return name


VERBS = {
    "run": Verb(RUN, cmd_run, run_style=True),
    "create": Verb(CREATE, cmd_create, run_style=True),
    "start": Verb(START, cmd_start),
    "attach": Verb(ATTACH, cmd_attach),
}
