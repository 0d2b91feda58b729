"""Times as Docker's API writes them (RFC 3339 with nanoseconds, UTC)."""

from __future__ import annotations

import time

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339_nano(ns: int) -> str:
    """``2026-11-28T00:02:45.123456789Z`` for ns since the epoch; 0 gives the zero time."""
    if ns <= 0:
        return ZERO_TIME
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def parse_rfc3339_nano(text: str) -> int:
    """The inverse of rfc3339_nano for the times pycontain writes (UTC, 'Z')."""
    if not text or text == ZERO_TIME:
        return 0
    whole, _, frac = text.rstrip("Z").partition(".")
    seconds = int(time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone)
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
