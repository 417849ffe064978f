"""`ingest.pipeline_batch_new`: a pipeline step takes at most that many alerts that begin an episode (each may open
an incident), so one transaction of a storm stays short; the rest of the inbox follows in order, nothing is lost.
Real store, SQLite and PostgreSQL."""

from datetime import UTC, datetime

from itsmd.clock import FakeClock
from itsmd.config.routing import Routing
from itsmd.metrics import Metrics
from itsmd.pipeline import normalize
from itsmd.pipeline.worker import PipelineWorker
from itsmd.storage import alerts, inbox
from itsmd.storage.store import SqlStore

T0 = datetime(2026, 11, 26, 7, 0, 0, tzinfo=UTC)


def delivery(*instances: str) -> bytes:
    body = {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "Down", "instance": i}, "annotations": {},
         "startsAt": "2026-11-26T06:59:00Z", "endsAt": "0001-01-01T00:00:00Z"} for i in instances]}
    return normalize.webhook(body, T0, 1000).encode()


async def steps(store: SqlStore, worker: PipelineWorker) -> int:
    before = store.writer.batches
    await worker.drain()
    return store.writer.batches - before


def worker(store: SqlStore, batch_new: int | None) -> PipelineWorker:
    return PipelineWorker(store, FakeClock(T0), Metrics(), batch=100, routing=Routing(),
                          batch_new=batch_new)


async def stored_fingerprint_count(store: SqlStore) -> int:
    return len(await store.read(lambda c: alerts.page(c, alerts.AlertFilter(), 1000, None)))


async def test_a_step_takes_deliveries_up_to_the_new_alert_bound(store: SqlStore) -> None:
    for n in range(3):
        await store.write(inbox.add(T0, "webhook", delivery(*(f"h{n}-{i}" for i in range(4)))))
    # 4 new alerts per delivery, at most 5 per step: one delivery per step (the first is taken whatever it holds)
    assert await steps(store, worker(store, 5)) == 3
    assert await stored_fingerprint_count(store) == 12
    assert (await store.read(inbox.lag))[0] == 0


async def test_repeats_do_not_count_toward_the_bound(store: SqlStore) -> None:
    w = worker(store, 5)
    await store.write(inbox.add(T0, "webhook", delivery("a", "b", "c", "d")))
    assert await steps(store, w) == 1
    for _ in range(3):  # the same four alerts again: refreshes, not new episodes
        await store.write(inbox.add(T0, "webhook", delivery("a", "b", "c", "d")))
    await store.write(inbox.add(T0, "webhook", delivery("e")))
    assert await steps(store, w) == 1  # one step: 1 new alert in all
    assert await stored_fingerprint_count(store) == 5


async def test_without_a_bound_one_step_takes_them_all(store: SqlStore) -> None:
    for n in range(3):
        await store.write(inbox.add(T0, "webhook", delivery(*(f"h{n}-{i}" for i in range(4)))))
    assert await steps(store, worker(store, None)) == 1
    assert await stored_fingerprint_count(store) == 12
