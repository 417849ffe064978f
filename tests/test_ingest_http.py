"""Ingest through HTTP: every status-code path, quarantine, the role matrix, push semantics."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.core.access import Role
from itsmd.core.episode import Episode
from itsmd.pipeline.firing import FiringEpisodes
from tests import daemon as d

WEBHOOK = "/api/v1/webhooks/alertmanager"
PUSH = "/api/v2/alerts"
ALERTS = "/api/v1/alerts"
ING = d.bearer(Role.INGEST)
VIEW = d.bearer(Role.VIEWER)

Client = TestClient  # type: ignore[type-arg]


def body(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "itsmd", "groupKey": "{}:{}", "truncatedAlerts": 0,
            "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am",
            "alerts": list(alerts)}


def alert(name: str = "A", status: str = "firing", **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": name, **labels}, "annotations": {},
            "startsAt": "2026-11-25T21:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-25T21:05:00Z",
            "generatorURL": "http://prom/graph", "fingerprint": "ignored"}


@pytest.fixture
def clock() -> FakeClock:
    from datetime import UTC, datetime

    return FakeClock(datetime(2026, 11, 25, 22, 0, tzinfo=UTC))


@pytest.fixture
async def running(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Daemon]:
    dm = d.daemon(d.config(tmp_path, max_body_bytes=64 * 1024, max_alerts_per_request=50), clock)
    await dm.start_core()
    yield dm
    await dm.stop()


@pytest.fixture
async def client(running: Daemon, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running.app)


async def firing_alerts(client: Client, daemon: Daemon) -> list[dict[str, Any]]:
    await daemon.pipeline.drain()
    resp = await client.get(ALERTS, headers=VIEW, params={"limit": "1000"})
    assert resp.status == 200
    return (await resp.json())["items"]


async def test_accepted_alert_is_stored_and_listed(client: Client, running: Daemon) -> None:
    resp = await client.post(WEBHOOK, json=body(alert(instance="i1")), headers=ING)
    assert resp.status == 200
    assert await resp.json() == {"accepted": 1, "quarantined": 0}
    items = await firing_alerts(client, running)
    assert len(items) == 1
    a = items[0]
    assert a["labels"] == {"alertname": "A", "instance": "i1"} and a["status"] == "firing"
    assert a["starts_at"] == "2026-11-25T21:00:00.000000Z" and a["ends_at"] is None
    assert a["occurrences"] == 1 and a["incident_id"] is None and a["stale"] is False
    assert set(a) >= {"id", "fingerprint", "status", "labels", "annotations", "starts_at", "ends_at",
                      "first_seen_at", "last_seen_at", "occurrences", "incident_id", "symptom", "muted_by",
                      "stale", "flapping"}


@pytest.mark.parametrize(
    ("payload", "ctype", "status"),
    [
        (b"not json", "application/json", 400),
        (b"[]", "application/json", 400),
        (b'{"alerts": 3}', "application/json", 400),
        (b'{"version": "2", "alerts": []}', "application/json", 400),
        (b'{"alerts": []}', "text/plain", 415),
        (b'{"alerts": []}', "application/x-www-form-urlencoded", 415),
    ],
)
async def test_bad_requests(client: Client, payload: bytes, ctype: str, status: int) -> None:
    resp = await client.post(WEBHOOK, data=payload, headers={**ING, "Content-Type": ctype})
    assert resp.status == status
    assert "error" in await resp.json()


async def test_body_over_the_limit_is_413(client: Client) -> None:
    big = body(alert(pad="x" * 70_000))
    resp = await client.post(WEBHOOK, json=big, headers=ING)
    assert resp.status == 413
    assert "error" in await resp.json()


async def test_too_many_alerts_is_413(client: Client) -> None:
    resp = await client.post(WEBHOOK, json=body(*[alert(i=str(i)) for i in range(51)]), headers=ING)
    assert resp.status == 413


async def test_auth_failures(client: Client) -> None:
    resp = await client.post(WEBHOOK, json=body(alert()))
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
    resp = await client.post(WEBHOOK, json=body(alert()), headers={"Authorization": "Bearer wrong-token-xxxxxxxx"})
    assert resp.status == 401
    resp = await client.post(WEBHOOK, json=body(alert()), headers={"Authorization": "Digest abc"})
    assert resp.status == 401
    resp = await client.post(WEBHOOK, json=body(alert()), headers=VIEW)
    assert resp.status == 403


async def test_basic_auth_needs_the_matching_name(client: Client) -> None:
    good = base64.b64encode(f"{Role.INGEST}-client:{d.TOKENS[Role.INGEST]}".encode()).decode()
    wrong_name = base64.b64encode(f"someone:{d.TOKENS[Role.INGEST]}".encode()).decode()
    assert (await client.post(WEBHOOK, json=body(alert()), headers={"Authorization": f"Basic {good}"})).status == 200
    resp = await client.post(WEBHOOK, json=body(alert()), headers={"Authorization": f"Basic {wrong_name}"})
    assert resp.status == 401


ROLE_MATRIX = {
    # role: (webhook, push, list alerts)
    Role.INGEST: (200, 200, 403),
    Role.VIEWER: (403, 403, 200),
    Role.OPERATOR: (403, 403, 200),
    Role.ADMIN: (200, 200, 200),
}


@pytest.mark.parametrize("role", list(ROLE_MATRIX))
async def test_role_matrix(client: Client, role: Role) -> None:
    h = d.bearer(role)
    got = (
        (await client.post(WEBHOOK, json=body(alert()), headers=h)).status,
        (await client.post(PUSH, json=[{"labels": {"alertname": "P"}}], headers=h)).status,
        (await client.get(ALERTS, headers=h)).status,
    )
    assert got == ROLE_MATRIX[role]


async def test_bad_alert_is_quarantined_and_the_rest_accepted(client: Client, running: Daemon) -> None:
    bad = {"status": "firing", "labels": {"alertname": 7}}
    resp = await client.post(WEBHOOK, json=body(alert("Good"), bad), headers=ING)
    assert resp.status == 200 and await resp.json() == {"accepted": 1, "quarantined": 1}
    items = await firing_alerts(client, running)
    assert [a["labels"]["alertname"] for a in items] == ["Good"]
    q = await (await client.get("/api/v1/quarantine", headers=VIEW)).json()
    assert q["items"][0]["alert"] == bad and "value must be a string" in q["items"][0]["reason"]
    metrics = await (await client.get("/metrics")).text()
    assert 'itsmd_alerts_quarantined_total{source="webhook"} 1.0' in metrics


async def test_redelivery_is_idempotent_and_counted(client: Client, running: Daemon) -> None:
    for _ in range(3):
        assert (await client.post(WEBHOOK, json=body(alert()), headers=ING)).status == 200
    items = await firing_alerts(client, running)
    assert len(items) == 1 and items[0]["occurrences"] == 3


async def test_locked_database_is_503_then_recovers(client: Client, running: Daemon) -> None:
    """A real SQLite outage: another connection holds the write lock longer than busy_timeout."""
    import sqlite3

    from itsmd.storage.database import sqlite_file

    path = sqlite_file(running.db)
    assert path is not None
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        resp = await client.post(WEBHOOK, json=body(alert("Blocked")), headers=ING)
        assert resp.status == 503 and "unavailable" in (await resp.json())["error"]
        assert (await client.get("/-/ready")).status == 503
    finally:
        blocker.rollback()
        blocker.close()
    resp = await client.post(WEBHOOK, json=body(alert("After")), headers=ING)
    assert resp.status == 200
    assert [a["labels"]["alertname"] for a in await firing_alerts(client, running)] == ["After"]


async def test_stopped_writer_is_503(client: Client, running: Daemon) -> None:
    await running.store.stop()  # the writer is gone: nothing can be committed
    resp = await client.post(WEBHOOK, json=body(alert()), headers=ING)
    assert resp.status == 503 and "error" in await resp.json()
    assert (await client.get("/-/ready")).status == 503


async def test_push_resolves_past_ends_and_expires_future_ones(
    client: Client, running: Daemon, clock: FakeClock
) -> None:
    now = clock.now()
    resp = await client.post(PUSH, headers=ING, json=[
        {"labels": {"alertname": "Past"}, "startsAt": (now - timedelta(minutes=5)).isoformat(),
         "endsAt": (now - timedelta(minutes=1)).isoformat()},
        {"labels": {"alertname": "Soon"}, "startsAt": now.isoformat(),
         "endsAt": (now + timedelta(seconds=30)).isoformat()},
    ])
    assert resp.status == 200
    items = {a["labels"]["alertname"]: a for a in await firing_alerts(client, running)}
    assert items["Past"]["status"] == "resolved" and items["Soon"]["status"] == "firing"
    clock.advance(31)
    assert await running.pipeline.expire_due() == 1
    items = {a["labels"]["alertname"]: a for a in await firing_alerts(client, running)}
    assert items["Soon"]["status"] == "resolved"


async def test_list_filters_and_cursor(client: Client, running: Daemon) -> None:
    await client.post(WEBHOOK, json=body(*[alert(i=str(i)) for i in range(5)], alert("R", "resolved")), headers=ING)
    await running.pipeline.drain()
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get(ALERTS, headers=VIEW, params=params)).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 6 and len(set(seen)) == 6
    firing = await (await client.get(ALERTS, headers=VIEW, params={"status": "firing"})).json()
    assert len(firing["items"]) == 5
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"cursor": "!!"}, {"status": "x"}, {"unrouted": "maybe"}):
        assert (await client.get(ALERTS, headers=VIEW, params=bad)).status == 400


async def test_unknown_route_is_json_404(client: Client) -> None:
    resp = await client.get("/nope", headers=VIEW)
    assert resp.status == 404 and "error" in await resp.json()


async def test_retention_removes_old_resolved_alerts_and_keeps_firing(
    client: Client, running: Daemon, clock: FakeClock
) -> None:
    await client.post(WEBHOOK, json=body(alert("Gone", "resolved"), alert("Still")), headers=ING)
    await running.pipeline.drain()
    clock.advance(91 * 86400)
    assert await running.prune() == 1
    assert [a["labels"]["alertname"] for a in await firing_alerts(client, running)] == ["Still"]
    metrics = await (await client.get("/metrics")).text()
    assert 'itsmd_retention_pruned_total{table="alerts"} 1.0' in metrics
    assert "itsmd_inbox_lag_seconds 0.0" in metrics and "itsmd_pipeline_stage_duration_seconds_count" in metrics


async def test_incident_filter_takes_display_ids(client: Client) -> None:
    assert (await client.get(ALERTS, headers=VIEW, params={"incident": "INC-7"})).status == 200
    assert (await client.get(ALERTS, headers=VIEW, params={"incident": "7"})).status == 400


async def test_refire_after_expiry_is_a_new_episode(client: Client, running: Daemon, clock: FakeClock) -> None:
    """The pipeline's in-memory firing episodes must forget one that expired (pipeline.firing)."""
    def soon() -> list[dict[str, Any]]:
        now = clock.now()
        return [{"labels": {"alertname": "Soon"}, "startsAt": now.isoformat(),
                 "endsAt": (now + timedelta(seconds=30)).isoformat()}]

    for _ in range(2):  # new, then a refresh: the episode is in the pipeline's memory
        assert (await client.post(PUSH, headers=ING, json=soon())).status == 200
        await running.pipeline.drain()
    clock.advance(31)
    assert await running.pipeline.expire_due() == 1
    assert (await client.post(PUSH, headers=ING, json=soon())).status == 200
    await running.pipeline.drain()
    page = await (await client.get(ALERTS, headers=VIEW)).json()
    episodes = sorted((a["status"], a["occurrences"]) for a in page["items"])
    assert episodes == [("firing", 1), ("resolved", 2)]


async def test_occurrences_exact_when_a_pipeline_step_fails(
    client: Client, running: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step whose transaction fails leaves nothing of itself in the pipeline's memory: the retry counts once."""
    await client.post(WEBHOOK, json=body(alert()), headers=ING)
    await running.pipeline.drain()
    await client.post(WEBHOOK, json=body(alert()), headers=ING)

    record = FiringEpisodes.record

    def record_then_fail(self: FiringEpisodes, episodes: Iterable[Episode]) -> None:
        record(self, episodes)  # the step's last act; then its transaction fails (as a failed commit would)
        raise RuntimeError("injected failure")

    with monkeypatch.context() as m:
        m.setattr(FiringEpisodes, "record", record_then_fail)
        with pytest.raises(RuntimeError):
            await running.pipeline.drain()
    await running.pipeline.drain()
    (only,) = (await (await client.get(ALERTS, headers=VIEW)).json())["items"]
    assert only["occurrences"] == 2
