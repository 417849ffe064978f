"""The timeline: append-only events, each chained to the one before by a SHA-256 hash."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Text, func, insert, select, type_coerce

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


@dataclass(frozen=True, slots=True)
class AuditFilter:
    entity: str | None = None
    entity_id: int | None = None
    action: str | None = None
    since: datetime | None = None


def page(conn: Connection, f: AuditFilter, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    """Records newest first, for `GET /api/v1/audit`."""
    q = select(events).order_by(events.c.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(events.c.id < before_id)
    if f.entity is not None:
        q = q.where(events.c.entity == f.entity)
    if f.entity_id is not None:
        q = q.where(events.c.entity_id == f.entity_id)
    if f.action is not None:
        q = q.where(events.c.action == f.action)
    if f.since is not None:
        q = q.where(events.c.at >= f.since)
    return [dict(r._mapping) for r in conn.execute(q)]


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The outcome of recomputing the chain: how many records were checked, the hash of the last one and, if the
    chain is broken, the first broken record's id and why."""

    records: int
    head: str
    broken_id: int | None = None
    why: str = ""


# The JSON columns as their stored text: a record edited into invalid JSON is named, not a crash while reading.
_RAW = select(events.c.id, events.c.at, events.c.entity, events.c.entity_id, events.c.action, events.c.prev_hash,
              events.c.hash, *(type_coerce(events.c[name], Text).label(name) for name in ("actor", "reason", "data")))


def _event(r: Any) -> Event:
    return Event(r.at, r.entity, r.entity_id, orjson.loads(r.actor), r.action, orjson.loads(r.reason),
                 orjson.loads(r.data))


def verify(conn: Connection, batch: int = 1000) -> ChainCheck:
    """Recompute every record's hash in id order: each must follow the one before (its `prev_hash`) and cover its
    own content (its `hash`). Reads in batches, so a long log needs little memory; appends made meanwhile are
    checked too, or left for the next run."""
    prev, count, after = GENESIS, 0, 0
    while True:
        rows = conn.execute(_RAW.where(events.c.id > after).order_by(events.c.id).limit(batch)).all()
        for r in rows:
            if r.prev_hash != prev:
                why = ("prev_hash is not the genesis hash: records before it are missing" if count == 0 else
                       f"prev_hash does not match the hash of the record before it (id {after}): a record between "
                       "them was removed or that record's hash was changed")
                return ChainCheck(count, prev, r.id, why)
            try:
                expected = chain(prev, _event(r))
            except (TypeError, ValueError) as e:  # orjson cannot read (or encode) it: the stored text was edited
                return ChainCheck(count, prev, r.id, f"its content is not valid JSON: the record was changed ({e})")
            if r.hash != expected:
                return ChainCheck(count, prev, r.id, "hash does not match its content: the record was changed")
            prev, after, count = r.hash, r.id, count + 1
        if len(rows) < batch:
            return ChainCheck(count, prev)


MAX_RECORDED_PROBLEMS = 20


def reload_event(now: datetime, actor: str, path: str | None, problems: Sequence[str]) -> Event:
    """The audit record of a configuration reload of the config file `path`."""
    if problems:
        return Event(now, "config", None, actor, "reload_failed",
                     f"reload failed ({len(problems)} problem(s)); the running configuration is kept",
                     {"path": path, "problems": list(problems[:MAX_RECORDED_PROBLEMS])})
    return Event(now, "config", None, actor, "reloaded", "configuration reloaded", {"path": path})
