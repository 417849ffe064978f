"""The store contract, run on SQLite and on a real PostgreSQL: same behaviour on both engines."""

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from itsmd.core.alert import Status
from itsmd.core.episode import Episode
from itsmd.errors import StorageError
from itsmd.storage import alerts, inbox, quarantine, tables
from itsmd.storage.database import migrate, open_database
from itsmd.storage.store import SqlStore

T0 = datetime(2026, 11, 25, 21, 0, 0, 123456, tzinfo=UTC)
HOSTILE = "a\x00b\x1b[31m\r\nX-Forged: 1\u202e\u2028한국어🔥{{7*7}}$(touch /tmp/pwned)"


def episode(fp: str, status: Status = Status.FIRING, id_: int | None = None, **kw: object) -> Episode:
    base = dict(
        id=id_, fingerprint=fp, labels={"alertname": "A", "v": HOSTILE, HOSTILE: "name"},
        annotations={"d": HOSTILE}, status=status, starts_at=T0,
        ends_at=T0 + timedelta(minutes=5) if status == Status.RESOLVED else None, expires_at=None,
        generator_url="http://x/?a=1&b=\x00", first_seen_at=T0, last_seen_at=T0, occurrences=1,
    )
    base.update(kw)
    return Episode(**base)  # type: ignore[arg-type]


async def test_inbox_is_fifo_and_keeps_bytes(store: SqlStore) -> None:
    payloads = [b"\x00\xff" + bytes([i]) for i in range(5)]
    for p in payloads:
        await store.write(inbox.add(T0, "webhook", p))
    rows = await store.read(lambda c: inbox.oldest(c, 3))
    assert [r.payload for r in rows] == payloads[:3]
    assert rows[0].received_at == T0 and rows[0].source == "webhook"
    await store.write(lambda c: inbox.remove(c, [r.id for r in rows]))
    count, oldest = await store.read(inbox.lag)
    assert count == 2 and oldest == T0


async def test_episodes_round_trip_hostile_text_faithfully(store: SqlStore) -> None:
    await store.write(lambda c: alerts.save(c, [episode("f1")]))
    [row] = await store.read(lambda c: alerts.page(c, alerts.AlertFilter(fingerprint="f1"), 10, None))
    assert row["labels"]["v"] == HOSTILE and row["labels"][HOSTILE] == "name" and row["annotations"]["d"] == HOSTILE
    assert row["generator_url"] == "http://x/?a=1&b=\x00"
    assert row["starts_at"] == T0 and row["starts_at"].tzinfo is not None
    h = await store.read(lambda c: alerts.histories(c, ["f1", "missing"]))
    ep = h["f1"].open
    assert ep is not None and ep.id == row["id"] and ep.starts_at == T0 and ep.labels is None
    assert h["missing"].open is None and h["missing"].closed is None


async def test_a_state_only_update_keeps_the_content(store: SqlStore) -> None:
    from dataclasses import replace

    await store.write(lambda c: alerts.save(c, [episode("k")]))
    loaded = (await store.read(lambda c: alerts.histories(c, ["k"])))["k"].open
    assert loaded is not None and loaded.annotations is None
    await store.write(lambda c: alerts.save(c, [replace(loaded, occurrences=9)]))
    [row] = await store.read(lambda c: alerts.page(c, alerts.AlertFilter(fingerprint="k"), 10, None))
    assert row["occurrences"] == 9 and row["annotations"] == {"d": HOSTILE} and row["labels"]["alertname"] == "A"


async def test_history_has_open_and_latest_closed(store: SqlStore) -> None:
    old = episode("f", Status.RESOLVED, starts_at=T0 - timedelta(hours=2), ends_at=T0 - timedelta(hours=1))
    newer = episode("f", Status.RESOLVED, starts_at=T0 - timedelta(minutes=30), ends_at=T0 - timedelta(minutes=20))
    await store.write(lambda c: alerts.save(c, [old, newer, episode("f")]))
    h = (await store.read(lambda c: alerts.histories(c, ["f"], closed_too=["f"])))["f"]
    assert h.open is not None and h.open.status == Status.FIRING
    assert h.closed is not None and h.closed.ends_at == T0 - timedelta(minutes=20)
    lean = (await store.read(lambda c: alerts.histories(c, ["f"])))["f"]
    assert lean.open is not None and lean.closed is None  # not needed to merge a firing into an open one


async def test_one_firing_episode_per_fingerprint_is_enforced(store: SqlStore) -> None:
    await store.write(lambda c: alerts.save(c, [episode("dup")]))
    with pytest.raises((IntegrityError, StorageError)):
        await store.write(lambda c: alerts.save(c, [episode("dup")]))


async def test_update_then_insert_lets_an_episode_follow_its_predecessor(store: SqlStore) -> None:
    await store.write(lambda c: alerts.save(c, [episode("g")]))
    first = (await store.read(lambda c: alerts.histories(c, ["g"])))["g"].open
    assert first is not None
    from dataclasses import replace

    closed = replace(first, status=Status.RESOLVED, ends_at=T0 + timedelta(minutes=1), occurrences=2)
    await store.write(lambda c: alerts.save(c, [episode("g", starts_at=T0 + timedelta(minutes=2)), closed]))
    h = (await store.read(lambda c: alerts.histories(c, ["g"], closed_too=["g"])))["g"]
    assert h.closed is not None and h.closed.id == first.id and h.closed.occurrences == 2
    assert h.open is not None and h.open.starts_at == T0 + timedelta(minutes=2)


async def test_paging_and_filters(store: SqlStore) -> None:
    eps = [episode(f"p{i}", Status.FIRING if i % 2 else Status.RESOLVED) for i in range(7)]
    await store.write(lambda c: alerts.save(c, eps))
    f = alerts.AlertFilter()
    first = await store.read(lambda c: alerts.page(c, f, 3, None))
    second = await store.read(lambda c: alerts.page(c, f, 3, first[-1]["id"]))
    third = await store.read(lambda c: alerts.page(c, f, 3, second[-1]["id"]))
    ids = [r["id"] for r in first + second + third]
    assert len(ids) == 7 and len(set(ids)) == 7 and ids == sorted(ids, reverse=True)
    firing = await store.read(lambda c: alerts.page(c, alerts.AlertFilter(status=Status.FIRING), 100, None))
    assert {r["fingerprint"] for r in firing} == {"p1", "p3", "p5"}
    unrouted = await store.read(lambda c: alerts.page(c, alerts.AlertFilter(unrouted=True), 100, None))
    assert len(unrouted) == 7
    assert await store.read(lambda c: alerts.count(c, Status.RESOLVED)) == 4


async def test_expiring_lists_only_due_firing_episodes(store: SqlStore) -> None:
    await store.write(lambda c: alerts.save(c, [
        episode("e1", expires_at=T0 + timedelta(seconds=10)),
        episode("e2", expires_at=T0 + timedelta(seconds=100)),
        episode("e3"),
    ]))
    due = await store.read(lambda c: alerts.expiring(c, T0 + timedelta(seconds=50), 10))
    assert [e.fingerprint for e in due] == ["e1"]


async def test_quarantine_keeps_reason_and_raw_alert(store: SqlStore) -> None:
    raw = {"labels": {"a": 1, "n": HOSTILE}}
    await store.write(quarantine.add(T0, "webhook", [("alerts[0]: bad", raw)]))
    rows = await store.read(lambda c: quarantine.page(c, 10, None))
    assert rows[0]["reason"] == "alerts[0]: bad" and rows[0]["alert"] == raw


async def test_group_commit_isolates_a_failing_write(store: SqlStore) -> None:
    import asyncio

    def boom(c: object) -> None:
        raise ValueError("poison")

    results = await asyncio.gather(
        store.write(lambda c: alerts.save(c, [episode("ok1")])),
        store.write(boom),
        store.write(lambda c: alerts.save(c, [episode("ok2")])),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    assert len(results[0]) == 1 and len(results[2]) == 1  # each save returns the ids it inserted
    h = await store.read(lambda c: alerts.histories(c, ["ok1", "ok2"]))
    assert h["ok1"].open is not None and h["ok2"].open is not None


async def test_concurrent_appends_commit_together_in_order(store: SqlStore) -> None:
    import asyncio

    def depth(c: object) -> int:
        return inbox.lag(c)[0]  # type: ignore[arg-type]

    results = await asyncio.gather(
        store.write(inbox.add(T0, "webhook", b"1")),
        store.write(inbox.add(T0, "webhook", b"2")),
        store.write(depth),  # sees the two appends queued before it
        store.write(quarantine.add(T0, "push", [("r", {"x": 1})])),
        store.write(inbox.add(T0, "push", b"3")),
    )
    assert results == [None, None, 2, None, None]
    rows = await store.read(lambda c: inbox.oldest(c, 10))
    assert [r.payload for r in rows] == [b"1", b"2", b"3"]
    assert store.writer.batches <= 2


async def test_postgres_connection_loss_is_unavailable_then_recovers(store: SqlStore) -> None:
    """A real outage: PostgreSQL terminates the writer's connection; one write fails retryably, the next works."""
    from sqlalchemy import text

    from itsmd.errors import StorageUnavailable

    if store.db.is_sqlite:
        pytest.skip("connection loss is a PostgreSQL failure (SQLite's is covered by the lock test)")
    await store.write(inbox.add(T0, "webhook", b"before"))
    with store.db.engine.connect() as admin:
        admin.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))
    with pytest.raises(StorageUnavailable):
        await store.write(inbox.add(T0, "webhook", b"lost"))
    await store.write(inbox.add(T0, "webhook", b"after"))
    rows = await store.read(lambda c: inbox.oldest(c, 10))
    assert [r.payload for r in rows] == [b"before", b"after"]


async def test_retention_prunes_only_old_resolved_episodes_in_batches(store: SqlStore) -> None:
    from itsmd.storage import retention

    old_end = T0 - timedelta(days=100)
    eps = [episode(f"old{i}", Status.RESOLVED, starts_at=old_end - timedelta(hours=1), ends_at=old_end)
           for i in range(5)]
    eps += [episode("recent", Status.RESOLVED), episode("firing-old", starts_at=T0 - timedelta(days=200))]
    await store.write(lambda c: alerts.save(c, eps))
    cutoff = T0 - timedelta(days=90)
    assert await store.write(lambda c: retention.prune_alerts(c, cutoff, 3)) == 3
    assert await store.write(lambda c: retention.prune_alerts(c, cutoff, 3)) == 2
    assert await store.write(lambda c: retention.prune_alerts(c, cutoff, 3)) == 0
    left = await store.read(lambda c: alerts.page(c, alerts.AlertFilter(), 100, None))
    assert {r["fingerprint"] for r in left} == {"recent", "firing-old"}
    await store.write(quarantine.add(old_end, "webhook", [("r", {})]))
    await store.write(quarantine.add(T0, "webhook", [("r", {})]))
    assert await store.write(lambda c: retention.prune_quarantine(c, cutoff, 10)) == 1


def test_sqlite_fast_update_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    """alerts.save binds the hot update itself on SQLite: the stored text must be what the column types store."""
    db = open_database(f"sqlite:///{tmp_path / 'itsmd.db'}")
    migrate(db)
    berlin = timezone(timedelta(hours=1))
    changed = {"annotations": {"z": HOSTILE, "a": "1"}, "generator_url": "http://y/\x00",
               "last_seen_at": datetime(2026, 11, 26, 1, 2, 3, 4, tzinfo=berlin), "occurrences": 7,
               "expires_at": datetime(2026, 11, 26, 5, 0, tzinfo=UTC)}
    columns = ", ".join(changed)
    with db.engine.begin() as c:
        (fast_id, slow_id) = alerts.save(c, [episode("fast"), episode("slow")])
        alerts.save(c, [episode("fast", id_=fast_id, **changed)])  # the driver-level update
        c.execute(update(tables.alerts).where(tables.alerts.c.id == slow_id).values(changed))  # SQLAlchemy's
        fast = c.exec_driver_sql(f"SELECT {columns} FROM alerts WHERE id = ?", (fast_id,)).one()
        slow = c.exec_driver_sql(f"SELECT {columns} FROM alerts WHERE id = ?", (slow_id,)).one()
    db.engine.dispose()
    assert fast == slow


async def test_next_batch_is_bounded_by_count_and_bytes(store: SqlStore) -> None:
    for size in (10, 10, 50, 10, 10):
        await store.write(inbox.add(T0, "webhook", b"x" * size))

    async def batch(limit: int, max_bytes: int) -> tuple[list[int], bool]:
        rows, more = await store.read(lambda c: inbox.next_batch(c, limit, max_bytes))
        return [len(r.payload) for r in rows], more

    assert await batch(10, 1000) == ([10, 10, 50, 10, 10], False)
    assert await batch(2, 1000) == ([10, 10], True)
    assert await batch(10, 25) == ([10, 10], True)  # the 50-byte one would pass the bound
    assert await batch(10, 5) == ([10], True)  # the first is always taken, whatever its size
    assert await batch(5, 1000) == ([10, 10, 50, 10, 10], False)
