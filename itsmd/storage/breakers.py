"""Circuit breakers of playbooks in the database, one row each (state closed | open | half_open)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from itsmd.storage.tables import breakers


def get(conn: Connection, playbook: str) -> dict[str, Any] | None:
    r = conn.execute(select(breakers).where(breakers.c.playbook == playbook)).first()
    return dict(r._mapping) if r else None


def every(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(breakers).order_by(breakers.c.playbook))]


def save(conn: Connection, playbook: str, state: str, failures: list[str], opened_at: datetime | None,
         now: datetime) -> None:
    values = {"state": state, "failures": failures, "opened_at": opened_at, "updated_at": now}
    done = conn.execute(update(breakers).where(breakers.c.playbook == playbook).values(values))
    if not done.rowcount:
        conn.execute(insert(breakers).values(playbook=playbook, **values))
