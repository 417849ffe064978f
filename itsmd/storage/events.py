"""The timeline: append-only events, each chained to the one before by a SHA-256 hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select

from itsmd.core.timestamp import format_time
from itsmd.storage.tables import events

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime
    entity: str
    entity_id: int | None
    actor: str
    action: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)


def canonical(e: Event) -> bytes:
    """The bytes a record's hash covers (everything but the hashes themselves)."""
    doc = {"at": format_time(e.at), "entity": e.entity, "entity_id": e.entity_id, "actor": e.actor,
           "action": e.action, "reason": e.reason, "data": e.data}
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def chain(prev_hash: str, e: Event) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(e)).hexdigest()


def head(conn: Connection) -> str:
    h = conn.execute(select(events.c.hash).order_by(events.c.id.desc()).limit(1)).scalar()
    return h or GENESIS


def append(conn: Connection, items: Sequence[Event]) -> None:
    """Append in order, continuing the chain from the newest record (the writer is the only appender)."""
    if not items:
        return
    prev = head(conn)
    rows = []
    for e in items:
        h = chain(prev, e)
        rows.append({"at": e.at, "entity": e.entity, "entity_id": e.entity_id, "actor": e.actor,
                     "action": e.action, "reason": e.reason, "data": e.data, "prev_hash": prev, "hash": h})
        prev = h
    conn.execute(insert(events), rows)


def of(conn: Connection, entity: str, entity_id: int, limit: int = 1000) -> list[dict[str, Any]]:
    q = (select(events).where(events.c.entity == entity, events.c.entity_id == entity_id)
         .order_by(events.c.id).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]


def count_since(conn: Connection, entity: str, entity_id: int, actions: Sequence[str], since: datetime) -> int:
    q = select(func.count()).select_from(events).where(
        events.c.entity == entity, events.c.entity_id == entity_id, events.c.action.in_(list(actions)),
        events.c.at >= since,
    )
    return int(conn.execute(q).scalar_one())
