"""Silences in the database: create, expire (kept for the audit), list, the ones in force, and the config set."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from itertools import islice
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from itsmd.core.cron import CronSchedule
from itsmd.core.matcher import parse_matcher
from itsmd.core.silence import Silence
from itsmd.errors import Conflict, NotFound
from itsmd.storage import events
from itsmd.storage.events import Event
from itsmd.storage.tables import silences

Row = dict[str, Any]
API, CONFIG = "api", "config"
_SCAN = 200  # rows read per round when a listing filters on activity


def _definition(s: Silence) -> Row:
    return {
        "matchers": [str(m) for m in s.matchers], "starts_at": s.starts_at, "ends_at": s.ends_at,
        "schedule": s.schedule.expression if s.schedule else None,
        "timezone": s.schedule.timezone if s.schedule else None, "duration": s.duration,
        "created_by": s.created_by, "comment": s.comment,
    }


@lru_cache(maxsize=4096)
def _compiled(sid: str, matchers: tuple[str, ...], starts_at: datetime | None, ends_at: datetime | None,
              schedule: str | None, timezone: str | None, duration: float | None, created_by: str,
              comment: str) -> Silence:
    cron = CronSchedule(schedule, timezone or "UTC") if schedule is not None else None
    return Silence(sid, tuple(parse_matcher(m) for m in matchers), starts_at, ends_at, cron, duration,
                   created_by, comment)


def silence_of(row: Row) -> Silence:
    """The core Silence of a stored row (compiled once per definition: matchers and cron parse once)."""
    return _compiled(row["id"], tuple(row["matchers"]), row["starts_at"], row["ends_at"], row["schedule"],
                     row["timezone"], row["duration"], row["created_by"], row["comment"])


def _event(row: Row, now: datetime, actor: str, action: str, reason: str) -> Event:
    return Event(now, "silence", row["seq"], actor, action, reason, {"silence": row["id"]})


def create(conn: Connection, s: Silence, origin: str, actor: str, now: datetime) -> Row:
    values = {"id": s.id, "origin": origin, **_definition(s), "created_at": now, "updated_at": now,
              "expired_at": None}
    seq = int(conn.execute(insert(silences).values(values).returning(silences.c.seq)).scalar_one())
    row = {**values, "seq": seq}
    events.append(conn, [_event(row, now, actor, "created", s.comment or "silence created")])
    return row


def get(conn: Connection, sid: str) -> Row | None:
    r = conn.execute(select(silences).where(silences.c.id == sid)).first()
    return dict(r._mapping) if r else None


def by_ids(conn: Connection, ids: Collection[str]) -> dict[str, Row]:
    if not ids:
        return {}
    return {r.id: dict(r._mapping) for r in conn.execute(select(silences).where(silences.c.id.in_(list(ids))))}


def in_force(conn: Connection, now: datetime) -> list[Silence]:
    """Silences started and not ended at `now`, oldest first (recurring ones may be between windows)."""
    q = (
        select(silences)
        .where(or_(silences.c.starts_at.is_(None), silences.c.starts_at <= now),
               or_(silences.c.ends_at.is_(None), silences.c.ends_at > now))
        .order_by(silences.c.seq)
    )
    return [silence_of(dict(r._mapping)) for r in conn.execute(q)]


def _expire(conn: Connection, row: Row, now: datetime) -> Row:
    values = {"ends_at": now, "expired_at": now, "updated_at": now,
              "starts_at": now if row["starts_at"] is not None and row["starts_at"] > now else row["starts_at"]}
    conn.execute(update(silences).where(silences.c.seq == row["seq"]).values(values))
    return {**row, **values}


def expire(conn: Connection, sid: str, actor: str, now: datetime) -> Row:
    """End a silence now (DELETE); NotFound, or Conflict if it ended already or the config declares it."""
    row = get(conn, sid)
    if row is None:
        raise NotFound("no such silence")
    if row["origin"] == CONFIG:
        raise Conflict("this maintenance window is declared in the configuration: remove it there and reload")
    if row["ends_at"] is not None and row["ends_at"] <= now:
        raise Conflict("the silence has already ended")
    expired = _expire(conn, row, now)
    events.append(conn, [_event(row, now, actor, "expired", f"expired by {actor}")])
    return expired


def replace_config(conn: Connection, declared: Sequence[Silence], now: datetime) -> tuple[int, int]:
    """Make the config silences in force exactly `declared` (one transaction); returns (added, ended).

    A declared silence is known by its id (a hash of its definition): an unchanged one keeps its row, a changed
    or removed one ends now and stays for the audit, a new or re-declared one is (re)stored.
    """
    stored = {r.id: dict(r._mapping) for r in conn.execute(select(silences).where(silences.c.origin == CONFIG))}
    wanted = {s.id: s for s in declared}
    notes: list[Event] = []
    added = ended = 0
    for sid, s in wanted.items():
        row = stored.get(sid)
        if row is None:
            create(conn, s, CONFIG, CONFIG, now)
            added += 1
        elif row["expired_at"] is not None:  # removed from the config once, declared again
            values = {**_definition(s), "expired_at": None, "updated_at": now}
            conn.execute(update(silences).where(silences.c.seq == row["seq"]).values(values))
            notes.append(_event(row, now, CONFIG, "restored", "declared in the configuration again"))
            added += 1
    for sid, row in stored.items():
        if sid not in wanted and row["expired_at"] is None:
            if row["ends_at"] is None or row["ends_at"] > now:
                _expire(conn, row, now)
            else:
                conn.execute(update(silences).where(silences.c.seq == row["seq"]).values(expired_at=now))
            notes.append(_event(row, now, CONFIG, "expired", "no longer declared in the configuration"))
            ended += 1
    events.append(conn, notes)
    return added, ended


def page(conn: Connection, limit: int, before_seq: int | None, active: bool | None, now: datetime) -> list[Row]:
    """Silences newest first, `limit` of them, with seq below `before_seq`; `active` filters on muting now."""
    if active is None:
        return list(islice(_newest(conn, limit, before_seq, prefilter=False), limit))  # one batch, not all
    out = []
    for row in _newest(conn, _SCAN, before_seq, prefilter=active, now=now):
        if silence_of(row).active_at(now) == active:
            out.append(row)
            if len(out) == limit:
                break
    return out


def _newest(conn: Connection, batch: int, before_seq: int | None, prefilter: bool,
            now: datetime | None = None) -> Iterator[Row]:
    """Rows newest first, read `batch` at a time; `prefilter` keeps only those in force at `now`."""
    while True:
        q = select(silences).order_by(silences.c.seq.desc()).limit(batch)
        if before_seq is not None:
            q = q.where(silences.c.seq < before_seq)
        if prefilter:
            q = q.where(or_(silences.c.starts_at.is_(None), silences.c.starts_at <= now),
                        or_(silences.c.ends_at.is_(None), silences.c.ends_at > now))
        rows = [dict(r._mapping) for r in conn.execute(q)]
        yield from rows
        if len(rows) < batch:
            return
        before_seq = rows[-1]["seq"]
