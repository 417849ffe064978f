"""What people and deadlines do to incidents: lifecycle actions (ack, resolve, close, reopen, assign, notes)
and the resolve/close deadlines, each one write with its timeline record."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from itsmd.core.incident import Action, Resolution, State, display_id, parse_id, refusal
from itsmd.errors import BadRequest, Conflict, NotFound
from itsmd.pipeline import remediate
from itsmd.storage import events, incidents
from itsmd.storage.events import Event


def _comment(body: dict[str, Any]) -> str:
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        raise BadRequest("comment must be a string")
    return comment


def _existing(conn: Connection, number: int) -> dict[str, Any]:
    row = incidents.get(conn, number)
    if row is None:
        raise NotFound("no such incident")
    return row


def lifecycle(conn: Connection, number: int, action: Action, actor: str, body: dict[str, Any], now: datetime,
              close_after: float) -> dict[str, Any]:
    """Apply `action` to incident `number`; NotFound, Conflict (409) or BadRequest when it cannot be."""
    row = _existing(conn, number)
    why = refusal(action, State(row["state"]))
    if why:
        raise Conflict(why)
    comment = _comment(body)
    values: dict[str, Any] = {"updated_at": now}
    if action == Action.ACK:
        values.update(state=State.ACKNOWLEDGED, acknowledged_at=row["acknowledged_at"] or now)
    elif action == Action.RESOLVE:
        resolution = body.get("resolution", Resolution.MANUAL)
        if not isinstance(resolution, str) or resolution not in set(Resolution):
            raise BadRequest(f"resolution must be one of {', '.join(Resolution)}")
        values.update(state=State.RESOLVED, resolved_at=now, resolution=resolution, resolve_at=None,
                      close_at=now + timedelta(seconds=close_after))
    elif action == Action.CLOSE:
        values.update(state=State.CLOSED, closed_at=now, close_at=None)
    else:  # reopen
        if incidents.unresolved(conn, [(row["rule"], row["key_hash"])]):
            raise Conflict("another unresolved incident has this rule and key; merge into it instead")
        values.update(state=State.OPEN, reopen_count=row["reopen_count"] + 1, resolved_at=None, resolution=None,
                      close_at=None, page_at=now)  # paging decides about the new cycle
    incidents.change(conn, number, values)
    events.append(conn, [Event(now, "incident", number, actor, str(action), comment or f"{action} by {actor}")])
    return {**row, **values}


def merge(conn: Connection, number: int, actor: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Move every alert of incident `number` into `body["into"]`; the merged incident closes."""
    into = body.get("into")
    target_id = parse_id(into) if isinstance(into, str) else None
    if target_id is None:
        raise BadRequest('into must be an incident id like "INC-123"')
    row, target = incidents.get(conn, number), incidents.get(conn, target_id)
    if row is None or target is None:
        raise NotFound("no such incident")
    if target_id == number:
        raise Conflict("an incident cannot be merged into itself")
    if State.CLOSED in (row["state"], target["state"]):
        raise Conflict("closed incidents cannot be merged")
    incidents.move_alerts(conn, number, target_id)
    counts = incidents.counts(conn, [number, target_id])
    incidents.change(conn, target_id, {"alert_count": counts[target_id].alerts,
                                       "firing_count": counts[target_id].firing, "updated_at": now})
    closed = {"state": State.CLOSED, "closed_at": now, "close_at": None, "resolve_at": None, "alert_count": 0,
              "firing_count": 0, "updated_at": now}
    incidents.change(conn, number, closed)
    comment = _comment(body)
    events.append(conn, [
        Event(now, "incident", number, actor, "merged", comment or f"merged into {display_id(target_id)}",
              {"into": display_id(target_id)}),
        Event(now, "incident", target_id, actor, "merged_in", comment or f"took {display_id(number)}'s alerts",
              {"from": display_id(number)}),
    ])
    return {**row, **closed}


def assign(conn: Connection, number: int, actor: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    row = _existing(conn, number)
    assignee = body.get("assignee")
    if not isinstance(assignee, str) or not assignee.strip() or len(assignee) > 200:
        raise BadRequest("assignee must be a non-empty string of at most 200 characters")
    if row["state"] == State.CLOSED:
        raise Conflict("cannot assign a closed incident")
    incidents.change(conn, number, {"assignee": assignee, "updated_at": now})
    events.append(conn, [Event(now, "incident", number, actor, "assigned", _comment(body) or f"to {assignee}",
                               {"assignee": assignee})])
    return {**row, "assignee": assignee}


def note(conn: Connection, number: int, actor: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    row = _existing(conn, number)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > 65536:
        raise BadRequest("text must be a non-empty string of at most 65536 characters")
    events.append(conn, [Event(now, "incident", number, actor, "note", text)])
    return row


def deadlines(conn: Connection, now: datetime, close_after: float, limit: int = 500) -> int:
    """Resolve incidents whose quiet period passed and close resolved ones whose close_after passed."""
    done: list[Event] = []
    changes: list[tuple[int, dict[str, Any]]] = []
    due = incidents.due(conn, "resolve_at", now, limit)
    quiet = [row for row in due if row["state"] in (State.OPEN, State.ACKNOWLEDGED)]
    resolutions = remediate.on_resolved(conn, quiet, now)
    for row in due:
        if row["id"] in resolutions:
            resolution, cancelled = resolutions[row["id"]]
            changes.append((row["id"], {
                "state": State.RESOLVED, "resolved_at": now, "resolution": resolution,
                "resolve_at": None, "close_at": now + timedelta(seconds=close_after), "updated_at": now}))
            done.append(Event(now, "incident", row["id"], "system", "resolved", f"quiet period passed ({resolution})"))
            done += cancelled
        else:
            changes.append((row["id"], {"resolve_at": None}))
    for row in incidents.due(conn, "close_at", now, limit):
        if row["state"] == State.RESOLVED:
            changes.append((row["id"], {"state": State.CLOSED, "closed_at": now, "close_at": None,
                                        "updated_at": now}))
            done.append(Event(now, "incident", row["id"], "system", "closed", "close_after passed"))
        else:
            changes.append((row["id"], {"close_at": None}))
    incidents.change_many(conn, changes)
    events.append(conn, done)
    return len(done)


def stale_candidates(conn: Connection, now: datetime, stale_after: float, limit: int = 1000) -> list[int]:
    """Firing alerts not refreshed for `stale_after`: a walk of the firing alerts, so read outside the writer."""
    return incidents.stale_firing(conn, now - timedelta(seconds=stale_after), limit)


def signal_check(conn: Connection, now: datetime, stale_after: float, candidates: Collection[int]) -> int:
    """Flag the `candidates` still not refreshed for `stale_after` as stale and their incidents `signal_lost`
    (never resolving them); clear `signal_lost` where every alert was heard from again."""
    flagged = incidents.flag_stale(conn, candidates, now - timedelta(seconds=stale_after))
    signal(conn, now, {i for i in flagged if i is not None}, f"no refresh for {stale_after:g}s")
    return len(flagged)


def signal(conn: Connection, now: datetime, lost_in: set[int], why: str) -> None:
    """Set `signal_lost` on the unresolved incidents of `lost_in` (whose alerts were just flagged stale, `why`)
    and clear it on flagged incidents whose every alert was heard from again; each change on the timeline."""
    lost = incidents.unresolved_ids(conn, lost_in)
    flagged = {r["id"] for r in incidents.flagged_signal_lost(conn)}
    recount = incidents.counts(conn, lost | flagged)
    notes = []
    for incident_id, counts in recount.items():
        now_lost = counts.stale > 0
        if now_lost != (incident_id in flagged):
            incidents.change(conn, incident_id, {"signal_lost": now_lost, "updated_at": now})
            reason = (f"{why} ({counts.stale} stale firing alert(s))" if now_lost
                      else "every alert was heard from again")
            notes.append(Event(now, "incident", incident_id, "system",
                               "signal_lost" if now_lost else "signal_back", reason))
    events.append(conn, notes)
