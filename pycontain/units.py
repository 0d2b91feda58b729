"""Sizes and CPU amounts as Docker's command line reads and prints them.

Standard library only (the CLI imports this on its fast path).

- ``parse_bytes("64m")`` reads a memory size the way ``docker run -m`` does
  (go-units' RAMInBytes: 1024-based, case-insensitive, optional ``b``/``ib``).
- ``format_size_decimal(1234567)`` prints ``"1.23MB"`` (go-units' HumanSize,
  1000-based, with the precision ``docker images`` uses).
- ``format_size_binary(2**30)`` prints ``"1GiB"`` (go-units' BytesSize).
- ``parse_cpus("0.5")`` turns ``--cpus`` into nano CPUs.
"""

from __future__ import annotations

import re

from pycontain.errors import InvalidArgument

__all__ = ["format_size_binary", "format_size_decimal", "parse_bytes", "parse_cpus"]

_SIZE = re.compile(r"(\d+(?:\.\d+)*) ?([kmgtp])?i?b?", re.IGNORECASE | re.ASCII)
_BINARY_MULTIPLIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def parse_bytes(text: str) -> int:
    """``"64m"`` -> 67108864; InvalidArgument ``invalid size: '6x'`` for anything else.

    Units are binary (k = 1024), case-insensitive, with an optional ``b`` or ``ib``
    suffix; a decimal amount is allowed (``"1.5g"``) and the result is truncated.
    """
    match = _SIZE.fullmatch(text)
    if match is None:
        raise InvalidArgument(f"invalid size: '{text}'")
    try:
        amount = float(match.group(1))
    except ValueError as exc:  # "1.2.3" passes the pattern, as it does in go-units
        raise InvalidArgument(f"invalid size: '{text}'") from exc
    unit = (match.group(2) or "").lower()
    return int(amount * _BINARY_MULTIPLIERS.get(unit, 1))


def _scaled(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    index = 0
    while size >= base and index < len(units) - 1:
        size /= base
        index += 1
    return size, units[index]


def format_size_decimal(size: float, precision: int = 3) -> str:
    """``1234567`` -> ``"1.23MB"``: 1000-based, ``precision`` significant digits."""
    amount, unit = _scaled(float(size), 1000.0, _DECIMAL_UNITS)
    return f"{amount:.{precision}g}{unit}"


def format_size_binary(size: float) -> str:
    """``2**30`` -> ``"1GiB"``: 1024-based with four significant digits."""
    amount, unit = _scaled(float(size), 1024.0, _BINARY_UNITS)
    return f"{amount:.4g}{unit}"


def parse_cpus(text: str) -> int:
    """``--cpus 0.5`` -> 500000000 nano CPUs.

    InvalidArgument for anything that is not a positive number, or that is finer
    than one nano CPU.
    """
    from decimal import Decimal, InvalidOperation  # only `run --cpus` needs it

    try:
        amount = Decimal(text.strip())
    except InvalidOperation as exc:
        raise InvalidArgument(f"failed to parse {text} as a rational number") from exc
    if not amount.is_finite():
        raise InvalidArgument(f"failed to parse {text} as a rational number")
    if amount <= 0:
        raise InvalidArgument(f"invalid value {text}: the number of CPUs must be positive")
    nano = amount * 1_000_000_000
    if nano != nano.to_integral_value():
        raise InvalidArgument("value is too precise")
    return int(nano)
