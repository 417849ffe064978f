"""The budget of audited authentication failures: `limit` per window, the rest counted and reported later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.core.auth_audit import Admission, AuthAuditBudget

T0 = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


def test_a_flood_records_limit_per_window_and_reports_the_rest_with_the_next_record() -> None:
    budget = AuthAuditBudget(limit=2, window=60)
    got = [budget.admit(T0 + timedelta(seconds=i)) for i in range(10)]
    assert got[:2] == [Admission(True, 0), Admission(True, 0)]
    assert all(a == Admission(False) for a in got[2:])
    assert budget.pending == 8
    assert budget.admit(T0 + timedelta(seconds=59)) == Admission(False)  # same window
    assert budget.admit(T0 + timedelta(seconds=60)) == Admission(True, 9)  # new window, the gap reported
    assert budget.pending == 0
    assert budget.admit(T0 + timedelta(seconds=61)) == Admission(True, 0)


def test_a_clock_stepping_back_starts_a_new_window() -> None:
    budget = AuthAuditBudget(limit=1, window=60)
    assert budget.admit(T0).record and not budget.admit(T0).record
    assert budget.admit(T0 - timedelta(seconds=5)) == Admission(True, 1)


@pytest.mark.parametrize(("limit", "window"), [(0, 60), (1, 0)])
def test_nonsense_budgets_are_refused(limit: int, window: float) -> None:
    with pytest.raises(ValueError):
        AuthAuditBudget(limit, window)
