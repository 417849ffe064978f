"""Correlation rules: which alerts a rule takes, how it groups them into incidents, and first-match routing."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from itsmd.core.matcher import FirstMatch, Matcher, format_labels
from itsmd.core.priority import Level, Priority, impact_of_tier, parse_level, priority, urgency_of_severity
from itsmd.core.problem import signature, signature_labels
from itsmd.core.service import UNMAPPED

# The names a rule's templates may use; `Rule.context` builds exactly these.
CONTEXT_NAMES = ("rule", "labels", "annotations", "alerts", "alert_count", "incident", "service")
TITLE_MAX_LENGTH = 1000


def _check_seconds(what: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number of seconds >= 0, got {value!r}")


class Renderable(Protocol):
    """A template as the core sees it (`itsmd.template.Template` and the defaults below)."""

    @property
    def source(self) -> str: ...

    def render(self, context: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True, slots=True)
class Fixed:
    """A constant text, e.g. the default impact `medium`."""

    source: str

    def render(self, context: Mapping[str, Any]) -> str:
        return self.source


@dataclass(frozen=True, slots=True)
class DefaultTitle:
    """The default title: the `alertname` the incident's alerts share, else the rule's name."""

    source: str = "{{ labels.alertname | default(rule) }}"

    def render(self, context: Mapping[str, Any]) -> str:
        labels = context.get("labels")
        name = labels.get("alertname") if isinstance(labels, Mapping) else None
        return str(name or context.get("rule") or "")[:TITLE_MAX_LENGTH]


@dataclass(frozen=True, slots=True)
class SeverityUrgency:
    """The default urgency, from the `severity` label: critical/page/error/high -> high, info/low -> low, else
    medium (missing included)."""

    source: str = "(urgency from the severity label)"

    def render(self, context: Mapping[str, Any]) -> str:
        labels = context.get("labels")
        severity = labels.get("severity") if isinstance(labels, Mapping) else None
        return urgency_of_severity(severity if isinstance(severity, str) else None).value


@dataclass(frozen=True, slots=True)
class TierImpact:
    """The default impact, from the tier of the incident's service: 1 -> high, 2 -> medium, 3 -> low; no tier
    or no service -> medium."""

    source: str = "(impact from the service tier)"

    def render(self, context: Mapping[str, Any]) -> str:
        service = context.get("service")
        tier = service.get("tier") if isinstance(service, Mapping) else None
        return impact_of_tier(tier if isinstance(tier, int) else None).value


DEFAULT_TITLE = DefaultTitle()
DEFAULT_IMPACT = TierImpact()
DEFAULT_URGENCY = SeverityUrgency()


class ResolveKind(StrEnum):
    ALL = "all"  # every alert of the incident resolved
    ANY = "any"  # one alert of the incident resolved
    QUIET = "quiet"  # no alert of the incident firing for `quiet` seconds
    MANUAL = "manual"  # only a person resolves


@dataclass(frozen=True, slots=True)
class ResolvePolicy:
    kind: ResolveKind
    quiet: float = 0.0  # seconds, for QUIET only

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ResolveKind(self.kind))
        _check_seconds("resolve quiet", self.quiet)
        if self.kind is not ResolveKind.QUIET and self.quiet:
            raise ValueError(f"resolve {self.kind.value} takes no quiet period")

    def __str__(self) -> str:
        return f"quiet:{self.quiet:g}s" if self.kind is ResolveKind.QUIET else self.kind.value


@dataclass(frozen=True, slots=True)
class Inhibit:
    """Alerts matching `matchers` whose `equal` labels equal the cause's are symptoms (missing = empty)."""

    matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def inhibits(self, cause: Mapping[str, str], symptom: Mapping[str, str]) -> bool:
        return all(m.matches(symptom) for m in self.matchers) and all(
            cause.get(name, "") == symptom.get(name, "") for name in self.equal
        )


@dataclass(frozen=True, slots=True)
class ProblemPolicy:
    """Open a problem when `after` incidents of one signature opened within `within` seconds."""

    after: int
    within: float
    by: tuple[str, ...] | None = None  # signature labels; None: group_by minus problem.VOLATILE_LABELS

    def __post_init__(self) -> None:
        if self.after < 1:
            raise ValueError("problem.after must be >= 1")
        _check_seconds("problem.within", self.within)
        if self.within == 0:
            raise ValueError("within must be more than 0")


@dataclass(frozen=True, slots=True)
class FlappingPolicy:
    """An incident is flapping after `changes` fire/resolve changes within `within` seconds."""

    changes: int
    within: float

    def __post_init__(self) -> None:
        if self.changes < 2:
            raise ValueError("flapping.changes must be >= 2")
        _check_seconds("flapping.within", self.within)
        if self.within == 0:
            raise ValueError("within must be more than 0")


@dataclass(frozen=True, slots=True)
class Escalation:
    after: float | None = None  # seconds after opening; None: the rule's hold
    to: tuple[str, ...] = ()  # notifier names; empty: the notifiers marked `default`
    repeat: float | None = None  # seconds between repeated pages; None: page once per cause

    def __post_init__(self) -> None:
        for what, value in (("escalate.after", self.after), ("escalate.repeat", self.repeat)):
            if value is not None:
                _check_seconds(what, value)


@dataclass(frozen=True, slots=True)
class Rule:
    """One correlation rule; times are seconds. `source` is its file and `position` its index in the rule set."""

    name: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    min_alerts: int = 1
    window: float = 300.0
    hold: float = 0.0
    title: Renderable = DEFAULT_TITLE
    impact: Renderable = DEFAULT_IMPACT
    urgency: Renderable = DEFAULT_URGENCY
    resolve: ResolvePolicy = ResolvePolicy(ResolveKind.ALL)
    reopen_within: float = 1800.0
    inhibits: tuple[Inhibit, ...] = ()
    problem: ProblemPolicy | None = None
    flapping: FlappingPolicy | None = None
    playbooks: tuple[str, ...] = ()
    escalate: Escalation | None = None
    source: str = ""
    position: int = 0
    _key_names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _signature_names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("rule name must not be empty")
        if self.min_alerts < 1:
            raise ValueError("min_alerts must be >= 1")
        for what in ("window", "hold", "reopen_within"):
            _check_seconds(what, getattr(self, what))
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by names a label twice")
        by = self.problem.by if self.problem is not None else None
        # Sorted, so reordering group_by in the file keeps the keys of open incidents.
        object.__setattr__(self, "_key_names", tuple(sorted(self.group_by)))
        object.__setattr__(self, "_signature_names", signature_labels(self.group_by, by))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def key(self, labels: Mapping[str, str]) -> str:
        """The correlation key: the group_by labels by name, e.g. `{cluster="c1", instance="a"}`; missing = ""."""
        return format_labels((name, labels.get(name, "")) for name in self._key_names)

    @property
    def signature_labels(self) -> tuple[str, ...]:
        """The labels of the problem signature: `problem.by`, else group_by minus the volatile labels (sorted)."""
        return self._signature_names

    def signature(self, labels: Mapping[str, str]) -> str:
        """The problem signature: rule name and signature labels, e.g. `disk-space-low{cluster="c1"}`."""
        return signature(self.name, self._signature_names, labels)

    @property
    def escalate_after(self) -> float:
        """Seconds after opening before an unacknowledged incident pages: `escalate.after`, else `hold`."""
        after = self.escalate.after if self.escalate is not None else None
        return self.hold if after is None else after

    def context(
        self,
        labels: Mapping[str, str],
        *,
        annotations: Mapping[str, str] | None = None,
        alerts: Sequence[Mapping[str, Any]] = (),
        incident: Mapping[str, Any] | None = None,
        service: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The context of this rule's templates (every name in CONTEXT_NAMES); `service` None is UNMAPPED."""
        return {
            "rule": self.name,
            "labels": labels,
            "annotations": annotations if annotations is not None else {},
            "alerts": alerts,
            "alert_count": len(alerts),
            "incident": incident,
            "service": service if service is not None else UNMAPPED,
        }

    def impact_level(self, context: Mapping[str, Any]) -> Level:
        """The rendered impact; raises ValueError (a template's RenderError too) if it is not high|medium|low."""
        return parse_level(self.impact.render(context))

    def urgency_level(self, context: Mapping[str, Any]) -> Level:
        """The rendered urgency; raises ValueError like `impact_level`."""
        return parse_level(self.urgency.render(context))

    def priority(self, context: Mapping[str, Any]) -> Priority:
        """Impact x urgency; raises ValueError if either template fails."""
        return priority(self.impact_level(context), self.urgency_level(context))


class RuleSet:
    """Rules in precedence order (files sorted, then file order); routing cost does not grow with their number
    (each rule is indexed under one of its equality matchers, preferably on `alertname`: see `FirstMatch`)."""

    __slots__ = ("_by_name", "_inhibitors", "_router", "_rules")

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules = tuple(rules)
        self._by_name: dict[str, Rule] = {}
        for rule in self._rules:
            if rule.name in self._by_name:
                raise ValueError(f"duplicate rule name {rule.name!r}")
            self._by_name[rule.name] = rule
        self._router = FirstMatch((rule, rule.matchers) for rule in self._rules)
        self._inhibitors = tuple(rule for rule in self._rules if rule.inhibits)

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __repr__(self) -> str:
        return f"RuleSet({len(self._rules)} rules)"

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def route(self, labels: Mapping[str, str]) -> Rule | None:
        """The first rule whose matchers all match `labels`, or None (the alert is unrouted)."""
        return self._router.first(labels)

    def by_name(self, name: str) -> Rule | None:
        return self._by_name.get(name)

    def inhibitors(self) -> tuple[Rule, ...]:
        """The rules that have `inhibits`, in precedence order."""
        return self._inhibitors
