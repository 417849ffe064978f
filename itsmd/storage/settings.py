"""Run-time settings that survive restarts, such as the automation switch (`PUT /api/v1/automation`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from itsmd.storage.tables import settings

AUTOMATION = "automation.enabled"


def get(conn: Connection, name: str) -> dict[str, Any] | None:
    r = conn.execute(select(settings).where(settings.c.name == name)).first()
    return dict(r._mapping) if r else None


def put(conn: Connection, name: str, value: Any, by: str, now: datetime) -> None:
    values = {"value": value, "updated_by": by, "updated_at": now}
    done = conn.execute(update(settings).where(settings.c.name == name).values(values))
    if not done.rowcount:
        conn.execute(insert(settings).values(name=name, **values))


def automation_enabled(conn: Connection) -> bool:
    """The persisted run-time switch; on unless an admin turned it off."""
    row = get(conn, AUTOMATION)
    return True if row is None else bool(row["value"])
