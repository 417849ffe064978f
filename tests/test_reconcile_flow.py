"""Reconciliation through the running daemon (real pipeline, real store on SQLite and PostgreSQL) against a
recording stand-in for Alertmanager's `GET /api/v2/alerts` (the real one is in test_reconcile_e2e.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.config.model import AlertmanagerTarget, Ingest
from itsmd.config.secret import Secret
from itsmd.core.access import Role
from itsmd.core.fingerprint import fingerprint
from tests import daemon as d

Client = TestClient  # type: ignore[type-arg]
ING, VIEW = d.bearer(Role.INGEST), d.bearer(Role.VIEWER)
RULES = "rules:\n  - name: critical\n    match: ['severity=\"critical\"']\n    group_by: [alertname]\n"
API_TOKEN = "alertmanager-api-token-0123"
WAIT = 15.0


class FakeAlertmanager:
    """Answers `GET /api/v2/alerts` with `alerts` (or `status`), recording every request."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.status = 200
        self.requests: list[tuple[dict[str, str], str | None]] = []  # (query, Authorization header)
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.query), request.headers.get("Authorization")))
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        return web.json_response(self.alerts)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/v2/alerts", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("/"))


def am_alert(name: str, state: str = "active", **labels: str) -> dict[str, Any]:
    """An alert as `GET /api/v2/alerts` lists it (with a fingerprint field itsmd must not trust)."""
    return {"labels": {"alertname": name, "severity": "critical", **labels}, "annotations": {"summary": name},
            "startsAt": "2026-11-25T21:50:00.000Z", "endsAt": "2026-11-25T22:55:00.000Z",
            "updatedAt": "2026-11-25T21:50:00.000Z", "generatorURL": "http://prom/graph",
            "fingerprint": "0000000000000000", "receivers": [{"name": "itsmd"}],
            "status": {"state": state, "silencedBy": [], "inhibitedBy": []}}


def webhook(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    items = [{"status": "firing", "labels": a["labels"], "annotations": {}, "startsAt": a["startsAt"],
              "endsAt": "0001-01-01T00:00:00Z"} for a in alerts]
    return {"version": "4", "truncatedAlerts": truncated, "alerts": items}


class World:
    """The stand-in Alertmanagers and a way to start (and restart) itsmd on one database."""

    def __init__(self, tmp: Path, database: str | None, make_client: Callable[..., Awaitable[Client]]) -> None:
        self.tmp, self.database, self.make_client = tmp, database, make_client
        self.clock = FakeClock(datetime(2026, 11, 25, 22, 0, tzinfo=UTC))
        self.daemons: list[Daemon] = []
        (tmp / "rules").mkdir()
        (tmp / "rules" / "main.yaml").write_text(RULES)

    async def start(self, urls: list[str], interval: float = 0.0) -> tuple[Daemon, Client]:
        cfg = d.config(self.tmp, database=self.database)
        targets = tuple(AlertmanagerTarget(url=u, token=Secret(API_TOKEN)) for u in urls)
        cfg = replace(cfg, alertmanagers=targets, ingest=replace(Ingest(), reconcile_interval=interval))
        dm = d.daemon(cfg, self.clock)
        await dm.start_core()
        self.daemons.append(dm)
        return dm, await self.make_client(dm.app)

    async def stop(self, dm: Daemon) -> None:
        self.daemons.remove(dm)
        await dm.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path,
                aiohttp_client: Callable[..., Awaitable[Client]]) -> AsyncIterator[World]:
    database = d.engine_database(request.param)
    w = World(tmp_path, database, aiohttp_client)
    yield w
    for dm in list(w.daemons):
        await dm.stop()


@pytest.fixture
async def am() -> AsyncIterator[FakeAlertmanager]:
    fake = FakeAlertmanager()
    await fake.start()
    yield fake
    assert fake.server is not None
    await fake.server.close()


def rounds(dm: Daemon, result: str) -> float:
    return dm.metrics.registry.get_sample_value("itsmd_reconciliations_total", {"result": result}) or 0.0


async def until(dm: Daemon, result: str, n: int) -> None:
    """Wait for the n-th reconciliation with `result`, then let the pipeline take what it added."""
    deadline = time.monotonic() + WAIT
    while rounds(dm, result) < n:
        assert time.monotonic() < deadline, f"no {n} reconciliations with result {result}"
        await asyncio.sleep(0.02)
    await dm.pipeline.drain()


async def post(client: Client, dm: Daemon, body: dict[str, Any]) -> None:
    resp = await client.post("/api/v1/webhooks/alertmanager", json=body, headers=ING)
    assert resp.status == 200, await resp.text()
    await dm.pipeline.drain()


async def get(client: Client, path: str, **params: str) -> Any:
    resp = await client.get(path, headers=VIEW, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def firing(client: Client) -> dict[str, dict[str, Any]]:
    items = (await get(client, "/api/v1/alerts", status="firing", limit="1000"))["items"]
    return {a["labels"]["instance"]: a for a in items}


async def test_a_truncated_webhook_adds_what_alertmanager_has(world: World, am: FakeAlertmanager) -> None:
    assert am.server is not None
    dm, client = await world.start([str(am.server.make_url("/"))])
    await until(dm, "ok", 1)  # at start, after the inbox is processed: nothing there, nothing here
    there = [am_alert("DiskFull", instance=f"n{i}") for i in range(5)]
    am.alerts = [*there, am_alert("DiskFull", "suppressed", instance="silenced")]
    await post(client, dm, webhook(*there[:2], truncated=4))
    await until(dm, "ok", 2)
    got = await firing(client)
    assert sorted(got) == [f"n{i}" for i in range(5)]  # the silenced one there is not added
    assert all(a["fingerprint"] == fingerprint(a["labels"]) for a in got.values())
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    assert inc["alert_count"] == 5 and inc["state"] == "open"
    query, authorization = am.requests[-1]
    assert query == {"active": "true", "silenced": "true", "inhibited": "true", "unprocessed": "true"}
    assert authorization == f"Bearer {API_TOKEN}"
    assert dm.metrics.registry.get_sample_value("itsmd_reconciled_alerts_total", {"action": "added"}) >= 3

    seen = len(am.requests)
    await post(client, dm, webhook(there[0]))  # not truncated: no reconciliation
    await asyncio.sleep(0.3)
    assert len(am.requests) == seen and rounds(dm, "ok") == 2


async def test_absent_at_start_is_flagged_stale_never_resolved_and_revived_when_back(
    world: World, am: FakeAlertmanager
) -> None:
    assert am.server is not None
    url = str(am.server.make_url("/"))
    am.status = 503
    dm, client = await world.start([url])
    await until(dm, "failed", 1)
    lost = am_alert("HighCpu", instance="a")
    await post(client, dm, webhook(lost))
    world.clock.advance(60)
    await post(client, dm, webhook(truncated=3))  # reconciliation asked for; the read fails again
    await until(dm, "failed", 2)
    assert (await firing(client))["a"]["stale"] is False  # a failed read flags nothing
    await world.stop(dm)

    am.status, am.alerts = 200, []  # restarted; Alertmanager no longer has it
    dm, client = await world.start([url])
    await until(dm, "ok", 1)
    alert = (await firing(client))["a"]
    assert alert["status"] == "firing" and alert["stale"] is True
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    assert detail["state"] == "open" and detail["signal_lost"] is True
    assert detail["timeline"][-1]["action"] == "signal_lost"
    assert "absent from every Alertmanager" in detail["timeline"][-1]["reason"]

    am.alerts = [am_alert("HighCpu", "suppressed", instance="a")]  # back there (silenced there: still firing)
    world.clock.advance(60)
    await post(client, dm, webhook(truncated=1))
    await until(dm, "ok", 2)
    assert (await firing(client))["a"]["stale"] is False
    await dm.run_deadlines()
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    assert detail["signal_lost"] is False and detail["timeline"][-1]["action"] == "signal_back"
    assert dm.metrics.registry.get_sample_value("itsmd_reconciled_alerts_total", {"action": "revived"}) == 1


async def test_one_unreadable_alertmanager_means_adding_without_flagging(
    world: World, am: FakeAlertmanager
) -> None:
    assert am.server is not None
    down = FakeAlertmanager()
    down_url = await down.start()
    down.status = 500
    try:
        dm, client = await world.start([str(am.server.make_url("/")), down_url])
        await until(dm, "partial", 1)
        await post(client, dm, webhook(am_alert("HighCpu", instance="here-only")))
        world.clock.advance(60)
        am.alerts = [am_alert("HighCpu", instance="there-only")]
        await post(client, dm, webhook(truncated=1))
        await until(dm, "partial", 2)
        got = await firing(client)
        assert sorted(got) == ["here-only", "there-only"] and got["here-only"]["stale"] is False
        assert dm.metrics.registry.get_sample_value("itsmd_alertmanager_reads_total", {"result": "error"}) == 2
    finally:
        assert down.server is not None
        await down.server.close()


async def test_requests_are_debounced_one_running_one_queued(world: World, am: FakeAlertmanager) -> None:
    assert am.server is not None
    dm, client = await world.start([str(am.server.make_url("/"))], interval=1.0)
    await until(dm, "ok", 1)
    for _ in range(5):
        await post(client, dm, webhook(truncated=2))
    await until(dm, "ok", 2)
    await asyncio.sleep(1.5)  # longer than the interval: a third round would have started
    assert rounds(dm, "ok") == 2 and len(am.requests) == 2
