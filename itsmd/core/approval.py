"""Approval gates of playbook runs: who may approve or reject a run awaiting approval, when its wait ends, and
what an expired wait means for paging (DESIGN §1.4 `approval`, §1.6 item 13)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from itsmd.core.playbook import OnTimeout
from itsmd.core.run import Reason, RunState, Trigger


class Verdict(StrEnum):
    """The answer to an approve or reject request; the same value goes to the error and the log."""

    ALLOWED = "allowed"
    NOT_AWAITING = "not_awaiting_approval"  # the run is in another state (409)
    EXPIRED = "approval_expired"  # its deadline passed; the approval tick has not ended it yet (409)
    OWN_REQUEST = "own_request"  # four-eyes: the requester of a manual run may not approve it (403)


def may_approve(state: str, trigger: str, requested_by: str, actor: str, deadline_at: datetime | None,
                now: datetime) -> Verdict:
    """An operator may approve a run awaiting approval, except a manual run they requested themselves (four
    eyes: a second person says yes to a risky action one person asked for), and not once its wait has expired
    (the deadline is the deadline, whenever the next tick comes to end the run)."""
    if state != RunState.AWAITING_APPROVAL:
        return Verdict.NOT_AWAITING
    if expired(state, deadline_at, now):
        return Verdict.EXPIRED
    if trigger == Trigger.MANUAL and requested_by == actor:
        return Verdict.OWN_REQUEST
    return Verdict.ALLOWED


def may_reject(state: str) -> Verdict:
    """Anyone who may approve may reject, the requester too: saying no to one's own request is withdrawing it,
    which needs no second person."""
    return Verdict.ALLOWED if state == RunState.AWAITING_APPROVAL else Verdict.NOT_AWAITING


def deadline(created_at: datetime, timeout: float) -> datetime:
    """When a run created awaiting approval expires (stored with the run: a restart or a reload that changes
    `approval.timeout` does not move it)."""
    return created_at + timedelta(seconds=timeout)


def expired(state: str, deadline_at: datetime | None, now: datetime) -> bool:
    """Whether a waiting run's approval timed out by `now` (a run without a stored deadline never expires)."""
    return state == RunState.AWAITING_APPROVAL and deadline_at is not None and now >= deadline_at


def expiry_reason(on_timeout: OnTimeout | str) -> Reason:
    """The stored reason of a run whose approval timed out, naming `on_timeout`."""
    if OnTimeout(on_timeout) is OnTimeout.ABORT:
        return Reason.APPROVAL_TIMED_OUT_ABORT
    return Reason.APPROVAL_TIMED_OUT_ESCALATE


def expiry_pages(reason: str | None) -> bool:
    """Whether an expired run is a paging cause: yes unless its playbook said `on_timeout: abort`."""
    return reason != Reason.APPROVAL_TIMED_OUT_ABORT
