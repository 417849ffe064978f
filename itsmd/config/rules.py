"""Rule files: YAML -> JSON Schema -> matchers, templates and cross-checks -> one RuleSet, every problem at once."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itsmd.config.document import load_validator, read_yaml, validate
from itsmd.config.duration import parse_duration
from itsmd.config.problem import PathElement, Problem, format_path, format_problems, known_names
from itsmd.core.matcher import Matcher, parse_matcher
from itsmd.core.priority import parse_level
from itsmd.core.rule import (
    CONTEXT_NAMES,
    DEFAULT_IMPACT,
    DEFAULT_TITLE,
    DEFAULT_URGENCY,
    TITLE_MAX_LENGTH,
    Escalation,
    FlappingPolicy,
    Inhibit,
    ProblemPolicy,
    Renderable,
    ResolveKind,
    ResolvePolicy,
    Rule,
    RuleSet,
)
from itsmd.errors import ConfigError
from itsmd.template import compile_template

SCHEMA_NAME = "rules.schema.json"
_LEVEL_MAX_LENGTH = 200  # an impact or urgency renders one word; longer output is an error, not cut

Raw = Mapping[str, Any]
Where = tuple[PathElement, ...]


@dataclass(frozen=True, slots=True)
class RuleDocument:
    """One parsed rules file: `file` is its name as problems show it, `data` its YAML (None when empty)."""

    file: str
    data: Any


def rule_files(globs: Sequence[str]) -> list[Path]:
    """The files matching `globs`: each glob's sorted, globs in order, every file once. No match is no error."""
    seen: set[str] = set()
    files: list[Path] = []
    for pattern in globs:
        for name in sorted(glob.glob(pattern)):
            real = os.path.realpath(name)
            if real not in seen and os.path.isfile(name):
                seen.add(real)
                files.append(Path(name))
    return files


def load_rule_documents(globs: Sequence[str]) -> list[RuleDocument]:
    """Every file of `globs` parsed; raises ConfigError naming each unreadable or invalid YAML file."""
    documents, problems = _read(globs)
    if problems:
        raise ConfigError(problems)
    return documents


def load_rules(
    globs: Sequence[str], notifiers: Collection[str] = (), playbooks: Collection[str] | None = None
) -> RuleSet:
    """The rules of the files matching `globs` (relative globs are relative to the working directory).

    `notifiers` are the names `escalate.to` may use; `playbooks`, if not None, the names `playbooks` may use.
    Raises ConfigError with every problem as `FILE: PATH: message`, e.g. `rules/a.yaml: rules[2].match[0]: ...`.
    """
    documents, problems = _read(globs)
    try:
        rule_set = compile_rules(documents, notifiers, playbooks)
    except ConfigError as e:
        raise ConfigError(problems + e.problems) from e
    if problems:
        raise ConfigError(problems)
    return rule_set


def compile_rules(
    documents: Sequence[RuleDocument], notifiers: Collection[str] = (), playbooks: Collection[str] | None = None
) -> RuleSet:
    """The RuleSet of parsed documents, in their order; raises ConfigError with every problem."""
    context = _Context(frozenset(notifiers), None if playbooks is None else frozenset(playbooks))
    problems: list[str] = []
    rules: list[Rule] = []
    for document in documents:
        compiler = _FileCompiler(document.file, context, position=len(rules))
        rules += compiler.compile(document.data)
        problems += format_problems(compiler.problems, document.file)
    if problems:
        raise ConfigError(problems)
    return RuleSet(rules)


def _read(globs: Sequence[str]) -> tuple[list[RuleDocument], list[str]]:
    documents: list[RuleDocument] = []
    problems: list[str] = []
    for path in rule_files(globs):
        try:
            documents.append(RuleDocument(str(path), read_yaml(path, str(path))))
        except ConfigError as e:
            problems += e.problems
    return documents, problems


@dataclass(slots=True)
class _Context:
    """What the files of one rule set share: the known names, and rule names seen so far with where."""

    notifiers: frozenset[str]
    playbooks: frozenset[str] | None
    names: dict[str, tuple[str, Where]] = field(default_factory=dict)

    def claim(self, name: str, file: str, where: Where) -> str | None:
        """None if `name` is new, else where it was given first (`FILE: PATH`, or `PATH` in the same file)."""
        first = self.names.setdefault(name, (file, where))
        if first == (file, where):
            return None
        return format_path(first[1]) if first[0] == file else f"{first[0]}: {format_path(first[1])}"


class _FileCompiler:
    """Compiles one file's rules key by key, collecting every problem; a rule with any problem is left out."""

    def __init__(self, file: str, context: _Context, position: int) -> None:
        self.file = file
        self.context = context
        self.position = position
        self.problems: list[Problem] = []
        self.schema_paths: list[Where] = []

    def compile(self, data: Any) -> list[Rule]:
        if data is None:
            return []  # an empty file holds no rules
        schema_problems = validate(data, load_validator(SCHEMA_NAME))
        self.problems += schema_problems
        self.schema_paths = [p.path for p in schema_problems]
        items = data.get("rules") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return []
        rules = []
        for i, raw in enumerate(items):
            rule = self.rule(raw, ("rules", i)) if isinstance(raw, dict) else None
            if rule is not None:
                rules.append(rule)
        return rules

    def clean(self, where: Where) -> bool:
        """No schema problem at or inside `where` (the types of its containers are checked as they are read)."""
        return not any(path[: len(where)] == where for path in self.schema_paths)

    def problem(self, where: Where, message: str) -> None:
        self.problems.append(Problem(where, message))

    def get(
        self,
        raw: Raw,
        where: Where,
        key: str,
        build: Callable[[Any, Where], object],
        default: object,
        *,
        each: bool = False,
    ) -> Any:
        """`build(raw[key], path)` if the key is given and schema-valid, else `default`.

        With `each`, the value need only be a list: `build` checks its items one by one (see `clean`).
        """
        at = (*where, key)
        usable = (at not in self.schema_paths and isinstance(raw.get(key), list)) if each else self.clean(at)
        if key not in raw or not usable:
            return default
        try:
            return build(raw[key], at)
        except ValueError as e:  # a value the schema allows but the rule model refuses
            self.problem((*where, key), str(e))
            return default

    def rule(self, raw: Raw, where: Where) -> Rule | None:
        before = len(self.problems)
        name = raw.get("name")
        if isinstance(name, str) and self.clean((*where, "name")):
            first = self.context.claim(name, self.file, where)
            if first is not None:
                self.problem((*where, "name"), f"duplicate rule name {name!r} (also {first})")
        fields: dict[str, Any] = {
            "matchers": self.get(raw, where, "match", self.matchers, (), each=True),
            "group_by": self.get(raw, where, "group_by", _strings, ()),
            "min_alerts": self.get(raw, where, "min_alerts", _integer, 1),
            "window": self.get(raw, where, "window", self.duration, 300.0),
            "hold": self.get(raw, where, "hold", self.duration, 0.0),
            "title": self.get(raw, where, "title", self.title, DEFAULT_TITLE),
            "impact": self.get(raw, where, "impact", self.level, DEFAULT_IMPACT),
            "urgency": self.get(raw, where, "urgency", self.level, DEFAULT_URGENCY),
            "resolve": self.get(raw, where, "resolve", self.resolve, ResolvePolicy(ResolveKind.ALL)),
            "reopen_within": self.get(raw, where, "reopen_within", self.duration, 1800.0),
            "inhibits": self.get(raw, where, "inhibits", self.inhibits, (), each=True),
            "problem": self.get(raw, where, "problem", self.problem_policy, None),
            "flapping": self.get(raw, where, "flapping", self.flapping, None),
            "playbooks": self.get(raw, where, "playbooks", self.playbooks, (), each=True),
            "escalate": self.get(raw, where, "escalate", self.escalate, None),
        }
        if len(self.problems) > before or not self.clean(where):
            return None
        try:
            rule = Rule(name=str(name), **fields, source=self.file, position=self.position)
        except ValueError as e:
            self.problem(where, str(e))
            return None
        self.position += 1
        return rule

    def matchers(self, texts: list[str], where: Where) -> tuple[Matcher, ...]:
        matchers = []
        for j, text in enumerate(texts):
            if not self.clean((*where, j)):
                continue
            try:
                matchers.append(parse_matcher(text))
            except ValueError as e:
                self.problem((*where, j), str(e))
        return tuple(matchers)

    def duration(self, value: str | float, where: Where) -> float:
        try:
            return parse_duration(value)
        except ValueError as e:
            self.problem(where, str(e))
            return 0.0

    def title(self, source: str, where: Where) -> Renderable:
        try:
            return compile_template(source, names=CONTEXT_NAMES, max_length=TITLE_MAX_LENGTH)
        except ValueError as e:
            self.problem(where, str(e))
            return DEFAULT_TITLE

    def level(self, source: str, where: Where) -> Renderable:
        """An impact or urgency: a template whose text is high|medium|low, checked now when it is constant."""
        try:
            template = compile_template(source, names=CONTEXT_NAMES, max_length=_LEVEL_MAX_LENGTH, truncate=False)
            if "{" not in source:
                parse_level(source)
        except ValueError as e:
            self.problem(where, str(e))
            return DEFAULT_IMPACT
        return template

    def resolve(self, text: str, where: Where) -> ResolvePolicy:
        kind, _, quiet = text.partition(":")
        if not quiet:
            return ResolvePolicy(ResolveKind(kind))
        return ResolvePolicy(ResolveKind.QUIET, self.duration(quiet, where))

    def inhibits(self, items: list[Raw], where: Where) -> tuple[Inhibit, ...]:
        inhibits = []
        for j, item in enumerate(items):
            at = (*where, j)
            if isinstance(item, dict):
                matchers = self.get(item, at, "match", self.matchers, (), each=True)
                inhibits.append(Inhibit(matchers, self.get(item, at, "equal", _strings, ())))
        return tuple(inhibits)

    def problem_policy(self, raw: Raw, where: Where) -> ProblemPolicy:
        by = self.get(raw, where, "by", _strings, None)
        return ProblemPolicy(_integer(raw["after"], where), self.duration(raw["within"], (*where, "within")), by)

    def flapping(self, raw: Raw, where: Where) -> FlappingPolicy:
        return FlappingPolicy(_integer(raw["changes"], where), self.duration(raw["within"], (*where, "within")))

    def playbooks(self, names: list[str], where: Where) -> tuple[str, ...]:
        known = self.context.playbooks
        if known is not None:
            for j, name in enumerate(names):
                if self.clean((*where, j)) and name not in known:
                    self.problem((*where, j), f"unknown playbook {name!r}{known_names(known)}")
        return tuple(names)

    def escalate(self, raw: Raw, where: Where) -> Escalation:
        to = raw.get("to", [])
        names = [to] if isinstance(to, str) else list(to)
        known = self.context.notifiers
        for j, name in enumerate(names):
            if name not in known:
                at = (*where, "to") if isinstance(to, str) else (*where, "to", j)
                self.problem(at, f"unknown notifier {name!r}{known_names(known) or '; no notifiers configured'}")
        after = self.get(raw, where, "after", self.duration, None)
        repeat = self.get(raw, where, "repeat", self.duration, None)
        if repeat == 0:
            self.problem((*where, "repeat"), "repeat must be more than 0; leave it out to page once")
        return Escalation(after=after, to=tuple(names), repeat=repeat)


def _strings(values: list[str], where: Where) -> tuple[str, ...]:
    return tuple(values)


def _integer(value: int | float, where: Where) -> int:
    return int(value)  # JSON Schema's `integer` admits 4.0
