"""Helpers of the silence tests: a running in-process daemon (real store on SQLite or PostgreSQL, real pipeline,
fake clock) and the HTTP calls they make."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.config import Config
from itsmd.core.access import Role
from tests import daemon as d

Client = TestClient  # type: ignore[type-arg]
ING, VIEW, OPS = d.bearer(Role.INGEST), d.bearer(Role.VIEWER), d.bearer(Role.OPERATOR)
START = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
RULES = """
rules:
  - name: cpu
    match: ['alertname="HighCpu"']
    group_by: [instance]
  - name: disk-low
    match: ['alertname="DiskSpaceLow"']
    group_by: [cluster]
    min_alerts: 2
    window: 30m
"""


@asynccontextmanager
async def running(tmp_path: Path, engine: str, change: Callable[[Config], Config] = lambda c: c,
                  rules: str = RULES) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    """A started daemon (no socket) on `engine`, its config passed through `change`."""
    database = d.engine_database(engine)
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "main.yaml").write_text(rules)
    clock = FakeClock(START)
    dm = d.daemon(change(d.config(tmp_path, database=database)), clock)
    await dm.start_core()
    try:
        yield dm, clock
    finally:
        await dm.stop()


def with_silences(*declared: Any) -> Callable[[Config], Config]:
    return lambda c: replace(c, silences=tuple(declared))


def alert(name: str, status: str = "firing", starts: str = "2026-11-25T21:50:00Z", ends: str = "2026-11-25T21:59:00Z",
          **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": name, **labels}, "annotations": {}, "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else ends}


async def get(client: Client, path: str, **params: str) -> Any:
    resp = await client.get(path, headers=VIEW, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def create(client: Client, **body: Any) -> dict[str, Any]:
    body = {"created_by": "alice", "comment": "maintenance", **body}
    resp = await client.post("/api/v1/silences", json=body, headers=OPS)
    assert resp.status == 201, await resp.text()
    created: dict[str, Any] = await resp.json()
    return created


async def expire(client: Client, silence_id: str) -> tuple[int, Any]:
    resp = await client.delete(f"/api/v1/silences/{silence_id}", json={}, headers=OPS)
    return resp.status, await resp.json()


async def alerts_named(client: Client, **labels: str) -> list[dict[str, Any]]:
    items = (await get(client, "/api/v1/alerts"))["items"]
    return [a for a in items if all(a["labels"].get(k) == v for k, v in labels.items())]


async def incidents(client: Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await get(client, "/api/v1/incidents"))["items"]
    return items
