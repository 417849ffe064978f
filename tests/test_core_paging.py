"""The paging decision (DESIGN §1.6 item 12), table-driven: every cause, hold, escalate.after, repeat, ack,
resolve, one page per cause; and the hourly budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.core.paging import (
    Budget,
    Cause,
    Policy,
    Reason,
    Situation,
    budget,
    decide,
    describe,
    run_cause,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RECHECK = 5.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


RUN_STATES = [("failed", Cause.RUN_FAILED), ("timed_out", Cause.RUN_TIMED_OUT), ("expired", Cause.RUN_EXPIRED),
              ("unknown", Cause.RUN_UNKNOWN), ("skipped", Cause.RUN_SKIPPED), ("rejected", Cause.RUN_REJECTED)]


@pytest.mark.parametrize(("state", "cause"), RUN_STATES)
def test_every_bad_run_state_is_a_cause(state: str, cause: Cause) -> None:
    assert run_cause(state) is cause


@pytest.mark.parametrize("state", ["pending", "awaiting_approval", "running", "succeeded", "cancelled"])
def test_other_run_states_page_nobody(state: str) -> None:
    assert run_cause(state) is None


HOLD_2M = Policy(hold=120, after=120)
AFTER_15M = Policy(hold=120, after=900)
REPEAT = Policy(hold=0, after=60, repeat=300)

CASES = [
    # (name, policy, situation, now, reason, causes, next_at)
    ("before escalate.after: wait for it", HOLD_2M, Situation("open", T0), at(30),
     Reason.WAITING, (), at(120)),
    ("escalate.after passed, no run: page", HOLD_2M, Situation("open", T0), at(120),
     Reason.PAGE, (Cause.UNATTENDED,), None),
    ("escalate.after passed while a run is in progress: look again", HOLD_2M,
     Situation("open", T0, run_in_progress=True), at(200), Reason.RUN_IN_PROGRESS, (), at(205)),
    ("a failed run before hold: wait for hold", AFTER_15M,
     Situation("open", T0, run_causes=frozenset({Cause.RUN_FAILED})), at(30), Reason.HOLD, (), at(120)),
    ("a failed run after hold: page at once, unattended still to come", AFTER_15M,
     Situation("open", T0, run_causes=frozenset({Cause.RUN_FAILED})), at(121), Reason.PAGE,
     (Cause.RUN_FAILED,), at(900)),
    ("a run cause already paged: no second page for it", AFTER_15M,
     Situation("open", T0, run_causes=frozenset({Cause.RUN_FAILED}), paged=frozenset({Cause.RUN_FAILED}),
               pages=1, last_paged_at=at(121)), at(500), Reason.WAITING, (), at(900)),
    ("two causes due at once: one page for both", HOLD_2M,
     Situation("open", T0, run_causes=frozenset({Cause.RUN_SKIPPED})), at(120), Reason.PAGE,
     (Cause.RUN_SKIPPED, Cause.UNATTENDED), None),
    ("a new cause after an earlier page: paged", AFTER_15M,
     Situation("open", T0, run_causes=frozenset({Cause.RUN_FAILED, Cause.RUN_UNKNOWN}),
               paged=frozenset({Cause.RUN_FAILED}), pages=1, last_paged_at=at(121)), at(600), Reason.PAGE,
     (Cause.RUN_UNKNOWN,), at(900)),
    ("every cause paged, no repeat: nothing more, ever", HOLD_2M,
     Situation("open", T0, paged=frozenset({Cause.UNATTENDED}), pages=1, last_paged_at=at(120)), at(9999),
     Reason.WAITING, (), None),
    ("repeat not yet due", REPEAT,
     Situation("open", T0, paged=frozenset({Cause.UNATTENDED}), pages=1, last_paged_at=at(60)), at(200),
     Reason.WAITING, (), at(360)),
    ("repeat due: page again", REPEAT,
     Situation("open", T0, paged=frozenset({Cause.UNATTENDED}), pages=1, last_paged_at=at(60)), at(360),
     Reason.REPEAT, (Cause.REPEAT,), at(660)),
    ("repeat goes on while a run is in progress", REPEAT,
     Situation("open", T0, run_in_progress=True, paged=frozenset({Cause.UNATTENDED}), pages=2,
               last_paged_at=at(360)), at(660), Reason.REPEAT, (Cause.REPEAT,), at(960)),
    ("first page with repeat: the next repeat is scheduled", REPEAT, Situation("open", T0), at(60),
     Reason.PAGE, (Cause.UNATTENDED,), at(360)),
    ("acknowledged: no page, whatever is due", REPEAT,
     Situation("acknowledged", T0, run_causes=frozenset({Cause.RUN_FAILED}), pages=1, last_paged_at=at(60)),
     at(9999), Reason.ACKNOWLEDGED, (), None),
    ("resolved: no page", HOLD_2M, Situation("resolved", T0), at(9999), Reason.RESOLVED, (), None),
    ("closed: no page", HOLD_2M, Situation("closed", T0), at(9999), Reason.RESOLVED, (), None),
    ("hold 0 and no escalate: page at once", Policy(), Situation("open", T0), T0, Reason.PAGE,
     (Cause.UNATTENDED,), None),
    ("a reopened cycle counts from its reopening", HOLD_2M, Situation("open", at(3600)), at(3650),
     Reason.WAITING, (), at(3720)),
]


@pytest.mark.parametrize(("name", "policy", "situation", "now", "reason", "causes", "next_at"), CASES,
                         ids=[c[0] for c in CASES])
def test_decide(name: str, policy: Policy, situation: Situation, now: datetime, reason: Reason,
                causes: tuple[Cause, ...], next_at: datetime | None) -> None:
    d = decide(policy, situation, now, RECHECK)
    assert (d.reason, d.causes, d.next_at) == (reason, causes, next_at)
    assert d.page == bool(causes)


@pytest.mark.parametrize(("state", "cause"), RUN_STATES)
def test_each_run_cause_pages_once_after_hold(state: str, cause: Cause) -> None:
    policy = Policy(hold=60, after=3600)
    first = decide(policy, Situation("open", T0, run_causes=frozenset({cause})), at(61), RECHECK)
    assert first.causes == (cause,)
    again = decide(policy, Situation("open", T0, run_causes=frozenset({cause}), paged=frozenset({cause}),
                                     pages=1, last_paged_at=at(61)), at(62), RECHECK)
    assert again.causes == ()


def test_reasons_name_the_causes() -> None:
    text = describe((Cause.RUN_FAILED, Cause.UNATTENDED), Policy(hold=0, after=900), 0)
    assert "failed" in text and "900s" in text
    assert "repeat 2" in describe((Cause.REPEAT,), Policy(repeat=300), 2)


@pytest.mark.parametrize(("paged", "limit", "summary", "verdict"), [
    (0, 30, False, Budget.SEND),
    (29, 30, False, Budget.SEND),
    (30, 30, False, Budget.SUMMARISE),
    (31, 30, True, Budget.SUPPRESS),
    (30, 30, True, Budget.SUPPRESS),
    (0, 0, False, Budget.SUMMARISE),  # max_pages_per_hour 0: every page only in the summary
])
def test_budget(paged: int, limit: int, summary: bool, verdict: Budget) -> None:
    assert budget(paged, limit, summary) is verdict
