"""A small Docker-style (pflag) command-line parser, standard library only.

Each verb declares a ``Command``: its flags, how many positional arguments it
takes and whether flags may follow a positional.  ``parse(command, argv)``
returns ``Options`` or raises InvalidArgument with pflag's wording:

    unknown flag: --foo
    unknown shorthand flag: 'z' in -dz
    flag needs an argument: --name          flag needs an argument: 'e' in -e
    invalid argument "6x" for "-m, --memory" flag: invalid size: '6x'

Accepted forms: ``--name x``, ``--name=x``, ``-e K=V``, ``-eK=V``, ``-e=K=V``,
combined booleans ``-di``, ``--rm=false``; ``--`` ends the flags; a lone ``-``
is a positional.  ``--help`` (and ``-h`` where no flag uses it) asks for help.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pycontain.errors import InvalidArgument, PycontainError

__all__ = ["BOOL", "LIST", "VALUE", "Command", "Flag", "Options", "parse", "usage_text"]

BOOL = "bool"
VALUE = "value"
LIST = "list"

_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


class Flag:
    """One flag.  ``convert`` turns the text into the stored value (pflag's Value.Set)."""

    __slots__ = ("convert", "help", "kind", "long", "metavar", "short")

    def __init__(
        self,
        long: str,
        short: str = "",
        kind: str = BOOL,
        help: str = "",
        metavar: str = "string",
        convert: Callable[[str], object] | None = None,
    ) -> None:
        self.long = long
        self.short = short
        self.kind = kind
        self.help = help
        self.metavar = "" if kind == BOOL else metavar
        self.convert = convert

    @property
    def display(self) -> str:
        """``-m, --memory`` or ``--cpus``, as pflag names a flag in its errors."""
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


class Command:
    """A verb's grammar: flags, positional arguments and usage text."""

    __slots__ = ("args_usage", "description", "flags", "interspersed", "max_args",
                 "min_args", "name")

    def __init__(
        self,
        name: str,
        args_usage: str,
        description: str,
        flags: Sequence[Flag] = (),
        min_args: int = 0,
        max_args: int | None = None,
        interspersed: bool = True,
    ) -> None:
        self.name = name
        self.args_usage = args_usage
        self.description = description
        self.flags = tuple(flags)
        self.min_args = min_args
        self.max_args = max_args
        self.interspersed = interspersed

    def long_flag(self, name: str) -> Flag | None:
        return next((f for f in self.flags if f.long == name), None)

    def short_flag(self, letter: str) -> Flag | None:
        return next((f for f in self.flags if f.short == letter), None)


class Options:
    """The result of parsing: flag values by long name, and the positionals."""

    def __init__(self, values: dict[str, object], args: list[str], help_requested: bool) -> None:
        self._values = values
        self.args = args
        self.help_requested = help_requested

    def given(self, name: str) -> bool:
        return name in self._values

    def flag(self, name: str) -> bool:
        return self._values.get(name) is True

    def value(self, name: str) -> object:
        """The converted value of a VALUE flag, None when not given."""
        return self._values.get(name)

    def text(self, name: str, default: str = "") -> str:
        value = self._values.get(name, default)
        return value if isinstance(value, str) else default

    def number(self, name: str) -> int | None:
        value = self._values.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def texts(self, name: str) -> list[str]:
        value = self._values.get(name)
        return [str(v) for v in value] if isinstance(value, list) else []


def to_int(text: str) -> int:
    """pflag's int flags (decimal), with strconv's error wording."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidArgument(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    return int(text)


def _parse_bool(flag: Flag, text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidArgument(
        f'invalid argument "{text}" for "{flag.display}" flag: '
        f'strconv.ParseBool: parsing "{text}": invalid syntax'
    )


def _store(values: dict[str, object], flag: Flag, text: str) -> None:
    if flag.kind == BOOL:
        values[flag.long] = _parse_bool(flag, text)
        return
    try:
        value = flag.convert(text) if flag.convert else text
    except PycontainError as exc:
        raise InvalidArgument(
            f'invalid argument "{text}" for "{flag.display}" flag: {exc.message}'
        ) from exc
    if flag.kind == LIST:
        existing = values.setdefault(flag.long, [])
        assert isinstance(existing, list)
        existing.append(value)
    else:
        values[flag.long] = value


class _Parser:
    def __init__(self, command: Command, argv: Sequence[str]) -> None:
        self.command = command
        self.argv = list(argv)
        self.pos = 0
        self.values: dict[str, object] = {}
        self.args: list[str] = []
        self.help = False

    def next_arg(self) -> str | None:
        if self.pos >= len(self.argv):
            return None
        self.pos += 1
        return self.argv[self.pos - 1]

    def run(self) -> Options:
        while (arg := self.next_arg()) is not None:
            if arg == "--":
                self.args.extend(self.argv[self.pos :])
                break
            if arg.startswith("--"):
                self.long(arg)
            elif arg.startswith("-") and arg != "-":
                self.shorts(arg)
            else:
                self.args.append(arg)
                if not self.command.interspersed:
                    self.args.extend(self.argv[self.pos :])
                    break
        return Options(self.values, self.args, self.help)

    def long(self, arg: str) -> None:
        name, eq, inline = arg[2:].partition("=")
        flag = self.command.long_flag(name)
        if flag is None:
            if name == "help":
                self.help = True
                return
            raise InvalidArgument(f"unknown flag: --{name}")
        if eq:
            _store(self.values, flag, inline)
        elif flag.kind == BOOL:
            self.values[flag.long] = True
        else:
            text = self.next_arg()
            if text is None:
                raise InvalidArgument(f"flag needs an argument: --{name}")
            _store(self.values, flag, text)

    def shorts(self, arg: str) -> None:
        letters = arg[1:]
        index = 0
        while index < len(letters):
            letter = letters[index]
            rest = letters[index + 1 :]
            flag = self.command.short_flag(letter)
            if flag is None:
                if letter == "h":
                    self.help = True
                    index += 1
                    continue
                raise InvalidArgument(f"unknown shorthand flag: '{letter}' in {arg}")
            if flag.kind == BOOL:
                if rest.startswith("="):
                    _store(self.values, flag, rest[1:])
                    return
                self.values[flag.long] = True
                index += 1
                continue
            text = rest.removeprefix("=") if rest else self.next_arg()
            if text is None:
                raise InvalidArgument(f"flag needs an argument: '{letter}' in {arg}")
            _store(self.values, flag, text)
            return


def parse(command: Command, argv: Sequence[str]) -> Options:
    """Parse ``argv`` (the words after the verb) for ``command``; InvalidArgument on misuse."""
    return _Parser(command, argv).run()


def usage_line(command: Command, prog: str = "pycontain") -> str:
    options = " [OPTIONS]" if command.flags else ""
    args = f" {command.args_usage}" if command.args_usage else ""
    return f"{prog} {command.name}{options}{args}"


def usage_text(command: Command, prog: str = "pycontain") -> str:
    """The ``--help`` text: usage line, description and a table of the flags."""
    lines = [f"Usage:  {usage_line(command, prog)}", "", command.description]
    if command.flags:
        lines += ["", "Options:"]
        rows = []
        for flag in command.flags:
            short = f"-{flag.short}, " if flag.short else "    "
            kind = f" {flag.metavar}" if flag.metavar else ""
            rows.append((f"  {short}--{flag.long}{kind}", flag.help))
        width = max(len(left) for left, _ in rows) + 3
        lines += [f"{left.ljust(width)}{right}".rstrip() for left, right in rows]
    return "\n".join(lines) + "\n"
