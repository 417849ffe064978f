"""Table-driven tests of the incident core: placement, resolve policies, the state machine."""

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.core.incident import Action, Counts, Placement, State, common_labels, place, progress, refusal

NOW = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("unresolved", "resolved_ago", "pending", "min_alerts", "expected"),
    [
        (True, None, 1, 3, Placement.JOIN),
        (False, 60, 1, 3, Placement.REOPEN),
        (False, 1801, 3, 3, Placement.OPEN),  # resolved too long ago: a new incident
        (False, 1801, 2, 3, Placement.PENDING),
        (False, None, 1, 1, Placement.OPEN),
        (False, None, 0 + 1, 2, Placement.PENDING),
    ],
)
def test_place(unresolved: bool, resolved_ago: float | None, pending: int, min_alerts: int,
               expected: Placement) -> None:
    resolved_at = NOW - timedelta(seconds=resolved_ago) if resolved_ago is not None else None
    assert place(unresolved, resolved_at, 1800, pending, min_alerts, NOW) == expected


@pytest.mark.parametrize(
    ("policy", "counts", "resolve", "resolve_at"),
    [
        ("all", Counts(3, 1, 3, 1, 0), False, None),
        ("all", Counts(3, 0, 3, 0, 0), True, None),
        ("all", Counts(3, 1, 2, 0, 0), True, None),  # a firing symptom does not hold a cause's resolution
        ("any", Counts(3, 2, 3, 2, 0), True, None),
        ("any", Counts(3, 3, 3, 3, 0), False, None),
        ("quiet", Counts(2, 0, 2, 0, 0), False, NOW + timedelta(seconds=300)),
        ("quiet", Counts(2, 1, 2, 1, 0), False, None),
        ("manual", Counts(2, 0, 2, 0, 0), False, None),
    ],
)
def test_progress(policy: str, counts: Counts, resolve: bool, resolve_at: datetime | None) -> None:
    p = progress(policy, 300, counts, NOW)
    assert (p.resolve, p.resolve_at) == (resolve, resolve_at)
    cleared = counts.causes_firing == 0 or (policy == "any" and resolve)
    assert (p.restored_at == NOW) == cleared


@pytest.mark.parametrize(
    ("action", "allowed"),
    [
        (Action.ACK, {State.OPEN}),
        (Action.RESOLVE, {State.OPEN, State.ACKNOWLEDGED}),
        (Action.CLOSE, {State.RESOLVED}),
        (Action.REOPEN, {State.RESOLVED}),
    ],
)
def test_state_machine(action: Action, allowed: set[State]) -> None:
    for state in State:
        assert (refusal(action, state) is None) == (state in allowed), (action, state)


def test_common_labels() -> None:
    labels = common_labels(None, {"a": "1", "b": "2"})
    assert common_labels(labels, {"a": "1", "b": "3"}) == {"a": "1"}
