"""Rule test files (DESIGN §1.5): YAML -> JSON Schema -> frozen suites, every problem as `FILE: PATH: message`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from itsmd.config.document import load_validator, read_yaml, validate
from itsmd.config.duration import parse_duration
from itsmd.config.problem import PathElement, Problem, format_problems
from itsmd.core.alert import Status
from itsmd.core.timestamp import parse_time
from itsmd.errors import ConfigError

SCHEMA_NAME = "ruletests.schema.json"
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
# Fields holding a time: a test writes them as offsets from its start (`1m30s`), compared in seconds.
INCIDENT_TIMES = frozenset({"detected_at", "opened_at", "acknowledged_at", "restored_at", "resolved_at",
                            "closed_at"})
PROBLEM_TIMES = frozenset({"first_seen_at", "last_seen_at", "opened_at", "resolved_at", "closed_at"})
RUN_TIMES = frozenset({"created_at", "started_at", "finished_at"})


@dataclass(frozen=True, slots=True)
class SentAlert:
    """An alert a test sends `at` seconds after its start (one webhook per distinct `at`)."""

    at: float
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: Status


@dataclass(frozen=True, slots=True)
class Expectation:
    """What must be true `at` seconds after the start; None: not checked. Times in the items are seconds."""

    at: float
    incidents: tuple[Mapping[str, Any], ...] | None
    problems: tuple[Mapping[str, Any], ...] | None
    runs: tuple[Mapping[str, Any], ...] | None


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    start: datetime
    alerts: tuple[SentAlert, ...]
    expect: tuple[Expectation, ...]


@dataclass(frozen=True, slots=True)
class Suite:
    """One test file; `rules`, `playbooks` (absolute globs) and `services` are None where the file names none."""

    file: str
    rules: tuple[str, ...] | None
    playbooks: tuple[str, ...] | None
    services: Path | None
    cases: tuple[Case, ...]


def load_suite(path: Path) -> Suite:
    """The suite in the file at `path`; raises ConfigError with every problem."""
    shown = str(path)
    data = read_yaml(path, shown)
    problems = validate(data, load_validator(SCHEMA_NAME))
    if problems or not isinstance(data, dict):
        if not problems:
            problems = [Problem((), "expected a mapping with `tests:`")]
        raise ConfigError(format_problems(problems, shown))
    compiler = _Compiler()
    cases = tuple(compiler.case(raw, ("tests", i)) for i, raw in enumerate(data["tests"]))
    if compiler.problems:
        raise ConfigError(format_problems(compiler.problems, shown))
    base = Path(os.path.abspath(path)).parent
    return Suite(
        file=shown,
        rules=_globs(base, data.get("rules")),
        playbooks=_globs(base, data.get("playbooks")),
        services=base / data["services"] if "services" in data else None,
        cases=cases,
    )


def _globs(base: Path, raw: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if raw is None else tuple(str(base / g) for g in raw)


class _Compiler:
    """Turns a schema-valid document into cases, collecting what the schema cannot check (durations' values,
    duplicate test names)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._names: set[str] = set()

    def _seconds(self, value: Any, where: tuple[PathElement, ...]) -> float:
        try:
            return parse_duration(value)
        except ValueError as e:
            self.problems.append(Problem(where, str(e)))
            return 0.0

    def case(self, raw: Mapping[str, Any], where: tuple[PathElement, ...]) -> Case:
        name = raw["name"]
        if name in self._names:
            self.problems.append(Problem((*where, "name"), f"another test is named {name!r}"))
        self._names.add(name)
        start = DEFAULT_START
        if "start" in raw:
            try:
                start = parse_time(raw["start"]) or DEFAULT_START
            except ValueError as e:
                self.problems.append(Problem((*where, "start"), str(e)))
        alerts = tuple(
            SentAlert(self._seconds(a["at"], (*where, "alerts", i, "at")), MappingProxyType(dict(a["labels"])),
                      MappingProxyType(dict(a.get("annotations", {}))), Status(a.get("status", "firing")))
            for i, a in enumerate(raw["alerts"])
        )
        expect = tuple(self._expectation(e, (*where, "expect", i)) for i, e in enumerate(raw["expect"]))
        return Case(name, start, alerts, expect)

    def _expectation(self, raw: Mapping[str, Any], where: tuple[PathElement, ...]) -> Expectation:
        def items(key: str, times: frozenset[str]) -> tuple[Mapping[str, Any], ...] | None:
            if key not in raw:
                return None
            return tuple(self._item(item, times, (*where, key, i)) for i, item in enumerate(raw[key]))

        return Expectation(self._seconds(raw["at"], (*where, "at")), items("incidents", INCIDENT_TIMES),
                           items("problems", PROBLEM_TIMES), items("runs", RUN_TIMES))

    def _item(self, raw: Mapping[str, Any], times: frozenset[str],
              where: tuple[PathElement, ...]) -> Mapping[str, Any]:
        out = dict(raw)
        for key in times & out.keys():
            if out[key] is not None:
                out[key] = self._seconds(out[key], (*where, key))
        return MappingProxyType(out)
