"""The writer serves urgent writes (ingest) between long writes, on SQLite and PostgreSQL: an inbox append waits for
at most the one write in progress, never for a whole batch of queued pipeline steps and paging chunks."""

import asyncio
import threading
from datetime import UTC, datetime

from sqlalchemy import Connection

from itsmd.storage import inbox
from itsmd.storage.store import SqlStore

T0 = datetime(2026, 11, 26, 7, 0, 0, tzinfo=UTC)


def recorder(order: list[str], name: str, gate: threading.Event | None = None,
             started: threading.Event | None = None):  # type: ignore[no-untyped-def]
    def work(conn: Connection) -> str:
        if started is not None:
            started.set()
        if gate is not None:
            assert gate.wait(10)
        order.append(name)
        return name
    return work


async def wait_for(event: threading.Event) -> None:
    for _ in range(1000):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the write never started")


async def test_an_urgent_write_commits_between_the_long_writes_of_one_batch(store: SqlStore) -> None:
    order: list[str] = []
    gate, started = threading.Event(), threading.Event()
    long_ = [asyncio.ensure_future(store.write(recorder(order, "step", gate, started))),
             asyncio.ensure_future(store.write(recorder(order, "page-chunk"))),
             asyncio.ensure_future(store.write(recorder(order, "deadlines")))]
    await wait_for(started)  # the first long write runs; the other two are queued behind it
    urgent = asyncio.ensure_future(store.write(recorder(order, "inbox"), urgent=True))
    append = asyncio.ensure_future(store.write(inbox.add(T0, "webhook", b"x"), urgent=True))
    await asyncio.sleep(0.05)
    gate.set()
    assert await urgent == "inbox"
    await append
    assert await asyncio.gather(*long_) == ["step", "page-chunk", "deadlines"]
    assert order == ["step", "inbox", "page-chunk", "deadlines"]  # each queue keeps its order
    rows = await store.read(lambda c: inbox.oldest(c, 10))
    assert [r.payload for r in rows] == [b"x"]


async def test_other_writes_are_served_between_urgent_batches(store: SqlStore) -> None:
    """Urgent writes that keep coming do not starve the pipeline: after an urgent batch, one other write runs."""
    order: list[str] = []
    gate, started = threading.Event(), threading.Event()
    loop = asyncio.get_running_loop()
    later: list[asyncio.Future[str]] = []

    def first_urgent(conn: Connection) -> str:
        order.append("inbox-1")
        # another ingest commit arrives while this one runs
        loop.call_soon_threadsafe(lambda: later.append(
            asyncio.ensure_future(store.write(recorder(order, "inbox-2"), urgent=True))))
        return "inbox-1"

    blocking = asyncio.ensure_future(store.write(recorder(order, "step-1", gate, started)))
    await wait_for(started)
    u1 = asyncio.ensure_future(store.write(first_urgent, urgent=True))
    n2 = asyncio.ensure_future(store.write(recorder(order, "step-2")))
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(blocking, u1, n2)
    await asyncio.gather(*later)
    assert order == ["step-1", "inbox-1", "step-2", "inbox-2"]


async def test_a_failing_long_write_still_isolated_when_an_urgent_write_cuts_in(store: SqlStore) -> None:
    order: list[str] = []
    gate, started = threading.Event(), threading.Event()

    def boom(conn: Connection) -> None:
        raise ValueError("poison")

    first = asyncio.ensure_future(store.write(recorder(order, "step", gate, started)))
    await wait_for(started)
    bad = asyncio.ensure_future(store.write(boom))
    after = asyncio.ensure_future(store.write(recorder(order, "after")))
    urgent = asyncio.ensure_future(store.write(inbox.add(T0, "webhook", b"y"), urgent=True))
    gate.set()
    results = await asyncio.gather(first, bad, after, urgent, return_exceptions=True)
    assert results[0] == "step" and isinstance(results[1], ValueError) and results[2] == "after"
    assert results[3] is None
    rows = await store.read(lambda c: inbox.oldest(c, 10))
    assert [r.payload for r in rows] == [b"y"]
