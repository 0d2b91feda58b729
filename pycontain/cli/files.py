"""Verbs on a container's files: cp, export, diff, commit.

API calls:
    cp C:SRC DEST    HEAD + GET /containers/{name}/archive?path=SRC   -> a tar, unpacked here
    cp SRC C:DEST    HEAD /containers/{name}/archive?path=DEST, then
                     PUT /containers/{name}/archive?path=DIR            body: a tar made here
    export           GET /containers/{name}/export                      -> a flat tar
    diff             GET /containers/{name}/changes                     -> [{"Path", "Kind"}]
    commit           POST /commit?container=NAME[&repo=R][&tag=T]       -> {"Id"}

The daemon resolves container paths inside the container's root; this side only reads
and writes the host's files, with the user's own rights.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import sys
import tarfile
import tempfile
from typing import IO, Any

from pycontain.cli.common import Context, Verb, os_error_text, quote_path
from pycontain.cli.flags import VALUE, Command, Flag, Options
from pycontain.cli.render import split_repo_tag
from pycontain.errors import InvalidArgument, NotFound

__all__ = ["VERBS"]

CP = Command(
    "cp", "CONTAINER:SRC_PATH DEST_PATH|-  or  SRC_PATH|- CONTAINER:DEST_PATH",
    "Copy files/folders between a container and the local filesystem",
    (Flag("archive", "a", help="Archive mode (copy all uid/gid information)"),
     Flag("follow-link", "L", help="Always follow symbol link in SRC_PATH")),
    min_args=2, max_args=2,
)
_MAX_LINKS = 40
EXPORT = Command(
    "export", "CONTAINER", "Export a container's filesystem as a tar archive",
    (Flag("output", "o", VALUE, "Write to a file, instead of STDOUT"),),
    min_args=1, max_args=1,
)
DIFF = Command("diff", "CONTAINER", "Inspect changes to files or directories on a "
               "container's filesystem", min_args=1, max_args=1)
COMMIT = Command(
    "commit", "CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes",
    (Flag("message", "m", VALUE, "Commit message"),),
    min_args=1, max_args=2,
)
_GO_MODE_DIR = 1 << 31


def _split(arg: str) -> tuple[str | None, str]:
    """``NAME:PATH`` -> (NAME, PATH); a local path (absolute, relative with ``./``, or
    without a colon) -> (None, PATH), as Docker reads them."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    name, _, path = arg.partition(":")
    return name, path


def _stat(ctx: Context, name: str, path: str) -> dict[str, Any] | None:
    """The container path's stat (Docker's X-Docker-Container-Path-Stat), None if missing."""
    try:
        reply = ctx.client.request("HEAD", f"/containers/{quote_path(name)}/archive",
                                   query={"path": path})
    except NotFound:
        return None
    header = reply.raw.headers.get("X-Docker-Container-Path-Stat", "")
    reply.read()
    stat: dict[str, Any] = json.loads(base64.b64decode(header)) if header else {}
    return stat


def _rename(member: tarfile.TarInfo, old: str, new: str) -> None:
    """``old/x`` -> ``new/x`` (``new`` "": ``x``, and the top entry's name becomes "")."""
    head, _, rest = member.name.rstrip("/").partition("/")
    if head == old:
        member.name = "/".join(part for part in (new, rest) if part)


def _contents_only(path: str) -> bool:
    """``DIR/.``: the directory's contents, not the directory (Docker's cp)."""
    return path.rstrip("/").endswith("/.") or path.rstrip("/") == "."


def _resolve_link(ctx: Context, name: str, path: str) -> str:
    """``-L``: the container path after its symlinks (resolved in the container)."""
    for _ in range(_MAX_LINKS):
        stat = _stat(ctx, name, path)
        target = (stat or {}).get("linkTarget") or ""
        if not target:
            return path
        path = posixpath.join(posixpath.dirname(posixpath.normpath("/" + path)), target)
    raise InvalidArgument(f"too many levels of symbolic links: {path}")


def _owned_by(member: tarfile.TarInfo, uid: int, gid: int) -> tarfile.TarInfo:
    member.uid, member.gid, member.uname, member.gname = uid, gid, "", ""
    return member


def _copy_out(ctx: Context, name: str, src: str, dest: str, archive: bool,
              follow: bool) -> int:
    source = _resolve_link(ctx, name, src) if follow else src
    reply = ctx.client.request("GET", f"/containers/{quote_path(name)}/archive",
                               query={"path": source})
    if dest == "-":
        out = ctx.binary_streams()[0]
        for chunk in reply.iter_chunks():
            out.write(chunk)
        out.flush()
        return 0
    top = posixpath.basename(posixpath.normpath("/" + source)) or "."
    wanted = posixpath.basename(posixpath.normpath("/" + src)) or "."
    if _contents_only(src):
        os.makedirs(dest, exist_ok=True)
        target, new = dest, ""
    elif os.path.isdir(dest):
        target, new = dest, wanted
    else:
        target = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(target):
            raise InvalidArgument(f"destination directory {target} does not exist")
        new = os.path.basename(os.path.abspath(dest))
    with tempfile.TemporaryFile() as spool:
        for chunk in reply.iter_chunks():
            spool.write(chunk)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r|") as tar:
            for member in tar:
                _rename(member, top, new)
                if not member.name:  # the directory itself, with DIR/.
                    continue
                if not archive:  # as Docker's: the files are the caller's
                    _owned_by(member, os.getuid(), os.getgid())
                tar.extract(member, target, filter="tar")
    return 0


def _copy_in(ctx: Context, src: str, name: str, dest: str, archive: bool,
             follow: bool) -> int:
    path = f"/containers/{quote_path(name)}/archive"
    stat = _stat(ctx, name, dest)
    dest_is_dir = stat is not None and bool(int(stat.get("mode", 0)) & _GO_MODE_DIR)
    if dest_is_dir and not _contents_only(src):
        directory, arcname = dest, None
    elif dest_is_dir:
        directory, arcname = dest, ""
    else:
        directory, arcname = posixpath.dirname(posixpath.normpath("/" + dest)), \
            posixpath.basename(posixpath.normpath("/" + dest))

    def owner(member: tarfile.TarInfo) -> tarfile.TarInfo:
        return member if archive else _owned_by(member, 0, 0)  # root's in the container

    with tempfile.TemporaryFile() as spool:
        if src == "-":
            source: IO[bytes] = sys.stdin.buffer
            while chunk := source.read(1 << 20):
                spool.write(chunk)
        else:
            if not os.path.lexists(src):
                raise InvalidArgument(f"could not find the file {src} on the local host")
            local = os.path.realpath(src) if follow else src
            with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
                try:
                    if arcname == "":  # DIR/. into a directory: its entries one by one
                        for entry in sorted(os.listdir(local)):
                            tar.add(os.path.join(local, entry), arcname=entry, filter=owner)
                    else:
                        tar.add(local, filter=owner, arcname=arcname or os.path.basename(
                            os.path.abspath(src.rstrip("/.") if _contents_only(src) else src)))
                except OSError as exc:
                    raise InvalidArgument(os_error_text(src, exc)) from exc
        spool.seek(0)
        ctx.client.request("PUT", path, query={"path": directory}, upload=spool).read()
    return 0


def cmd_cp(ctx: Context, opts: Options) -> int:
    (src_name, src), (dest_name, dest) = _split(opts.args[0]), _split(opts.args[1])
    if (src_name is None) == (dest_name is None):
        raise InvalidArgument("copying between containers or between local paths is not "
                              "supported: one of the paths must name a container")
    archive, follow = opts.flag("archive"), opts.flag("follow-link")
    if src_name is not None:
        return _copy_out(ctx, src_name, src, dest, archive, follow)
    assert dest_name is not None
    return _copy_in(ctx, src, dest_name, dest, archive, follow)


def cmd_export(ctx: Context, opts: Options) -> int:
    output = opts.text("output")
    if not output and sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or "
                              "redirect")
    reply = ctx.client.request("GET", f"/containers/{quote_path(opts.args[0])}/export")
    out: IO[bytes]
    if output:
        try:
            out = open(output, "wb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise InvalidArgument(os_error_text(output, exc)) from exc
    else:
        out = ctx.binary_streams()[0]
    try:
        for chunk in reply.iter_chunks():
            out.write(chunk)
    finally:
        if output:
            out.close()
        else:
            out.flush()
    return 0


def cmd_diff(ctx: Context, opts: Options) -> int:
    changes = ctx.client.json("GET", f"/containers/{quote_path(opts.args[0])}/changes") or []
    for change in changes:
        ctx.out.write(f"{'CAD'[int(change['Kind'])]} {change['Path']}\n")
    return 0


def cmd_commit(ctx: Context, opts: Options) -> int:
    query: dict[str, Any] = {"container": opts.args[0]}
    if len(opts.args) > 1:
        repo, tag = split_repo_tag(opts.args[1])
        query["repo"] = repo
        query["tag"] = None if tag == "<none>" else tag
    if opts.given("message"):
        query["comment"] = opts.text("message")
    reply = ctx.client.json("POST", "/commit", query=query)
    ctx.out.write(f"{reply['Id']}\n")
    return 0


VERBS = {
    "cp": Verb(CP, cmd_cp),
    "export": Verb(EXPORT, cmd_export),
    "diff": Verb(DIFF, cmd_diff),
    "commit": Verb(COMMIT, cmd_commit),
}
