"""pycontain.cli.template: the Go text/template subset used by -f/--format."""

from __future__ import annotations

from typing import Any

import pytest

from pycontain.cli.template import Template, go_value

INSPECT: dict[str, Any] = {
    "Id": "abc",
    "Name": "/web",
    "State": {"Status": "running", "Pid": 4242, "Running": True, "OOMKilled": False,
              "ExitCode": 0},
    "HostConfig": {"Memory": 67108864, "NanoCpus": 500000000, "Binds": None},
    "Config": {"Env": ["A=1", "PATH=/bin"], "Labels": {"b": "2", "a": "1"}, "Cmd": ["sh"]},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{.State.Pid}}", "4242"),
        ("{{.State.Status}}", "running"),
        ("{{.HostConfig.Memory}}", "67108864"),
        ("{{.State.Running}} {{.State.OOMKilled}}", "true false"),
        ("{{json .HostConfig}}", '{"Memory":67108864,"NanoCpus":500000000,"Binds":null}'),
        ("{{json .Config.Env}}", '["A=1","PATH=/bin"]'),
        ("{{.Config.Env}}", "[A=1 PATH=/bin]"),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),
        ("{{.HostConfig.Binds}}", "<nil>"),
        ("{{.Nope}}", "<no value>"),
        ("{{.State.Nope}}", "<no value>"),
        ("id={{.Id}} name={{.Name}}", "id=abc name=/web"),
        ("{{ .Id }}", "abc"),
        ("{{index .Config.Labels \"a\"}}", "1"),
        ("{{index .Config.Env 1}}", "PATH=/bin"),
        ("{{join .Config.Env \",\"}}", "A=1,PATH=/bin"),
        ("{{.State.Status | upper}}", "RUNNING"),
        ("{{upper .State.Status}}", "RUNNING"),
        ("{{lower \"ABC\"}}", "abc"),
        ("{{title \"hello world\"}}", "Hello World"),
        ("{{len .Config.Env}}", "2"),
        ("{{truncate .Name 3}}", "/we"),
        ("{{split \"a:b\" \":\"}}", "[a b]"),
        ("{{`raw {{x}}`}}", "raw {{x}}"),
        ("a  {{- .Id -}}  b", "aabcb"),
        ("no actions at all", "no actions at all"),
        ("{{\"}}\"}}", "}}"),
    ],
)
def test_render(source: str, expected: str) -> None:
    assert Template(source).render(INSPECT) == expected


def test_dot_is_the_whole_object() -> None:
    assert Template("{{json .}}").render({"b": 1, "a": [True, None]}) == (
        '{"b":1,"a":[true,null]}'
    )
    assert Template("{{.}}").render("text") == "text"


def test_strict_mode_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="can't evaluate field Nope"):
        Template("{{.Nope}}").render({"ID": "x"}, strict=True)


def test_field_of_a_scalar_is_an_error() -> None:
    with pytest.raises(ValueError, match="can't evaluate field X in int"):
        Template("{{.State.Pid.X}}").render(INSPECT)


def test_header_mode_passes_arguments_through() -> None:
    assert Template("{{upper .ID}}|{{json .Names}}").render(
        {"ID": "CONTAINER ID", "Names": "NAMES"}, header=True
    ) == "CONTAINER ID|NAMES"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{.Id", "unclosed action"),
        ("{{}}", "missing value"),
        ("{{nope .Id}}", 'function "nope" not defined'),
        ("{{range .Config.Env}}{{.}}{{end}}", "not supported"),
        ("{{if .Id}}x{{end}}", "not supported"),
        ("{{$x := .Id}}", "variables are not supported"),
        ('{{"abc}}', "unterminated quoted string"),
        ("{{.Id | }}", "missing command"),
    ],
)
def test_compile_errors(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Template(source)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "<nil>"),
        (True, "true"),
        (0, "0"),
        (-3, "-3"),
        (1.5, "1.5"),
        (3.0, "3"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (67108864.0, "6.7108864e+07"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (-2.5e-7, "-2.5e-07"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Inf"),
        ("s", "s"),
        ([], "[]"),
        ({}, "map[]"),
        ({"k": [1, {"x": None}]}, "map[k:[1 map[x:<nil>]]]"),
    ],
)
def test_go_value(value: Any, text: str) -> None:
    assert go_value(value) == text
