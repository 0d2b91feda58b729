"""The client's credentials file (cli/credentials.py) and the login, logout and pull verbs
against a fake daemon: what is stored, with which modes, and what a pull sends."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

import pycontain.client
from pycontain.cli.credentials import DOCKER_HUB_KEY, CredentialStore, server_key
from pycontain.cli.main import main
from pycontain.errors import InvalidArgument, PycontainError, Unauthorized
from pycontain.images.reference import registry_domain

# -- the file ------------------------------------------------------------------------------


def test_server_keys_are_dockers() -> None:
    for hub in ("docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_KEY,
                "https://docker.io"):
        assert server_key(hub) == DOCKER_HUB_KEY
        assert registry_domain(hub) == "docker.io"
    assert server_key("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert server_key("registry.example.com") == "registry.example.com"
    for bad in ("", "https://", "a b", "host:port"):
        with pytest.raises(InvalidArgument, match="invalid registry address"):
            server_key(bad)


def test_store_get_erase_with_modes(tmp_path: Path) -> None:
    directory = tmp_path / "config" / "pycontain"
    store = CredentialStore(directory)
    assert store.get("127.0.0.1:5000") is None
    store.store("http://127.0.0.1:5000", "tester", "pa:ss")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert json.loads(store.path.read_text()) == {
        "auths": {"127.0.0.1:5000": {"auth": base64.b64encode(b"tester:pa:ss").decode()}}}
    assert store.get("127.0.0.1:5000") == ("tester", "pa:ss")
    assert store.get("127.0.0.1:5001") is None
    store.store("docker.io", "hubuser", "x")
    assert store.get("index.docker.io") == ("hubuser", "x")
    assert set(json.loads(store.path.read_text())["auths"]) == {"127.0.0.1:5000",
                                                                 DOCKER_HUB_KEY}
    assert sorted(os.listdir(directory)) == ["config.json"]  # no temp file left
    assert store.erase("127.0.0.1:5000") is True
    assert store.erase("127.0.0.1:5000") is False
    assert store.get("127.0.0.1:5000") is None
    assert store.get("docker.io") == ("hubuser", "x")


def test_other_keys_and_docker_style_entries_are_kept(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    auth = base64.b64encode(b"u:p").decode()
    store.path.write_text(json.dumps({"auths": {"https://127.0.0.1:5000": {"auth": auth}},
                                      "psFormat": "table {{.ID}}"}))
    assert store.get("127.0.0.1:5000") == ("u", "p")
    store.store("127.0.0.1:5000", "v", "q")  # replaces the entry under its plain key
    data = json.loads(store.path.read_text())
    assert data["psFormat"] == "table {{.ID}}"
    assert data["auths"] == {"127.0.0.1:5000": {"auth": base64.b64encode(b"v:q").decode()}}
    header = store.header_for("127.0.0.1:5000")
    assert header is not None
    assert json.loads(base64.urlsafe_b64decode(header)) == {
        "username": "v", "password": "q", "serveraddress": "127.0.0.1:5000"}


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ("[]", "not a JSON object"),
    ('{"auths": []}', '"auths" is not a JSON object'),
    ('{"auths": {"h:1": {"auth": "!!"}}}', "bad entry for h:1"),
    ('{"auths": {"h:1": {"auth": "' + base64.b64encode(b"nocolon").decode() + '"}}}',
     "not user:password"),
])
def test_bad_files_are_named_in_one_line(tmp_path: Path, content: str, message: str) -> None:
    store = CredentialStore(tmp_path)
    store.path.write_text(content)
    with pytest.raises(PycontainError, match=message) as caught:
        store.get("h:1")
    assert str(store.path) in caught.value.message and "\n" not in caught.value.message


def test_default_directory_honours_the_environment(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAIN_CONFIG", str(tmp_path / "here"))
    assert CredentialStore.default().path == tmp_path / "here" / "config.json"
    monkeypatch.delenv("PYCONTAIN_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert CredentialStore.default().path == tmp_path / ".config" / "pycontain" / "config.json"


# -- the verbs -----------------------------------------------------------------------------


class FakeAuthDaemon:
    """POST /auth accepts one user and password; POST /images/create records its headers."""

    def __init__(self) -> None:
        self.auth_bodies: list[Any] = []
        self.pull_headers: list[dict[str, str] | None] = []
        self.pull_reply = [{"status": "Status: Downloaded newer image for h:1/x:latest"}]

    def request(self, method: str, path: str, query: dict[str, Any] | None = None,
                body: Any = None, headers: dict[str, str] | None = None,
                **kwargs: Any) -> Any:
        if path == "/auth":
            self.auth_bodies.append(body)
            if (body["username"], body["password"]) != ("tester", "s3cret"):
                raise Unauthorized("login to h:1: incorrect username or password")
            return _Reply({"Status": "Login Succeeded", "IdentityToken": ""})
        assert path == "/images/create"
        self.pull_headers.append(headers)
        return _Reply(self.pull_reply)


class _Reply:
    def __init__(self, data: Any) -> None:
        self.data = data

    def json(self) -> Any:
        return self.data

    def iter_lines(self) -> Any:
        return iter([json.dumps(m).encode() + b"\n" for m in self.data])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeAuthDaemon:
    daemon = FakeAuthDaemon()

    class FakeClient:
        def __init__(self, host: str | None = None) -> None:
            self.host = "unix:///fake.sock"

        def request(self, *args: Any, **kwargs: Any) -> Any:
            return daemon.request(*args, **kwargs)

        def json(self, *args: Any, **kwargs: Any) -> Any:
            return daemon.request(*args, **kwargs).json()

    monkeypatch.setattr(pycontain.client, "Client", FakeClient)
    monkeypatch.setenv("PYCONTAIN_CONFIG", str(tmp_path / "cfg"))
    return daemon


def _cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str,
         stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_login_logout_and_pull_headers(fake: FakeAuthDaemon, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = CredentialStore(tmp_path / "cfg")
    code, out, err = _cli(capsys, monkeypatch, "login", "-u", "tester", "-p", "nope", "h:1")
    assert code == 1 and out == ""
    assert err.splitlines()[-1] == ("Error response from daemon: login to h:1: incorrect "
                                    "username or password")
    assert not store.path.exists()
    code, out, err = _cli(capsys, monkeypatch, "login", "-u", "tester", "--password-stdin",
                          "h:1", stdin="s3cret\n")
    assert (code, out) == (0, "Login Succeeded\n"), err
    assert fake.auth_bodies[-1] == {"username": "tester", "password": "s3cret",
                                    "serveraddress": "h:1"}
    assert store.get("h:1") == ("tester", "s3cret")
    code, out, err = _cli(capsys, monkeypatch, "pull", "h:1/x")
    assert code == 0, err
    header = (fake.pull_headers[-1] or {})["X-Registry-Auth"]
    assert json.loads(base64.urlsafe_b64decode(header))["password"] == "s3cret"
    code, out, _ = _cli(capsys, monkeypatch, "pull", "other:2/x")
    assert code == 0 and fake.pull_headers[-1] is None
    code, out, _ = _cli(capsys, monkeypatch, "login", "h:1")  # stored ones are tried first
    assert (code, out) == (0, "Authenticating with existing credentials...\nLogin Succeeded\n")
    assert (_cli(capsys, monkeypatch, "logout", "h:1")[:2]
            == (0, "Removing login credentials for h:1\n"))
    assert _cli(capsys, monkeypatch, "logout", "h:1")[:2] == (0, "Not logged in to h:1\n")
    _cli(capsys, monkeypatch, "pull", "h:1/x")
    assert fake.pull_headers[-1] is None


@pytest.mark.parametrize("argv, stdin, message", [
    (("login", "h:1"), "", "Cannot perform an interactive login from a non TTY device"),
    (("login", "-u", "tester", "h:1"), "", "Cannot perform an interactive login"),
    (("login", "--password-stdin", "h:1"), "x", "Must provide --username with --password-stdin"),
    (("login", "-u", "t", "-p", "x", "--password-stdin", "h:1"), "x", "mutually exclusive"),
    (("login", "-u", "t", "--password-stdin", "h:1"), "\n", "Password Required"),
    (("login", "-u", "t", "-p", "x", "bad host"), "", "invalid registry address"),
])
def test_login_refusals_ask_nothing(fake: FakeAuthDaemon, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...],
                                    stdin: str, message: str) -> None:
    code, out, err = _cli(capsys, monkeypatch, *argv, stdin=stdin)
    assert code == 1 and message in err and out == ""
    assert fake.auth_bodies == []


def test_unreadable_config_is_a_warning_for_pull(fake: FakeAuthDaemon, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text("{")
    code, _, err = _cli(capsys, monkeypatch, "pull", "h:1/x")
    assert code == 0 and "WARNING: Error loading config file" in err
    assert fake.pull_headers == [None]


def test_a_pull_stream_cut_short_is_an_error(fake: FakeAuthDaemon,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fake.pull_reply = [{"status": "Pulling from x", "id": "latest"}]
    code, _, err = _cli(capsys, monkeypatch, "pull", "h:1/x")
    assert code == 1
    assert err == ("the pycontain daemon at unix:///fake.sock closed the connection before "
                   "the pull of h:1/x:latest ended\n")
