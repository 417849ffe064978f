"""Binding a playbook to an incident: params with full-match patterns, the target, and argv/JSON rendering
where hostile alert values stay one literal element and are never rendered twice."""

from __future__ import annotations

import re

import pytest

from itsmd.core.binding import Bound, ParamInvalid, bind, context, render_argv, render_json
from itsmd.core.playbook import Concurrency, ExecSpec, Param, Playbook, SleepSpec, Step, step_context
from itsmd.template import Template, compile_template

HOSTILE = ["$(touch /tmp/pwned)", "; rm -rf /", "`id`", "{{7*7}}", "{{ cycler.__init__.__globals__ }}",
           "{% raw %}", "--output=/etc/passwd", "-rf", "a b\tc", "x' \"y", "a\nb", "{{ ''|attr('format') }}"]


def tpl(source: str) -> Template:
    return compile_template(source, max_length=32768, truncate=False)


def playbook(pattern: str | None = None, key: str | None = None) -> Playbook:
    return Playbook(
        name="p", steps=(Step("s", SleepSpec(1)),),
        params=(Param("instance", tpl("{{ labels.instance }}"), None if pattern is None else re.compile(pattern)),),
        concurrency=Concurrency(None if key is None else tpl(key)),
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_one_literal_argument(value: str) -> None:
    bound = bind(playbook(), context({"instance": value}), "INC-1")
    assert isinstance(bound, Bound) and bound.params["instance"] == value
    spec = ExecSpec((tpl("/usr/bin/fix"), tpl("{{ params.instance }}"), tpl("--host={{ labels.instance }}")))
    argv = render_argv(spec, step_context(bound.context, {}))
    assert argv == ("/usr/bin/fix", value, f"--host={value}")


@pytest.mark.parametrize("value", [*HOSTILE, "10.0.0.1:9100\n", "10.0.0.1:9100; id", ""])
def test_pattern_is_a_full_match(value: str) -> None:
    result = bind(playbook(r"[a-z0-9.-]+:[0-9]+$"), context({"instance": value}), "INC-1")
    assert isinstance(result, ParamInvalid) and result.detail.startswith("param instance: ")


def test_valid_param_and_target() -> None:
    result = bind(playbook(r"[a-z0-9.-]+:[0-9]+", key="{{ params.instance }}"), context({"instance": "a.b:9100"}),
                  "INC-1")
    assert isinstance(result, Bound)
    assert (dict(result.params), result.target) == ({"instance": "a.b:9100"}, "a.b:9100")
    assert bind(playbook(), context({"instance": "x"}), "INC-7").target == "INC-7"


def test_missing_label_is_param_invalid_not_a_crash() -> None:
    result = bind(playbook(), context({}), "INC-1")
    assert isinstance(result, ParamInvalid) and "instance" in result.detail


def test_refused_value_is_shown_short_and_escaped() -> None:
    result = bind(playbook("[a-z]+"), context({"instance": "\x00" + "x" * 500}), "INC-1")
    assert isinstance(result, ParamInvalid) and "\x00" not in result.detail and len(result.detail) < 200


def test_nul_in_an_argument_is_refused() -> None:
    spec = ExecSpec((tpl("/bin/echo"), tpl("{{ labels.x }}")))
    with pytest.raises(ValueError, match="NUL"):
        render_argv(spec, context({"x": "a\x00b"}))


def test_json_body_values_are_data() -> None:
    tree = {"host": tpl("{{ labels.instance }}"), "n": 3, "tags": (tpl("{{ alert_count }}"), True, None)}
    body = render_json(tree, context({"instance": "{{7*7}} $(id)"}, alerts=[{}, {}]))
    assert body == {"host": "{{7*7}} $(id)", "n": 3, "tags": ["2", True, None]}
