"""Incidents in the database: lookups by rule and key, creation, updates, derived counts, listings, deadlines."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, case, func, insert, or_, select, update

from itsmd.core.alert import Status
from itsmd.core.incident import UNRESOLVED, Counts
from itsmd.storage.tables import ALERT_STATUS_UNINDEXED, alerts, incidents

Pair = tuple[str, str]  # (rule, key_hash)
Row = dict[str, Any]
_CHUNK = 400


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _by_rule(pairs: Collection[Pair]) -> Iterable[tuple[str, list[str]]]:
    """Pairs grouped by rule, in chunks: `rule = ? AND key_hash IN (...)` uses the (rule, key_hash) index on
    both engines, where a row-value IN does not on SQLite."""
    grouped: dict[str, list[str]] = {}
    for rule, khash in pairs:
        grouped.setdefault(rule, []).append(khash)
    for rule, hashes in grouped.items():
        for i in range(0, len(hashes), _CHUNK):
            yield rule, hashes[i : i + _CHUNK]


def unresolved(conn: Connection, pairs: Collection[Pair]) -> dict[Pair, Row]:
    out: dict[Pair, Row] = {}
    for rule, hashes in _by_rule(pairs):
        q = select(incidents).where(
            incidents.c.rule == rule, incidents.c.key_hash.in_(hashes), incidents.c.state.in_(UNRESOLVED)
        )
        out.update({(r.rule, r.key_hash): dict(r._mapping) for r in conn.execute(q)})
    return out


def latest(conn: Connection, pairs: Collection[Pair]) -> dict[Pair, Row]:
    """The newest incident of each rule and key, whatever its state."""
    out: dict[Pair, Row] = {}
    for rule, hashes in _by_rule(pairs):
        newest = (
            select(func.max(incidents.c.id))
            .where(incidents.c.rule == rule, incidents.c.key_hash.in_(hashes))
            .group_by(incidents.c.key_hash)
        )
        q = select(incidents).where(incidents.c.id.in_(newest.scalar_subquery()))
        out.update({(r.rule, r.key_hash): dict(r._mapping) for r in conn.execute(q)})
    return out


def of_rules(conn: Connection, rules: Collection[str]) -> list[Row]:
    """Unresolved incidents of the given rules (the causes that may take symptoms)."""
    if not rules:
        return []
    q = select(incidents).where(incidents.c.rule.in_(list(rules)), incidents.c.state.in_(UNRESOLVED))
    return [dict(r._mapping) for r in conn.execute(q)]


def of_services(conn: Connection, services: Collection[str], limit: int) -> list[Row]:
    """The oldest `limit` unresolved incidents of each of the given services (causes of dependency symptoms);
    one indexed query per service, so the cost follows neither the open incidents nor the service's history."""
    out: list[Row] = []
    for service in sorted(services):
        q = (select(incidents)
             .where(incidents.c.service == service, incidents.c.state.in_(UNRESOLVED))
             .order_by(incidents.c.id).limit(limit))
        out += [dict(r._mapping) for r in conn.execute(q)]
    return out


# Statements built once; the values go in as parameters (building `.values(...)` per call coerced every value
# into the statement: a third of an insert's time in the pipeline).
_CREATE = insert(incidents).returning(incidents.c.id)
_CHANGE = update(incidents).where(incidents.c.id == bindparam("_id"))


def create(conn: Connection, values: Row) -> int:
    return int(conn.execute(_CREATE, values).scalar_one())


def change(conn: Connection, incident_id: int, values: Row) -> None:
    if values:
        conn.execute(_CHANGE, {**values, "_id": incident_id})


def change_many(conn: Connection, changes: Iterable[tuple[int, Row]]) -> None:
    """`change` of many incidents: one executemany per set of changed columns."""
    grouped: dict[tuple[str, ...], list[Row]] = {}
    for incident_id, values in changes:
        if values:
            grouped.setdefault(tuple(sorted(values)), []).append({**values, "_id": incident_id})
    for rows in grouped.values():
        conn.execute(_CHANGE, rows)


def get(conn: Connection, incident_id: int) -> Row | None:
    r = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
    return dict(r._mapping) if r else None


def get_many(conn: Connection, ids: Collection[int]) -> dict[int, Row]:
    """The stored rows of these incidents (absent ones left out)."""
    wanted, out = sorted(set(ids)), {}
    for i in range(0, len(wanted), 500):
        for r in conn.execute(select(incidents).where(incidents.c.id.in_(wanted[i:i + 500]))):
            out[r.id] = dict(r._mapping)
    return out


def waiting(conn: Connection, rule: str, hashes: Collection[str], since: datetime) -> dict[str, list[Row]]:
    """Alerts of a rule and these keys not yet in an incident nor muted, first seen since `since` (toward
    min_alerts), oldest first, by key (keys without any left out)."""
    out: dict[str, list[Row]] = {}
    for _, chunk in _by_rule([(rule, h) for h in hashes]):
        q = select(alerts.c.id, alerts.c.key_hash, alerts.c.starts_at, alerts.c.labels, alerts.c.status).where(
            alerts.c.rule == rule, alerts.c.key_hash.in_(chunk), alerts.c.incident_id.is_(None),
            alerts.c.first_seen_at >= since, alerts.c.symptom.is_(None), alerts.c.muted_by.is_(None),
        ).order_by(alerts.c.id)
        for r in conn.execute(q):
            out.setdefault(r.key_hash, []).append(dict(r._mapping))
    return out


def attach(conn: Connection, alert_ids: Collection[int], incident_id: int) -> None:
    if alert_ids:
        conn.execute(update(alerts).where(alerts.c.id.in_(list(alert_ids))).values(incident_id=incident_id))


def counts(conn: Connection, ids: Collection[int]) -> dict[int, Counts]:
    firing = alerts.c.status == Status.FIRING
    cause = alerts.c.symptom.is_(None)
    one = 1

    def n(cond: Any) -> Any:
        return func.sum(case((cond, one), else_=0))

    q = (
        select(alerts.c.incident_id, func.count(), n(firing), n(cause), n(and_(firing, cause)),
               n(and_(firing, alerts.c.stale)))
        .where(alerts.c.incident_id.in_(list(ids)))
        .group_by(alerts.c.incident_id)
    )
    out = {i: Counts(0, 0, 0, 0, 0) for i in ids}
    for r in conn.execute(q):
        out[r[0]] = Counts(int(r[1]), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0), int(r[5] or 0))
    return out


def move_alerts(conn: Connection, source: int, target: int) -> None:
    conn.execute(update(alerts).where(alerts.c.incident_id == source).values(incident_id=target))


def due(conn: Connection, column: str, now: datetime, limit: int) -> list[Row]:
    col = incidents.c[column]
    q = select(incidents).where(col.is_not(None), col <= now).order_by(col).limit(limit)
    return [dict(r._mapping) for r in conn.execute(q)]


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    state: str | None = None
    service: str | None = None
    priority: str | None = None
    since: datetime | None = None


def page(conn: Connection, f: IncidentFilter, limit: int, before_id: int | None) -> list[Row]:
    q = select(incidents).order_by(incidents.c.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(incidents.c.id < before_id)
    if f.state is not None:
        q = q.where(incidents.c.state == f.state)
    if f.service is not None:
        q = q.where(incidents.c.service == f.service)
    if f.priority is not None:
        q = q.where(incidents.c.priority == f.priority)
    if f.since is not None:
        q = q.where(incidents.c.opened_at >= f.since)
    return [dict(r._mapping) for r in conn.execute(q)]


def alerts_of(conn: Connection, incident_id: int, limit: int = 1000) -> list[Row]:
    q = select(alerts).where(alerts.c.incident_id == incident_id).order_by(alerts.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(q)]


@dataclass(frozen=True, slots=True)
class Firing:
    """An incident's firing cause alerts (not symptoms): the first `limit` by id, and how many there are."""

    alerts: list[Row]
    count: int


def firing_causes(conn: Connection, ids: Collection[int], limit: int) -> dict[int, Firing]:
    """The firing cause alerts of these incidents (`Firing` of each; none firing: an empty one)."""
    found: dict[int, list[Row]] = {i: [] for i in ids}
    counts = dict.fromkeys(found, 0)
    wanted = sorted(found)
    for i in range(0, len(wanted), 500):
        q = (select(alerts.c.incident_id, alerts.c.labels, alerts.c.annotations, alerts.c.status,
                    alerts.c.starts_at, alerts.c.fingerprint)
             .where(alerts.c.incident_id.in_(wanted[i:i + 500]), ALERT_STATUS_UNINDEXED == Status.FIRING,
                    alerts.c.symptom.is_(None))
             .order_by(alerts.c.id))
        for r in conn.execute(q):
            counts[r.incident_id] += 1
            if counts[r.incident_id] <= limit:
                found[r.incident_id].append(dict(r._mapping))
    return {i: Firing(rows, counts[i]) for i, rows in found.items()}


def _stale(before: datetime) -> list[ColumnElement[bool]]:
    return [alerts.c.status == Status.FIRING, alerts.c.last_seen_at < before,
            or_(alerts.c.stale.is_(False), alerts.c.stale.is_(None))]


def stale_firing(conn: Connection, before: datetime, limit: int) -> list[int]:
    """Ids of firing alerts not refreshed since `before` and not yet flagged stale. No index serves this (every
    repeat rewrites last_seen_at, an index on it would cost every delivery), so it walks the firing alerts: read
    it outside the writer and let `flag_stale` decide."""
    return [int(r[0]) for r in conn.execute(select(alerts.c.id).where(*_stale(before)).limit(limit))]


def flag_stale(conn: Connection, alert_ids: Collection[int], before: datetime) -> list[int | None]:
    """Flag those of `alert_ids` still stale as of `before` (a repeat may have refreshed one since it was read);
    the incident of each flagged alert."""
    if not alert_ids:
        return []
    q = (update(alerts).where(alerts.c.id.in_(list(alert_ids)), *_stale(before)).values(stale=True)
         .returning(alerts.c.incident_id))
    return [r[0] for r in conn.execute(q)]


def flagged_signal_lost(conn: Connection) -> list[Row]:
    q = select(incidents.c.id).where(incidents.c.signal_lost.is_(True), incidents.c.state.in_(UNRESOLVED))
    return [dict(r._mapping) for r in conn.execute(q)]


def unresolved_ids(conn: Connection, ids: Collection[int]) -> set[int]:
    if not ids:
        return set()
    q = select(incidents.c.id).where(incidents.c.id.in_(list(ids)), incidents.c.state.in_(UNRESOLVED))
    return {int(r[0]) for r in conn.execute(q)}
