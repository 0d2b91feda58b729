"""pycontain.units: Docker's size and CPU parsing and printing."""

from __future__ import annotations

import pytest

from pycontain.errors import InvalidArgument
from pycontain.units import format_size_binary, format_size_decimal, parse_bytes, parse_cpus


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("32", 32),
        ("32b", 32),
        ("32B", 32),
        ("32k", 32 * 1024),
        ("32K", 32 * 1024),
        ("32kb", 32 * 1024),
        ("32Kib", 32 * 1024),
        ("32 kb", 32 * 1024),
        ("64m", 64 * 1024 * 1024),
        ("64MB", 64 * 1024 * 1024),
        ("64mib", 64 * 1024 * 1024),
        ("1g", 1 << 30),
        ("1.5g", int(1.5 * (1 << 30))),
        ("0.5m", 512 * 1024),
        ("2t", 2 << 40),
        ("1p", 1 << 50),
    ],
)
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(
    "text", ["", "6x", "m", "-1", "1.", ".5m", "1..5m", "1.2.3", "12mbb", "1 m b", " 1m",
             "1m ", "1m\n", "1e3", "１m"],
)
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_bytes(text)
    assert info.value.message == f"invalid size: '{text}'"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (1024, "1.02kB"),
        (1_236_000, "1.24MB"),
        (4_261_000, "4.26MB"),
        (77_800_000, "77.8MB"),
        (123_456_789, "123MB"),
        (999_500, "1e+03kB"),
        (2 * 10**9, "2GB"),
        (10**24, "1YB"),
        (10**27, "1e+03YB"),
    ],
)
def test_format_size_decimal(size: int, expected: str) -> None:
    assert format_size_decimal(size) == expected


def test_format_size_decimal_precision() -> None:
    assert format_size_decimal(2_746_000, precision=4) == "2.746MB"


@pytest.mark.parametrize(
    ("size", "expected"),
    [(0, "0B"), (1024, "1KiB"), (1 << 30, "1GiB"), (2_075_000_000, "1.932GiB")],
)
def test_format_size_binary(size: int, expected: str) -> None:
    assert format_size_binary(size) == expected


@pytest.mark.parametrize(
    ("text", "nano"),
    [("0.5", 500_000_000), ("1", 1_000_000_000), ("2.25", 2_250_000_000),
     ("0.000000001", 1), (".5", 500_000_000)],
)
def test_parse_cpus(text: str, nano: int) -> None:
    assert parse_cpus(text) == nano


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "failed to parse abc as a rational number"),
        ("", "failed to parse  as a rational number"),
        ("nan", "failed to parse nan as a rational number"),
        ("inf", "failed to parse inf as a rational number"),
        ("0", "invalid value 0: the number of CPUs must be positive"),
        ("-1", "invalid value -1: the number of CPUs must be positive"),
        ("0.0000000001", "value is too precise"),
    ],
)
def test_parse_cpus_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_cpus(text)
    assert info.value.message == message
