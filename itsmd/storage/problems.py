"""Problems in the database: the newest problem of a signature, unlinked recent incidents, links, listings."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, insert, select, update

from itsmd.core.problem import UNRESOLVED
from itsmd.storage.tables import incidents, problems

Row = dict[str, Any]


_CREATE = insert(problems).returning(problems.c.id)  # built once, values as parameters (as incidents.create)
_CHANGE = update(problems).where(problems.c.id == bindparam("_id"))


def create(conn: Connection, values: Row) -> int:
    return int(conn.execute(_CREATE, values).scalar_one())


def change(conn: Connection, problem_id: int, values: Row) -> None:
    if values:
        conn.execute(_CHANGE, {**values, "_id": problem_id})


def get(conn: Connection, problem_id: int) -> Row | None:
    r = conn.execute(select(problems).where(problems.c.id == problem_id)).first()
    return dict(r._mapping) if r else None


def latest(conn: Connection, signature_hash: str) -> Row | None:
    """The signature's unresolved problem if it has one, else its newest problem (a person may reopen an older
    problem after a newer one closed)."""
    unresolved_first = case((problems.c.state.in_(UNRESOLVED), 0), else_=1)
    q = (select(problems).where(problems.c.signature_hash == signature_hash)
         .order_by(unresolved_first, problems.c.id.desc()).limit(1))
    r = conn.execute(q).first()
    return dict(r._mapping) if r else None


def latest_many(conn: Connection, signature_hashes: Collection[str]) -> dict[str, Row]:
    """`latest` of each of these signatures (those with no problem left out), in one query per 500."""
    wanted, out = sorted(set(signature_hashes)), dict[str, Row]()
    for i in range(0, len(wanted), 500):
        q = select(problems).where(problems.c.signature_hash.in_(wanted[i:i + 500]))
        for r in conn.execute(q):
            row, best = dict(r._mapping), out.get(r.signature_hash)
            if best is None or _rank(row) < _rank(best):
                out[r.signature_hash] = row
    return out


def _rank(row: Row) -> tuple[int, int]:
    return (0 if row["state"] in UNRESOLVED else 1, -row["id"])


def other_unresolved(conn: Connection, signature_hash: str, problem_id: int) -> int | None:
    """The id of an unresolved problem of the signature other than `problem_id` (None: there is none)."""
    q = select(problems.c.id).where(problems.c.signature_hash == signature_hash, problems.c.id != problem_id,
                                    problems.c.state.in_(UNRESOLVED))
    found = conn.execute(q).scalar()
    return int(found) if found is not None else None


def unlinked_since(conn: Connection, signature_hash: str, since: datetime) -> list[Row]:
    """Incidents of a signature opened at or after `since` that belong to no problem, oldest first."""
    q = (select(incidents.c.id, incidents.c.opened_at)
         .where(incidents.c.signature_hash == signature_hash, incidents.c.opened_at >= since,
                incidents.c.problem_id.is_(None))
         .order_by(incidents.c.id))
    return [dict(r._mapping) for r in conn.execute(q)]


def link(conn: Connection, incident_ids: Collection[int], problem_id: int) -> None:
    if incident_ids:
        conn.execute(update(incidents).where(incidents.c.id.in_(list(incident_ids))).values(problem_id=problem_id))


def incident_ids(conn: Connection, problem_id: int, limit: int = 1000) -> list[int]:
    q = select(incidents.c.id).where(incidents.c.problem_id == problem_id).order_by(incidents.c.id).limit(limit)
    return [int(r[0]) for r in conn.execute(q)]


@dataclass(frozen=True, slots=True)
class ProblemFilter:
    state: str | None = None
    owner: str | None = None
    rule: str | None = None
    since: datetime | None = None


def page(conn: Connection, f: ProblemFilter, limit: int, before_id: int | None) -> list[Row]:
    q = select(problems).order_by(problems.c.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(problems.c.id < before_id)
    if f.state is not None:
        q = q.where(problems.c.state == f.state)
    if f.owner is not None:
        q = q.where(problems.c.owner == f.owner)
    if f.rule is not None:
        q = q.where(problems.c.rule == f.rule)
    if f.since is not None:
        q = q.where(problems.c.opened_at >= f.since)
    return [dict(r._mapping) for r in conn.execute(q)]
