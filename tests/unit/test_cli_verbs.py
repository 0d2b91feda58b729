"""Each verb end to end against a recording fake client: the API calls it makes, what it
prints, and its exit code.  (The real daemon is exercised by tests/e2e.)"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pycontain.client
from pycontain.cli.main import main
from pycontain.errors import DaemonUnreachable, InvalidArgument, NotFound, PycontainError

CID = "c0ffee" + "0" * 58
Handler = Callable[[dict[str, Any]], Any]


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", kind, len(payload)) + payload


class FakeResponse:
    def __init__(self, data: Any) -> None:
        self.data = data

    def json(self) -> Any:
        return self.data

    def read(self) -> bytes:
        return self.data if isinstance(self.data, bytes) else json.dumps(self.data).encode()

    def iter_chunks(self, size: int = 65536) -> Iterator[bytes]:
        data = self.read()
        # deliberately awkward chunk boundaries
        for start in range(0, len(data), 5):
            yield data[start : start + 5]

    def iter_lines(self) -> Iterator[bytes]:
        yield from self.read().splitlines(keepends=True)


class FakePending:
    def __init__(self, finish: Callable[[], FakeResponse]) -> None:
        self._finish = finish
        self.closed = False

    def finish(self) -> FakeResponse:
        return self._finish()

    def close(self) -> None:
        self.closed = True


class FakeDaemon:
    """Routes (method, path) to handlers and records every call in order."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.bodies: list[Any] = []
        self.uploads: list[bytes] = []

    def on(self, method: str, path: str, reply: Any = None) -> None:
        self.routes[(method, path)] = reply if callable(reply) else (lambda _q: reply)

    def _call(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
              upload: Any) -> FakeResponse:
        self.calls.append((method, path, dict(query or {})))
        self.bodies.append(body)
        if upload is not None:
            self.uploads.append(upload.read())
        handler = self.routes.get((method, path))
        if handler is None:
            raise NotFound(f"no route {method} {path}")
        return FakeResponse(handler(dict(query or {})))


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> FakeDaemon:
    fake = FakeDaemon()

    class FakeClient:
        def __init__(self, host: str | None = None) -> None:
            self.host = host

        def request(self, method: str, path: str, query: dict[str, Any] | None = None,
                    body: Any = None, upload: Any = None,
                    headers: dict[str, str] | None = None) -> FakeResponse:
            return fake._call(method, path, query, body, upload)

        def json(self, method: str, path: str, **kwargs: Any) -> Any:
            return self.request(method, path, **kwargs).json()

        def begin(self, method: str, path: str, query: dict[str, Any] | None = None,
                  **kwargs: Any) -> FakePending:
            fake.calls.append(("BEGIN " + method, path, dict(query or {})))
            return FakePending(lambda: fake._call(method, path, query, None, None))

    monkeypatch.setattr(pycontain.client, "Client", FakeClient)
    return fake


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---- run / create / start ---------------------------------------------------------------


def test_run_detached_creates_starts_and_prints_the_id(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.on("POST", "/containers/create", {"Id": CID, "Warnings": []})
    daemon.on("POST", f"/containers/{CID}/start")
    code, out, err = run_cli(
        capsys, "run", "-d", "--name", "web", "-e", "A=1", "-w", "/srv", "--hostname", "box",
        "-m", "64m", "--memory-swap", "128m", "--cpus", "0.5", "--cpu-shares", "512",
        "--pids-limit", "10", "-v", "/h:/c:ro", "-u", "nobody", "busybox", "sleep", "5")
    assert (code, out, err) == (0, CID + "\n", "")
    assert daemon.calls == [
        ("POST", "/containers/create", {"name": "web"}),
        ("POST", f"/containers/{CID}/start", {}),
    ]
    assert daemon.bodies[0] == {
        "Image": "busybox", "Cmd": ["sleep", "5"], "Env": ["A=1"], "WorkingDir": "/srv",
        "Hostname": "box", "User": "nobody", "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False,
        "HostConfig": {"AutoRemove": False, "Binds": ["/h:/c:ro"], "Memory": 64 << 20,
                       "MemorySwap": 128 << 20, "NanoCpus": 500_000_000, "CpuShares": 512,
                       "PidsLimit": 10},
    }


def test_run_minimal_body_omits_cmd(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.on("POST", "/containers/create", {"Id": CID, "Warnings": ["low memory"]})
    daemon.on("POST", f"/containers/{CID}/start")
    code, _, err = run_cli(capsys, "run", "-d", "busybox")
    assert code == 0
    assert err == "WARNING: low memory\n"
    assert daemon.calls[0] == ("POST", "/containers/create", {})
    body = daemon.bodies[0]
    assert "Cmd" not in body and "Entrypoint" not in body
    assert body["HostConfig"] == {"AutoRemove": False, "Binds": []}


def test_run_entrypoint_forms(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("POST", "/containers/create", {"Id": CID})
    daemon.on("POST", f"/containers/{CID}/start")
    run_cli(capsys, "run", "-d", "--entrypoint", "sh", "busybox", "-c", "true")
    run_cli(capsys, "run", "-d", "--entrypoint", "", "busybox")
    assert daemon.bodies[0]["Entrypoint"] == ["sh"]
    assert daemon.bodies[0]["Cmd"] == ["-c", "true"]
    assert daemon.bodies[2]["Entrypoint"] == ""


def test_run_env_file_and_inherited_variables(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    daemon.on("POST", "/containers/create", {"Id": CID})
    daemon.on("POST", f"/containers/{CID}/start")
    monkeypatch.setenv("FROM_HOST", "yes")
    monkeypatch.delenv("UNSET_HERE", raising=False)
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nX=1\n  Y= spaced \nFROM_HOST\nUNSET_HERE\n")
    code, _, _ = run_cli(capsys, "run", "-d", "--env-file", str(env_file), "-e", "FROM_HOST",
                         "-e", "Z=2", "busybox")
    assert code == 0
    assert daemon.bodies[0]["Env"] == ["X=1", "Y= spaced ", "FROM_HOST=yes", "FROM_HOST=yes",
                                       "Z=2"]


def test_run_missing_env_file_is_a_usage_error(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "run", "--env-file", "/nonexistent/env", "busybox")
    assert code == 125
    assert err == ("pycontain: open /nonexistent/env: no such file or directory.\n"
                   "See 'pycontain run --help'.\n")
    assert daemon.calls == []


def test_run_attached_streams_output_and_exits_with_the_code(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.on("POST", "/containers/create", {"Id": CID})
    daemon.on("POST", f"/containers/{CID}/attach",
              frame(1, b"hello\n") + frame(2, b"oops\n") + frame(1, b"") + frame(1, b"bye\n"))
    daemon.on("POST", f"/containers/{CID}/wait", {"StatusCode": 3, "Error": None})
    daemon.on("POST", f"/containers/{CID}/start")
    code, out, err = run_cli(capsys, "run", "busybox", "sh", "-c", "x")
    assert (code, out, err) == (3, "hello\nbye\n", "oops\n")
    assert daemon.bodies[0]["AttachStdout"] is True
    attach_query = {"stream": True, "stdout": True, "stderr": True}
    # Docker's order: attach and wait are registered before the start.
    assert daemon.calls == [
        ("POST", "/containers/create", {}),
        ("BEGIN POST", f"/containers/{CID}/attach", attach_query),
        ("BEGIN POST", f"/containers/{CID}/wait", {"condition": "next-exit"}),
        ("POST", f"/containers/{CID}/attach", attach_query),
        ("POST", f"/containers/{CID}/wait", {"condition": "next-exit"}),
        ("POST", f"/containers/{CID}/start", {}),
    ]


def test_attached_run_rm_waits_for_the_daemon_to_remove_the_container(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.on("POST", "/containers/create", {"Id": CID})
    daemon.on("POST", f"/containers/{CID}/attach", frame(1, b"x\n"))
    daemon.on("POST", f"/containers/{CID}/wait", {"StatusCode": 5})
    daemon.on("POST", f"/containers/{CID}/start")
    assert run_cli(capsys, "run", "--rm", "busybox", "sh", "-c", "exit 5") == (5, "x\n", "")
    assert daemon.bodies[0]["HostConfig"]["AutoRemove"] is True
    assert ("BEGIN POST", f"/containers/{CID}/wait", {"condition": "removed"}) in daemon.calls
    assert not any(call[0] == "DELETE" for call in daemon.calls)


def test_run_start_failure_exits_with_dockers_code(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(_: dict[str, Any]) -> Any:
        raise PycontainError('exec: "nope": executable file not found in $PATH')

    daemon.on("POST", "/containers/create", {"Id": CID})
    daemon.on("POST", f"/containers/{CID}/attach", b"")
    daemon.on("POST", f"/containers/{CID}/wait", {"StatusCode": 127})
    daemon.on("POST", f"/containers/{CID}/start", fail)
    code, _, err = run_cli(capsys, "run", "--rm", "busybox", "nope")
    assert code == 127
    assert err.count("\n") == 1 and "executable file not found" in err


def test_detached_run_rm_leaves_removal_to_the_daemon(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.on("POST", "/containers/create", {"Id": CID})
    daemon.on("POST", f"/containers/{CID}/start")
    assert run_cli(capsys, "run", "-d", "--rm", "busybox") == (0, CID + "\n", "")
    assert daemon.bodies[0]["HostConfig"]["AutoRemove"] is True
    assert [call[0] for call in daemon.calls] == ["POST", "POST"]


def test_start_attach_of_an_auto_remove_container_waits_for_removal(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.on("GET", "/containers/web/json", {"Id": CID, "HostConfig": {"AutoRemove": True}})
    daemon.on("POST", f"/containers/{CID}/attach", b"")
    daemon.on("POST", f"/containers/{CID}/start")
    daemon.on("POST", f"/containers/{CID}/wait", {"StatusCode": 0})
    assert run_cli(capsys, "start", "-a", "web") == (0, "", "")
    assert ("BEGIN POST", f"/containers/{CID}/wait", {"condition": "removed"}) in daemon.calls


def test_run_unknown_image(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    def missing(_: dict[str, Any]) -> Any:
        raise NotFound("No such image: nosuch:latest")

    def unknown(_: dict[str, Any]) -> Any:
        raise NotFound("manifest for nosuch:latest not found: manifest unknown")

    daemon.on("POST", "/containers/create", missing)
    daemon.on("POST", "/images/create", unknown)
    code, out, err = run_cli(capsys, "run", "nosuch")
    assert (code, out) == (125, "")
    assert err == ("Unable to find image 'nosuch:latest' locally\n"
                   "pycontain: Error response from daemon: manifest for nosuch:latest not found: "
                   "manifest unknown\n")
    code, out, err = run_cli(capsys, "run", "--pull", "never", "nosuch")
    assert (code, err) == (125, "pycontain: Error response from daemon: No such image: "
                           "nosuch:latest\n")


def test_run_name_in_use(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    def conflict(_: dict[str, Any]) -> Any:
        raise PycontainError('Conflict. The container name "/web" is already in use')

    daemon.on("POST", "/containers/create", conflict)
    code, _, err = run_cli(capsys, "run", "--name", "web", "busybox:1.36")
    assert code == 125
    assert err == ('pycontain: Error response from daemon: Conflict. The container name '
                   '"/web" is already in use\n')


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('exec: "nope": executable file not found in $PATH', 127),
        ("stat /bin/nope: no such file or directory", 127),
        ('exec: "/etc": permission denied', 126),
        ("cgroup setup failed", 125),
    ],
)
def test_run_start_failure_exit_codes(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], message: str, code: int
) -> None:
    def fail(_: dict[str, Any]) -> Any:
        raise PycontainError(message)

    daemon.on("POST", "/containers/create", {"Id": CID})
    daemon.on("POST", f"/containers/{CID}/attach", b"")
    daemon.on("POST", f"/containers/{CID}/wait", {"StatusCode": code})
    daemon.on("POST", f"/containers/{CID}/start", fail)
    status, out, err = run_cli(capsys, "run", "busybox", "nope")
    assert (status, out) == (code, "")
    assert err == f"pycontain: Error response from daemon: {message}\n"


def test_create_prints_the_id(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("POST", "/containers/create", {"Id": CID})
    assert run_cli(capsys, "create", "--rm", "busybox") == (0, CID + "\n", "")
    assert daemon.bodies[0]["AttachStdout"] is True
    assert daemon.bodies[0]["HostConfig"]["AutoRemove"] is True


def test_start_prints_names_and_reports_each_failure(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(_: dict[str, Any]) -> Any:
        raise NotFound("No such container: ghost")

    daemon.on("POST", "/containers/web/start")
    daemon.on("POST", "/containers/ghost/start", missing)
    daemon.on("POST", "/containers/db/start")
    code, out, err = run_cli(capsys, "start", "web", "ghost", "db")
    assert (code, out) == (1, "web\ndb\n")
    assert err == "Error response from daemon: No such container: ghost\n"


def test_start_attach(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("GET", "/containers/web/json", {"Id": CID, "HostConfig": {"AutoRemove": False}})
    daemon.on("POST", f"/containers/{CID}/start")
    daemon.on("POST", f"/containers/{CID}/attach", frame(1, b"hi\n"))
    daemon.on("POST", f"/containers/{CID}/wait", {"StatusCode": 7})
    assert run_cli(capsys, "start", "-a", "web") == (7, "hi\n", "")
    code, _, err = run_cli(capsys, "start", "-a", "a", "b")
    assert code == 1 and "cannot start and attach multiple containers" in err


# ---- lifecycle --------------------------------------------------------------------------


def test_stop_kill_restart_pause_rm_wait_queries(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in ("stop", "kill", "restart", "pause", "unpause"):
        daemon.on("POST", f"/containers/web/{action}")
    daemon.on("DELETE", "/containers/web")
    daemon.on("POST", "/containers/web/wait", {"StatusCode": 137})
    assert run_cli(capsys, "stop", "web") == (0, "web\n", "")
    assert run_cli(capsys, "stop", "-t", "3", "web") == (0, "web\n", "")
    assert run_cli(capsys, "kill", "-s", "HUP", "web") == (0, "web\n", "")
    assert run_cli(capsys, "kill", "web") == (0, "web\n", "")
    assert run_cli(capsys, "restart", "--time=1", "web") == (0, "web\n", "")
    assert run_cli(capsys, "pause", "web") == (0, "web\n", "")
    assert run_cli(capsys, "unpause", "web") == (0, "web\n", "")
    assert run_cli(capsys, "rm", "web") == (0, "web\n", "")
    assert run_cli(capsys, "rm", "-f", "web") == (0, "web\n", "")
    assert run_cli(capsys, "wait", "web") == (0, "137\n", "")
    assert daemon.calls == [
        ("POST", "/containers/web/stop", {}),
        ("POST", "/containers/web/stop", {"t": 3}),
        ("POST", "/containers/web/kill", {"signal": "HUP"}),
        ("POST", "/containers/web/kill", {}),
        ("POST", "/containers/web/restart", {"t": 1}),
        ("POST", "/containers/web/pause", {}),
        ("POST", "/containers/web/unpause", {}),
        ("DELETE", "/containers/web", {"force": None, "v": None}),
        ("DELETE", "/containers/web", {"force": True, "v": None}),
        ("POST", "/containers/web/wait", {}),
    ]


def test_rm_of_a_missing_container(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "rm", "foo") == (1, "", "Error response from daemon: no route "
                                            "DELETE /containers/foo\n")


# ---- ps, logs, top, inspect -------------------------------------------------------------


def test_ps_queries(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("GET", "/containers/json", [])
    run_cli(capsys, "ps")
    run_cli(capsys, "ps", "-a")
    run_cli(capsys, "ps", "-n", "2")
    run_cli(capsys, "ps", "-l")
    run_cli(capsys, "ps", "-a", "--filter", "status=exited", "--filter", "status=created",
            "-f", "name=web")
    assert [call[2] for call in daemon.calls] == [
        {},
        {"all": True},
        {"all": True, "limit": 2},
        {"all": True, "limit": 1},
        {"all": True, "filters": {"status": ["exited", "created"], "name": ["web"]}},
    ]


def test_ps_quiet_and_format(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("GET", "/containers/json", [
        {"Id": CID, "Names": ["/web"], "Image": "busybox", "Command": "sleep 9",
         "Created": 0, "State": "running", "Status": "Up 1 second"},
    ])
    assert run_cli(capsys, "ps", "-q") == (0, CID[:12] + "\n", "")
    assert run_cli(capsys, "ps", "-q", "--no-trunc") == (0, CID + "\n", "")
    assert run_cli(capsys, "ps", "--format", "{{.Names}} {{.State}}") == (0, "web running\n", "")
    code, out, err = run_cli(capsys, "ps", "-q", "--format", "{{.Names}}")
    assert (code, out) == (0, CID[:12] + "\n")
    assert "Ignoring custom format" in err
    code, out, err = run_cli(capsys, "ps", "--format", "{{.Bogus}}")
    assert (code, out) == (1, "")
    assert "can't evaluate field Bogus" in err


def test_logs(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("GET", "/containers/web/logs", frame(1, b"out\n") + frame(2, b"err\n"))
    assert run_cli(capsys, "logs", "-f", "--tail", "2", "-t", "web") == (0, "out\n", "err\n")
    assert run_cli(capsys, "logs", "web") == (0, "out\n", "err\n")
    assert [call[2] for call in daemon.calls] == [
        {"stdout": True, "stderr": True, "follow": True, "tail": "2", "timestamps": True},
        {"stdout": True, "stderr": True},
    ]


def test_top(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("GET", "/containers/web/top", {
        "Titles": ["UID", "PID", "CMD"], "Processes": [["root", "4242", "sleep 100"]]})
    code, out, _ = run_cli(capsys, "top", "web")
    assert code == 0
    assert out == ("UID                 PID                 CMD\n"
                   "root                4242                sleep 100\n")


def test_inspect(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    container = {"Id": CID, "State": {"Pid": 42, "Status": "running"},
                 "HostConfig": {"Memory": 0}}
    image = {"Id": "sha256:abc", "RepoTags": ["busybox:latest"]}
    daemon.on("GET", "/containers/web/json", container)
    daemon.on("GET", "/images/busybox/json", image)
    code, out, err = run_cli(capsys, "inspect", "web", "busybox")
    assert (code, err) == (0, "")
    assert out == json.dumps([container, image], indent=4) + "\n"
    assert out.startswith('[\n    {\n        "Id": ')
    assert run_cli(capsys, "inspect", "-f", "{{.State.Pid}} {{json .HostConfig}}", "web") == (
        0, '42 {"Memory":0}\n', "")
    assert daemon.calls[:3] == [
        ("GET", "/containers/web/json", {}),
        ("GET", "/containers/busybox/json", {}),
        ("GET", "/images/busybox/json", {}),
    ]


def test_inspect_missing(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "inspect", "ghost") == (1, "[]\n", "Error: No such object: ghost\n")
    assert run_cli(capsys, "inspect", "--type", "container", "ghost") == (
        1, "[]\n", "Error: No such container: ghost\n")
    assert run_cli(capsys, "inspect", "--type", "image", "ghost") == (
        1, "[]\n", "Error: No such image: ghost\n")
    code, _, err = run_cli(capsys, "inspect", "--type", "volume", "x")
    assert code == 1 and err == '"volume" is not a valid value for --type\n'
    code, _, err = run_cli(capsys, "inspect", "-f", "{{.X", "x")
    assert code == 1 and err.startswith("template parsing error:")


# ---- images -----------------------------------------------------------------------------


def test_images_table_and_quiet(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("GET", "/images/json", [
        {"Id": "sha256:" + "a" * 64, "RepoTags": ["busybox:latest", "bb:1"], "Created": 0,
         "Size": 1_236_000},
    ])
    code, out, _ = run_cli(capsys, "images")
    assert code == 0
    assert out.splitlines() == [
        "REPOSITORY   TAG       IMAGE ID       CREATED   SIZE",
        "busybox      latest    aaaaaaaaaaaa   N/A       1.24MB",
        "bb           1         aaaaaaaaaaaa   N/A       1.24MB",
    ]
    assert run_cli(capsys, "images", "-q") == (0, "aaaaaaaaaaaa\n", "")
    assert daemon.calls[0] == ("GET", "/images/json", {"all": None})


def test_rmi(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("DELETE", "/images/busybox:latest",
              [{"Untagged": "busybox:latest"}, {"Deleted": "sha256:abc"}])
    assert run_cli(capsys, "rmi", "-f", "busybox:latest") == (
        0, "Untagged: busybox:latest\nDeleted: sha256:abc\n", "")
    assert daemon.calls == [("DELETE", "/images/busybox:latest", {"force": True})]


def test_import_and_load(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(b"TAR")
    daemon.on("POST", "/images/create", b'{"status": "sha256:feed"}\n')
    daemon.on("POST", "/images/load", b'{"stream": "Loaded image: busybox:latest\\n"}\n')
    assert run_cli(capsys, "import", str(tarball), "mine:v1") == (0, "sha256:feed\n", "")
    assert run_cli(capsys, "import", str(tarball)) == (0, "sha256:feed\n", "")
    assert run_cli(capsys, "load", "-i", str(tarball)) == (
        0, "Loaded image: busybox:latest\n", "")
    assert daemon.calls == [
        ("POST", "/images/create", {"fromSrc": "-", "repo": "mine", "tag": "v1"}),
        ("POST", "/images/create", {"fromSrc": "-"}),
        ("POST", "/images/load", {}),
    ]
    assert daemon.uploads == [b"TAR", b"TAR", b"TAR"]
    code, _, err = run_cli(capsys, "import", str(tmp_path / "missing.tar"))
    assert code == 1 and err.endswith("missing.tar: no such file or directory\n")


def test_load_error_message(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str],
                            tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar"
    archive.write_bytes(b"x")

    def bad(_: dict[str, Any]) -> Any:
        raise InvalidArgument("invalid archive: manifest.json missing")

    daemon.on("POST", "/images/load", bad)
    assert run_cli(capsys, "load", "-i", str(archive)) == (
        1, "", "Error response from daemon: invalid archive: manifest.json missing\n")


# ---- system and top level ---------------------------------------------------------------


def test_info(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("GET", "/info", {"Containers": 3, "ContainersRunning": 1, "ContainersPaused": 0,
                               "ContainersStopped": 2, "Images": 1, "CgroupDriver": "cgroupfs",
                               "CgroupVersion": "1", "MemTotal": 2 << 30})
    code, out, _ = run_cli(capsys, "info")
    assert code == 0
    for line in (" Containers: 3", "  Running: 1", "  Paused: 0", "  Stopped: 2", " Images: 1",
                 " Cgroup Driver: cgroupfs", " Cgroup Version: 1", " Total Memory: 2GiB"):
        assert line in out.splitlines()


def test_version(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    daemon.on("GET", "/version", {"Version": "0.1.0", "ApiVersion": "1.41", "Os": "linux",
                                  "Arch": "amd64"})
    code, out, _ = run_cli(capsys, "version")
    assert code == 0
    assert out.startswith("Client:\n Version:")
    assert "Server:\n Engine:\n  Version:          0.1.0\n" in out
    assert "  API version:      1.41\n" in out


def test_daemon_unreachable(monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    message = ("Cannot connect to the pycontain daemon at unix:///run/pycontain.sock. "
               "Is the daemon running?")

    class DownClient:
        def __init__(self, host: str | None = None) -> None:
            pass

        def request(self, *args: Any, **kwargs: Any) -> Any:
            raise DaemonUnreachable(message)

        json = request

    monkeypatch.setattr(pycontain.client, "Client", DownClient)
    assert run_cli(capsys, "ps") == (1, "", message + "\n")
    assert run_cli(capsys, "run", "busybox") == (125, "", "pycontain: " + message + "\n")
    assert run_cli(capsys, "stop", "a", "b") == (1, "", message + "\n")


def test_real_client_reports_a_missing_socket(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    sock = f"unix://{tmp_path}/none.sock"
    assert run_cli(capsys, "-H", sock, "ps") == (
        1, "", f"Cannot connect to the pycontain daemon at {sock}. Is the daemon running?\n")


def test_host_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sock = f"unix://{tmp_path}/env.sock"
    monkeypatch.setenv("PYCONTAIN_HOST", sock)
    code, _, err = run_cli(capsys, "images")
    assert code == 1 and sock in err


def test_top_level_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys)
    assert code == 0
    assert "Usage:  pycontain [OPTIONS] COMMAND" in out
    for verb in ("run", "ps", "images", "inspect", "load", "import", "info"):
        assert f"\n  {verb} " in out
    assert run_cli(capsys, "--bogus")[0] == 125
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 1 and "'frobnicate' is not a pycontain command" in err


def test_verb_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "run", "--help")
    assert code == 0
    assert out.startswith("Usage:  pycontain run [OPTIONS] IMAGE [COMMAND] [ARG...]\n")
    assert "  -m, --memory bytes" in out


def test_usage_errors_exit_125(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "run", "--foo", "busybox") == (
        125, "", "unknown flag: --foo\nSee 'pycontain run --help'.\n")
    assert run_cli(capsys, "ps", "-z") == (
        125, "", "unknown shorthand flag: 'z' in -z\nSee 'pycontain ps --help'.\n")
    assert run_cli(capsys, "run", "-m", "6x", "busybox") == (
        125, "", "invalid argument \"6x\" for \"-m, --memory\" flag: invalid size: '6x'\n"
        "See 'pycontain run --help'.\n")


def test_ctrl_c_exits_130_quietly(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    class Interrupted:
        def __init__(self, host: str | None = None) -> None:
            pass

        def json(self, *args: Any, **kwargs: Any) -> Any:
            raise KeyboardInterrupt

    monkeypatch.setattr(pycontain.client, "Client", Interrupted)
    assert run_cli(capsys, "ps") == (130, "", "")


def test_interrupted_attached_run_exits_130_quietly(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(_: dict[str, Any]) -> Any:
        raise KeyboardInterrupt

    daemon.on("POST", "/containers/create", {"Id": CID})
    daemon.on("POST", f"/containers/{CID}/attach", interrupted)
    daemon.on("POST", f"/containers/{CID}/wait", {"StatusCode": 0})
    assert run_cli(capsys, "run", "--rm", "busybox", "sleep", "9") == (130, "", "")


def test_a_multi_line_daemon_error_prints_as_one_line(
    daemon: FakeDaemon, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    archive = tmp_path / "bad.tar"
    archive.write_bytes(b"x")

    def bad(_: dict[str, Any]) -> Any:
        raise InvalidArgument("not a tar archive:\n- method gz: bad\n- method tar: bad\n")

    daemon.on("POST", "/images/load", bad)
    daemon.on("POST", "/containers/create", bad)
    assert run_cli(capsys, "load", "-i", str(archive)) == (
        1, "", "Error response from daemon: not a tar archive: - method gz: bad "
        "- method tar: bad\n")
    assert run_cli(capsys, "create", "busybox")[2].count("\n") == 1
