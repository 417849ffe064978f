"""The durable inbox: accepted deliveries, committed before the 200 and consumed in order by the pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, select, text

from itsmd.core.leadership import LOCK_CLASS, PIPELINE_KEY
from itsmd.storage.tables import inbox
from itsmd.storage.writer import Rows


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    received_at: datetime
    source: str
    payload: bytes


def add(received_at: datetime, source: str, payload: bytes) -> Rows:
    """The write that appends one delivery (the writer merges concurrent appends into one statement)."""
    return Rows(inbox, [{"received_at": received_at, "source": source, "payload": payload}])


def oldest(conn: Connection, limit: int) -> list[InboxRow]:
    rows = conn.execute(select(inbox).order_by(inbox.c.id).limit(limit)).all()
    return [InboxRow(r.id, r.received_at, r.source, bytes(r.payload)) for r in rows]


def next_batch(conn: Connection, limit: int, max_bytes: int) -> tuple[list[InboxRow], bool]:
    """The oldest deliveries, at most `limit` of them and `max_bytes` of payload (the first one whatever its
    size), and whether more are waiting after them. Sizes are read first, so a storm of large deliveries never
    loads more than one batch's payloads.

    On PostgreSQL the batch first takes a transaction-level advisory lock: should two replicas ever both believe
    they lead (a leader frozen past its lock's end), their batches still run one after the other, each on the
    inbox the other left."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": LOCK_CLASS, "b": PIPELINE_KEY})
    sizes = conn.execute(select(inbox.c.id, func.length(inbox.c.payload)).order_by(inbox.c.id).limit(limit + 1)).all()
    taken, total = 0, 0
    for _, size in sizes[:limit]:
        total += size
        if taken and total > max_bytes:
            break
        taken += 1
    return oldest(conn, taken) if taken else [], len(sizes) > taken


def remove(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(delete(inbox).where(inbox.c.id.in_(ids)))


def lag(conn: Connection) -> tuple[int, datetime | None]:
    """How many deliveries wait, and when the oldest arrived."""
    row = conn.execute(select(func.count(), func.min(inbox.c.received_at))).one()
    return int(row[0]), row[1]


def last_id(conn: Connection) -> int:
    """The id of the newest delivery waiting (0 when none): what `drained` later compares against."""
    return int(conn.execute(select(func.coalesce(func.max(inbox.c.id), 0))).scalar_one())


def drained(conn: Connection, up_to: int) -> bool:
    """Whether every delivery up to id `up_to` has been processed."""
    return conn.execute(select(inbox.c.id).where(inbox.c.id <= up_to).limit(1)).first() is None
