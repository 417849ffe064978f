"""Binding a playbook to an incident (or alert): its template context, validated params and target, and the
rendering of step arguments, where alert values are data rendered once and never become templates or shell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from itsmd.core.playbook import ExecSpec, JsonTemplate, Playbook
from itsmd.core.service import UNMAPPED

_SHOWN = 60  # characters of a refused value quoted in a reason


@dataclass(frozen=True, slots=True)
class Bound:
    """The params (name -> text, each matching its pattern in full), the run's target, and the context of the
    playbook's steps without `steps` (see `playbook.step_context`)."""

    params: Mapping[str, str]
    target: str
    context: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ParamInvalid:
    """A param did not render or did not match its pattern: the run is skipped with reason param_invalid."""

    detail: str


def context(
    labels: Mapping[str, str],
    *,
    annotations: Mapping[str, str] | None = None,
    alerts: Sequence[Mapping[str, Any]] = (),
    incident: Mapping[str, Any] | None = None,
    service: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The context of a playbook's param templates (`PARAM_CONTEXT_NAMES`); `service` None is UNMAPPED.

    `labels` are those common to the incident's firing alerts, or the alert's own with `for_each: alert`.
    """
    return {
        "labels": labels,
        "annotations": annotations if annotations is not None else {},
        "alerts": alerts,
        "alert_count": len(alerts),
        "incident": incident,
        "service": service if service is not None else UNMAPPED,
    }


def bind(playbook: Playbook, base: Mapping[str, Any], default_target: str) -> Bound | ParamInvalid:
    """Render the params in `base` (from `context`), check each pattern with full-match semantics, then render
    the concurrency key (the target; `default_target` without one, e.g. the incident or alert id)."""
    params: dict[str, str] = {}
    for param in playbook.params:
        try:
            value = param.source.render(base)
        except ValueError as e:
            return ParamInvalid(f"param {param.name}: {e}")
        if param.pattern is not None and param.pattern.fullmatch(value) is None:
            return ParamInvalid(f"param {param.name}: {_shown(value)} does not match {param.pattern.pattern!r}")
        params[param.name] = value
    frozen = MappingProxyType(params)
    full = {**base, "params": frozen}
    target = default_target
    if playbook.concurrency.key is not None:
        try:
            target = playbook.concurrency.key.render(full)
        except ValueError as e:
            return ParamInvalid(f"concurrency key: {e}")
    return Bound(frozen, target, MappingProxyType(full))


def render_argv(spec: ExecSpec, context: Mapping[str, Any]) -> tuple[str, ...]:
    """One argument per template, whatever the values hold (spaces, quotes, `$(...)`, `;`, a leading `-`):
    there is no shell and no splitting. Raises ValueError if a template fails or an argument holds a NUL."""
    argv = []
    for i, template in enumerate(spec.argv):
        value = template.render(context)
        if "\0" in value:
            raise ValueError(f"argument {i} holds a NUL character")
        argv.append(value)
    if not argv or not argv[0]:
        raise ValueError("the program (argument 0) is empty")
    return tuple(argv)


def render_json(tree: JsonTemplate, context: Mapping[str, Any]) -> Any:
    """The JSON value of a body template: every string rendered once into a string; keys and numbers as written."""
    if tree is None or isinstance(tree, bool | int | float):
        return tree
    if isinstance(tree, tuple):
        return [render_json(item, context) for item in tree]
    if isinstance(tree, Mapping):
        return {key: render_json(value, context) for key, value in tree.items()}
    return tree.render(context)


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
