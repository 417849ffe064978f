"""Alert episodes in the database: load a fingerprint's history, save merged episodes, list and expire."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Row, and_, bindparam, insert, select, text, update
from sqlalchemy.sql import func

from itsmd.core.alert import Status
from itsmd.core.episode import Episode, History
from itsmd.core.reconcile import Local
from itsmd.storage.tables import ALERT_STATUS_UNINDEXED, MUTED_FIRING, alerts

_STATE_COLS = (
    alerts.c.id, alerts.c.fingerprint, alerts.c.status, alerts.c.starts_at, alerts.c.ends_at,
    alerts.c.expires_at, alerts.c.first_seen_at, alerts.c.last_seen_at, alerts.c.occurrences,
    alerts.c.rule, alerts.c.key_hash, alerts.c.incident_id, alerts.c.symptom, alerts.c.muted_by,
)
_CHUNK = 500  # bound parameters per IN (...) query
# SQLite (no statistics) takes the (status, id) index over the partial index of muted firing alerts and reads
# every firing alert to find the few muted ones (~100 ms of the writer at 100,000 firing); SQLAlchemy cannot say
# INDEXED BY for SQLite, so these two are written out.
_SQLITE_MUTERS = text("SELECT DISTINCT muted_by FROM alerts INDEXED BY alerts_muted "
                      "WHERE muted_by IS NOT NULL AND status = 'firing'")
_SQLITE_MUTED_IDS = text("SELECT id FROM alerts INDEXED BY alerts_muted "
                         "WHERE muted_by IN :ids AND status = 'firing' ORDER BY id LIMIT :limit"
                         ).bindparams(bindparam("ids", expanding=True))


def _sqlite_muted_ids(conn: Connection, silence_ids: Collection[str], limit: int) -> list[int]:
    return [r[0] for r in conn.execute(_SQLITE_MUTED_IDS, {"ids": list(silence_ids), "limit": limit})]


def _episode(r: Row[Any]) -> Episode:
    """An episode's state without its content (labels, annotations, URL): what merging needs, cheap to load."""
    return Episode(
        id=r.id, fingerprint=r.fingerprint, labels=None, annotations=None, status=Status(r.status),
        starts_at=r.starts_at, ends_at=r.ends_at, expires_at=r.expires_at, generator_url=None,
        first_seen_at=r.first_seen_at, last_seen_at=r.last_seen_at, occurrences=r.occurrences,
        rule=r.rule, key_hash=r.key_hash, incident_id=r.incident_id, symptom=r.symptom, muted_by=r.muted_by,
    )


def histories(
    conn: Connection, fingerprints: Collection[str], closed_too: Collection[str] = ()
) -> dict[str, History]:
    """The open episode of each fingerprint, and its latest closed one where it has no open one (or it is
    listed in `closed_too`)."""
    fps = list(fingerprints)
    result = {fp: History() for fp in fps}
    for i in range(0, len(fps), _CHUNK):
        firing = select(*_STATE_COLS).where(
            alerts.c.fingerprint.in_(fps[i : i + _CHUNK]), ALERT_STATUS_UNINDEXED == Status.FIRING
        )
        for r in conn.execute(firing):
            result[r.fingerprint] = History(open=_episode(r))
    need = [fp for fp in fps if result[fp].open is None or fp in closed_too]
    for i in range(0, len(need), _CHUNK):
        chunk = need[i : i + _CHUNK]
        latest = (
            select(func.max(alerts.c.id))
            .where(alerts.c.fingerprint.in_(chunk), ALERT_STATUS_UNINDEXED == Status.RESOLVED)
            .group_by(alerts.c.fingerprint)
        )
        for r in conn.execute(select(*_STATE_COLS).where(alerts.c.id.in_(latest.scalar_subquery()))):
            result[r.fingerprint] = History(open=result[r.fingerprint].open, closed=_episode(r))
    return result


_STATE = ("status", "starts_at", "ends_at", "expires_at", "last_seen_at", "occurrences")
_CONTENT = ("annotations", "generator_url")


def _values(ep: Episode) -> dict[str, Any]:
    return {
        "fingerprint": ep.fingerprint, "labels": ep.labels, "annotations": ep.annotations,
        "status": str(ep.status), "starts_at": ep.starts_at, "ends_at": ep.ends_at,
        "expires_at": ep.expires_at, "generator_url": ep.generator_url,
        "first_seen_at": ep.first_seen_at, "last_seen_at": ep.last_seen_at,
        "occurrences": ep.occurrences, "rule": ep.rule, "key": ep.key, "key_hash": ep.key_hash,
        "incident_id": ep.incident_id, "symptom": ep.symptom, "muted_by": ep.muted_by,
        "stale": False,  # any delivery shows the signal is alive
    }


def _changed_columns(ep: Episode, before: Episode | None) -> tuple[str, ...]:
    """The columns to write for a stored episode: all state (and the content where known), or, when its stored
    state `before` is known, only what differs. Fewer columns means fewer indexes touched (status, expiry)."""
    content = _CONTENT if ep.annotations is not None and ep.generator_url is not None else ()
    if before is None or before.id != ep.id:
        return _STATE + content
    return tuple(c for c in _STATE + content if getattr(ep, c) != getattr(before, c))


def save(conn: Connection, episodes: Iterable[Episode], before: Mapping[str, Episode] | None = None) -> list[int]:
    """Update stored episodes (id > 0) first, then insert new ones (id None or < 0); returns the new ones' ids
    in the order given. `before`: stored state by fingerprint, where known, so an update writes only what changed
    (content — annotations, URL — is written only where it is known).

    Updates go first so that a fingerprint's resolved episode leaves the firing index before its next episode
    enters it. Every update marks the alert not stale: any delivery shows its signal is alive.
    """
    known = before or {}
    updates: dict[tuple[str, ...], list[Episode]] = {}
    inserts = []
    for ep in episodes:
        if ep.id is None or ep.id < 0:
            assert ep.labels is not None and ep.annotations is not None and ep.generator_url is not None
            inserts.append(_values(ep))
        else:
            updates.setdefault(_changed_columns(ep, known.get(ep.fingerprint)), []).append(ep)
    for columns, eps in updates.items():
        if conn.dialect.name == "sqlite":
            _update_sqlite(conn, columns, eps)
            continue
        stmt = (update(alerts).where(alerts.c.id == bindparam("_id"))
                .values({**{k: bindparam(k) for k in columns}, "stale": False}))
        conn.execute(stmt, [
            {"_id": ep.id, **{c: str(ep.status) if c == "status" else getattr(ep, c) for c in columns}} for ep in eps
        ])
    if not inserts:
        return []
    new = insert(alerts).returning(alerts.c.id, sort_by_parameter_order=True)
    return [r.id for r in conn.execute(new, inserts)]


def _sqlite_time(value: datetime | None) -> str | None:
    """What UtcDateTime + SQLite's DATETIME type bind: naive UTC in the DATETIME storage format."""
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_json(value: Any) -> str | None:
    """What JsonText binds."""
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _same(value: Any) -> Any:
    return value


# How each updatable column is bound on SQLite: what SQLAlchemy's column types would bind, done directly — its
# per-row parameter processing was the largest cost of a pipeline batch.
_SQLITE_BIND: dict[str, Callable[[Any], Any]] = {
    "status": str, "starts_at": _sqlite_time, "ends_at": _sqlite_time, "expires_at": _sqlite_time,
    "last_seen_at": _sqlite_time, "occurrences": _same, "annotations": _sqlite_json, "generator_url": _sqlite_json,
}


def _update_sqlite(conn: Connection, columns: tuple[str, ...], eps: list[Episode]) -> None:
    """The hot update (every repeat of every alert) as one executemany on the driver (see _SQLITE_BIND)."""
    binds = [_SQLITE_BIND[c] for c in columns]  # KeyError for any name not from this module
    assignments = "".join(f"{c} = ?, " for c in columns)
    sql = f"UPDATE alerts SET {assignments}stale = 0 WHERE id = ?"  # noqa: S608 (fixed column names)
    rows = [(*[bind(getattr(ep, c)) for bind, c in zip(binds, columns, strict=True)], ep.id) for ep in eps]
    conn.exec_driver_sql(sql, rows)


_ROUTING = ("rule", "key", "key_hash", "incident_id", "symptom", "muted_by")


def reroute(conn: Connection, episodes: Iterable[Episode]) -> None:
    """Store where stored episodes now belong: their rule and key, incident, symptom mark and silence."""
    rows = [{"_id": ep.id, **{k: v for k, v in _values(ep).items() if k in _ROUTING}} for ep in episodes]
    if rows:
        stmt = update(alerts).where(alerts.c.id == bindparam("_id")).values({k: bindparam(k) for k in _ROUTING})
        conn.execute(stmt, rows)


def muters(conn: Connection) -> list[str]:
    """The silences that muted alerts still firing."""
    if conn.dialect.name == "sqlite":
        return [r[0] for r in conn.execute(_SQLITE_MUTERS)]
    q = select(alerts.c.muted_by).where(MUTED_FIRING).distinct()
    return [r[0] for r in conn.execute(q)]


def muted(conn: Connection, silence_ids: Collection[str], limit: int) -> list[Episode]:
    """Firing alerts muted by the given silences, oldest first, with their labels."""
    q = (
        select(*_STATE_COLS, alerts.c.labels, alerts.c.key)
        .where(alerts.c.id.in_(_sqlite_muted_ids(conn, silence_ids, limit)) if conn.dialect.name == "sqlite"
               else and_(alerts.c.muted_by.in_(list(silence_ids)), MUTED_FIRING))
        .order_by(alerts.c.id)
        .limit(limit)
    )
    return [replace(_episode(r), labels=r.labels, key=r.key) for r in conn.execute(q)]


def expiring(conn: Connection, now: datetime, limit: int) -> list[Episode]:
    """Firing episodes whose pushed endsAt has passed."""
    q = (
        select(*_STATE_COLS)
        .where(alerts.c.expires_at.is_not(None), alerts.c.expires_at <= now, ALERT_STATUS_UNINDEXED == Status.FIRING)
        .order_by(alerts.c.expires_at)
        .limit(limit)
    )
    return [_episode(r) for r in conn.execute(q)]


@dataclass(frozen=True, slots=True)
class AlertFilter:
    status: Status | None = None
    incident_id: int | None = None
    unrouted: bool | None = None
    fingerprint: str | None = None
    muted: bool | None = None


def page(conn: Connection, f: AlertFilter, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    """Alerts newest first, `limit` of them, with ids below `before_id`."""
    q = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(alerts.c.id < before_id)
    if f.status is not None:
        q = q.where(alerts.c.status == f.status)
    if f.incident_id is not None:
        q = q.where(alerts.c.incident_id == f.incident_id)
    if f.unrouted is not None:
        q = q.where(alerts.c.incident_id.is_(None) if f.unrouted else alerts.c.incident_id.is_not(None))
    if f.fingerprint is not None:
        q = q.where(alerts.c.fingerprint == f.fingerprint)
    if f.muted is not None:
        q = q.where(alerts.c.muted_by.is_not(None) if f.muted else alerts.c.muted_by.is_(None))
    return [dict(r._mapping) for r in conn.execute(q)]


def get(conn: Connection, alert_id: int) -> dict[str, Any] | None:
    r = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
    return dict(r._mapping) if r else None


def count(conn: Connection, status: Status | None = None) -> int:
    q = select(func.count()).select_from(alerts)
    if status is not None:
        q = q.where(alerts.c.status == status)
    return int(conn.execute(q).scalar_one())


def reconcilable(conn: Connection) -> list[Local]:
    """Alerts firing here that only a webhook can end: firing, no pushed expiry (reconciliation's "here")."""
    q = select(alerts.c.id, alerts.c.fingerprint, alerts.c.stale, alerts.c.last_seen_at).where(
        alerts.c.status == Status.FIRING, alerts.c.expires_at.is_(None)
    )
    return [Local(r.id, r.fingerprint, bool(r.stale), r.last_seen_at) for r in conn.execute(q)]


def flag_unheard(conn: Connection, alert_ids: Collection[int], since: datetime) -> list[int | None]:
    """Flag stale those of `alert_ids` still firing and not heard from since `since`; their incident ids."""
    flagged: list[int | None] = []
    ids = list(alert_ids)
    for i in range(0, len(ids), _CHUNK):
        stmt = (
            update(alerts)
            .where(alerts.c.id.in_(ids[i : i + _CHUNK]), alerts.c.status == Status.FIRING,
                   alerts.c.last_seen_at < since, alerts.c.stale.is_(False))
            .values(stale=True)
            .returning(alerts.c.incident_id)
        )
        flagged += [r.incident_id for r in conn.execute(stmt)]
    return flagged
