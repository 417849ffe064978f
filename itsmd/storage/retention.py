"""Retention: delete what is older than the configured ages, in small batches that never stall ingest."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select

from itsmd.core.alert import Status
from itsmd.storage.tables import alerts, quarantine


def prune_alerts(conn: Connection, cutoff: datetime, limit: int) -> int:
    """Resolved episodes that ended before `cutoff` (firing ones are never pruned)."""
    ids = (
        select(alerts.c.id)
        .where(alerts.c.status == Status.RESOLVED, alerts.c.ends_at < cutoff)
        .limit(limit)
        .scalar_subquery()
    )
    return int(conn.execute(delete(alerts).where(alerts.c.id.in_(ids))).rowcount)


def prune_quarantine(conn: Connection, cutoff: datetime, limit: int) -> int:
    ids = select(quarantine.c.id).where(quarantine.c.received_at < cutoff).limit(limit).scalar_subquery()
    return int(conn.execute(delete(quarantine).where(quarantine.c.id.in_(ids))).rowcount)
