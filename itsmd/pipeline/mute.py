"""Mute stage: alerts that begin firing under an active silence are stored muted (`muted_by`) and not correlated
(no incident, no run, no page); when that silence ends, those still firing are released and correlated as if new.

Resolutions are never muted: a muted alert resolves like any other, and the alerts of an incident resolve it
while a silence matching them is active (a silence mutes alerts as they begin firing, never ones already placed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection

from itsmd.config.routing import Routing
from itsmd.core.alert import Status
from itsmd.core.episode import Episode
from itsmd.core.silence import ActiveSilences
from itsmd.pipeline.correlate import SYSTEM, place_new, route, settle
from itsmd.storage import alerts, events, silences
from itsmd.storage.events import Event


def mute(conn: Connection, changed: dict[int, Episode], now: datetime) -> int:
    """Mark the episodes beginning to fire in this batch that an active silence matches; returns how many."""
    beginning = [eid for eid, ep in changed.items() if eid < 0 and ep.status == Status.FIRING and ep.labels]
    if not beginning:
        return 0
    active = ActiveSilences(silences.in_force(conn, now), now)
    if not active:
        return 0
    muted = 0
    for eid in beginning:
        ep = changed[eid]
        assert ep.labels is not None
        silence = active.find(ep.labels)
        if silence is not None:
            changed[eid] = replace(ep, muted_by=silence.id)
            muted += 1
    return muted


@dataclass(frozen=True, slots=True)
class Released:
    correlated: int  # un-muted and correlated as if new
    moved: int  # muted on by another active silence that matches them
    seen: int  # alerts looked at (`limit` of them: there may be more)


def release(conn: Connection, routing: Routing, now: datetime, close_after: float, limit: int = 1000) -> Released:
    """Release the firing alerts whose silence is no longer active (ended, expired, between windows, removed)."""
    muters = alerts.muters(conn)
    if not muters:
        return Released(0, 0, 0)
    stored = silences.by_ids(conn, muters)
    ended = [sid for sid in muters if sid not in stored or not silences.silence_of(stored[sid]).active_at(now)]
    if not ended:
        return Released(0, 0, 0)
    found = alerts.muted(conn, ended, limit)
    active = ActiveSilences(silences.in_force(conn, now), now)
    moved: list[Episode] = []
    freed: dict[int, Episode] = {}
    was: dict[int, str] = {}
    for ep in found:
        assert ep.id is not None and ep.labels is not None and ep.muted_by is not None
        silence = active.find(ep.labels)
        if silence is not None:
            moved.append(replace(ep, muted_by=silence.id))
        else:
            was[ep.id] = ep.muted_by
            freed[ep.id] = replace(ep, muted_by=None, incident_id=None, symptom=None)
    order = sorted(freed)  # stored ids grow in arrival order
    route(routing.rules, freed, order)
    placed = place_new(conn, routing, freed, now, order=order)
    for eid in order:
        ep = freed[eid]
        if ep.incident_id is not None:
            placed.events.append(Event(now, "incident", ep.incident_id, SYSTEM, "alert_unmuted",
                                       f"silence {was[eid]} ended while the alert still fired",
                                       {"fingerprint": ep.fingerprint, "silence": was[eid]}))
    alerts.reroute(conn, moved + [freed[eid] for eid in order])
    events.append(conn, placed.events)
    placed.events.clear()
    settle(conn, routing, placed.touched, close_after, now, placed)
    events.append(conn, placed.events)
    return Released(len(freed), len(moved), len(found))
