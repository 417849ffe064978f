"""Approving, rejecting and expiring playbook runs that await approval: the store's side of core.approval.

Each is one write: the run's new state, its steps, and a record on the incident's timeline (the hash-chained
audit log: `run_approved`, `run_rejected`, `run_expired`). Rejected and expired runs are paging causes, so the
pager is asked to decide about the incident now (`pages.review_soon`), not at its next deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from itsmd.core.approval import Verdict, expiry_pages, expiry_reason, may_approve, may_reject
from itsmd.core.playbook import OnTimeout, Playbook
from itsmd.core.run import RunState, StepState, display_id
from itsmd.core.timestamp import format_time
from itsmd.errors import Conflict, Forbidden, NotFound
from itsmd.storage import events, pages, runs
from itsmd.storage.events import Event

Row = dict[str, Any]
SYSTEM = "system"
MAX_COMMENT = 1000  # characters of a comment kept in the run's reason and the timeline


def _comment(text: str | None) -> str | None:
    return text[:MAX_COMMENT] if text else None


def _run(conn: Connection, run_id: int) -> Row:
    row = runs.get(conn, run_id)
    if row is None:
        raise NotFound("no such run")
    return row


def _record(conn: Connection, row: Row, now: datetime, actor: str, action: str, text: str, **data: Any) -> None:
    if row["incident_id"] is None:
        return
    events.append(conn, [Event(now, "incident", row["incident_id"], actor, action, text,
                               {"run_id": display_id(row["id"]), "playbook": row["playbook"],
                                "target": row["target"], **data})])


def approve(conn: Connection, run_id: int, actor: str, comment: str | None, now: datetime) -> Row:
    """Approve a run awaiting approval: it becomes `pending` (the caller wakes the runner) with `approved_by`."""
    row = _run(conn, run_id)
    verdict = may_approve(row["state"], row["trigger"], row["requested_by"], actor, row["deadline"], now)
    if verdict is Verdict.NOT_AWAITING:
        raise Conflict(f"the run is {row['state']}; only runs awaiting approval can be approved")
    if verdict is Verdict.EXPIRED:
        raise Conflict(f"the approval of {display_id(run_id)} expired at {format_time(row['deadline'])}; "
                       "it ends `expired` at the next approval tick")
    if verdict is Verdict.OWN_REQUEST:
        raise Forbidden(f"four eyes: {display_id(run_id)} is a manual run requested by {actor}; "
                        "another operator must approve it")
    values = {"state": RunState.PENDING, "approved_by": actor, "deadline": None, "updated_at": now}
    if not runs.change_if(conn, run_id, RunState.AWAITING_APPROVAL, values):
        raise Conflict("the run changed meanwhile; look again")
    note = _comment(comment)
    _record(conn, row, now, actor, "run_approved",
            f"run of {row['playbook']} approved by {actor}" + (f": {note}" if note else ""), comment=note)
    return {**row, **values}


def reject(conn: Connection, run_id: int, actor: str, comment: str | None, now: datetime) -> Row:
    """Reject a run awaiting approval: `rejected` (its steps cancelled), the reason names who and why."""
    row = _run(conn, run_id)
    if may_reject(row["state"]) is Verdict.NOT_AWAITING:
        raise Conflict(f"the run is {row['state']}; only runs awaiting approval can be rejected")
    note = _comment(comment)
    reason = f"rejected by {actor}" + (f": {note}" if note else "")
    values = {"state": RunState.REJECTED, "reason": reason, "finished_at": now, "deadline": None,
              "updated_at": now}
    if not runs.change_if(conn, run_id, RunState.AWAITING_APPROVAL, values):
        raise Conflict("the run changed meanwhile; look again")
    runs.finish_steps(conn, run_id, StepState.CANCELLED, now)
    _record(conn, row, now, actor, "run_rejected", f"run of {row['playbook']} {reason}", comment=note)
    if row["incident_id"] is not None:
        pages.review_soon(conn, row["incident_id"], now)
    return {**row, **values}


def expire_due(conn: Connection, now: datetime, playbook: Callable[[str], Playbook | None],
               limit: int = 200) -> list[Row]:
    """End `expired` every run whose approval deadline passed; the runs expired. The reason keeps the playbook's
    `on_timeout` (a playbook no longer loaded counts as `escalate`: a person hears of it)."""
    out = []
    for row in runs.approvals_due(conn, now, limit):
        book = playbook(row["playbook"])
        on_timeout = book.approval.on_timeout if book is not None else OnTimeout.ESCALATE
        reason = expiry_reason(on_timeout)
        values = {"state": RunState.EXPIRED, "reason": str(reason), "finished_at": now, "updated_at": now}
        if not runs.change_if(conn, row["id"], RunState.AWAITING_APPROVAL, values):
            continue
        runs.finish_steps(conn, row["id"], StepState.CANCELLED, now)
        then = "the incident is paged" if expiry_pages(reason) else "nobody is paged for it"
        _record(conn, row, now, SYSTEM, "run_expired",
                f"run of {row['playbook']} expired: approval timed out (on_timeout: {on_timeout}; {then})",
                reason=str(reason), deadline=format_time(row["deadline"]))
        if row["incident_id"] is not None:
            pages.review_soon(conn, row["incident_id"], now)
        out.append({**row, **values})
    return out
