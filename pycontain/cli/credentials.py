"""The client's stored registry credentials, in the shape of Docker's ~/.docker/config.json::

    {"auths": {"127.0.0.1:5000": {"auth": "<base64 of user:password>"},
               "https://index.docker.io/v1/": {"auth": "..."}}}

The file is ``config.json`` in ``$PYCONTAIN_CONFIG`` (a directory) or ``~/.config/pycontain``;
the directory is made 0700, the file is written atomically and 0600, and the other keys
of the file are kept as they were.  Registries are keyed as Docker keys them: Docker Hub
(``docker.io``, ``index.docker.io``, ...) as ``https://index.docker.io/v1/``, any other as
``host[:port]`` (a scheme or path given with it is dropped).

``login`` writes it, ``logout`` erases an entry, ``pull`` (and the pull of ``run``/``create``)
sends the entry of the image's registry in the ``X-Registry-Auth`` header.  Standard
library only, as those verbs are.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any, Final

from pycontain.errors import InvalidArgument, PycontainError
from pycontain.fsutil import atomic_write
from pycontain.images.reference import DEFAULT_DOMAIN, registry_domain

__all__ = ["CONFIG_ENV", "DOCKER_HUB_KEY", "CredentialStore", "server_key"]

CONFIG_ENV: Final = "PYCONTAIN_CONFIG"
DOCKER_HUB_KEY: Final = "https://index.docker.io/v1/"
_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700


def server_key(server: str) -> str:
    """The key a registry's entry has in the file: ``https://index.docker.io/v1/`` for
    Docker Hub, ``host[:port]`` otherwise.  Raises ``InvalidArgument`` for a bad address."""
    domain = registry_domain(server)
    return DOCKER_HUB_KEY if domain == DEFAULT_DOMAIN else domain


def registry_auth(username: str, password: str, server: str) -> str:
    """Docker's ``X-Registry-Auth`` header: base64url of {username, password, serveraddress}."""
    data = json.dumps({"username": username, "password": password, "serveraddress": server})
    return base64.urlsafe_b64encode(data.encode()).decode()


class CredentialStore:
    """The credentials file in ``directory``.  Every method raises ``PycontainError`` naming
    the file when it cannot be read, parsed or written."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "config.json"

    @classmethod
    def default(cls) -> CredentialStore:
        """``$PYCONTAIN_CONFIG``, else ``~/.config/pycontain``."""
        directory = os.environ.get(CONFIG_ENV) or os.path.join("~", ".config", "pycontain")
        return cls(Path(directory).expanduser())

    def get(self, server: str) -> tuple[str, str] | None:
        """The user name and password stored for ``server``, or None."""
        wanted = server_key(server)
        for key, entry in self._auths(self._read()).items():
            if self._same(key, wanted):
                return self._decode(key, entry)
        return None

    def store(self, server: str, username: str, password: str) -> None:
        data = self._read()
        auths = self._auths(data)
        key = server_key(server)
        for other in [k for k in auths if k != key and self._same(k, key)]:
            del auths[other]
        auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
        data["auths"] = auths
        self._write(data)

    def erase(self, server: str) -> bool:
        """Remove the entry of ``server``; False when there was none."""
        data = self._read()
        auths = self._auths(data)
        key = server_key(server)
        found = [k for k in auths if self._same(k, key)]
        if not found:
            return False
        for other in found:
            del auths[other]
        data["auths"] = auths
        self._write(data)
        return True

    def header_for(self, server: str) -> str | None:
        """The ``X-Registry-Auth`` header for ``server``'s stored entry, or None."""
        found = self.get(server)
        if found is None:
            return None
        key = server_key(server)
        return registry_auth(found[0], found[1], key)

    # -- the file ----------------------------------------------------------------------

    @staticmethod
    def _same(key: str, wanted: str) -> bool:
        try:
            return server_key(key) == wanted
        except InvalidArgument:
            return False

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise PycontainError(f"read {self.path}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise PycontainError(f"read {self.path}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise PycontainError(f"read {self.path}: not a JSON object")
        return data

    def _auths(self, data: dict[str, Any]) -> dict[str, Any]:
        auths = data.get("auths", {})
        if not isinstance(auths, dict):
            raise PycontainError(f"read {self.path}: \"auths\" is not a JSON object")
        return dict(auths)

    def _decode(self, key: str, entry: Any) -> tuple[str, str]:
        encoded = entry.get("auth") if isinstance(entry, dict) else None
        try:
            if not isinstance(encoded, str):
                raise ValueError("no \"auth\" string")
            username, sep, password = base64.b64decode(encoded, validate=True).decode().partition(
                ":")
            if not sep or not username:
                raise ValueError("not user:password")
        except (ValueError, binascii.Error) as exc:
            raise PycontainError(f"read {self.path}: bad entry for {key}: {exc}") from exc
        return username, password

    def _write(self, data: dict[str, Any]) -> None:
        try:
            self.directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            text = json.dumps(data, indent="\t") + "\n"
            atomic_write(self.path, text.encode(), _FILE_MODE)
        except OSError as exc:
            raise PycontainError(f"write {self.path}: {exc.strerror or exc}") from exc
