"""Paging through the running daemon (real pipeline, real store on SQLite and PostgreSQL, real HTTP sinks): hold,
escalate.after, repeat, acknowledge (stops re-pages, sent to PagerDuty), resolve notifications, the hourly budget
with one summary page, retries with backoff, giving up, the timeline only, idempotent ticks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd import paging
from itsmd.app import Daemon, Timers
from itsmd.clock import FakeClock
from itsmd.config.model import Automation, Notifier
from itsmd.config.secret import Secret
from itsmd.core.access import Role
from itsmd.notify.outbox import Retry
from itsmd.storage import pages
from tests import daemon as d
from tests.daemon import send
from tests.notify_sinks import HttpSink

Client = TestClient  # type: ignore[type-arg]
ING, VIEW, OPS = d.bearer(Role.INGEST), d.bearer(Role.VIEWER), d.bearer(Role.OPERATOR)
RULES = """
rules:
  - name: node-down
    match: ['alertname="NodeDown"']
    group_by: [instance]
    hold: 2m
    escalate: {to: [hooks, oncall], repeat: 10m}
  - name: disk-low
    match: ['alertname="DiskLow"']
    group_by: [instance]
    escalate: {after: 1m, to: nobody-listens}
  - name: storm
    match: ['alertname="Storm"']
    group_by: [instance]
  - name: quiet
    match: ['alertname="Quiet"']
    group_by: [instance]
    escalate: {after: 1m, to: []}
"""
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SUMMARY_DELAY = 30.0


@pytest.fixture
async def sink() -> AsyncIterator[HttpSink]:
    s = await HttpSink().start()
    yield s
    await s.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def running(request: pytest.FixtureRequest, tmp_path: Path,
                  sink: HttpSink) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES.replace("to: []", "to: [quiet]"))
    notifiers = (
        Notifier("hooks", "webhook", default=True,
                 settings=MappingProxyType({"url": Secret(sink.url("/hook/s3cret"))})),
        Notifier("oncall", "pagerduty", settings=MappingProxyType({
            "routing_key": Secret("R0UTING"), "api_url": sink.url("/v2/enqueue")})),
        Notifier("nobody-listens", "webhook", settings=MappingProxyType({"url": Secret(sink.url("/broken"))})),
        Notifier("quiet", "webhook", settings=MappingProxyType({"url": Secret(sink.url("/quiet"))})),
    )
    cfg = replace(d.config(tmp_path, database=database), notifiers=notifiers,
                  automation=Automation(max_pages_per_hour=3), external_url="https://itsmd.example.org/")
    clock = FakeClock(START)
    timers = Timers(expiry_tick=0.2, pipeline_poll=0.2, shutdown_grace=2.0, deadline_tick=3600.0,
                    pages=Retry(base=10.0, cap=40.0, attempts=3, timeout=5.0, poll=3600.0),
                    page_summary_delay=SUMMARY_DELAY)
    dm = Daemon(cfg, clock=clock, timers=timers)
    dm.test_sink = sink  # type: ignore[attr-defined]
    await dm.start_core()
    yield dm, clock
    await dm.stop()


@pytest.fixture
async def client(running: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running[0].app)


def alert(name: str, instance: str, status: str = "firing") -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": name, "instance": instance}, "annotations": {},
            "startsAt": "2026-11-28T11:59:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-28T12:30:00Z"}


async def step(dm: Daemon, clock: FakeClock, seconds: float = 0.0) -> int:
    """Move the clock, run the paging tick and a delivery round; the number of requests the sink got meanwhile.
    (The tick also wakes the daemon's own sender; a flush waits for one in progress, so after ours every due page
    was attempted.)"""
    sink: HttpSink = dm.test_sink  # type: ignore[attr-defined]
    before = len(sink.received)
    clock.advance(seconds)
    await dm.page()
    await dm.outbox.flush()
    return len(sink.received) - before


async def timeline(client: Client, incident: str) -> list[str]:
    resp = await client.get(f"/api/v1/incidents/{incident}", headers=VIEW)
    return [e["action"] for e in (await resp.json())["timeline"]]


async def outbox(dm: Daemon) -> list[dict[str, Any]]:
    return await dm.store.read(lambda conn: [pages.get(conn, i) for i in range(1, 200) if pages.get(conn, i)])


async def test_hold_then_page_repeat_ack_and_resolve(client: Client, running: tuple[Daemon, FakeClock],
                                                     sink: HttpSink) -> None:
    dm, clock = running
    await send(client, dm, alert("NodeDown", "db1"))
    assert await step(dm, clock, 60) == 0  # hold (2m) not passed
    assert sink.received == []
    assert await step(dm, clock, 60) == 2  # hold passed: webhook and PagerDuty
    hook, = sink.bodies("/hook/s3cret")
    assert hook["event"] == "escalate" and hook["incident"]["id"] == "INC-1"
    assert hook["alerts"][0]["labels"]["instance"] == "db1" and hook["runs"] == []
    assert "120s after it opened" in hook["reason"]
    assert hook["link"] == "https://itsmd.example.org/api/v1/incidents/INC-1"
    trigger, = sink.bodies("/v2/enqueue")
    assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == "itsmd/INC-1"
    assert await step(dm, clock, 300) == 0  # repeat is every 10m
    assert await step(dm, clock, 300) == 2  # repeat
    assert "repeat 1" in sink.bodies("/hook/s3cret")[-1]["reason"]
    assert sink.bodies("/v2/enqueue")[-1]["dedup_key"] == "itsmd/INC-1"

    resp = await client.post("/api/v1/incidents/INC-1/ack", json={}, headers=OPS)
    assert resp.status == 200
    assert await step(dm, clock) == 1  # the acknowledgement goes to PagerDuty only
    assert sink.bodies("/v2/enqueue")[-1] == {"routing_key": "R0UTING", "event_action": "acknowledge",
                                              "dedup_key": "itsmd/INC-1"}
    assert len(sink.bodies("/hook/s3cret")) == 2
    for _ in range(3):
        assert await step(dm, clock, 600) == 0  # acknowledged: no more re-pages

    resp = await client.post("/api/v1/incidents/INC-1/resolve", json={}, headers=OPS)
    assert resp.status == 200
    assert await step(dm, clock) == 2
    assert sink.bodies("/hook/s3cret")[-1]["event"] == "resolve"
    assert sink.bodies("/hook/s3cret")[-1]["incident"]["state"] == "resolved"
    assert sink.bodies("/v2/enqueue")[-1]["event_action"] == "resolve"
    assert await step(dm, clock, 3600) == 0
    actions = await timeline(client, "INC-1")
    assert actions.count("paged") == 2
    assert "acknowledgement_notified" in actions and "resolution_notified" in actions


async def test_a_self_healed_incident_sends_its_resolution_and_a_reopening_pages_again(
        client: Client, running: tuple[Daemon, FakeClock], sink: HttpSink) -> None:
    dm, clock = running
    await send(client, dm, alert("Storm", "a"))  # no escalate: hold 0, default notifiers (hooks)
    assert await step(dm, clock) == 1
    await send(client, dm, alert("Storm", "a", "resolved"))
    assert await step(dm, clock) == 1
    assert [b["event"] for b in sink.bodies("/hook/s3cret")] == ["escalate", "resolve"]
    resp = await client.post("/api/v1/incidents/INC-1/reopen", json={}, headers=OPS)
    assert resp.status == 200
    assert await step(dm, clock) == 1  # a new cycle, its own page
    assert [b["event"] for b in sink.bodies("/hook/s3cret")] == ["escalate", "resolve", "escalate"]


async def test_the_hourly_budget_sends_one_summary_for_the_rest(client: Client, running: tuple[Daemon, FakeClock],
                                                                sink: HttpSink) -> None:
    dm, clock = running
    await send(client, dm, *[alert("Storm", f"i{n}") for n in range(8)])
    assert await step(dm, clock) == 3  # max_pages_per_hour: 3
    assert await step(dm, clock, SUMMARY_DELAY) == 1  # one summary for the other five
    summary = sink.bodies("/hook/s3cret")[-1]
    assert summary["event"] == "escalate" and summary["incident"] is None
    assert summary["summary"]["held_back"] == 5
    assert sorted(summary["summary"]["incidents"]) == sorted(f"INC-{n}" for n in range(4, 9))
    await send(client, dm, *[alert("Storm", f"j{n}") for n in range(3)])
    assert await step(dm, clock, 60) == 0  # still within the hour: held back, no second summary
    assert "page_suppressed" in await timeline(client, "INC-9")
    assert await step(dm, clock, 3600) == 0  # held-back pages are not sent late
    await send(client, dm, alert("Storm", "later"))
    assert await step(dm, clock) == 1  # a new hour, a new budget
    assert len(sink.bodies("/hook/s3cret")) == 5


async def test_retries_with_backoff_then_delivers(client: Client, running: tuple[Daemon, FakeClock],
                                                  sink: HttpSink) -> None:
    dm, clock = running
    sink.statuses = [503, 500]
    await send(client, dm, alert("Storm", "a"))
    assert await step(dm, clock) == 1  # 503
    assert await step(dm, clock, 9) == 0  # backoff 10s not over
    assert await step(dm, clock, 1) == 1  # 500
    assert await step(dm, clock, 19) == 0  # backoff 20s not over
    assert await step(dm, clock, 1) == 1
    row, = [r for r in await outbox(dm) if r["event"] == "escalate"]
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 3, None)


async def test_a_notifier_that_keeps_failing_is_given_up_on_the_timeline(
        client: Client, running: tuple[Daemon, FakeClock], sink: HttpSink) -> None:
    dm, clock = running
    sink.statuses = [500, 500, 500]  # retry.attempts is 3
    await send(client, dm, alert("DiskLow", "a"))
    assert await step(dm, clock, 60) == 1
    assert await step(dm, clock, 10) == 1
    assert await step(dm, clock, 20) == 1
    assert await step(dm, clock, 3600) == 0
    row, = await outbox(dm)
    assert (row["state"], row["attempts"], row["last_error"]) == ("failed", 3, "notifier nobody-listens: HTTP 500")
    assert "page_failed" in await timeline(client, "INC-1")
    sink.statuses = [404]  # refused for good: no retry
    await send(client, dm, alert("DiskLow", "b"))
    assert await step(dm, clock, 60) == 1
    assert await step(dm, clock, 3600) == 0
    assert [r["state"] for r in await outbox(dm)] == ["failed", "failed"]
    assert len(sink.received) == 4


async def test_ticks_are_idempotent(client: Client, running: tuple[Daemon, FakeClock], sink: HttpSink) -> None:
    dm, clock = running
    await send(client, dm, alert("NodeDown", "db1"))
    clock.advance(120)
    for _ in range(3):
        await dm.page()
    assert len(await outbox(dm)) == 2  # one page, two notifiers
    await dm.outbox.flush()
    await dm.outbox.flush()
    assert len(sink.received) == 2



async def test_without_notifiers_a_page_goes_to_the_timeline_only(
        client: Client, running: tuple[Daemon, FakeClock], sink: HttpSink) -> None:
    dm, clock = running
    await send(client, dm, alert("Storm", "a"))
    settings = paging.Settings(rules=dm.pipeline.routing.rules, notifiers=(), max_pages_per_hour=3)
    done = await dm.store.write(partial(paging.review, now=clock.now(), settings=settings))
    assert (done.paged, done.timeline_only) == (0, 1)
    assert await outbox(dm) == []
    resp = await client.get("/api/v1/incidents/INC-1", headers=VIEW)
    paged, = [e for e in (await resp.json())["timeline"] if e["action"] == "paged"]
    assert "timeline only" in paged["reason"] and paged["data"]["notifiers"] == []
