"""Image verbs: images, rmi, import, load, pull.

API calls:
    images  GET    /images/json[?all=1]
    rmi     DELETE /images/{name}[?force=1]         -> [{"Untagged": x} | {"Deleted": y}]
    import  POST   /images/create?fromSrc=-[&repo=NAME][&tag=TAG]   body: the tarball
            -> JSON lines, {"status": "sha256:..."}
    load    POST   /images/load[?quiet=1]           body: the archive
            -> JSON lines, {"stream": "Loaded image: busybox:latest\\n"}
    pull    POST   /images/create?fromImage=NAME&tag=TAG|DIGEST
            X-Registry-Auth: the credentials stored for the registry (pycontain login)
            -> JSON lines, {"status": ..., "id": layer, "progressDetail": {...}}
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, TextIO

from pycontain.cli.common import Context, Verb, each, os_error_text, quote_path
from pycontain.cli.flags import VALUE, Command, Flag, Options
from pycontain.cli.render import IMAGES_HEADER, image_rows, split_repo_tag, tabulate
from pycontain.cli.stream import json_messages
from pycontain.errors import DaemonUnreachable, PycontainError

__all__ = ["VERBS"]

IMAGES = Command(
    "images", "", "List images",
    (Flag("all", "a", help="Show all images (default hides intermediate images)"),
     Flag("quiet", "q", help="Only show image IDs")),
    max_args=0,
)
RMI = Command(
    "rmi", "IMAGE [IMAGE...]", "Remove one or more images",
    (Flag("force", "f", help="Force removal of the image"),), min_args=1,
)
IMPORT = Command(
    "import", "file|- [REPOSITORY[:TAG]]",
    "Import the contents from a tarball to create a filesystem image",
    min_args=1, max_args=2,
)
LOAD = Command(
    "load", "", "Load an image from a tar archive or STDIN",
    (Flag("input", "i", VALUE, "Read from tar archive file, instead of STDIN"),
     Flag("quiet", "q", help="Suppress the load output")),
    max_args=0,
)


def cmd_images(ctx: Context, opts: Options) -> int:
    images = ctx.client.json("GET", "/images/json", query={"all": opts.flag("all") or None})
    now = time.time()
    rows = [row for image in images or [] for row in image_rows(image, now)]
    if opts.flag("quiet"):
        for image_id in dict.fromkeys(row[2] for row in rows):
            ctx.line(image_id)
        return 0
    ctx.out.write(tabulate([IMAGES_HEADER, *rows]))
    return 0


def cmd_rmi(ctx: Context, opts: Options) -> int:
    query = {"force": True} if opts.flag("force") else None

    def remove(name: str) -> str:
        reply = ctx.client.json("DELETE", f"/images/{quote_path(name)}", query=query) or []
        return "\n".join(f"{key}: {value}" for item in reply for key, value in item.items())

    return each(ctx, opts.args, remove)


def _print_messages(ctx: Context, lines: Any) -> None:
    for message in json_messages(lines):
        if "stream" in message:
            ctx.out.write(str(message["stream"]))
        elif "status" in message:
            ctx.line(str(message["status"]))
        ctx.out.flush()


def _open_source(ctx: Context, path: str) -> IO[bytes] | None:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        ctx.error(os_error_text(path, exc))
        return None


def cmd_import(ctx: Context, opts: Options) -> int:
    query: dict[str, Any] = {"fromSrc": "-"}
    if len(opts.args) > 1:
        repo, tag = split_repo_tag(opts.args[1])
        query["repo"] = repo
        query["tag"] = None if tag == "<none>" else tag
    source = _open_source(ctx, opts.args[0])
    if source is None:
        return 1
    with source:
        reply = ctx.client.request("POST", "/images/create", query=query, upload=source)
    _print_messages(ctx, reply.iter_lines())
    return 0


def cmd_load(ctx: Context, opts: Options) -> int:
    path = opts.text("input", "-") or "-"
    if path == "-" and sys.stdin.isatty():
        ctx.error("requested load from stdin, but stdin is empty")
        return 1
    source = _open_source(ctx, path)
    if source is None:
        return 1
    with source:
        query = {"quiet": True} if opts.flag("quiet") else None
        reply = ctx.client.request("POST", "/images/load", query=query, upload=source)
    _print_messages(ctx, reply.iter_lines())
    return 0


PULL = Command(
    "pull", "NAME[:TAG|@DIGEST]", "Download an image from a registry",
    (Flag("quiet", "q", help="Suppress verbose output"),), min_args=1, max_args=1,
)


class PullView:
    """Docker's pull output.  On a terminal, one line per layer, redrawn in place as
    its status and progress bar change; elsewhere, plain lines, progress left out."""

    def __init__(self, out: TextIO, terminal: bool) -> None:
        self.out = out
        self.terminal = terminal
        self.rows: list[str] = []

    def show(self, message: dict[str, Any]) -> None:
        status, layer = str(message.get("status", "")), message.get("id")
        if "progressDetail" not in message or not layer:
            self.out.write(f"{layer}: {status}\n" if layer else f"{status}\n")
        elif not self.terminal:
            if "current" not in (message.get("progressDetail") or {}):
                self.out.write(f"{layer}: {status}\n")
        else:
            text = f"{layer}: {status} {message.get('progress', '')}".rstrip()
            if layer not in self.rows:
                self.rows.append(layer)
                self.out.write(text + "\n")
            else:
                up = len(self.rows) - self.rows.index(layer)
                self.out.write(f"\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")
        self.out.flush()


def pull_image(ctx: Context, name: str, out: TextIO, quiet: bool = False) -> str:
    """Ask the daemon to pull ``name``, showing its progress on ``out``; return the
    image's full name (``docker.io/library/alpine:latest``).

    Raises ``InvalidArgument`` for a malformed name, ``DaemonUnreachable`` when the
    daemon goes away before the pull ends, and the daemon's error otherwise.
    """
    from pycontain.images.reference import parse_reference

    reference = parse_reference(name).with_default_tag()
    query = {"fromImage": reference.familiar_name, "tag": reference.digest or reference.tag}
    auth = _registry_auth(ctx, reference.domain)
    reply = ctx.client.request("POST", "/images/create", query=query,
                               headers={"X-Registry-Auth": auth} if auth else None)
    view = PullView(out, out.isatty())
    finished = False
    for message in json_messages(reply.iter_lines()):
        finished = str(message.get("status", "")).startswith("Status: ")
        if not quiet:
            view.show(message)
    if not finished:  # a cut stream reads as a clean end (http.client hides the cut chunk)
        raise DaemonUnreachable(f"the pycontain daemon at {ctx.client.host} closed the "
                                f"connection before the pull of {reference.familiar()} ended")
    suffix = f"@{reference.digest}" if reference.digest else f":{reference.tag}"
    return reference.full_name + suffix


def _registry_auth(ctx: Context, domain: str) -> str | None:
    """The ``X-Registry-Auth`` header for ``domain``'s stored credentials; an unreadable
    credentials file is a warning (the pull goes on without), as with Docker."""
    from pycontain.cli.credentials import CredentialStore

    try:
        return CredentialStore.default().header_for(domain)
    except PycontainError as exc:
        ctx.error(f"WARNING: Error loading config file: {exc.message}")
        return None


def cmd_pull(ctx: Context, opts: Options) -> int:
    ctx.line(pull_image(ctx, opts.args[0], ctx.out, opts.flag("quiet")))
    return 0


VERBS = {
    "images": Verb(IMAGES, cmd_images),
    "rmi": Verb(RMI, cmd_rmi),
    "import": Verb(IMPORT, cmd_import),
    "load": Verb(LOAD, cmd_load),
    "pull": Verb(PULL, cmd_pull),
}
