"""The service catalogue file: YAML -> JSON Schema -> matchers and cross-checks (names, dependencies, cycles) ->
one Catalogue, every problem at once."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from itsmd.config.document import load_validator, read_yaml, validate
from itsmd.config.problem import PathElement, Problem, format_path, format_problems, known_names
from itsmd.core.matcher import parse_matcher
from itsmd.core.service import Catalogue, Service, dependency_cycles, format_cycle
from itsmd.errors import ConfigError

SCHEMA_NAME = "services.schema.json"
_OWNED_TIERS = (1, 2)  # tiers whose services must name an owner (reference/itsm-domain.md §2.2)

Where = tuple[PathElement, ...]


def load_services(path: Path | None) -> Catalogue:
    """The catalogue in the file at `path` (None: no catalogue, every alert unmapped).

    Raises ConfigError with every problem as `FILE: PATH: message`, e.g. `services.yaml: services[2].depends_on[0]:
    unknown service 'db'`.
    """
    if path is None:
        return Catalogue()
    return compile_services(read_yaml(path, str(path)), str(path))


def compile_services(data: Any, file: str) -> Catalogue:
    """The catalogue of a parsed document (None: an empty file); raises ConfigError with every problem."""
    if data is None:
        return Catalogue()
    problems = validate(data, load_validator(SCHEMA_NAME))
    items = data.get("services") if isinstance(data, dict) else None
    if isinstance(items, list):
        problems += _Compiler(items, [p.path for p in problems]).problems
    if problems:
        raise ConfigError(format_problems(problems, file))
    return Catalogue(_service(raw) for raw in items or ())


def _service(raw: Mapping[str, Any]) -> Service:
    """A service of a document that has no problems."""
    return Service(
        name=raw["name"],
        matchers=tuple(parse_matcher(text) for text in raw["match"]),
        owner=raw.get("owner"),
        tier=raw.get("tier"),
        depends_on=tuple(raw.get("depends_on", ())),
    )


class _Compiler:
    """The checks beyond the schema, over the services the schema left readable: matchers, duplicate names,
    owners of critical tiers, unknown dependencies and dependency cycles."""

    def __init__(self, items: list[Any], schema_paths: list[Where]) -> None:
        self.problems: list[Problem] = []
        self._schema_paths = schema_paths
        self._first: dict[str, Where] = {}  # where each name is given first
        for i, raw in enumerate(items):
            if isinstance(raw, dict):
                self._check(raw, ("services", i))
        graph: dict[str, list[str]] = {}
        edges: dict[tuple[str, str], Where] = {}
        for i, raw in enumerate(items):
            if isinstance(raw, dict):
                self._dependencies(raw, ("services", i), graph, edges)
        for cycle in dependency_cycles(graph):
            self._problem(edges[(cycle[-1], cycle[0])], f"dependency cycle: {format_cycle(cycle)}")

    def _clean(self, where: Where) -> bool:
        """No schema problem at or inside `where`."""
        return not any(path[: len(where)] == where for path in self._schema_paths)

    def _problem(self, where: Where, message: str) -> None:
        self.problems.append(Problem(where, message))

    def _name(self, raw: Mapping[str, Any], where: Where) -> str | None:
        name = raw.get("name")
        return name if isinstance(name, str) and self._clean((*where, "name")) else None

    def _check(self, raw: Mapping[str, Any], where: Where) -> None:
        name = self._name(raw, where)
        if name is not None:
            first = self._first.setdefault(name, where)
            if first != where:
                self._problem((*where, "name"), f"duplicate service name {name!r} (also {format_path(first)})")
        matchers = raw.get("match")
        if isinstance(matchers, list) and self._clean((*where, "match")):
            for j, text in enumerate(matchers):
                self._matcher(text, (*where, "match", j))
        tier = raw.get("tier")
        if tier in _OWNED_TIERS and "owner" not in raw and self._clean((*where, "tier")):
            self._problem(where, f"a tier {tier} service needs an owner")

    def _matcher(self, text: str, where: Where) -> None:
        try:
            parse_matcher(text)
        except ValueError as e:
            self._problem(where, str(e))

    def _dependencies(
        self, raw: Mapping[str, Any], where: Where, graph: dict[str, list[str]], edges: dict[tuple[str, str], Where]
    ) -> None:
        """Report unknown dependencies; record the known ones (first definition of a name only) for cycles."""
        names = raw.get("depends_on", [])
        if not isinstance(names, list):
            return
        name = self._name(raw, where)
        owner = name is not None and self._first.get(name) == where
        for j, other in enumerate(names):
            at = (*where, "depends_on", j)
            if not isinstance(other, str) or not self._clean(at):
                continue
            if other not in self._first:
                self._problem(at, f"unknown service {other!r}{known_names(self._first) or '; the file names none'}")
            elif owner:
                assert name is not None
                graph.setdefault(name, []).append(other)
                edges.setdefault((name, other), at)
