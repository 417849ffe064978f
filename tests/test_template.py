"""Templates: immutable sandbox, strict undefined, alert values as data only, capped output, typed results."""

from __future__ import annotations

from typing import Any

import pytest

from itsmd.core.priority import Level
from itsmd.core.rule import CONTEXT_NAMES, Fixed
from itsmd.template import (
    RenderError,
    Template,
    TemplateError,
    compile_template,
    render_bool,
    render_choice,
    render_level,
)

CONTEXT: dict[str, Any] = {
    "labels": {
        "alertname": "NodeDown",
        "instance": "node-1",
        "severity": "critical",
        "evil": "{{ 7*7 }}",
        "my label": "x",
    },
    "annotations": {"summary": "{% for i in range(9) %}x{% endfor %}"},
    "alerts": [{"labels": {"instance": "node-1"}}, {"labels": {"instance": "node-2"}}],
    "alert_count": 2,
    "service": {"tier": 1},
}


def render(source: str, context: dict[str, Any] | None = None, **kwargs: Any) -> str:
    return compile_template(source, **kwargs).render(CONTEXT if context is None else context)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("plain text", "plain text"),
        ("{{ labels.instance }} down ({{ alert_count }} alerts)", "node-1 down (2 alerts)"),
        ("{{ labels['my label'] }}", "x"),
        ("{{ 'high' if service.tier == 1 else 'medium' }}", "high"),
        ("{{ alerts | map(attribute='labels.instance') | join(',') }}", "node-1,node-2"),
        ("{{ labels.missing | default('none') }}", "none"),
        ("{{ labels.evil }}", "{{ 7*7 }}"),  # alert values are data, never rendered again
        ("{{ annotations.summary }}", "{% for i in range(9) %}x{% endfor %}"),
        ("{{ '<b>' }}", "<b>"),  # autoescape off: output is not HTML
    ],
)
def test_render(source: str, expected: str) -> None:
    assert render(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ labels.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ '{0.__class__}'.format(labels) }}",
        "{{ labels.update({'x': 1}) }}",  # immutable sandbox: no mutation of the context
        "{{ alerts.append(1) }}",
        "{{ labels.pop('instance') }}",
    ],
)
def test_sandbox_refuses(source: str) -> None:
    with pytest.raises(RenderError):
        render(source)
    assert "x" not in CONTEXT["labels"] and len(CONTEXT["alerts"]) == 2


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ labels.nosuch }}", "has no attribute 'nosuch'"),
        ("{{ nosuch }}", "'nosuch' is undefined"),
        ("{{ labels.nosuch == 'x' }}", "nosuch"),  # strict: comparing an undefined fails too
        ("{% if nosuch %}x{% endif %}", "nosuch"),
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ alerts[5] }}", "no element 5"),
    ],
)
def test_render_errors_are_short_render_errors(source: str, message: str) -> None:
    with pytest.raises(RenderError, match=message) as info:
        render(source)
    assert isinstance(info.value, TemplateError) and isinstance(info.value, ValueError)
    assert len(str(info.value)) <= 203


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ labels.instance }", "syntax error on line 1"),
        ("line\n{% if %}", "on line 2"),
        ("{% for x in alerts %}", "syntax error"),
        ("{{ x | nosuchfilter }}", "nosuchfilter"),
    ],
)
def test_compile_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        compile_template(source)


def test_unknown_names_are_refused_at_compile_time_when_names_are_given() -> None:
    with pytest.raises(TemplateError, match="unknown name label; known: "):
        compile_template("{{ label.instance }}", names=CONTEXT_NAMES)
    with pytest.raises(TemplateError, match="unknown names a, b"):
        compile_template("{{ a }}{{ b }}", names=CONTEXT_NAMES)
    ok = "{% set n = labels.instance %}{% for a in alerts %}{{ n }}{{ loop.index }}{% endfor %}{{ range(2) | list }}"
    assert compile_template(ok, names=CONTEXT_NAMES).render(CONTEXT) == "node-11node-12[0, 1]"


def test_output_is_capped() -> None:
    assert render("{{ 'x' * 5000 }}") == "x" * 999 + "…"
    assert len(render("{% for i in range(100000) %}abc{% endfor %}", max_length=10)) == 10
    assert render("{{ 'x' * 10 }}", max_length=10) == "x" * 10
    with pytest.raises(RenderError, match="longer than 10"):
        render("{{ 'x' * 11 }}", max_length=10, truncate=False)
    with pytest.raises(ValueError):
        compile_template("x", max_length=0)


def test_template_keeps_source_and_renders_repeatedly() -> None:
    template = compile_template("{{ labels.instance }}")
    assert isinstance(template, Template) and template.source == "{{ labels.instance }}"
    assert [template.render({"labels": {"instance": str(i)}}) for i in range(3)] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("source", "level"),
    [
        ("high", Level.HIGH),
        (" Medium \n", Level.MEDIUM),
        ("{{ 'LOW' }}", Level.LOW),
        ("{{ 'high' if labels.severity == 'critical' else 'low' }}", Level.HIGH),
    ],
)
def test_render_level(source: str, level: Level) -> None:
    assert render_level(compile_template(source), CONTEXT) is level


@pytest.mark.parametrize("source", ["critical", "", "{{ labels.instance }}", "{{ nosuch }}"])
def test_render_level_rejects(source: str) -> None:
    with pytest.raises(RenderError):
        render_level(compile_template(source), CONTEXT)


def test_render_level_takes_any_renderable() -> None:
    assert render_level(Fixed("low"), {}) is Level.LOW


@pytest.mark.parametrize(
    ("source", "value"),
    [("{{ alert_count == 2 }}", True), ("{{ alert_count > 5 }}", False), ("yes", True), ("", False), (" 0 ", False)],
)
def test_render_bool(source: str, value: bool) -> None:
    assert render_bool(compile_template(source), CONTEXT) is value


def test_render_bool_and_choice_reject_other_text() -> None:
    with pytest.raises(RenderError, match="expected true or false, got 'maybe'"):
        render_bool(compile_template("maybe"), CONTEXT)
    assert render_choice(compile_template(" Abort "), CONTEXT, {"abort", "escalate"}) == "abort"
    with pytest.raises(RenderError, match="expected abort or escalate"):
        render_choice(compile_template("retry"), CONTEXT, {"abort", "escalate"})
