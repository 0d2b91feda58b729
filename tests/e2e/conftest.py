"""Fixtures of the end-to-end tests that more than one module uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, isolated_daemon
from tests.registry_server import LocalRegistry, running_registry

MULTILAYER = "pycontain-test/multilayer"


@pytest.fixture(scope="session")
def registry(test_images: Path) -> Iterator[LocalRegistry]:
    """Debian's docker-registry on 127.0.0.1, with busybox (library/busybox:latest) and
    the multi-layer image (MULTILAYER:latest) pushed by skopeo."""
    with running_registry() as reg:
        reg.push_archive(test_images / "busybox.tar", "library/busybox:latest")
        reg.push_archive(test_images / "multilayer.tar", f"{MULTILAYER}:latest")
        yield reg


@pytest.fixture(scope="module")
def module_daemon(test_images: Path) -> Iterator[Daemon]:
    """A daemon of the module's own, for a module whose pulls, tags, saves and prunes
    (digest references of pulled images included) must stay out of the other modules'
    way: it makes this its ``daemon``."""
    with isolated_daemon(test_images) as d:
        yield d
