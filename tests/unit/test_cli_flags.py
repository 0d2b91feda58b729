"""pycontain.cli.flags and each verb's grammar: Docker's (pflag's) parsing and errors."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from pycontain.cli import images, lifecycle, main, observe, ps, run
from pycontain.cli.flags import LIST, VALUE, Command, Flag, parse, to_int, usage_text
from pycontain.errors import InvalidArgument

TOY = Command(
    "toy", "ARG...", "A test command",
    (Flag("detach", "d"), Flag("interactive", "i"), Flag("name", kind=VALUE),
     Flag("env", "e", LIST), Flag("time", "t", VALUE, convert=to_int)),
)
RUN_LIKE = Command("runlike", "IMAGE [CMD]", "", TOY.flags, interspersed=False)


def error_of(command: Command, argv: list[str]) -> str:
    with pytest.raises(InvalidArgument) as info:
        parse(command, argv)
    return info.value.message


def test_long_flags_with_space_or_equals() -> None:
    opts = parse(TOY, ["--name", "web", "--time=5", "x"])
    assert opts.text("name") == "web"
    assert opts.number("time") == 5
    assert opts.args == ["x"]


def test_value_may_start_with_a_dash_or_contain_equals() -> None:
    opts = parse(TOY, ["--name", "-weird", "-e", "A=B=C", "--env=D="])
    assert opts.text("name") == "-weird"
    assert opts.texts("env") == ["A=B=C", "D="]


def test_short_value_forms() -> None:
    assert parse(TOY, ["-e", "K=V"]).texts("env") == ["K=V"]
    assert parse(TOY, ["-eK=V"]).texts("env") == ["K=V"]
    assert parse(TOY, ["-e=K=V"]).texts("env") == ["K=V"]
    assert parse(TOY, ["-t5"]).number("time") == 5


def test_combined_booleans_and_a_trailing_value_flag() -> None:
    opts = parse(TOY, ["-di"])
    assert opts.flag("detach") and opts.flag("interactive")
    opts = parse(TOY, ["-die", "A=1"])
    assert opts.flag("detach") and opts.texts("env") == ["A=1"]


def test_repeatable_flags_keep_order() -> None:
    opts = parse(TOY, ["-e", "A=1", "--env", "B=2", "-eC=3"])
    assert opts.texts("env") == ["A=1", "B=2", "C=3"]


def test_boolean_with_explicit_value() -> None:
    assert not parse(TOY, ["--detach=false"]).flag("detach")
    assert parse(TOY, ["--detach=true"]).flag("detach")
    assert not parse(TOY, ["-d=0"]).flag("detach")
    assert error_of(TOY, ["--detach=maybe"]) == (
        'invalid argument "maybe" for "-d, --detach" flag: '
        'strconv.ParseBool: parsing "maybe": invalid syntax'
    )


def test_double_dash_ends_flags_and_single_dash_is_positional() -> None:
    opts = parse(TOY, ["-d", "--", "-e", "--name"])
    assert opts.args == ["-e", "--name"]
    assert parse(TOY, ["-", "x"]).args == ["-", "x"]


def test_interspersed_flags_for_ordinary_verbs() -> None:
    opts = parse(TOY, ["a", "-d", "b", "--name", "n"])
    assert opts.args == ["a", "b"]
    assert opts.flag("detach") and opts.text("name") == "n"


def test_flags_stop_at_the_first_positional_for_run_like_verbs() -> None:
    opts = parse(RUN_LIKE, ["-d", "busybox", "ls", "-l", "--name", "x"])
    assert opts.flag("detach")
    assert not opts.given("name")
    assert opts.args == ["busybox", "ls", "-l", "--name", "x"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--foo"], "unknown flag: --foo"),
        (["--foo=1"], "unknown flag: --foo"),
        (["-z"], "unknown shorthand flag: 'z' in -z"),
        (["-dz"], "unknown shorthand flag: 'z' in -dz"),
        (["--name"], "flag needs an argument: --name"),
        (["-e"], "flag needs an argument: 'e' in -e"),
        (["-de"], "flag needs an argument: 'e' in -de"),
        (["-t", "x"], 'invalid argument "x" for "-t, --time" flag: '
                      'strconv.ParseInt: parsing "x": invalid syntax'),
        (["-t", " 5"], 'invalid argument " 5" for "-t, --time" flag: '
                       'strconv.ParseInt: parsing " 5": invalid syntax'),
    ],
)
def test_errors_word_like_pflag(argv: list[str], message: str) -> None:
    assert error_of(TOY, argv) == message


def test_help_long_and_short_when_h_is_free() -> None:
    assert parse(TOY, ["--help"]).help_requested
    assert parse(TOY, ["-h"]).help_requested
    assert parse(TOY, ["x", "--help"]).help_requested


def test_help_after_the_image_belongs_to_the_command() -> None:
    opts = parse(run.RUN, ["busybox", "--help"])
    assert not opts.help_requested
    assert opts.args == ["busybox", "--help"]


def test_to_int() -> None:
    assert to_int("10") == 10
    assert to_int("-1") == -1
    assert to_int("+3") == 3
    for bad in ("", "1.5", "0x10", "ten", "1_000", "٣"):
        with pytest.raises(InvalidArgument):
            to_int(bad)


def test_usage_text_lists_the_flags() -> None:
    text = usage_text(lifecycle.STOP)
    assert text.startswith("Usage:  pycontain stop [OPTIONS] CONTAINER [CONTAINER...]\n")
    assert "  -t, --time int   Seconds to wait before killing the container" in text


# ---- the verbs' grammars ---------------------------------------------------------------


def test_run_flags() -> None:
    opts = parse(run.RUN, [
        "-d", "--rm", "--name", "web", "-e", "A=1", "--env-file", "f", "-w", "/tmp",
        "-h", "box", "-m", "64m", "--memory-swap", "-1", "--cpus", "0.5", "-c", "512",
        "--pids-limit", "20", "--entrypoint", "sh", "-v", "/a:/b:ro", "-u", "1000",
        "busybox", "echo", "-n", "hi",
    ])
    assert opts.flag("detach") and opts.flag("rm")
    assert opts.text("name") == "web"
    assert opts.texts("env") == ["A=1"]
    assert opts.texts("env-file") == ["f"]
    assert opts.text("workdir") == "/tmp"
    assert opts.text("hostname") == "box"
    assert opts.value("memory") == 64 * 1024 * 1024
    assert opts.value("memory-swap") == -1
    assert opts.value("cpus") == 500_000_000
    assert opts.value("cpu-shares") == 512
    assert opts.value("pids-limit") == 20
    assert opts.text("entrypoint") == "sh"
    assert opts.texts("volume") == ["/a:/b:ro"]
    assert opts.text("user") == "1000"
    assert opts.args == ["busybox", "echo", "-n", "hi"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-m", "6x", "busybox"],
         "invalid argument \"6x\" for \"-m, --memory\" flag: invalid size: '6x'"),
        (["--memory=1q", "busybox"],
         "invalid argument \"1q\" for \"-m, --memory\" flag: invalid size: '1q'"),
        (["--memory-swap", "z", "busybox"],
         "invalid argument \"z\" for \"--memory-swap\" flag: invalid size: 'z'"),
        (["--cpus", "x", "busybox"],
         'invalid argument "x" for "--cpus" flag: failed to parse x as a rational number'),
        (["--pids-limit", "many", "busybox"],
         'invalid argument "many" for "--pids-limit" flag: '
         'strconv.ParseInt: parsing "many": invalid syntax'),
        (["-itz", "busybox"], "unknown shorthand flag: 'z' in -itz"),
    ],
)
def test_run_flag_errors(argv: list[str], message: str) -> None:
    assert error_of(run.RUN, argv) == message


def test_create_has_no_detach() -> None:
    assert error_of(run.CREATE, ["-d", "busybox"]) == "unknown shorthand flag: 'd' in -d"


def test_start_stop_kill_rm_flags() -> None:
    assert parse(run.START, ["-a", "c1"]).flag("attach")
    assert parse(lifecycle.STOP, ["c1", "-t", "3", "c2"]).number("time") == 3
    assert parse(lifecycle.RESTART, ["--time=0", "c1"]).number("time") == 0
    assert parse(lifecycle.KILL, ["-s", "HUP", "c1"]).text("signal") == "HUP"
    opts = parse(lifecycle.RM, ["-fv", "c1", "c2"])
    assert opts.flag("force") and opts.flag("volumes") and opts.args == ["c1", "c2"]


def test_logs_inspect_flags() -> None:
    opts = parse(observe.LOGS, ["-f", "--tail", "5", "-t", "c1"])
    assert opts.flag("follow") and opts.text("tail") == "5" and opts.flag("timestamps")
    opts = parse(observe.INSPECT, ["-f", "{{.State.Pid}}", "--type", "container", "c1"])
    assert opts.text("format") == "{{.State.Pid}}" and opts.text("type") == "container"


def test_ps_flags() -> None:
    opts = parse(ps.PS, ["-aq", "-n", "3", "-l", "--no-trunc", "--filter", "status=exited",
                         "-f", "name=web", "--format", "{{.ID}}"])
    assert opts.flag("all") and opts.flag("quiet") and opts.flag("latest")
    assert opts.flag("no-trunc")
    assert opts.number("last") == 3
    assert opts.texts("filter") == ["status=exited", "name=web"]
    assert opts.text("format") == "{{.ID}}"
    assert error_of(ps.PS, ["--filter", "exited"]) == (
        'invalid argument "exited" for "-f, --filter" flag: '
        "bad format of filter (expected name=value)"
    )


def test_image_verb_flags() -> None:
    assert parse(images.IMAGES, ["-qa"]).flag("quiet")
    assert parse(images.RMI, ["-f", "busybox"]).flag("force")
    assert parse(images.LOAD, ["-i", "x.tar"]).text("input") == "x.tar"
    assert parse(images.IMPORT, ["-", "name:tag"]).args == ["-", "name:tag"]


def test_global_flags_stop_at_the_verb() -> None:
    opts = parse(main.GLOBAL, ["-H", "unix:///x.sock", "ps", "-a"])
    assert opts.text("host") == "unix:///x.sock"
    assert opts.args == ["ps", "-a"]
    assert parse(main.GLOBAL, ["--host=unix:///y", "ps"]).text("host") == "unix:///y"


def test_every_verb_module_is_registered() -> None:
    modules = {module for module, _ in main.VERB_MODULES.values()}
    registered: dict[str, Any] = {}
    for module in modules:
        registered.update(importlib.import_module(f"pycontain.cli.{module}").VERBS)
    assert set(registered) == set(main.VERB_MODULES)
    for name, verb in registered.items():
        assert verb.command.name == name


@pytest.mark.parametrize(
    ("command", "count", "message"),
    [
        (lifecycle.STOP, 0, '"pycontain stop" requires at least 1 argument.'),
        (observe.LOGS, 2, '"pycontain logs" requires exactly 1 argument.'),
        (observe.TOP, 0, '"pycontain top" requires exactly 1 argument.'),
        (images.IMPORT, 3, '"pycontain import" requires at least 1 and at most 2 arguments.'),
        (ps.PS, 1, '"pycontain ps" accepts no arguments.'),
    ],
)
def test_arity_messages(command: Command, count: int, message: str) -> None:
    text = main._arity_error(command, count)
    assert text is not None
    assert text.splitlines() == [message, f"See 'pycontain {command.name} --help'."]


def test_arity_ok() -> None:
    assert main._arity_error(lifecycle.STOP, 3) is None
    assert main._arity_error(ps.PS, 0) is None
