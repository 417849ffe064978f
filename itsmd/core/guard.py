"""Guards: whether a triggered playbook run may execute now, and why not (one reason, stored on the skipped run),
and the circuit breaker each playbook carries."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from itsmd.core.playbook import Playbook


class SkipReason(StrEnum):
    """Why a run was stored `skipped` (DESIGN §1.6 item 13); the same value is logged and counted."""

    KILL_SWITCH = "kill_switch"
    PARAM_INVALID = "param_invalid"
    BLAST_RADIUS = "blast_radius"
    CIRCUIT_OPEN = "circuit_open"
    FLAPPING = "flapping"
    COOLDOWN = "cooldown"
    RATE_LIMITED = "rate_limited"
    CONCURRENCY = "concurrency"
    DRY_RUN = "dry_run"


class BreakerPhase(StrEnum):
    CLOSED = "closed"  # runs go ahead; failures are counted
    OPEN = "open"  # every run is skipped (circuit_open) until `reset_after` has passed
    HALF_OPEN = "half_open"  # one probe run goes ahead; its outcome closes or reopens the breaker


@dataclass(frozen=True, slots=True)
class Breaker:
    """A playbook's circuit breaker state (persisted by the caller). `failures` are the times of failed runs
    since the last success, within the policy's window; `probing` says the half-open probe is out."""

    phase: BreakerPhase = BreakerPhase.CLOSED
    failures: tuple[datetime, ...] = ()
    opened_at: datetime | None = None
    probing: bool = False


CLOSED = Breaker()


def breaker_admit(breaker: Breaker, playbook: Playbook, now: datetime) -> tuple[bool, Breaker]:
    """Whether the breaker lets a run through now, and its state once that run is started.

    Open -> half-open once `reset_after` has passed since it opened; half-open admits one probe at a time.
    """
    policy = playbook.circuit_breaker
    if policy is None or breaker.phase is BreakerPhase.CLOSED:
        return True, breaker
    if breaker.phase is BreakerPhase.OPEN:
        opened = breaker.opened_at or now
        if now - opened < timedelta(seconds=policy.reset_after):
            return False, breaker
        return True, Breaker(BreakerPhase.HALF_OPEN, opened_at=breaker.opened_at, probing=True)
    if breaker.probing:
        return False, breaker
    return True, replace(breaker, probing=True)


def breaker_record(breaker: Breaker, playbook: Playbook, succeeded: bool, now: datetime) -> Breaker:
    """The state after a run of the playbook ended (`succeeded` false: failed, timed out or unknown).

    Closed: a success clears the failures; `failures` failures within `within` open it. Half-open: the probe's
    success closes it, its failure opens it again. Open: outcomes of runs admitted earlier change nothing.
    """
    policy = playbook.circuit_breaker
    if policy is None:
        return breaker
    if breaker.phase is BreakerPhase.HALF_OPEN:
        return CLOSED if succeeded else Breaker(BreakerPhase.OPEN, opened_at=now)
    if breaker.phase is BreakerPhase.OPEN:
        return breaker
    if succeeded:
        return CLOSED
    since = now - timedelta(seconds=policy.within)
    failures = (*(t for t in breaker.failures if t > since), now)
    if len(failures) >= policy.failures:
        return Breaker(BreakerPhase.OPEN, opened_at=now)
    return Breaker(BreakerPhase.CLOSED, failures=failures)


def breaker_reset() -> Breaker:
    """A manual reset: closed, failures forgotten."""
    return CLOSED


@dataclass(frozen=True, slots=True)
class Facts:
    """What the guards look at, as plain values the caller reads from config and storage.

    - `enabled_in_config`, `enabled_at_runtime`: `automation.enabled` and the persisted run-time switch
    - `dry_run`: `automation.dry_run`
    - `param_problem`: why the params did not render or match their pattern (None: they are valid)
    - `flapping`: the incident is flagged flapping
    - `firing_targets`, `known_targets`: of the incident's service (known 0: unknown, no blast radius check)
    - `breaker`: the playbook's circuit breaker
    - `last_finished_at`: when the last executed (not skipped) run of this playbook on this target ended
    - `recent_runs`: executed runs of this playbook on this target created within `rate_limit.per` before now
    - `active_runs`: runs of this playbook on this target that are pending, awaiting approval or running
    - `manual`: a person asked for this run: flapping, blast radius, cooldown and rate limit do not apply
    """

    enabled_in_config: bool = True
    enabled_at_runtime: bool = True
    dry_run: bool = False
    param_problem: str | None = None
    flapping: bool = False
    firing_targets: int = 0
    known_targets: int = 0
    breaker: Breaker = CLOSED
    last_finished_at: datetime | None = None
    recent_runs: int = 0
    active_runs: int = 0
    manual: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """`run` or not; `reason` is None exactly when `run`. `detail` says more for people (log, timeline);
    `breaker` is the breaker state to store when the run goes ahead (a half-open probe taken)."""

    run: bool
    reason: SkipReason | None = None
    detail: str = ""
    breaker: Breaker | None = None


def should_run(playbook: Playbook, facts: Facts, now: datetime) -> Decision:
    """The first guard that stops the run, in this order: kill switch, invalid params, blast radius, circuit
    breaker, flapping, cooldown, rate limit, concurrency, dry run (last, so a dry run means every other guard
    would have let it run)."""
    if not (facts.enabled_in_config and facts.enabled_at_runtime):
        where = "config" if not facts.enabled_in_config else "run-time switch"
        return _skip(SkipReason.KILL_SWITCH, f"automation is disabled ({where})")
    if facts.param_problem is not None:
        return _skip(SkipReason.PARAM_INVALID, facts.param_problem)
    radius = playbook.blast_radius
    if not facts.manual and radius is not None and facts.known_targets > 0:
        fraction = facts.firing_targets / facts.known_targets
        if fraction > radius.max_fraction:
            return _skip(SkipReason.BLAST_RADIUS, f"{facts.firing_targets} of {facts.known_targets} targets firing "
                                                  f"(more than {radius.max_fraction:.0%})")
    admitted, breaker = breaker_admit(facts.breaker, playbook, now)
    if not admitted:
        return _skip(SkipReason.CIRCUIT_OPEN, f"circuit breaker {facts.breaker.phase.value}")
    if not facts.manual:
        stopped = _pacing(playbook, facts, now)
        if stopped is not None:
            return stopped
    if facts.active_runs >= playbook.concurrency.limit:
        return _skip(SkipReason.CONCURRENCY, f"{facts.active_runs} run(s) already active on this target")
    if facts.dry_run:
        return _skip(SkipReason.DRY_RUN, "automation.dry_run is on")
    return Decision(True, breaker=breaker)


def _pacing(playbook: Playbook, facts: Facts, now: datetime) -> Decision | None:
    if facts.flapping:
        return _skip(SkipReason.FLAPPING, "the incident is flapping")
    last = facts.last_finished_at
    if playbook.cooldown and last is not None and now - last < timedelta(seconds=playbook.cooldown):
        return _skip(SkipReason.COOLDOWN, f"the last run on this target ended less than {playbook.cooldown:g}s ago")
    limit = playbook.rate_limit
    if facts.recent_runs >= limit.max:
        return _skip(SkipReason.RATE_LIMITED, f"{facts.recent_runs} runs on this target within {limit.per:g}s "
                                              f"(at most {limit.max})")
    return None


def _skip(reason: SkipReason, detail: str) -> Decision:
    return Decision(False, reason, detail)
