"""Guards: each skip reason, their order, and the circuit breaker's state machine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from itsmd.core.guard import (
    CLOSED,
    Breaker,
    BreakerPhase,
    Facts,
    SkipReason,
    breaker_admit,
    breaker_record,
    breaker_reset,
    should_run,
)
from itsmd.core.playbook import (
    BlastRadius,
    CircuitBreaker,
    Concurrency,
    Playbook,
    RateLimit,
    SleepSpec,
    Step,
)
from itsmd.core.rule import Fixed

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PLAYBOOK = Playbook(
    name="fix",
    steps=(Step("s", SleepSpec(1.0)),),
    concurrency=Concurrency(Fixed("{{ params.x }}"), limit=1),
    cooldown=600.0,
    rate_limit=RateLimit(max=3, per=3600.0),
    circuit_breaker=CircuitBreaker(failures=3, within=3600.0, reset_after=1800.0),
    blast_radius=BlastRadius(0.4),
)
OPEN = Breaker(BreakerPhase.OPEN, opened_at=NOW - timedelta(minutes=5))


@pytest.mark.parametrize(("facts", "reason"), [
    (Facts(), None),
    (Facts(enabled_in_config=False), SkipReason.KILL_SWITCH),
    (Facts(enabled_at_runtime=False), SkipReason.KILL_SWITCH),
    (Facts(param_problem="param x: 'a;b' does not match"), SkipReason.PARAM_INVALID),
    (Facts(firing_targets=9, known_targets=20), SkipReason.BLAST_RADIUS),
    (Facts(firing_targets=8, known_targets=20), None),  # exactly 40% is allowed
    (Facts(firing_targets=5, known_targets=0), None),  # unknown target count: no blast radius check
    (Facts(breaker=OPEN), SkipReason.CIRCUIT_OPEN),
    (Facts(flapping=True), SkipReason.FLAPPING),
    (Facts(last_finished_at=NOW - timedelta(minutes=9)), SkipReason.COOLDOWN),
    (Facts(last_finished_at=NOW - timedelta(minutes=10)), None),
    (Facts(recent_runs=3), SkipReason.RATE_LIMITED),
    (Facts(recent_runs=2), None),
    (Facts(active_runs=1), SkipReason.CONCURRENCY),
    (Facts(dry_run=True), SkipReason.DRY_RUN),
])
def test_each_reason(facts: Facts, reason: SkipReason | None) -> None:
    decision = should_run(PLAYBOOK, facts, NOW)
    assert (decision.run, decision.reason) == (reason is None, reason)
    assert decision.detail or reason is None


ALL_STOPPED = Facts(enabled_in_config=False, param_problem="bad", firing_targets=20, known_targets=20,
                    breaker=OPEN, flapping=True, last_finished_at=NOW, recent_runs=9, active_runs=9, dry_run=True)
ORDER = [
    ("enabled_in_config", True, SkipReason.KILL_SWITCH),
    ("param_problem", None, SkipReason.PARAM_INVALID),
    ("firing_targets", 0, SkipReason.BLAST_RADIUS),
    ("breaker", CLOSED, SkipReason.CIRCUIT_OPEN),
    ("flapping", False, SkipReason.FLAPPING),
    ("last_finished_at", None, SkipReason.COOLDOWN),
    ("recent_runs", 0, SkipReason.RATE_LIMITED),
    ("active_runs", 0, SkipReason.CONCURRENCY),
    ("dry_run", False, SkipReason.DRY_RUN),
]


def test_order_first_failing_guard_wins() -> None:
    facts = ALL_STOPPED
    for name, allowed, reason in ORDER:
        assert should_run(PLAYBOOK, facts, NOW).reason == reason
        facts = replace(facts, **{name: allowed})
    assert should_run(PLAYBOOK, facts, NOW).run


def test_manual_runs_skip_pacing_guards_but_not_safety() -> None:
    paced = Facts(flapping=True, last_finished_at=NOW, recent_runs=9, firing_targets=20, known_targets=20,
                  manual=True)
    assert should_run(PLAYBOOK, paced, NOW).run
    for facts, reason in ((replace(paced, enabled_at_runtime=False), SkipReason.KILL_SWITCH),
                          (replace(paced, breaker=OPEN), SkipReason.CIRCUIT_OPEN),
                          (replace(paced, active_runs=1), SkipReason.CONCURRENCY),
                          (replace(paced, param_problem="x"), SkipReason.PARAM_INVALID)):
        assert should_run(PLAYBOOK, facts, NOW).reason == reason


def test_no_breaker_policy_means_no_breaker() -> None:
    plain = replace(PLAYBOOK, circuit_breaker=None)
    assert should_run(plain, Facts(breaker=OPEN), NOW).run
    assert breaker_record(CLOSED, plain, False, NOW) == CLOSED


def test_breaker_opens_after_failures_within_window() -> None:
    b = CLOSED
    b = breaker_record(b, PLAYBOOK, False, NOW - timedelta(minutes=90))  # outside `within` by the third
    b = breaker_record(b, PLAYBOOK, False, NOW - timedelta(minutes=20))
    b = breaker_record(b, PLAYBOOK, False, NOW - timedelta(minutes=10))
    assert b.phase is BreakerPhase.CLOSED and len(b.failures) == 2
    b = breaker_record(b, PLAYBOOK, False, NOW)
    assert (b.phase, b.opened_at) == (BreakerPhase.OPEN, NOW)


def test_a_success_clears_the_failures() -> None:
    b = breaker_record(breaker_record(CLOSED, PLAYBOOK, False, NOW), PLAYBOOK, False, NOW)
    b = breaker_record(b, PLAYBOOK, True, NOW)
    assert b == CLOSED
    assert breaker_record(b, PLAYBOOK, False, NOW).phase is BreakerPhase.CLOSED


def test_half_open_probe_then_close_or_reopen() -> None:
    opened = Breaker(BreakerPhase.OPEN, opened_at=NOW)
    assert breaker_admit(opened, PLAYBOOK, NOW + timedelta(minutes=29)) == (False, opened)
    later = NOW + timedelta(minutes=30)
    admitted, probing = breaker_admit(opened, PLAYBOOK, later)
    assert admitted and probing.phase is BreakerPhase.HALF_OPEN and probing.probing
    assert breaker_admit(probing, PLAYBOOK, later)[0] is False  # one probe at a time
    decision = should_run(PLAYBOOK, Facts(breaker=opened), later)
    assert decision.run and decision.breaker == probing  # the caller stores the probe
    assert should_run(PLAYBOOK, Facts(breaker=probing), later).reason is SkipReason.CIRCUIT_OPEN
    assert breaker_record(probing, PLAYBOOK, True, later) == CLOSED
    reopened = breaker_record(probing, PLAYBOOK, False, later)
    assert (reopened.phase, reopened.opened_at) == (BreakerPhase.OPEN, later)


def test_skipped_probe_keeps_breaker_unchanged_and_manual_reset_closes() -> None:
    opened = Breaker(BreakerPhase.OPEN, opened_at=NOW - timedelta(hours=1))
    decision = should_run(PLAYBOOK, Facts(breaker=opened, recent_runs=5), NOW)
    assert decision.reason is SkipReason.RATE_LIMITED and decision.breaker is None
    assert breaker_record(opened, PLAYBOOK, False, NOW) == opened  # late outcomes change nothing while open
    assert breaker_reset() == CLOSED
