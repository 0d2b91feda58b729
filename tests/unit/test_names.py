"""pycontain.containers.names: generated names and Docker's naming rule."""

from __future__ import annotations

import random
import re

import pytest

from pycontain.containers.names import (
    ADJECTIVES,
    SURNAMES,
    generate_name,
    is_full_id,
    validate_name,
)
from pycontain.errors import InvalidArgument, PycontainError


def test_word_lists_are_sizeable_unique_and_valid() -> None:
    assert len(ADJECTIVES) >= 60
    assert len(SURNAMES) >= 80
    assert len(set(ADJECTIVES)) == len(ADJECTIVES)
    assert len(set(SURNAMES)) == len(SURNAMES)
    for word in (*ADJECTIVES, *SURNAMES):
        assert re.fullmatch(r"[a-z][a-z_]*", word), word


def test_generated_name_is_adjective_surname_and_valid() -> None:
    name = generate_name(lambda _: False, random.Random(1))
    adjective, _, surname = name.partition("_")
    assert adjective in ADJECTIVES
    assert surname in SURNAMES
    assert validate_name(name) == name


def test_collisions_are_retried() -> None:
    taken = {generate_name(lambda _: False, random.Random(7))}
    name = generate_name(taken.__contains__, random.Random(7))
    assert name not in taken


def test_a_digit_is_appended_when_plain_names_keep_colliding() -> None:
    seen: list[str] = []

    def is_taken(name: str) -> bool:
        seen.append(name)
        return not name[-1].isdigit()

    name = generate_name(is_taken, random.Random(3))
    assert re.fullmatch(r"[a-z_]+[0-9]", name)
    assert len(seen) == 4


def test_gives_up_with_an_error_when_every_name_is_taken() -> None:
    with pytest.raises(PycontainError, match="unique container name"):
        generate_name(lambda _: True, random.Random(0))


@pytest.mark.parametrize("name", ["ab", "web1", "my-app.v2_x", "/leading", "0day", "A-b"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name.lstrip("/")


@pytest.mark.parametrize("name", ["", "a", "/", "-x", "_x", ".x", "has space", "x/y", "é1",
                                  "ok\n", "a$b", "//ab"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_name(name)
    assert info.value.message == (
        f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )


def test_is_full_id() -> None:
    assert is_full_id("a" * 64)
    assert not is_full_id("a" * 63)
    assert not is_full_id("A" * 64)
    assert not is_full_id("g" * 64)
    assert not is_full_id("a" * 64 + "\n")
