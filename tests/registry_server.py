"""A real registry for the pull tests and the bench: Debian's ``docker-registry`` on
127.0.0.1, a free port, its own temp storage and config; plus a small proxy in front of
it that counts blob downloads and can cut one off halfway.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REGISTRY_BINARY = "docker-registry"

_CONFIG = """version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{auth}"""
_AUTH = """auth:
  htpasswd:
    realm: pycontain-test
    path: {htpasswd}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalRegistry:
    """One running ``docker-registry serve``; ``stop()`` ends it and removes its storage."""

    def __init__(self, htpasswd_user: tuple[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pycontain-registry-"))
        self.storage = self.dir / "storage"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.credentials = htpasswd_user
        auth = ""
        if htpasswd_user is not None:
            htpasswd = self.dir / "htpasswd"
            line = subprocess.run(["htpasswd", "-Bbn", *htpasswd_user], check=True,
                                  capture_output=True, text=True).stdout.strip()
            htpasswd.write_text(line + "\n")
            auth = _AUTH.format(htpasswd=htpasswd)
        config = self.dir / "config.yml"
        config.write_text(_CONFIG.format(storage=self.storage, port=self.port, auth=auth))
        self.log = open(self.dir / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)],
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: "
                                   f"{(self.dir / 'registry.log').read_text()}")
            with contextlib.suppress(OSError):
                status, _, _ = request(self.address, "GET", "/v2/")
                if status in (200, 401):
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not come up in 15 s")

    def push_archive(self, archive: Path, repository: str) -> None:
        """``skopeo copy`` of a docker-save archive to ``repository`` (with its tag)."""
        command = ["skopeo", "copy", "-q", "--dest-tls-verify=false"]
        if self.credentials is not None:
            command.append("--dest-creds=" + ":".join(self.credentials))
        subprocess.run([*command, f"docker-archive:{archive}",
                        f"docker://{self.address}/{repository}"], check=True,
                       capture_output=True)

    def blob_file(self, digest: str) -> Path:
        hex_digest = digest.removeprefix("sha256:")
        return (self.storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest
                / "data")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def request(address: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def upload_blob(address: str, repository: str, data: bytes) -> str:
    """Monolithic upload (POST then PUT ?digest=); the blob's digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, headers, body = request(address, "POST", f"/v2/{repository}/blobs/uploads/")
    assert status == 202, body
    location = headers["location"]
    if location.startswith("http"):
        location = "/" + location.split("/", 3)[3]
    separator = "&" if "?" in location else "?"
    status, _, body = request(address, "PUT", f"{location}{separator}digest={digest}", data,
                              {"Content-Type": "application/octet-stream"})
    assert status == 201, body
    return digest


def put_manifest(address: str, repository: str, reference: str, manifest: dict[str, object],
                 ) -> str:
    data = json.dumps(manifest).encode()
    status, _, body = request(address, "PUT", f"/v2/{repository}/manifests/{reference}", data,
                              {"Content-Type": str(manifest["mediaType"])})
    assert status == 201, body
    return "sha256:" + hashlib.sha256(data).hexdigest()


def get_manifest(address: str, repository: str, reference: str) -> tuple[bytes, str]:
    accept = ("application/vnd.docker.distribution.manifest.v2+json, "
              "application/vnd.oci.image.manifest.v1+json")
    status, headers, body = request(address, "GET", f"/v2/{repository}/manifests/{reference}",
                                    headers={"Accept": accept})
    assert status == 200, body
    return body, headers["content-type"]


class FaultyProxy:
    """An HTTP proxy on 127.0.0.1 in front of a registry.  Counts the blob GETs per
    digest; while ``cut_blobs`` > 0, a blob GET (of ``cut_only`` when set) sends its
    headers and half its body, then closes the connection (``cut_blobs`` goes down by one).
    With ``hold`` set, such a cut waits after the half (``holding`` is set) until
    ``release`` is: the client is left mid-blob for as long as a test needs."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.blob_gets: Counter[str] = Counter()
        self.cut_blobs = 0
        self.cut_only: str | None = None
        self.hold = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.relay(send_body=False)

            def do_GET(self) -> None:
                self.relay(send_body=True)

            def relay(self, send_body: bool) -> None:
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("accept", "authorization")}
                status, reply_headers, body = request(proxy.upstream, self.command, self.path,
                                                      headers=headers)
                cut = False
                if "/blobs/" in self.path and self.command == "GET" and status == 200:
                    digest = self.path.rsplit("/", 1)[1]
                    with proxy._lock:
                        proxy.blob_gets[digest] += 1
                        if proxy.cut_blobs > 0 and proxy.cut_only in (None, digest):
                            proxy.cut_blobs -= 1
                            cut = True
                self.send_response(status)
                for key, value in reply_headers.items():
                    if key not in ("transfer-encoding", "connection", "date", "server"):
                        self.send_header(key, value)
                self.end_headers()
                if send_body:
                    self.wfile.write(body[: len(body) // 2] if cut else body)
                if cut:
                    self.wfile.flush()
                    if proxy.hold:
                        proxy.holding.set()
                        proxy.release.wait(60)
                    self.close_connection = True
                    with contextlib.suppress(OSError):  # the client may be gone already
                        self.connection.shutdown(socket.SHUT_RDWR)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@contextlib.contextmanager
def running_registry(htpasswd_user: tuple[str, str] | None = None) -> Iterator[LocalRegistry]:
    registry = LocalRegistry(htpasswd_user)
    try:
        yield registry
    finally:
        registry.stop()
