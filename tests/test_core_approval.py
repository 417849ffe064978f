"""Approval gates (core.approval): who may approve or reject, when a wait expires, and whether it pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.core.approval import Verdict, deadline, expired, expiry_pages, expiry_reason, may_approve, may_reject
from itsmd.core.paging import Cause, run_cause
from itsmd.core.playbook import OnTimeout
from itsmd.core.run import Reason, RunState

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


DUE = T0 + timedelta(minutes=15)


def test_an_operator_approves_a_waiting_automatic_run() -> None:
    assert may_approve("awaiting_approval", "opened", "system", "alice", DUE, T0) is Verdict.ALLOWED


def test_four_eyes_the_requester_of_a_manual_run_may_not_approve_it() -> None:
    assert may_approve("awaiting_approval", "manual", "alice", "alice", DUE, T0) is Verdict.OWN_REQUEST
    assert may_approve("awaiting_approval", "manual", "alice", "bob", DUE, T0) is Verdict.ALLOWED


def test_four_eyes_is_about_manual_runs_only() -> None:
    # An automatic run's requester is the daemon; nobody named "system" by a token could be kept out by it anyway.
    assert may_approve("awaiting_approval", "reopened", "system", "system", DUE, T0) is Verdict.ALLOWED


@pytest.mark.parametrize("state", [s for s in RunState if s is not RunState.AWAITING_APPROVAL])
def test_only_a_waiting_run_is_approved_or_rejected(state: RunState) -> None:
    assert may_approve(state, "opened", "system", "alice", DUE, T0) is Verdict.NOT_AWAITING
    assert may_reject(state) is Verdict.NOT_AWAITING


def test_no_approval_once_the_wait_expired_even_before_the_tick_ends_the_run() -> None:
    assert may_approve("awaiting_approval", "opened", "system", "alice", DUE, DUE) is Verdict.EXPIRED
    assert may_approve("awaiting_approval", "opened", "system", "alice", None, DUE) is Verdict.ALLOWED
    assert may_reject("awaiting_approval") is Verdict.ALLOWED  # saying no stays possible until the tick


def test_the_requester_may_reject_their_own_request() -> None:
    assert may_reject("awaiting_approval") is Verdict.ALLOWED


def test_the_wait_expires_at_its_deadline() -> None:
    due = deadline(T0, 900)
    assert due == T0 + timedelta(minutes=15)
    assert not expired("awaiting_approval", due, due - timedelta(microseconds=1))
    assert expired("awaiting_approval", due, due)
    assert not expired("pending", due, due + timedelta(hours=1))  # approved meanwhile
    assert not expired("awaiting_approval", None, due)


def test_on_timeout_escalate_pages_abort_does_not() -> None:
    assert expiry_reason(OnTimeout.ESCALATE) is Reason.APPROVAL_TIMED_OUT_ESCALATE
    assert expiry_reason("abort") is Reason.APPROVAL_TIMED_OUT_ABORT
    assert expiry_pages(Reason.APPROVAL_TIMED_OUT_ESCALATE)
    assert not expiry_pages(Reason.APPROVAL_TIMED_OUT_ABORT)
    assert run_cause("expired", Reason.APPROVAL_TIMED_OUT_ESCALATE) is Cause.RUN_EXPIRED
    assert run_cause("expired", Reason.APPROVAL_TIMED_OUT_ABORT) is None
    assert run_cause("expired") is Cause.RUN_EXPIRED  # an expiry of unknown kind pages: a person hears of it
    assert run_cause("rejected", "rejected by bob") is Cause.RUN_REJECTED
