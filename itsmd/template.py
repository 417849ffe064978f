"""Jinja2 templates of rules and playbooks: immutable sandbox, strict undefined, compiled once, output capped."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from itsmd.core.priority import Level, parse_level
from itsmd.core.rule import Renderable

TITLE_MAX_LENGTH = 1000
_ELLIPSIS = "…"
_MAX_MESSAGE = 200
_TRUE = frozenset(("true", "yes", "1"))
_FALSE = frozenset(("false", "no", "0", ""))
# What evaluating a template may raise besides Jinja's own errors (filters and operators on data).
_EVALUATION_ERRORS = (
    jinja2.TemplateError,
    ArithmeticError,
    LookupError,
    TypeError,
    ValueError,
    AttributeError,
    RecursionError,
)


class TemplateError(ValueError):
    """A template cannot be compiled; the message says why (and on which line)."""


class RenderError(TemplateError):
    """A template failed to render (undefined name, sandbox refusal, bad result); the message is short."""


class Template:
    """A compiled template; alert values in the context are data, never rendered as templates themselves."""

    __slots__ = ("_compiled", "max_length", "source", "truncate")

    def __init__(self, source: str, compiled: jinja2.Template, max_length: int, truncate: bool) -> None:
        self.source = source
        self.max_length = max_length
        self.truncate = truncate
        self._compiled = compiled

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def render(self, context: Mapping[str, Any]) -> str:
        """The text, at most `max_length` characters (cut with `…`, or RenderError if not `truncate`)."""
        parts: list[str] = []
        size = 0
        try:
            for chunk in self._compiled.generate(dict(context)):
                parts.append(chunk)
                size += len(chunk)
                if size > self.max_length:
                    break  # stop evaluating: the rest would be cut anyway
        except _EVALUATION_ERRORS as e:
            raise RenderError(_short(e)) from e
        text = "".join(parts)
        if len(text) <= self.max_length:
            return text
        if not self.truncate:
            raise RenderError(f"output longer than {self.max_length} characters")
        return text[: self.max_length - len(_ELLIPSIS)] + _ELLIPSIS


def compile_template(
    source: str,
    *,
    names: Collection[str] | None = None,
    max_length: int = TITLE_MAX_LENGTH,
    truncate: bool = True,
) -> Template:
    """`source` compiled in the sandbox; raises TemplateError on a syntax error, an unknown filter or test, or
    (when `names` is given) a variable that is neither one of `names`, a Jinja global nor set in the template.
    """
    if max_length < 1:
        raise ValueError("max_length must be >= 1")
    env = _environment()
    try:
        tree = env.parse(source)
        unknown = sorted(meta.find_undeclared_variables(tree) - set(env.globals) - set(names or ()))
        compiled = env.from_string(tree)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"template syntax error on line {e.lineno}: {_short(e)}") from e
    except jinja2.TemplateError as e:
        raise TemplateError(f"invalid template: {_short(e)}") from e
    if names is not None and unknown:
        known = ", ".join(sorted(names))
        raise TemplateError(f"unknown name{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; known: {known}")
    return Template(source, compiled, max_length, truncate)


def attribute_paths(source: str, name: str) -> set[tuple[str, ...]]:
    """The constant attribute chains read from variable `name` in a template that compiles, e.g. `steps.a.output`
    and `steps['a']` give ("a", "output") and ("a",); a dynamic part (`steps[x]`) ends the chain there."""
    tree = _environment().parse(source)
    paths: set[tuple[str, ...]] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        chain: list[str | None] = []
        current: nodes.Node = node
        while isinstance(current, nodes.Getattr | nodes.Getitem):
            if isinstance(current, nodes.Getattr):
                chain.append(current.attr)
            else:
                arg = current.arg
                chain.append(arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None)
            current = current.node
        if isinstance(current, nodes.Name) and current.name == name:
            chain.reverse()
            known = chain[: chain.index(None)] if None in chain else chain
            if known:
                paths.add(tuple(str(part) for part in known))
    return paths


def render_choice(template: Renderable, context: Mapping[str, Any], choices: Collection[str]) -> str:
    """The rendered text, stripped and lower-cased, which must be one of `choices`; else RenderError."""
    word = template.render(context).strip().lower()
    if word not in choices:
        shown = word if len(word) <= 40 else word[:40] + "..."
        raise RenderError(f"expected {' or '.join(sorted(choices))}, got {shown!r}")
    return word


def render_level(template: Renderable, context: Mapping[str, Any]) -> Level:
    """An impact or urgency template's result: high, medium or low (any case, blanks ignored); else RenderError."""
    text = template.render(context)
    try:
        return parse_level(text)
    except ValueError as e:
        raise RenderError(str(e)) from e


def render_bool(template: Renderable, context: Mapping[str, Any]) -> bool:
    """A condition (`when:`): true/yes/1 or false/no/0/empty (any case, blanks ignored); else RenderError."""
    word = template.render(context).strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    shown = word if len(word) <= 40 else word[:40] + "..."
    raise RenderError(f"expected true or false, got {shown!r}")


@functools.cache
def _environment() -> ImmutableSandboxedEnvironment:
    """One environment per process: it holds no state of its own, only the sandbox policy."""
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def _short(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return message if len(message) <= _MAX_MESSAGE else message[:_MAX_MESSAGE] + "..."
