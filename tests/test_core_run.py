"""Run ids, idempotency keys and recovery of orphaned runs (pure core)."""

from __future__ import annotations

from itsmd.core.run import Resume, StepMark, StepState, display_id, idempotency_key, parse_id, recover

P, R, S, F = StepState.PENDING, StepState.RUNNING, StepState.SUCCEEDED, StepState.FAILED


def test_ids_round_trip() -> None:
    assert display_id(456) == "RUN-456" and parse_id("RUN-456") == 456
    assert parse_id("INC-4") is None and parse_id("RUN-x") is None


def test_idempotency_key_is_per_trigger_and_target() -> None:
    key = idempotency_key(7, 0, "restart", "web1")
    assert key == idempotency_key(7, 0, "restart", "web1")
    assert len({key, idempotency_key(7, 1, "restart", "web1"), idempotency_key(7, 0, "restart", "web2"),
                idempotency_key(8, 0, "restart", "web1"), idempotency_key(7, 0, "other", "web1")}) == 5
    assert len(idempotency_key(1, 0, "p", "x" * 10_000)) < 100


def test_recovery() -> None:
    assert recover([StepMark(P, False), StepMark(P, True)]).action == Resume.START
    r = recover([StepMark(S, False), StepMark(R, True), StepMark(P, False)])
    assert (r.action, r.index) == (Resume.CONTINUE, 1)
    r = recover([StepMark(S, True), StepMark(R, False), StepMark(P, True)])
    assert (r.action, r.index) == (Resume.UNKNOWN, 1)
    r = recover([StepMark(S, False), StepMark(P, False)])
    assert (r.action, r.index) == (Resume.CONTINUE, 1)
    assert recover([StepMark(S, False), StepMark(F, False)]).index == 2
