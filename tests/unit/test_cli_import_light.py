"""The CLI's fast path (run, create, start, ps) imports nothing but the standard library."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {"argparse", "asyncio", "h11", "pyroute2", "psutil", "prctl"}


def imported_modules(code: str) -> set[str]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                            capture_output=True, text=True, check=True)
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


@pytest.mark.parametrize(
    "code",
    [
        "import pycontain.cli.main",
        "import pycontain.cli.main, pycontain.cli.run, pycontain.cli.ps, pycontain.client",
    ],
)
def test_fast_path_imports_only_the_standard_library(code: str) -> None:
    baseline = imported_modules("pass")
    new = imported_modules(code) - baseline
    assert new, "importtime reported nothing"
    tops = {name.split(".")[0] for name in new}
    assert not tops & FORBIDDEN
    foreign = {top for top in tops
               if top != "pycontain" and top not in sys.stdlib_module_names}
    assert not foreign, f"third-party imports on the fast path: {sorted(foreign)}"


def test_render_module_the_daemon_imports_is_light() -> None:
    new = imported_modules("import pycontain.cli.render") - imported_modules("pass")
    tops = {name.split(".")[0] for name in new}
    assert tops <= set(sys.stdlib_module_names) | {"pycontain"}
    assert not tops & FORBIDDEN
