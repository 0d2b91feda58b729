"""Fixtures shared by the unit tests of the layer extractor."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    """A directory next to the layer that no layer may touch."""
    path = tmp_path / "sentinel"
    path.mkdir()
    (path / "secret").write_text("keep me")
    return path


@pytest.fixture
def layer_root(tmp_path: Path) -> Path:
    path = tmp_path / "layer"
    path.mkdir()
    return path
