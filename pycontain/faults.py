"""Fault points: places where the tests make an operation fail, to prove that it rolls back.

A fault point is a no-op unless its name is listed in the environment variable
``PYCONTAIN_FAULT_POINTS`` (comma-separated) when the daemon starts; only tests set it.
"""

from __future__ import annotations

import os

from pycontain.errors import PycontainError

_enabled: frozenset[str] = frozenset()


def enable_from_environment() -> None:
    global _enabled
    names = os.environ.get("PYCONTAIN_FAULT_POINTS", "")
    _enabled = frozenset(n.strip() for n in names.split(",") if n.strip())


def fault_point(name: str) -> None:
    """Raise PycontainError here when the tests asked for a fault at ``name``."""
    if name in _enabled:
        raise PycontainError(f"injected fault at {name}")
