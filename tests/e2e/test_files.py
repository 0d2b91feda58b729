"""A container's files end to end: cp both ways (files, directories, symlinks, hostile
symlinks), export + import, diff, commit then run, logs --since/--until."""

from __future__ import annotations

import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon

pytestmark = pytest.mark.root


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A directory that exists on the host; containers make a path of the same name."""
    target = tmp_path / "host-secret"
    target.mkdir()
    (target / "secret").write_text("host secret\n")
    return target


@pytest.fixture
def running(daemon: Daemon, host_dir: Path) -> Iterator[str]:
    """A running container holding files, a directory, symlinks and two hostile symlinks:
    /evil -> the host dir's path (absolute), /evil2 -> the same through many ``..``."""
    script = (f"mkdir -p {host_dir} /data/sub && echo container secret > {host_dir}/secret"
              f" && ln -s {host_dir} /evil && ln -s ../../../../../../..{host_dir} /evil2"
              " && echo one > /data/one && echo two > /data/sub/two && ln -s one /data/link"
              " && touch /ready && sleep 600")
    cid = daemon.cli("run", "-d", "busybox", "sh", "-c", script, check=True).stdout.strip()
    for _ in range(100):
        if daemon.cli("cp", f"{cid}:/ready", "-").returncode == 0:
            break
        time.sleep(0.1)
    yield cid
    daemon.cli("rm", "-f", cid)


def _host_untouched(host_dir: Path) -> None:
    assert sorted(p.name for p in host_dir.iterdir()) == ["secret"]
    assert (host_dir / "secret").read_text() == "host secret\n"


def test_cp_out_files_directories_and_symlinks(daemon: Daemon, running: str,
                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    daemon.cli("cp", f"{running}:/data/one", str(out / "renamed"), check=True)
    assert (out / "renamed").read_text() == "one\n"
    daemon.cli("cp", f"{running}:/data", str(out), check=True)
    assert (out / "data" / "sub" / "two").read_text() == "two\n"
    assert (out / "data" / "link").is_symlink()
    assert (out / "data" / "link").readlink() == Path("one")
    daemon.cli("cp", f"{running}:/data/link", str(out / "alone"), check=True)
    assert (out / "alone").readlink() == Path("one")
    missing = daemon.cli("cp", f"{running}:/nope", str(out))
    assert missing.returncode == 1
    assert missing.stderr.strip() == ("Error response from daemon: Could not find the file "
                                      "/nope in container")


def test_cp_in_files_directories_and_symlinks(daemon: Daemon, running: str,
                                              tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "f").write_text("from the host\n")
    (src / "ln").symlink_to("deep/f")
    daemon.cli("cp", str(src), f"{running}:/data/", check=True)
    daemon.cli("cp", str(src / "deep" / "f"), f"{running}:/data/newname", check=True)
    shown = daemon.cli("cp", f"{running}:/data", "-", check=True)
    out = tmp_path / "back"
    out.mkdir()
    daemon.cli("cp", f"{running}:/data", str(out), check=True)
    assert (out / "data" / "src" / "deep" / "f").read_text() == "from the host\n"
    assert (out / "data" / "src" / "ln").readlink() == Path("deep/f")
    assert (out / "data" / "newname").read_text() == "from the host\n"
    assert shown.stdout  # the tar went to stdout


@pytest.mark.parametrize("link", ["/evil", "/evil2"])
def test_cp_never_follows_a_hostile_symlink_out_of_the_container(
        daemon: Daemon, running: str, host_dir: Path, tmp_path: Path, link: str) -> None:
    out = tmp_path / "got"
    daemon.cli("cp", f"{running}:{link}/secret", str(out), check=True)
    assert out.read_text() == "container secret\n"
    payload = tmp_path / "payload"
    payload.write_text("pwned\n")
    daemon.cli("cp", str(payload), f"{running}:{link}/payload", check=True)
    daemon.cli("cp", str(payload), f"{running}:{link}/secret", check=True)
    _host_untouched(host_dir)
    back = tmp_path / "back"
    daemon.cli("cp", f"{running}:{host_dir}/payload", str(back), check=True)
    assert back.read_text() == "pwned\n"


def test_cp_directory_contents_ownership_and_follow_link(daemon: Daemon, running: str,
                                                         tmp_path: Path) -> None:
    """``DIR/.`` copies the contents; without -a the copies are the caller's (out) or
    root's (in), with -a they keep their ids; -L follows a link inside the container."""
    daemon.cli("exec", running, "chown", "1234:5678", "/data/one", check=True)
    daemon.cli("cp", f"{running}:/data/.", str(tmp_path / "contents"), check=True)
    assert sorted(p.name for p in (tmp_path / "contents").iterdir()) == ["link", "one", "sub"]
    assert (tmp_path / "contents" / "one").stat().st_uid == 0
    daemon.cli("cp", "-a", f"{running}:/data/one", str(tmp_path / "kept"), check=True)
    kept = (tmp_path / "kept").stat()
    assert (kept.st_uid, kept.st_gid) == (1234, 5678)
    daemon.cli("cp", f"{running}:/data/link", str(tmp_path / "as-link"), check=True)
    assert (tmp_path / "as-link").is_symlink()
    daemon.cli("cp", "-L", f"{running}:/data/link", str(tmp_path / "followed"), check=True)
    assert (tmp_path / "followed").read_text() == "one\n"
    assert not (tmp_path / "followed").is_symlink()

    local = tmp_path / "local"
    (local / "deeper").mkdir(parents=True)
    (local / "file").write_text("local file\n")
    os.chown(local / "file", 4321, 4321)
    daemon.cli("cp", f"{local}/.", f"{running}:/data/sub", check=True)
    daemon.cli("cp", f"{local}/.", f"{running}:/fresh", check=True)
    daemon.cli("cp", "-a", str(local / "file"), f"{running}:/archived", check=True)
    listing = daemon.cli("exec", running, "sh", "-c",
                         "ls /data/sub /fresh; stat -c %u:%g /fresh/file /archived",
                         check=True).stdout.split()
    assert listing == ["/data/sub:", "deeper", "file", "two", "/fresh:", "deeper", "file",
                       "0:0", "4321:4321"]


def test_cp_into_and_out_of_a_stopped_container(daemon: Daemon, running: str,
                                                host_dir: Path, tmp_path: Path) -> None:
    daemon.cli("stop", "-t", "0", running, check=True)
    payload = tmp_path / "payload"
    payload.write_text("while stopped\n")
    daemon.cli("cp", str(payload), f"{running}:/evil/stopped", check=True)
    daemon.cli("cp", str(payload), f"{running}:/data/one", check=True)
    _host_untouched(host_dir)
    out = tmp_path / "out"
    daemon.cli("cp", f"{running}:/evil2/stopped", str(out), check=True)
    assert out.read_text() == "while stopped\n"
    daemon.cli("start", running, check=True)
    seen = daemon.cli("cp", f"{running}:/data/one", "-", check=True).stdout
    assert "while stopped" in seen


def test_export_then_import_round_trips(daemon: Daemon, running: str, tmp_path: Path) -> None:
    archive = tmp_path / "export.tar"
    daemon.cli("export", "-o", str(archive), running, check=True)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"bin/busybox", "data/one", "data/sub/two", "data/link", "evil"} <= names
    assert not any(n.startswith("proc/") for n in names)
    daemon.cli("import", str(archive), "exported:1", check=True)
    ran = daemon.cli("run", "--rm", "exported:1", "cat", "/data/sub/two", check=True)
    assert ran.stdout == "two\n"
    daemon.cli("rmi", "exported:1", check=True)


def test_diff_lists_added_changed_and_deleted_paths(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "busybox", "sh", "-c",
                     "mkdir /new && echo x > /new/f && rm /bin/ls && echo y > /etc/motd",
                     check=True).stdout.strip()
    daemon.cli("wait", cid, check=True)
    lines = daemon.cli("diff", cid, check=True).stdout.splitlines()
    assert "A /new" in lines and "A /new/f" in lines
    assert "C /bin" in lines and "D /bin/ls" in lines
    assert "C /etc" in lines and "A /etc/motd" in lines
    assert lines == sorted(lines, key=lambda line: line[2:])
    daemon.cli("rm", cid, check=True)


def test_commit_then_run_the_new_image(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "-e", "GREETING=hi", "-w", "/work", "busybox", "sh", "-c",
                     "mkdir -p /work && echo committed > /work/file && rm /bin/ls",
                     check=True).stdout.strip()
    daemon.cli("wait", cid, check=True)
    image_id = daemon.cli("commit", cid, "snap:v1", check=True).stdout.strip()
    assert image_id.startswith("sha256:")
    ran = daemon.cli("run", "--rm", "snap:v1", "sh", "-c",
                     "cat file; echo $GREETING; pwd; ls /bin/ls || echo gone", check=True)
    assert ran.stdout.splitlines() == ["committed", "hi", "/work", "gone"]
    inspected = daemon.inspect("snap:v1")
    assert isinstance(inspected["RootFS"], dict)
    assert len(inspected["RootFS"]["Layers"]) == 2
    daemon.cli("rm", cid, check=True)
    daemon.cli("rmi", "snap:v1", check=True)


def test_logs_since_and_until(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "busybox", "sh", "-c",
                     "echo early; sleep 2; echo late", check=True).stdout.strip()
    daemon.cli("wait", cid, check=True)
    entries = [json.loads(line) for line in
               (daemon.data_root / "containers" / cid / f"{cid}-json.log").read_text()
               .splitlines()]
    late = entries[1]["time"]
    assert daemon.cli("logs", "--since", late, cid, check=True).stdout == "late\n"
    assert daemon.cli("logs", "--until", late, cid, check=True).stdout == "early\n"
    assert daemon.cli("logs", "--since", "1h", cid, check=True).stdout == "early\nlate\n"
    assert daemon.cli("logs", "--until", "1h", cid, check=True).stdout == ""
    bad = daemon.cli("logs", "--since", "yesterday", cid)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    daemon.cli("rm", cid, check=True)


def test_logs_follow_until_a_time_to_come(daemon: Daemon) -> None:
    """``logs -f --until T``: follows the running container and ends at T."""
    cid = daemon.cli("run", "-d", "busybox", "sh", "-c",
                     "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.1; done",
                     check=True).stdout.strip()
    try:
        until = time.time() + 1.5
        started = time.monotonic()
        out = daemon.cli("logs", "-f", "-t", "--until", f"{until:.3f}", cid, check=True)
        took = time.monotonic() - started
        lines = out.stdout.splitlines()
        assert 0.8 < took < 8 and len(lines) >= 5
        assert lines[-1].split()[1].startswith("line")
        time.sleep(0.3)  # more lines after the instant, which neither call shows
        assert daemon.cli("logs", "-t", "--until", f"{until:.3f}", cid,
                          check=True).stdout == out.stdout
    finally:
        daemon.cli("rm", "-f", cid)


def test_logs_rotate_and_keep_the_newest_files(daemon: Daemon) -> None:
    cid = daemon.cli("run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
                     "busybox", "sh", "-c", "i=0; while [ $i -lt 200 ]; do i=$((i+1));"
                     " echo line$i; done", check=True).stdout.strip()
    daemon.cli("wait", cid, check=True)
    directory = daemon.data_root / "containers" / cid
    files = sorted(p.name for p in directory.glob(f"{cid}-json.log*"))
    assert files == [f"{cid}-json.log", f"{cid}-json.log.1", f"{cid}-json.log.2"]
    assert all((directory / name).stat().st_size <= 1024 for name in files)
    kept = [json.loads(line)["log"].strip() for name in reversed(files)
            for line in (directory / name).read_text().splitlines()]
    shown = daemon.cli("logs", cid, check=True).stdout.split()
    assert shown == kept and shown[-1] == "line200"
    first = int(shown[0].removeprefix("line"))
    assert shown == [f"line{n}" for n in range(first, 201)]
    assert daemon.cli("logs", "--tail", "2", cid, check=True).stdout.split() == [
        "line199", "line200"]
    daemon.cli("rm", cid, check=True)


def test_logs_follow_and_attach_read_across_rotations(daemon: Daemon) -> None:
    cid = daemon.cli("create", "--log-opt", "max-size=600", "--log-opt", "max-file=2",
                     "busybox", "sh", "-c", "i=0; while [ $i -lt 40 ]; do i=$((i+1));"
                     " echo line$i; sleep 0.05; done", check=True).stdout.strip()
    attached = daemon.cli("start", "-a", cid, timeout=60)
    expected = [f"line{n}" for n in range(1, 41)]
    assert attached.stdout.split() == expected
    since = f"{time.time():.6f}"
    daemon.cli("start", cid, check=True)
    followed = daemon.cli("logs", "-f", "--since", since, cid, timeout=60)
    assert followed.stdout.split() == expected
    daemon.cli("rm", "-f", cid, check=True)


def test_log_options_are_checked(daemon: Daemon) -> None:
    for opts, message in ((["--log-opt", "max-file=3"], "max-file cannot be set without "
                           "max-size"),
                          (["--log-opt", "colour=red"], "unknown log opt 'colour'"),
                          (["--log-driver", "syslog"], "logging driver syslog is not supported")):
        bad = daemon.cli("create", *opts, "busybox", "true")
        assert bad.returncode == 125 and message in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
