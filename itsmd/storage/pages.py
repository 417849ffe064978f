"""The outbox of pages and each incident's paging state in the database (decided by itsmd.paging, sent by
itsmd.notify.outbox)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, bindparam, exists, func, insert, select, update
from sqlalchemy.orm import aliased

from itsmd.storage.tables import incidents, pages, paging

Row = dict[str, Any]
PENDING, SENT, FAILED, SUPPRESSED = "pending", "sent", "failed", "suppressed"
SUMMARY = "summary"
NOTIFY = "notify"  # the event of a `notify` step's message (not a page: the hourly budget does not count it)


def page_key(incident_id: int | None, cycle: int, cause: str, sequence: int, notifier: str | None) -> str:
    """The idempotency key of one page to one notifier."""
    who = "summary" if incident_id is None else f"INC-{incident_id}"
    return f"{who}/{cycle}/{cause}/{sequence}/{notifier or '-'}"


def step_key(run_id: str, step: str, notifier: str) -> str:
    """The idempotency key of a `notify` step's message to one notifier: `RUN-n/notify/<digest>`, so a retried or
    resumed step queues nothing twice."""
    digest = hashlib.sha256(f"{step}\0{notifier}".encode()).hexdigest()[:32]
    return f"{run_id}/notify/{digest}"


def run_of_key(key: str) -> str | None:
    """The run (`RUN-n`) whose notify step queued the page with `key`, else None."""
    head, _, rest = key.partition("/")
    return head if head.startswith("RUN-") and rest.startswith("notify/") else None


def enqueue(conn: Connection, rows: list[Row]) -> int:
    """Insert the pages whose key is not stored yet (a decision replayed after a crash adds nothing); the
    number inserted."""
    if not rows:
        return 0
    known = set(conn.execute(select(pages.c.key).where(pages.c.key.in_([r["key"] for r in rows]))).scalars())
    fresh = [r for r in rows if r["key"] not in known]
    if fresh:
        conn.execute(insert(pages), fresh)
    return len(fresh)


def new_row(key: str, incident_id: int | None, cycle: int, event: str, cause: str, reason: str,
            notifier: str | None, now: datetime, state: str = PENDING) -> Row:
    return {"key": key, "incident_id": incident_id, "cycle": cycle, "event": event, "cause": cause,
            "reason": reason, "notifier": notifier, "state": state, "attempts": 0,
            "next_attempt_at": now if state == PENDING else None, "last_error": None, "created_at": now,
            "sent_at": None, "updated_at": now}


def decisions_since(conn: Connection, since: datetime) -> int:
    """Escalation decisions (one per incident page, whatever the number of notifiers) created since `since`."""
    q = select(func.count()).select_from(
        select(pages.c.incident_id, pages.c.cycle, pages.c.cause, pages.c.created_at)
        .where(pages.c.event == "escalate", pages.c.created_at >= since, pages.c.state != SUPPRESSED)
        .distinct().subquery())
    return int(conn.execute(q).scalar_one())


def summary_since(conn: Connection, since: datetime) -> Row | None:
    r = conn.execute(select(pages).where(pages.c.event == SUMMARY, pages.c.created_at >= since)
                     .order_by(pages.c.id).limit(1)).first()
    return dict(r._mapping) if r else None


def suppressed_between(conn: Connection, start: datetime, end: datetime, limit: int) -> tuple[int, list[int]]:
    """Incident pages held back by the budget in [start, end]: their number and the first `limit` incident ids."""
    where = and_(pages.c.state == SUPPRESSED, pages.c.created_at >= start, pages.c.created_at <= end)
    n = int(conn.execute(select(func.count()).select_from(pages).where(where)).scalar_one())
    ids = conn.execute(select(pages.c.incident_id).where(where).order_by(pages.c.id).limit(limit)).scalars()
    return n, [int(i) for i in ids if i is not None]


def _due(now: datetime, limit: int) -> Select[Any]:
    """Pending pages whose attempt is due, oldest first, leaving out those behind an earlier unfinished page of the
    same incident and notifier (a resolve never overtakes its trigger)."""
    earlier = aliased(pages)
    blocked = exists().where(earlier.c.state == PENDING, earlier.c.incident_id == pages.c.incident_id,
                             earlier.c.notifier == pages.c.notifier, earlier.c.id < pages.c.id)
    return (select(pages).where(pages.c.state == PENDING, pages.c.next_attempt_at <= now, ~blocked)
            .order_by(pages.c.id).limit(limit))


def due(conn: Connection, now: datetime, limit: int) -> list[Row]:
    return [dict(r._mapping) for r in conn.execute(_due(now, limit))]


def claim(conn: Connection, now: datetime, lease_until: datetime, limit: int) -> list[Row]:
    """Take the due pages (as `due` picks them) for one sender until `lease_until`: their next attempt moves to
    then, so no other sender takes them meanwhile, and a sender that dies leaves them due again after it. On
    PostgreSQL the rows are locked with SKIP LOCKED, so concurrent replicas never take the same page. Rows are
    returned as they were before the claim."""
    q = _due(now, limit)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(of=pages, skip_locked=True)
    rows = [dict(r._mapping) for r in conn.execute(q)]
    if rows:
        conn.execute(update(pages).where(pages.c.id.in_([r["id"] for r in rows]))
                     .values(next_attempt_at=lease_until))
    return rows


def renew(conn: Connection, leases: dict[int, datetime], lease_until: datetime) -> None:
    """Extend the leases of pages still claimed as `leases` says (id -> the lease's end as claimed)."""
    if leases:
        conn.execute(update(pages).where(pages.c.id == bindparam("b_id"), pages.c.state == PENDING,
                                         pages.c.next_attempt_at == bindparam("b_until"))
                     .values(next_attempt_at=lease_until),
                     [{"b_id": i, "b_until": until} for i, until in leases.items()])


def next_attempt(conn: Connection) -> datetime | None:
    return conn.execute(select(func.min(pages.c.next_attempt_at)).where(pages.c.state == PENDING)).scalar()


def change(conn: Connection, page_id: int, values: Row) -> None:
    conn.execute(update(pages).where(pages.c.id == page_id).values(values))


def of_incident(conn: Connection, incident_id: int, limit: int = 1000) -> list[Row]:
    q = select(pages).where(pages.c.incident_id == incident_id).order_by(pages.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(q)]


def get(conn: Connection, page_id: int) -> Row | None:
    r = conn.execute(select(pages).where(pages.c.id == page_id)).first()
    return dict(r._mapping) if r else None


# --- paging state -----------------------------------------------------------------------------------------

def states(conn: Connection, incident_ids: Collection[int]) -> dict[int, Row]:
    if not incident_ids:
        return {}
    q = select(paging).where(paging.c.incident_id.in_(list(incident_ids)))
    return {int(r.incident_id): dict(r._mapping) for r in conn.execute(q)}


def save_state(conn: Connection, incident_id: int, values: Row, exists_: bool) -> None:
    if exists_:
        conn.execute(update(paging).where(paging.c.incident_id == incident_id).values(values))
    else:
        conn.execute(insert(paging).values({"incident_id": incident_id, **values}))


def save_states(conn: Connection, items: Collection[tuple[int, Row, bool]]) -> None:
    """save_state of many incidents, (incident, full state, stored before): one statement per kind."""
    fresh = [{**values, "incident_id": incident_id} for incident_id, values, stored in items if not stored]
    if fresh:
        conn.execute(insert(paging), fresh)
    changed = [{**{k: v for k, v in values.items() if k != "incident_id"}, "b_incident_id": incident_id}
               for incident_id, values, stored in items if stored]
    by_columns: dict[tuple[str, ...], list[Row]] = {}
    for row in changed:
        by_columns.setdefault(tuple(sorted(row)), []).append(row)
    for rows in by_columns.values():
        conn.execute(update(paging).where(paging.c.incident_id == bindparam("b_incident_id")), rows)


def outstanding(conn: Connection, limit: int) -> list[tuple[Row, Row]]:
    """(paging state, incident) of incidents whose humans were paged and not yet told the end of it."""
    q = (select(paging, incidents.c.state.label("incident_state"), incidents.c.reopen_count)
         .join(incidents, incidents.c.id == paging.c.incident_id)
         .where(paging.c.outstanding.is_not(None)).order_by(paging.c.incident_id).limit(limit))
    out = []
    for r in conn.execute(q):
        m = dict(r._mapping)
        out.append(({c.name: m[c.name] for c in paging.c}, {"state": m["incident_state"],
                                                          "reopen_count": m["reopen_count"]}))
    return out


def due_incidents(conn: Connection, now: datetime, limit: int) -> list[Row]:
    """Incidents whose paging deadline passed."""
    q = (select(incidents).where(incidents.c.page_at.is_not(None), incidents.c.page_at <= now)
         .order_by(incidents.c.page_at).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]


def review_soon(conn: Connection, incident_id: int, at: datetime) -> None:
    """Ask for a paging decision about `incident_id` at `at` at the latest (the hook for whatever changes the
    facts, e.g. a run that ended): keeps an earlier deadline."""
    conn.execute(update(incidents).where(
        incidents.c.id == incident_id,
        (incidents.c.page_at.is_(None)) | (incidents.c.page_at > at)).values(page_at=at))


def hour_before(now: datetime) -> datetime:
    return now - timedelta(hours=1)
