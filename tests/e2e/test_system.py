"""`system df` and `system prune`: exact sizes, and nothing in use is removed."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

from tests.conftest import isolated_daemon

pytestmark = pytest.mark.root


def _flat_rootfs(path: Path) -> Path:
    data = Path("/bin/busybox").read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path


def test_df_and_prune(test_images: Path, tmp_path: Path) -> None:
    with isolated_daemon(test_images) as d:
        d.cli("run", "--name", "writer", "busybox", "sh", "-c",
              "head -c 1000000 /dev/zero > /big", check=True)
        d.cli("run", "-d", "--name", "busy", "busybox", "sleep", "300", check=True)
        dangling = d.cli("import", str(_flat_rootfs(tmp_path / "flat.tar")),
                         check=True).stdout.strip()
        df = d.cli("system", "df", check=True).stdout.splitlines()
        assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        images = df[1].split()
        assert images[:3] == ["Images", "2", "1"]
        containers = df[2].split()
        assert containers[:3] == ["Containers", "2", "1"]
        assert re.fullmatch(r"1(\.0+)?MB", containers[3]), containers
        assert containers[4].startswith("1MB") and containers[5] == "(100%)"
        pruned = d.cli("system", "prune", "-f", check=True).stdout
        assert "Deleted Containers:" in pruned and "busy" not in d.cli(
            "ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").stdout
        assert f"deleted: {dangling}" in pruned
        total = re.search(r"Total reclaimed space: ([\d.]+)MB", pruned)
        assert total and float(total.group(1)) > 1.0, pruned
        assert d.cli("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["busy"]
        assert "busybox" in d.cli("images", check=True).stdout  # in use: kept even by -a
        all_pruned = d.cli("system", "prune", "-a", "-f", check=True).stdout
        assert "busybox" not in all_pruned
        d.cli("rm", "-f", "busy", check=True)
        all_pruned = d.cli("system", "prune", "-a", "-f", check=True).stdout
        assert "untagged: busybox:latest" in all_pruned
        assert d.cli("images", "-q").stdout == ""
        assert list((d.data_root / "image" / "layers").iterdir()) == []
