"""Watching the watcher (issue 9): the writer-error counter and the open-circuit-breaker gauge move, read through
HTTP /metrics of the running daemon (real store on SQLite and PostgreSQL, real runner and step process)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, insert

from itsmd.app import Daemon, Timers
from itsmd.clock import FakeClock
from itsmd.config.model import Config
from itsmd.core.access import Role
from itsmd.errors import StorageError
from itsmd.storage.database import sqlite_file
from itsmd.storage.tables import breakers
from tests import daemon as d

Client = TestClient  # type: ignore[type-arg]
ING, VIEW, ADMIN = (d.bearer(r) for r in (Role.INGEST, Role.VIEWER, Role.ADMIN))
WEBHOOK = "/api/v1/webhooks/alertmanager"

RULES = """
rules:
  - name: broken
    match: ['alertname="Broken"']
    group_by: [instance]
    playbooks: [always-fails]
"""
PLAYBOOK = f"""
name: always-fails
circuit_breaker: {{failures: 1, within: 1h, reset_after: 1h}}
steps:
  - name: act
    exec: ["{sys.executable}", "-c", "import sys; sys.exit(3)"]
    timeout: 20s
"""
TIMERS = Timers(expiry_tick=0.2, pipeline_poll=0.2, shutdown_grace=2.0, run_poll=0.2, wait_poll=0.05, run_lease=5.0)


def firing(name: str, **labels: str) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": name, **labels}, "annotations": {},
            "startsAt": "2026-11-25T21:50:00Z", "endsAt": "0001-01-01T00:00:00Z"}


async def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of GET /metrics by (name, sorted labels)."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(await resp.text()) for s in family.samples}


def writer_errors(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], error: str) -> float:
    return samples[("itsmd_writer_errors_total", (("error", error),))]


def breaker_open(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], playbook: str) -> float | None:
    return samples.get(("itsmd_circuit_breaker_open", (("playbook", playbook),)))


@pytest.fixture(params=["sqlite", "postgres"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "always-fails.yaml").write_text(PLAYBOOK)
    return d.config(tmp_path, database=database)


@pytest.fixture
async def running(config: Config) -> AsyncIterator[Daemon]:
    dm = Daemon(config, clock=FakeClock(datetime(2026, 11, 25, 22, 0, tzinfo=UTC)), timers=TIMERS)
    await dm.start_core()
    yield dm
    await dm.stop()


async def test_a_database_refusing_a_write_counts_as_failed(
        running: Daemon, aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    client = await aiohttp_client(running.app)
    before = await scrape(client)
    assert {e: writer_errors(before, e) for e in ("unavailable", "failed", "stopped")} == {
        "unavailable": 0, "failed": 0, "stopped": 0}
    row = {"playbook": "x", "state": "closed", "failures": [], "opened_at": None,
           "updated_at": datetime(2026, 11, 25, 22, 0, tzinfo=UTC)}

    def twice(conn: Connection) -> None:
        conn.execute(insert(breakers), [row, row])  # the same primary key twice: an integrity error

    with pytest.raises(StorageError, match="IntegrityError"):
        await running.store.write(twice)
    after = await scrape(client)
    assert writer_errors(after, "failed") == 1 and writer_errors(after, "unavailable") == 0


async def test_a_locked_database_counts_as_unavailable(
        tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    """A real SQLite outage: another connection holds the write lock longer than busy_timeout."""
    dm = d.daemon(d.config(tmp_path))
    await dm.start_core()
    try:
        client = await aiohttp_client(dm.app)
        path = sqlite_file(dm.db)
        assert path is not None
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            resp = await client.post(WEBHOOK, json={"alerts": [firing("Blocked")]}, headers=ING)
            assert resp.status == 503
        finally:
            blocker.rollback()
            blocker.close()
        locked = writer_errors(await scrape(client), "unavailable")
        assert locked >= 1  # the delivery (the pipeline or the expiry may have failed to write meanwhile too)
        resp = await client.post(WEBHOOK, json={"alerts": [firing("After")]}, headers=ING)
        assert resp.status == 200
        assert writer_errors(await scrape(client), "unavailable") == locked  # a commit that works counts nothing
    finally:
        await dm.stop()


async def test_a_stopped_writer_counts_as_stopped(running: Daemon,
                                                  aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    client = await aiohttp_client(running.app)
    await running.store.writer.stop()  # the writer only: /metrics still reads through the readers
    before = writer_errors(await scrape(client), "stopped")  # background writes (claims, ticks) may count too
    resp = await client.post(WEBHOOK, json={"alerts": [firing("Nowhere")]}, headers=ING)
    assert resp.status == 503
    assert writer_errors(await scrape(client), "stopped") >= before + 1


async def until_failed(client: Client, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.get("/api/v1/runs", headers=VIEW)
        items = (await resp.json())["items"]
        if items and items[0]["state"] == "failed":
            return
        assert time.monotonic() < deadline, f"the run never failed: {items}"
        await asyncio.sleep(0.05)


async def test_the_open_breaker_gauge_follows_the_persisted_breaker_across_a_restart(
        config: Config, aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    clock = FakeClock(datetime(2026, 11, 25, 22, 0, tzinfo=UTC))
    dm = Daemon(config, clock=clock, timers=TIMERS)
    await dm.start_core()
    try:
        client = await aiohttp_client(dm.app)
        assert breaker_open(await scrape(client), "always-fails") is None  # no breaker yet: no series
        resp = await client.post(WEBHOOK, json={"alerts": [firing("Broken", instance="web-1")]}, headers=ING)
        assert resp.status == 200
        await dm.pipeline.drain()
        await until_failed(client)  # one failure within the hour: the breaker opens
        assert breaker_open(await scrape(client), "always-fails") == 1
    finally:
        await dm.stop()

    again = Daemon(config, clock=clock, timers=TIMERS)  # a restart: nothing in memory, the database remembers
    await again.start_core()
    try:
        client = await aiohttp_client(again.app)
        assert breaker_open(await scrape(client), "always-fails") == 1
        resp = await client.post("/api/v1/automation/breakers/always-fails/reset", json={}, headers=ADMIN)
        assert resp.status == 200
        assert breaker_open(await scrape(client), "always-fails") == 0
    finally:
        await again.stop()
