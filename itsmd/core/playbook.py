"""Playbooks: what a remediation does (steps of fixed kinds, never a shell) and the guards that bound it."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from itsmd.core.rule import Renderable

# The names a playbook's templates may use. Params see the incident; the concurrency key also `params`; steps
# also `steps` (the steps before them). `Binding.context` builds exactly these.
PARAM_CONTEXT_NAMES = ("labels", "annotations", "alerts", "alert_count", "incident", "service")
TARGET_CONTEXT_NAMES = (*PARAM_CONTEXT_NAMES, "params")
STEP_CONTEXT_NAMES = (*TARGET_CONTEXT_NAMES, "steps")
# What later steps see of a step: `steps.<name>.<field>`.
STEP_RESULT_FIELDS = ("exit_code", "status", "output", "json")

DEFAULT_STEP_TIMEOUT = 300.0  # seconds, for exec, http, notify and silence steps without `timeout`
DEFAULT_PLAYBOOK_TIMEOUT = 3600.0  # seconds, for a whole run
DEFAULT_APPROVAL_TIMEOUT = 900.0
DEFAULT_EXPECT = (200, 201, 202, 204)  # the statuses an http step accepts without `expect`


def _check_seconds(what: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{what} must be a finite number of seconds {bound}, got {value!r}")


class ForEach(StrEnum):
    INCIDENT = "incident"  # one run per incident (and target)
    ALERT = "alert"  # one run per firing alert of the incident


class StepKind(StrEnum):
    EXEC = "exec"
    HTTP = "http"
    WAIT_RESOLVED = "wait_resolved"
    SLEEP = "sleep"
    NOTIFY = "notify"
    SILENCE = "silence"


class OnTimeout(StrEnum):
    ESCALATE = "escalate"  # the run ends `expired` and the incident is paged
    ABORT = "abort"  # the run ends `expired`, no page for it


@dataclass(frozen=True, slots=True)
class Param:
    """A declared parameter: `source` renders it from the incident; it must match `pattern` in full."""

    name: str
    source: Renderable
    pattern: re.Pattern[str] | None = None  # compiled from the file's text; applied with fullmatch


@dataclass(frozen=True, slots=True)
class Concurrency:
    """`key` renders the run's target (None: the incident, or the alert with for_each alert); at most `limit`
    runs of the playbook per target are pending, awaiting approval or running at once."""

    key: Renderable | None = None
    limit: int = 1

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError("concurrency.limit must be >= 1")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `max` runs of the playbook per target within `per` seconds (skipped runs not counted)."""

    max: int = 3
    per: float = 3600.0

    def __post_init__(self) -> None:
        if self.max < 1:
            raise ValueError("rate_limit.max must be >= 1")
        _check_seconds("rate_limit.per", self.per, positive=True)


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Per playbook: open after `failures` failed runs within `within` seconds; half-open (one probe run) after
    `reset_after` seconds open."""

    failures: int
    within: float
    reset_after: float

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ValueError("circuit_breaker.failures must be >= 1")
        _check_seconds("circuit_breaker.within", self.within, positive=True)
        _check_seconds("circuit_breaker.reset_after", self.reset_after)


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """No run when more than `max_fraction` of the service's known targets are firing."""

    max_fraction: float

    def __post_init__(self) -> None:
        if not 0 <= self.max_fraction <= 1:
            raise ValueError("blast_radius.max_fraction must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class Approval:
    required: bool = False
    timeout: float = DEFAULT_APPROVAL_TIMEOUT
    on_timeout: OnTimeout = OnTimeout.ESCALATE

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_timeout", OnTimeout(self.on_timeout))
        _check_seconds("approval.timeout", self.timeout, positive=True)


@dataclass(frozen=True, slots=True)
class Retries:
    """`attempts` in all, the first included; `backoff` seconds before the second, doubling after each retry."""

    attempts: int = 1
    backoff: float = 0.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retries.attempts must be >= 1")
        _check_seconds("retries.backoff", self.backoff)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (1-based; 0 for the first)."""
        return 0.0 if attempt <= 1 else self.backoff * 2 ** (attempt - 2)


# A JSON body whose strings are templates: rendered strings enter as data, keys stay as written.
JsonTemplate: TypeAlias = (
    Renderable | int | float | bool | tuple["JsonTemplate", ...] | Mapping[str, "JsonTemplate"] | None
)


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """argv[0] is the program (an absolute path or a name looked up on the allowlisted PATH); each template
    renders to exactly one argument."""

    argv: tuple[Renderable, ...]


@dataclass(frozen=True, slots=True)
class HttpSpec:
    method: str
    url: Renderable
    json: JsonTemplate = None  # None: no body
    headers_file: str | None = None  # absolute path of a file of `Name: value` lines (secret)
    headers_env: str | None = None  # environment variable holding such lines (secret)
    expect: tuple[int, ...] = DEFAULT_EXPECT


@dataclass(frozen=True, slots=True)
class WaitResolvedSpec:
    """Succeeds when the incident's alerts have cleared within `duration` seconds; else the step fails."""

    duration: float


@dataclass(frozen=True, slots=True)
class SleepSpec:
    duration: float


@dataclass(frozen=True, slots=True)
class NotifySpec:
    to: tuple[str, ...]  # notifier names; empty: the notifiers marked `default`
    text: Renderable


@dataclass(frozen=True, slots=True)
class SilenceMatcher:
    """One matcher of a silence step: the label name and operator as written, the value a template (`=`, `!=`) or
    literal (`=~`, `!~`). The rendered value is one literal matcher value, whatever it holds: quotes, commas,
    braces or newlines can never add or change a matcher."""

    name: str
    op: str  # = != =~ !~
    value: Renderable

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        return self.op in ("=", "=~")


@dataclass(frozen=True, slots=True)
class SilenceSpec:
    """An Alertmanager silence through the v2 API of `alertmanagers`, for `duration` seconds from the step (and
    expired when the run ends)."""

    matchers: tuple[SilenceMatcher, ...]
    duration: float
    comment: Renderable | None = None

    def __post_init__(self) -> None:
        _check_seconds("silence.duration", self.duration, positive=True)


StepSpec = ExecSpec | HttpSpec | WaitResolvedSpec | SleepSpec | NotifySpec | SilenceSpec

_KIND_OF_SPEC: dict[type, StepKind] = {
    ExecSpec: StepKind.EXEC,
    HttpSpec: StepKind.HTTP,
    WaitResolvedSpec: StepKind.WAIT_RESOLVED,
    SleepSpec: StepKind.SLEEP,
    NotifySpec: StepKind.NOTIFY,
    SilenceSpec: StepKind.SILENCE,
}
# Kinds that act on the world; the run is `auto_remediated` when the alerts clear after one of them succeeded.
REMEDIATION_KINDS = frozenset((StepKind.EXEC, StepKind.HTTP))


@dataclass(frozen=True, slots=True)
class Step:
    """One step; `timeout` in seconds (None: the kind's own duration for sleep and wait_resolved, else
    DEFAULT_STEP_TIMEOUT, and never past the run's timeout)."""

    name: str
    spec: StepSpec
    when: Renderable | None = None
    timeout: float | None = None
    retries: Retries = Retries()
    idempotent: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("step name must not be empty")
        if self.timeout is not None:
            _check_seconds("timeout", self.timeout, positive=True)

    @property
    def kind(self) -> StepKind:
        return _KIND_OF_SPEC[type(self.spec)]

    @property
    def effective_timeout(self) -> float:
        if self.timeout is not None:
            return self.timeout
        if isinstance(self.spec, WaitResolvedSpec | SleepSpec):
            return self.spec.duration
        return DEFAULT_STEP_TIMEOUT


@dataclass(frozen=True, slots=True)
class Playbook:
    """One playbook; times are seconds. `source` is its file."""

    name: str
    steps: tuple[Step, ...]
    for_each: ForEach = ForEach.INCIDENT
    params: tuple[Param, ...] = ()
    concurrency: Concurrency = Concurrency()
    cooldown: float = 0.0
    rate_limit: RateLimit = RateLimit()
    circuit_breaker: CircuitBreaker | None = None
    blast_radius: BlastRadius | None = None
    approval: Approval = Approval()
    timeout: float = DEFAULT_PLAYBOOK_TIMEOUT
    on_failure: tuple[Step, ...] = ()
    source: str = ""
    _steps_by_name: Mapping[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("playbook name must not be empty")
        if not self.steps:
            raise ValueError("a playbook needs at least one step")
        object.__setattr__(self, "for_each", ForEach(self.for_each))
        _check_seconds("cooldown", self.cooldown)
        _check_seconds("timeout", self.timeout, positive=True)
        by_name: dict[str, Step] = {}
        for step in (*self.steps, *self.on_failure):
            if step.name in by_name:
                raise ValueError(f"duplicate step name {step.name!r}")
            by_name[step.name] = step
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError("a param is declared twice")
        object.__setattr__(self, "_steps_by_name", by_name)

    def step(self, name: str) -> Step | None:
        """The step (of `steps` or `on_failure`) called `name`."""
        return self._steps_by_name.get(name)

    @property
    def remediates(self) -> bool:
        return any(s.kind in REMEDIATION_KINDS for s in self.steps)


class PlaybookSet:
    """The loaded playbooks by name, in load order."""

    __slots__ = ("_by_name",)

    def __init__(self, playbooks: Iterable[Playbook] = ()) -> None:
        self._by_name: dict[str, Playbook] = {}
        for playbook in playbooks:
            if playbook.name in self._by_name:
                raise ValueError(f"duplicate playbook name {playbook.name!r}")
            self._by_name[playbook.name] = playbook

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[Playbook]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __repr__(self) -> str:
        return f"PlaybookSet({len(self._by_name)} playbooks)"

    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def by_name(self, name: str) -> Playbook | None:
        return self._by_name.get(name)


def step_context(base: Mapping[str, Any], steps: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A step's template context: `base` (see `binding.context`, params included) and the results so far."""
    return {**base, "steps": steps}
