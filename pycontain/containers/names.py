"""Container names: generated ``adjective_surname`` names and Docker's naming rule.

``generate_name(is_taken)`` draws a name no one holds; ``validate_name(name)``
enforces ``^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`` and returns the name without its
leading slash.  Standard library only.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from pycontain.errors import InvalidArgument, PycontainError

__all__ = ["ADJECTIVES", "SURNAMES", "generate_name", "is_full_id", "validate_name"]

ADJECTIVES: tuple[str, ...] = (
    "agile", "amazing", "ardent", "awesome", "bold", "brave", "bright", "busy",
    "calm", "careful", "charming", "cheerful", "clever", "cool", "curious", "daring",
    "dazzling", "eager", "earnest", "elastic", "elegant", "epic", "fervent", "festive",
    "fond", "friendly", "gallant", "gentle", "gifted", "glad", "graceful", "happy",
    "hardy", "honest", "hopeful", "humble", "jolly", "keen", "kind", "lively",
    "lucid", "merry", "mellow", "modest", "nimble", "noble", "patient", "peaceful",
    "plucky", "polite", "quick", "quiet", "radiant", "serene", "sharp", "sincere",
    "steady", "sunny", "tender", "upbeat", "vibrant", "witty", "zealous",
)

SURNAMES: tuple[str, ...] = (
    "agnesi", "al_khwarizmi", "archimedes", "avogadro", "babbage", "banach", "bardeen",
    "bell", "bernoulli", "bohr", "boltzmann", "boole", "born", "bose", "brahe",
    "cantor", "carson", "cauchy", "chandrasekhar", "copernicus", "curie", "darwin",
    "dijkstra", "dirac", "edison", "einstein", "euclid", "euler", "faraday", "fermat",
    "fermi", "feynman", "fibonacci", "franklin", "galileo", "galois", "gauss", "germain",
    "goodall", "hamilton", "hawking", "heisenberg", "hertz", "hilbert", "hodgkin",
    "hopper", "hubble", "huygens", "hypatia", "jackson", "joule", "kelvin", "kepler",
    "knuth", "lamarr", "laplace", "lavoisier", "leibniz", "lovelace", "maxwell",
    "meitner", "mendel", "mendeleev", "mirzakhani", "newton", "noether", "pascal",
    "pasteur", "pauli", "planck", "poincare", "ramanujan", "riemann", "ritchie",
    "rutherford", "sagan", "shannon", "somerville", "tesla", "thompson", "turing",
    "volta", "wiles", "wu", "yalow",
)

_VALID_NAME = re.compile(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_FULL_ID = re.compile(r"[0-9a-f]{64}")

# Plain draws first, then with a numeric suffix that widens every ten attempts.
_PLAIN_ATTEMPTS = 3
_ATTEMPTS = 63


def generate_name(
    is_taken: Callable[[str], bool], rng: random.Random | None = None
) -> str:
    """A random ``adjective_surname`` for which ``is_taken`` is false.

    After a few collisions a number is appended (``brave_curie7``), as Docker
    does; PycontainError if no free name turns up at all.
    """
    draw = rng or random.Random()
    for attempt in range(_ATTEMPTS):
        name = f"{draw.choice(ADJECTIVES)}_{draw.choice(SURNAMES)}"
        if attempt >= _PLAIN_ATTEMPTS:
            digits = 1 + (attempt - _PLAIN_ATTEMPTS) // 10
            name += str(draw.randrange(10**digits))
        if not is_taken(name):
            return name
    raise PycontainError("could not generate a unique container name")


def validate_name(name: str) -> str:
    """Check Docker's naming rule; return the name without a leading ``/``.

    Raises InvalidArgument ``Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-]
    are allowed``.
    """
    if not _VALID_NAME.fullmatch(name):
        raise InvalidArgument(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.removeprefix("/")


def is_full_id(value: str) -> bool:
    """True for a full container id: 64 lowercase hex digits."""
    return bool(_FULL_ID.fullmatch(value))
