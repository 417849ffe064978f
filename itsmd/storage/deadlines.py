"""The next stored deadline: the earliest moment after a given time at which a daemon tick would find work.

`itsmd test` moves its fake clock from deadline to deadline, so a quiet resolution or an auto-close happens at
the very moment it is due, as in a daemon ticking every few seconds, without stepping through idle time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, false, func, or_, select

from itsmd.core.alert import Status
from itsmd.storage.tables import ALERT_STATUS_UNINDEXED, alerts, incidents, silences


def next_due(conn: Connection, after: datetime, stale_after: float, horizon: datetime | None = None,
             seen_since: datetime | None = None) -> datetime | None:
    """The earliest of: an incident's quiet resolution or auto-close, a pushed alert's expiry, a firing alert
    turning stale, a silence starting or ending — after `after`; None if nothing is pending. The windows of a
    recurring silence are not included (they are seen at the next alert or expectation).

    `seen_since`: no alert was last seen before it; then, when even such an alert would turn stale only after
    `horizon`, the scan for the oldest firing alert (no index on last_seen_at) is skipped."""
    firing = alerts.c.status == Status.FIRING
    candidates = [
        conn.execute(select(func.min(incidents.c.resolve_at)).where(incidents.c.resolve_at > after)).scalar(),
        conn.execute(select(func.min(incidents.c.close_at)).where(incidents.c.close_at > after)).scalar(),
        conn.execute(select(func.min(alerts.c.expires_at)).where(ALERT_STATUS_UNINDEXED == Status.FIRING,
                                                                 alerts.c.expires_at > after)).scalar(),
        conn.execute(select(func.min(silences.c.starts_at)).where(silences.c.starts_at > after)).scalar(),
        conn.execute(select(func.min(silences.c.ends_at)).where(silences.c.ends_at > after)).scalar(),
    ]
    skip_stale = (horizon is not None and seen_since is not None
                  and seen_since + timedelta(seconds=stale_after) > horizon)
    oldest = None if skip_stale else conn.execute(select(func.min(alerts.c.last_seen_at)).where(
        firing, or_(alerts.c.stale.is_(None), alerts.c.stale == false()))).scalar()
    if oldest is not None:
        stale = oldest + timedelta(seconds=stale_after)
        candidates.append(stale + timedelta(microseconds=1))  # stale when not refreshed *for longer* than that
    due = [c for c in candidates if c is not None and c > after]
    return min(due) if due else None
