"""Pages claimed under a lease (itsmd.storage.pages.claim/renew) on both engines: two senders never take the same
page, an expired lease frees the page and
a renewal only extends a lease still held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import Connection

from itsmd.storage import pages
from itsmd.storage.store import SqlStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _enqueue(conn: Connection) -> None:
    rows = [pages.new_row(pages.page_key(None, 0, "c", i, "n"), None, 0, "summary", "c", "r", "n", T0)
            for i in range(3)]
    pages.enqueue(conn, rows)


async def test_claimed_pages_are_nobody_elses_until_the_lease_ends(store: SqlStore) -> None:
    await store.write(_enqueue)
    lease = T0 + timedelta(seconds=60)
    first = await store.write(partial(pages.claim, now=T0, lease_until=lease, limit=2))
    second = await store.write(partial(pages.claim, now=T0, lease_until=lease, limit=10))
    assert len(first) == 2 and len(second) == 1
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    assert await store.write(partial(pages.claim, now=T0 + timedelta(seconds=30), lease_until=lease, limit=10)) == []
    # renewed leases hold past the first end; an unrenewed one is free again after it
    later = lease + timedelta(seconds=60)
    await store.write(partial(pages.renew, leases={r["id"]: lease for r in first}, lease_until=later))
    again = await store.write(partial(pages.claim, now=lease, lease_until=later, limit=10))
    assert [r["id"] for r in again] == [second[0]["id"]]


async def test_a_renewal_never_extends_a_lease_someone_else_took(store: SqlStore) -> None:
    await store.write(_enqueue)
    lease = T0 + timedelta(seconds=60)
    mine = await store.write(partial(pages.claim, now=T0, lease_until=lease, limit=1))
    theirs_until = lease + timedelta(seconds=60)
    theirs = await store.write(partial(pages.claim, now=lease, lease_until=theirs_until, limit=1))  # mine lapsed
    assert [r["id"] for r in theirs] == [r["id"] for r in mine]
    await store.write(partial(pages.renew, leases={mine[0]["id"]: lease}, lease_until=T0 + timedelta(hours=1)))
    row = await store.read(lambda conn: pages.get(conn, mine[0]["id"]))
    assert row is not None and row["next_attempt_at"].replace(tzinfo=UTC) == theirs_until
