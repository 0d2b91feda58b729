"""``login``/``logout`` against a real basic-auth registry (Debian's docker-registry with an
htpasswd file, on 127.0.0.1).  The client's credentials file lives in the test's own
``PYCONTAIN_CONFIG``."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BIN, Daemon
from tests.registry_server import LocalRegistry, running_registry

USER, PASSWORD = "tester", "s3cret"


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "client-config"
    monkeypatch.setenv("PYCONTAIN_CONFIG", str(directory))
    return directory


@pytest.fixture
def private_registry(test_images: Path) -> Iterator[LocalRegistry]:
    with running_registry((USER, PASSWORD)) as reg:
        reg.push_archive(test_images / "busybox.tar", "private/busybox:latest")
        reg.push_archive(test_images / "busybox.tar", "private/other:latest")
        yield reg


def test_login_pull_logout(daemon: Daemon, private_registry: LocalRegistry,
                           config_dir: Path) -> None:
    address = private_registry.address
    name = f"{address}/private/busybox"
    config = config_dir / "config.json"
    denied = daemon.cli("pull", name)
    assert denied.returncode == 1 and "user name and password" in denied.stderr

    wrong = daemon.cli("login", "-u", USER, "--password-stdin", address, input=b"nope\n")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.count("\n") == 1, wrong.stderr
    assert wrong.stderr.startswith(f"Error response from daemon: login to {address}: "
                                   "incorrect username or password")
    assert not config.exists()

    right = daemon.cli("login", "-u", USER, "--password-stdin", address,
                       input=PASSWORD.encode() + b"\n")
    assert (right.returncode, right.stdout) == (0, "Login Succeeded\n"), right.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert list(json.loads(config.read_text())["auths"]) == [address]

    pulled = daemon.cli("pull", name, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    assert f"Status: Downloaded newer image for {name}:latest" in pulled.stdout
    other = f"{address}/private/other"
    run = daemon.cli("run", "--rm", other, "echo", "private")  # run's own pull sends them too
    assert (run.returncode, run.stdout) == (0, "private\n"), run.stderr

    out = daemon.cli("logout", address, check=True).stdout
    assert out == f"Removing login credentials for {address}\n"
    assert json.loads(config.read_text())["auths"] == {}
    daemon.cli("rmi", name, other, check=True)
    again = daemon.cli("pull", name)
    assert again.returncode == 1 and "user name and password" in again.stderr


def test_login_prompts_on_a_terminal(daemon: Daemon, private_registry: LocalRegistry,
                                     config_dir: Path) -> None:
    import pexpect

    address = private_registry.address
    child = pexpect.spawn(str(BIN / "pycontain"), ["-H", daemon.host, "login", address],
                          encoding="utf-8", timeout=30)
    child.logfile_read = seen = io.StringIO()
    try:
        child.expect_exact("Username: ")
        child.sendline(USER)
        child.expect_exact("Password: ")
        child.sendline(PASSWORD)
        child.expect_exact("Login Succeeded")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert USER in seen.getvalue() and PASSWORD not in seen.getvalue()  # not echoed
    assert list(json.loads((config_dir / "config.json").read_text())["auths"]) == [address]
    assert daemon.cli("logout", address, check=True).stdout.startswith("Removing")
