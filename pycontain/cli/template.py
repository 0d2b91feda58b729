"""The subset of Go's text/template that ``--format`` / ``-f`` templates use.

Supported: literal text; actions ``{{.Field.Sub}}``, ``{{.}}``, function calls
``{{json .HostConfig}}``, ``{{index .Labels "k"}}``, ``{{join .Names ","}}``,
pipelines ``{{.Name | upper}}``; string and number literals; trim markers
``{{-`` and ``-}}``.  Functions: json, upper, lower, title, join, split, index,
len, truncate.  Control actions (if, range, with, ...) and variables are
refused at compile time.  Errors are ValueError with a ``template: ...`` message.

Values print as Go prints them: ``true``, ``<nil>``, ``map[a:1 b:2]``, ``[x y]``.
A field missing from a mapping prints ``<no value>``, unless the template is
executed ``strict`` (Docker's typed ``ps`` context), where it is an error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Template", "go_value"]

_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)

# An argument: ("field", path) | ("literal", value) | ("func", name)
Arg = tuple[str, Any]
_GO_EXPONENT_LIMIT = 6  # Go's %v uses exponent form from 1e+06 up
Pipeline = list[list[Arg]]


def go_value(value: Any) -> str:
    """Format a value the way Go's fmt %v prints the decoded JSON it came from."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v for a float64: shortest digits, exponent form outside 1e-4 <= |v| < 1e6."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    mantissa, _, exp = repr(value).partition("e")
    sign = "-" if mantissa.startswith("-") else ""
    whole, _, frac = mantissa.lstrip("-").partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + int(exp or 0) - (len(whole + frac) - len(digits))
    digits = digits.rstrip("0")
    exponent = point - 1
    if -4 <= exponent < _GO_EXPONENT_LIMIT:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return f"{sign}{digits[:point]}.{digits[point:]}"
    tail = f".{digits[1:]}" if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{tail}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def _tojson(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _index(container: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            container = container[key]
        except (KeyError, IndexError, TypeError) as exc:
            if isinstance(container, Mapping):
                return None
            raise ValueError(f"template: error calling index: cannot index with {key!r}") from exc
    return container


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _tojson,
    "upper": lambda s: str(s).upper(),
    "lower": lambda s: str(s).lower(),
    "title": lambda s: " ".join(w[:1].upper() + w[1:] for w in str(s).split(" ")),
    "join": lambda items, sep: str(sep).join(go_value(i) for i in items or []),
    "split": lambda s, sep: str(s).split(str(sep)),
    "index": _index,
    "len": lambda v: len(v) if v is not None else 0,
    "truncate": lambda s, n: str(s)[: int(n)],
}


class _Missing:
    """A field that a mapping does not have (prints ``<no value>``)."""

    def __str__(self) -> str:
        return "<no value>"


MISSING = _Missing()


class Template:
    """A compiled template; ``render(data)`` returns the text."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[str | Pipeline] = _compile(source)

    def render(self, data: Any, strict: bool = False, header: bool = False) -> str:
        """Execute on ``data``; in ``header`` mode functions pass their argument through."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = _run_pipeline(part, data, strict, header)
            out.append(str(value) if isinstance(value, _Missing) else go_value(value))
        return "".join(out)


def _compile(source: str) -> list[str | Pipeline]:
    parts: list[str | Pipeline] = []
    pos = 0
    trim_next = False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip()
        if start < 0:
            if text:
                parts.append(text)
            return parts
        body_start = start + 2
        if source.startswith("- ", body_start) or source.startswith("-\t", body_start):
            text = text.rstrip()
            body_start += 2
        if text:
            parts.append(text)
        tokens, end = _tokenize(source, body_start)
        trim_next = bool(tokens) and tokens[-1] == "-}}"
        if trim_next:
            tokens.pop()
        parts.append(_pipeline(tokens, source))
        pos = end


def _tokenize(source: str, pos: int) -> tuple[list[str], int]:
    """The tokens of one action starting at ``pos``; returns them and the end offset."""
    tokens: list[str] = []
    while pos < len(source):
        char = source[pos]
        if source.startswith("}}", pos):
            return tokens, pos + 2
        if source.startswith(" -}}", pos) or source.startswith("\t-}}", pos):
            tokens.append("-}}")
            return tokens, pos + 4
        if char.isspace():
            pos += 1
        elif char in "\"`":
            end = _string_end(source, pos)
            tokens.append(source[pos:end])
            pos = end
        elif char == "|":
            tokens.append("|")
            pos += 1
        else:
            end = pos
            while end < len(source) and not source[end].isspace() and source[end] not in "|}\"`":
                end += 1
            if end == pos:
                raise ValueError(f"template: unexpected {char!r} in action")
            tokens.append(source[pos:end])
            pos = end
    raise ValueError("template: unclosed action")


def _string_end(source: str, pos: int) -> int:
    quote = source[pos]
    end = pos + 1
    while end < len(source):
        if source[end] == "\\" and quote == '"':
            end += 2
            continue
        if source[end] == quote:
            return end + 1
        end += 1
    raise ValueError("template: unterminated quoted string")


def _pipeline(tokens: list[str], source: str) -> Pipeline:
    if not tokens:
        raise ValueError(f"template: missing value for command in {source!r}")
    commands: Pipeline = [[]]
    for token in tokens:
        if token == "|":
            commands.append([])
        else:
            commands[-1].append(_arg(token))
    if any(not command for command in commands):
        raise ValueError(f"template: missing command in pipeline in {source!r}")
    return commands


def _arg(token: str) -> Arg:
    if token.startswith("."):
        path = tuple(p for p in token[1:].split(".") if p) if token != "." else ()
        return ("field", path)
    if token.startswith('"'):
        return ("literal", json.loads(token))
    if token.startswith("`"):
        return ("literal", token[1:-1])
    if token.lstrip("-").isdigit():
        return ("literal", int(token))
    if token in ("true", "false"):
        return ("literal", token == "true")
    if token in _FUNCTIONS:
        return ("func", token)
    if token in _KEYWORDS:
        raise ValueError(f"template: {{{{{token}}}}} actions are not supported")
    if token.startswith("$"):
        raise ValueError("template: variables are not supported")
    raise ValueError(f'template: function "{token}" not defined')


def _run_pipeline(commands: Pipeline, data: Any, strict: bool, header: bool) -> Any:
    result: Any = MISSING
    for number, command in enumerate(commands):
        args = [_evaluate(arg, data, strict) for arg in command[1:]]
        if number:
            args.append(result)
        head = command[0]
        if head[0] == "func":
            result = _call(head[1], args, header)
        elif args:
            raise ValueError("template: can't give arguments to a non-function")
        else:
            result = _evaluate(head, data, strict)
    return result


def _call(name: str, args: list[Any], header: bool) -> Any:
    if header:
        return args[0] if args else ""
    try:
        return _FUNCTIONS[name](*(None if isinstance(a, _Missing) else a for a in args))
    except TypeError as exc:
        raise ValueError(f"template: error calling {name}: {exc}") from exc


def _evaluate(arg: Arg, data: Any, strict: bool) -> Any:
    kind, value = arg
    if kind == "literal":
        return value
    if kind == "func":
        raise ValueError(f"template: function {value} used as a value")
    current = data
    for name in value:
        if isinstance(current, Mapping) and name in current:
            current = current[name]
        elif isinstance(current, Mapping) and not strict:
            return MISSING
        else:
            raise ValueError(f"template: can't evaluate field {name} in {_type_name(current)}")
    return current


def _type_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return "the context"
    return {bool: "bool", int: "int", float: "float64", str: "string", list: "slice"}.get(
        type(value), type(value).__name__
    )
