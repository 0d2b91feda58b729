"""Pull: a registry image into the store, each layer unpacked while it downloads.

One pull, for ``alpine`` (= docker.io/library/alpine:latest)::

    login (token or basic)      registry.py
    HEAD manifest  ── same digest as the local ``alpine@sha256:...``? -> up to date, done
    GET manifest (index -> the host's platform entry -> GET that manifest)
    GET config blob, verified, parsed; its diff_ids pair up with the manifest's layers
    per layer, up to 3 at once:  present (same diff_id)  -> "Already exists"
                                 being pulled by another pull -> wait for that one
                                 else: blob -> sha256+size check -> decompress -> tar
                                       -> the safe extractor, all in one pass;
                                       the diff_id checked; then one rename into the store
    record the image, point the tag and the digest reference at it

The extractor is synchronous (tarfile pulls its bytes with ``read``) and the daemon is
one thread: each layer's extraction runs in a *greenlet* whose ``read`` switches back
to the event loop to await the next network chunk.  Nothing runs in another thread and
no chunk is read twice; each switch does at most one chunk of work.

A failure (digest or size mismatch, a connection cut off three times, a hostile layer)
leaves no staged file behind and removes the layers the failed pull committed, unless
another image or pull uses them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import greenlet

from pycontain.errors import ImageArchiveError, RegistryError
from pycontain.images.config import Image, parse_config_blob
from pycontain.images.reference import Reference, parse_reference
from pycontain.images.registry import (
    Credentials,
    Descriptor,
    Index,
    Manifest,
    RegistryClient,
    choose_platform,
    host_platform,
    is_transient,
    parse_manifest,
)
from pycontain.images.store import ImageStore

__all__ = ["Emit", "Puller", "pull_and_clean", "run_in_greenlet"]

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
T = TypeVar("T")

MAX_CONCURRENT_DOWNLOADS: Final = 3
_LAYER_ATTEMPTS: Final = 3
_PROGRESS_INTERVAL: Final = 0.1
_SHORT: Final = 12


# -- the bridge: synchronous code that awaits, on the event loop's own thread ------------


def _await(awaitable: Awaitable[T]) -> T:
    """From inside ``run_in_greenlet``: suspend until ``awaitable`` is done, return its result."""
    parent = greenlet.getcurrent().parent
    if parent is None:
        raise RuntimeError("_await called outside run_in_greenlet")
    result: T = parent.switch(awaitable)
    return result


async def run_in_greenlet(function: Callable[..., T], *args: Any) -> T:
    """Run the synchronous ``function`` on this thread; each ``_await`` it makes is awaited
    here.  Exceptions (cancellation too) travel both ways."""
    child = greenlet.greenlet(function)
    request = child.switch(*args)
    while not child.dead:
        try:
            value = await request
        except BaseException as exc:  # handed to the child, which re-raises
            request = child.throw(exc)
        else:
            request = child.switch(value)
    result: T = request
    return result


class _ChunkReader:
    """A blocking ``read(n)`` over async chunks, for the extractor in its greenlet."""

    def __init__(self, chunks: AsyncIterator[bytes], on_bytes: Callable[[int], None]) -> None:
        self._chunks = chunks
        self._on_bytes = on_bytes
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or self._pending_size < size):
            chunk = _await(anext(self._chunks, b""))
            if not chunk:
                self._eof = True
                break
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            self._on_bytes(len(chunk))
        data = b"".join(self._pending)
        if 0 <= size < len(data):
            data, rest = data[:size], data[size:]
            self._pending, self._pending_size = [rest], len(rest)
        else:
            self._pending, self._pending_size = [], 0
        return data


# -- progress, in Docker's JSON messages ------------------------------------------------


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:_SHORT]


def _status(layer: str, status: str, **detail: int) -> dict[str, Any]:
    return {"status": status, "progressDetail": detail, "id": layer}


@dataclass
class _LayerJob:
    """One layer being pulled, shared by every pull that needs it."""

    descriptor: Descriptor
    diff_id: str
    listeners: list[Emit] = field(default_factory=list)
    waiters: int = 0
    task: asyncio.Task[None] | None = None
    committed: bool = False

    def emit(self, message: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener(message)


class Puller:
    """Pulls images into ``store``; one per daemon, so that concurrent pulls share layers.

    ``insecure`` lists registries reachable over plain HTTP (local ones always are).
    """

    def __init__(self, store: ImageStore, insecure: Collection[str] = ()) -> None:
        self.store = store
        self.insecure = tuple(insecure)
        self._jobs: dict[str, _LayerJob] = {}
        self._downloads = asyncio.Semaphore(MAX_CONCURRENT_DOWNLOADS)

    @staticmethod
    def reference(name: str) -> Reference:
        """Parse what the client asked for; ``latest`` when it names neither tag nor digest.

        Raises ``InvalidArgument`` for a malformed name.
        """
        return parse_reference(name).with_default_tag()

    async def pull(self, reference: Reference, emit: Emit,
                   credentials: Credentials | None = None) -> Image:
        """Pull ``reference``, reporting progress to ``emit``; return the image.

        Raises ``NotFound`` (unknown manifest), ``RegistryError`` (transport, auth,
        verification), ``ImageArchiveError`` (a corrupt or hostile layer or config).
        """
        what = f"pull {reference.familiar()}"
        if reference.digest is not None:
            local = self.store.find(reference.familiar())
            if local is not None:
                return self._finish(reference, local, reference.digest, emit, changed=False)
        async with RegistryClient(reference, self.insecure, credentials) as client:
            await client.login()
            wanted = reference.digest or reference.tag or "latest"
            if reference.digest is None:
                head = await client.manifest_digest(wanted)
                local = self.store.find(f"{reference.familiar_name}@{head}") if head else None
                if local is not None and head is not None:
                    return self._finish(reference, local, head, emit, changed=False)
            data, media_type, top_digest = await client.manifest(wanted)
            parsed = parse_manifest(data, media_type, f"{what}: manifest")
            if isinstance(parsed, Index):
                entry = choose_platform(parsed, host_platform(), what)
                data, media_type, _ = await client.manifest(entry.digest)
                parsed = parse_manifest(data, media_type, f"{what}: manifest {entry.digest}")
                if isinstance(parsed, Index):
                    raise RegistryError(f"{what}: an index inside an index is not supported")
            emit({"status": f"Pulling from {reference.path}", "id": wanted})
            config_bytes = await client.blob_bytes(parsed.config, f"{what}: config")
            config = parse_config_blob(config_bytes)
            if len(config.diff_ids) != len(parsed.layers):
                raise RegistryError(f"{what}: the manifest has {len(parsed.layers)} layers, "
                                    f"the config {len(config.diff_ids)} diff_ids")
            with self.store.pinned(config.diff_ids):
                await self._pull_layers(client, parsed, config.diff_ids, emit, what)
                image, changed = self.store.add_image(config_bytes, data, [
                    r for r in (self._tag_key(reference),
                                f"{reference.familiar_name}@{top_digest}") if r])
        return self._finish(reference, image, top_digest, emit, changed)

    @staticmethod
    def _tag_key(reference: Reference) -> str | None:
        return f"{reference.familiar_name}:{reference.tag}" if reference.tag else None

    def _finish(self, reference: Reference, image: Image, digest: str, emit: Emit,
                changed: bool) -> Image:
        tag = self._tag_key(reference)
        if not changed and tag is not None:
            changed = self.store.point([tag], image.id)
        emit({"status": f"Digest: {digest}"})
        verdict = "Downloaded newer image" if changed else "Image is up to date"
        emit({"status": f"Status: {verdict} for {reference.familiar()}"})
        return image

    async def _pull_layers(self, client: RegistryClient, manifest: Manifest,
                           diff_ids: tuple[str, ...], emit: Emit, what: str) -> None:
        mine: list[_LayerJob] = []
        waits: list[Awaitable[None]] = []
        seen: set[str] = set()
        for descriptor, diff_id in zip(manifest.layers, diff_ids, strict=True):
            layer = _short(descriptor.digest)
            if diff_id in seen:
                continue
            seen.add(diff_id)
            if diff_id not in self._jobs and self.store.has_layer(diff_id):
                emit(_status(layer, "Already exists"))
                continue
            emit(_status(layer, "Pulling fs layer"))
            job = self._jobs.get(diff_id)
            if job is None:
                job = _LayerJob(descriptor, diff_id)
                job.task = asyncio.create_task(self._layer(client, job, what))
                job.task.add_done_callback(self._forget)
                self._jobs[diff_id] = job
            job.listeners.append(emit)
            job.waiters += 1
            mine.append(job)
            assert job.task is not None
            waits.append(asyncio.shield(job.task))
        try:
            await asyncio.gather(*waits)
        except BaseException:
            for job in mine:
                job.waiters -= 1
                if job.waiters == 0 and job.task is not None:
                    job.task.cancel()
            # The jobs use this pull's connection: let them end before it closes.
            await asyncio.wait([job.task for job in mine if job.task is not None])
            raise
        finally:
            for job in mine:
                if emit in job.listeners:
                    job.listeners.remove(emit)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for diff_id, job in list(self._jobs.items()):
            if job.task is task:
                del self._jobs[diff_id]

    async def _layer(self, client: RegistryClient, job: _LayerJob, what: str) -> None:
        """Download, verify, unpack and commit one layer, retrying interrupted downloads."""
        descriptor = job.descriptor
        layer_what = f"{what}: layer {descriptor.digest}"
        async with self._downloads:
            for attempt in range(1, _LAYER_ATTEMPTS + 1):
                try:
                    await self._layer_once(client, job, layer_what)
                    return
                except RegistryError as exc:
                    if not is_transient(exc) or attempt == _LAYER_ATTEMPTS:
                        raise
                    log.info("%s: attempt %d failed (%s), retrying", layer_what, attempt, exc)
                    job.emit(_status(_short(descriptor.digest), f"Retrying in {attempt} second"
                                     f"{'s' if attempt > 1 else ''}"))
                    await asyncio.sleep(attempt * 0.5)

    async def _layer_once(self, client: RegistryClient, job: _LayerJob, what: str) -> None:
        descriptor, layer = job.descriptor, _short(job.descriptor.digest)
        total = descriptor.size
        last = 0.0
        received = 0

        def progress(count: int) -> None:
            nonlocal last, received
            received += count
            now = time.monotonic()
            if now - last >= _PROGRESS_INTERVAL or received == total:
                last = now
                job.emit({**_status(layer, "Downloading", current=received, total=total),
                          "progress": _bar(received, total)})

        stream = await client.blob(descriptor, what)
        chunks = stream.chunks()
        try:
            with self.store.staging() as staging:
                reader = _ChunkReader(chunks, progress)
                unpacked, layer_dir = await run_in_greenlet(
                    self.store.stage_layer, reader, staging, what)
                job.emit(_status(layer, "Verifying Checksum"))
                if unpacked.blob_digest != descriptor.digest:
                    raise RegistryError(f"{what}: digest mismatch: got {unpacked.blob_digest}")
                if unpacked.diff_id != job.diff_id:
                    raise ImageArchiveError(f"{what}: content digest {unpacked.diff_id} does "
                                            f"not match the config's diff_id {job.diff_id}")
                job.emit(_status(layer, "Download complete"))
                self.store.commit_layer(job.diff_id, layer_dir)
                job.committed = True
        finally:
            await chunks.aclose()
        job.emit(_status(layer, "Pull complete"))


async def pull_and_clean(puller: Puller, reference: Reference, emit: Emit,
                         credentials: Credentials | None = None) -> Image:
    """``Puller.pull``, and after a failure the removal of what it left unused."""
    try:
        return await puller.pull(reference, emit, credentials)
    except BaseException:
        puller.store.remove_unused_layers()
        raise


def _bar(current: int, total: int, width: int = 50) -> str:
    """Docker's progress text: ``[=====>      ]  1.2MB/3.4MB``."""
    if total <= 0:
        return _size(current)
    filled = min(width, current * width // total)
    arrow = ">" if filled < width else ""
    bar = "=" * filled + arrow + " " * (width - filled - len(arrow))
    return f"[{bar}] {_size(current):>8}/{_size(total)}"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.4g}{unit}" if unit != "B" else f"{count}B"
        value /= 1000
    return f"{count}B"

