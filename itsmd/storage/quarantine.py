"""Quarantined alerts: single bad alerts of a good body, kept with their reason and visible."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from itsmd.storage.tables import quarantine
from itsmd.storage.writer import Rows


def add(received_at: datetime, source: str, items: Sequence[tuple[str, Any]]) -> Rows:
    """The write that stores (reason, raw alert) pairs."""
    return Rows(
        quarantine,
        [{"received_at": received_at, "source": source, "reason": reason, "alert": raw} for reason, raw in items],
    )


def page(conn: Connection, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    q = select(quarantine).order_by(quarantine.c.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(quarantine.c.id < before_id)
    return [dict(r._mapping) for r in conn.execute(q)]
