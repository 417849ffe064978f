"""Reports through the running daemon: real pipeline, real store (SQLite and PostgreSQL), the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.core.access import Role
from itsmd.core.timestamp import format_time
from tests import daemon as d
from tests.daemon import send

Client = TestClient  # type: ignore[type-arg]
ING, VIEW, OPS = d.bearer(Role.INGEST), d.bearer(Role.VIEWER), d.bearer(Role.OPERATOR)
RULES = """
rules:
  - name: exporter-down
    match: ['alertname="NodeExporterDown"']
    group_by: [instance]
    reopen_within: 0s
"""
T0 = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    clock = FakeClock(T0)
    dm = d.daemon(d.config(tmp_path, database=database), clock)
    await dm.start_core()
    yield dm, clock
    await dm.stop()


@pytest.fixture
async def client(running: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running[0].app)


def alert(instance: str, starts: datetime, ends: datetime | None = None) -> dict[str, Any]:
    return {"status": "resolved" if ends else "firing",
            "labels": {"alertname": "NodeExporterDown", "instance": instance}, "annotations": {},
            "startsAt": format_time(starts), "endsAt": format_time(ends) if ends else "0001-01-01T00:00:00Z"}


async def report(client: Client, kind: str, headers: dict[str, str] = VIEW, **params: str) -> tuple[int, Any]:
    resp = await client.get(f"/api/v1/reports/{kind}", headers=headers, params=params)
    return resp.status, await resp.json()


async def test_summary_of_incidents_made_by_the_pipeline(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    # a:9100 fires (delivered twice), clears 120 s later: restored after 120 s.
    await send(client, dm, alert("a:9100", T0))
    await send(client, dm, alert("a:9100", T0))
    clock.advance(120)
    await send(client, dm, alert("a:9100", T0, clock.now()))
    # b:9100 fires; a person acknowledges it after 30 s and resolves it by hand while it still fires.
    b_start = clock.now()
    await send(client, dm, alert("b:9100", b_start))
    clock.advance(30)
    incidents = (await (await client.get("/api/v1/incidents", headers=VIEW)).json())["items"]
    b = next(i for i in incidents if i["opened_at"] == format_time(b_start))
    for action in ("ack", "resolve"):
        resp = await client.post(f"/api/v1/incidents/{b['id']}/{action}", headers=OPS, json={})
        assert resp.status == 200, await resp.text()
    clock.advance(60)

    params = {"from": format_time(T0 - timedelta(hours=1)) or "", "to": format_time(clock.now()) or ""}
    status, doc = await report(client, "summary", **params, by="week", noisiest="5")
    assert status == 200, doc
    assert doc["incidents"] == 2 and doc["alerts"] == 4 and doc["episodes"] == 2  # a resolve is a delivery too
    assert doc["mttr"] == {"mean": 120.0, "median": 120.0, "p90": 120.0, "n": 1}  # b never restored
    assert doc["unrestored"] == 1
    assert doc["mtta"] == {"mean": 30.0, "median": 30.0, "p90": 30.0, "n": 1}
    assert doc["dedup_ratio"] == 0.5 and doc["noise_reduction"] == 0.0
    assert doc["self_healed_rate"] == 0.5 and doc["auto_remediation_rate"] is None
    assert list(doc["by"]) == ["2026-W48"] and doc["by"]["2026-W48"]["incidents"] == 2
    assert doc["noisiest"] == [{"alertname": "NodeExporterDown", "deliveries": 4, "episodes": 2}]

    status, mttr = await report(client, "mttr", **params, by="service")
    assert status == 200 and mttr["weeks"]["2026-W48"]["mttr"]["n"] == 1
    status, recurring = await report(client, "recurring", **params)
    assert status == 200  # instance is volatile: both incidents have one signature, and no problem policy
    assert recurring["items"] == [{"signature": recurring["items"][0]["signature"], "problem_id": None,
                                   "incidents": 2, "downtime": 150.0,  # 120 s, and b until resolved by hand
                                   "last_seen_at": format_time(b_start), "known_error": False}]


async def test_report_requests_are_checked(client: Client) -> None:
    assert (await report(client, "summary", headers=ING))[0] == 403
    assert (await client.get("/api/v1/reports/summary")).status == 401
    status, doc = await report(client, "summary", by="team")
    assert status == 400 and "by must be one of" in doc["error"]
    status, doc = await report(client, "summary", **{"from": "2026-11-26T00:00:00Z", "to": "2026-11-25T00:00:00Z"})
    assert status == 400 and doc["error"] == "from must be before to"
    assert (await report(client, "summary", to="yesterday"))[0] == 400
    assert (await report(client, "nonsense"))[0] == 404
    assert (await report(client, "summary", noisiest="101"))[0] == 400
    status, doc = await report(client, "summary")  # the last four weeks by default
    assert status == 200 and doc["to"] == format_time(T0) and doc["from"] == format_time(T0 - timedelta(days=28))
