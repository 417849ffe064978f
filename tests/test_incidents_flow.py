"""Alerts become incidents through the running daemon (real pipeline, real store on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd import incident_actions
from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.core.access import Role
from tests import daemon as d
from tests.daemon import send

Client = TestClient  # type: ignore[type-arg]
ING, VIEW = d.bearer(Role.INGEST), d.bearer(Role.VIEWER)
RULES = """
rules:
  - name: disk-low
    match: ['alertname="DiskSpaceLow"']
    group_by: [cluster]
    min_alerts: 2
    window: 5m
    reopen_within: 30m
    title: "{{ labels.cluster }}: disk low on {{ alert_count }} nodes"
    urgency: "{{ 'high' if labels.severity == 'critical' else 'medium' }}"
  - name: anything-critical
    match: ['severity="critical"']
    group_by: [alertname]
"""


@pytest.fixture(params=["sqlite", "postgres"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    clock = FakeClock(datetime(2026, 11, 25, 22, 0, tzinfo=UTC))
    dm = d.daemon(d.config(tmp_path, database=database), clock)
    await dm.start_core()
    yield dm, clock
    await dm.stop()


@pytest.fixture
async def client(running: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running[0].app)


def alert(name: str, status: str = "firing", starts: str = "2026-11-25T21:50:00Z", **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": name, **labels}, "annotations": {}, "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-25T21:59:00Z"}


async def get(client: Client, path: str, **params: str) -> Any:
    resp = await client.get(path, headers=VIEW, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_min_alerts_open_resolve_and_reopen(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    node1 = alert("DiskSpaceLow", cluster="eu", instance="n1", severity="critical", starts="2026-11-25T21:40:00Z")
    await send(client, dm, node1)
    assert (await get(client, "/api/v1/incidents"))["items"] == []
    [waiting] = (await get(client, "/api/v1/alerts", unrouted="true"))["items"]
    assert waiting["incident_id"] is None

    clock.advance(60)
    await send(client, dm, alert("DiskSpaceLow", cluster="eu", instance="n2", severity="critical"))
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    assert inc["state"] == "open" and inc["rule"] == "disk-low" and inc["alert_count"] == 2
    assert inc["title"] == "eu: disk low on 2 nodes" and inc["priority"] == "P2"  # impact medium x urgency high
    assert inc["detected_at"] == "2026-11-25T21:40:00.000000Z" and inc["opened_at"] == "2026-11-25T22:01:00.000000Z"
    assert inc["labels"] == {"alertname": "DiskSpaceLow", "cluster": "eu", "severity": "critical"}

    clock.advance(60)
    resolved = [alert("DiskSpaceLow", "resolved", cluster="eu", instance=n, severity="critical",
                      starts="2026-11-25T21:40:00Z") for n in ("n1", "n2")]
    await send(client, dm, *resolved)
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    assert detail["state"] == "resolved" and detail["resolution"] == "self_healed"
    assert detail["firing_count"] == 0 and detail["restored_at"] == detail["resolved_at"]
    assert [e["action"] for e in detail["timeline"]] == [
        "opened", "alert_joined", "alert_resolved", "alert_resolved", "resolved"]
    assert len(detail["alerts"]) == 2

    clock.advance(600)  # within reopen_within: the same key reopens the incident
    await send(client, dm, alert("DiskSpaceLow", cluster="eu", instance="n1", severity="critical",
                                 starts="2026-11-25T22:10:00Z"))
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    assert detail["state"] == "open" and detail["reopen_count"] == 1 and detail["resolution"] is None
    assert detail["title"] == "eu: disk low on 3 nodes"  # re-rendered when the alerts changed
    assert detail["timeline"][-2]["action"] == "reopened"


async def test_first_matching_rule_wins_and_unrouted_alerts_are_kept(
    client: Client, running: tuple[Daemon, FakeClock]
) -> None:
    dm, _ = running
    await send(client, dm, alert("HighCpu", severity="critical", instance="a"),
               alert("Whatever", severity="info"))
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    assert inc["rule"] == "anything-critical" and inc["key"] == '{alertname="HighCpu"}'
    unrouted = (await get(client, "/api/v1/alerts", unrouted="true"))["items"]
    assert [a["labels"]["alertname"] for a in unrouted] == ["Whatever"]


async def test_hostile_label_values_stay_data_in_titles(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, _ = running
    evil = "{{ 7*7 }}\x00<script>"
    await send(client, dm, *[alert("DiskSpaceLow", cluster=evil, instance=f"n{i}") for i in range(2)])
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    assert inc["title"] == f"{evil}: disk low on 2 nodes"


async def test_unknown_incident_is_404(client: Client) -> None:
    for path in ("/api/v1/incidents/INC-999", "/api/v1/incidents/nope"):
        assert (await client.get(path, headers=VIEW)).status == 404


OPS = d.bearer(Role.OPERATOR)


async def act(client: Client, inc: str, action: str, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = await client.post(f"/api/v1/incidents/{inc}/{action}", json=body or {}, headers=headers or OPS)
    return resp.status, await resp.json()


async def test_lifecycle_actions_and_409s(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    await send(client, dm, alert("HighCpu", severity="critical", instance="a"))
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    iid = inc["id"]
    await send(client, dm, alert("HighCpu", severity="critical", instance="b"))  # joins: templates re-render
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    assert inc["alert_count"] == 2 and inc["labels"] == {"alertname": "HighCpu", "severity": "critical"}
    assert (await act(client, iid, "ack", headers=VIEW))[0] == 403
    resp = await client.post(f"/api/v1/incidents/{iid}/ack", data=b"{}", headers=OPS)
    assert resp.status == 415
    status, body = await act(client, iid, "ack", {"comment": "looking"})
    assert status == 200 and body["state"] == "acknowledged" and body["acknowledged_at"] is not None
    assert (await act(client, iid, "ack"))[0] == 409
    assert (await act(client, iid, "close"))[0] == 409
    assert (await act(client, iid, "assign", {"assignee": "alice"}))[1]["assignee"] == "alice"
    assert (await act(client, iid, "notes", {"text": "rebooted <b>it</b>"}))[0] == 200
    assert (await act(client, iid, "notes", {}))[0] == 400
    assert (await act(client, iid, "resolve", {"resolution": "bogus"}))[0] == 400
    assert (await act(client, iid, "resolve", {"resolution": ["manual"]}))[0] == 400
    status, body = await act(client, iid, "resolve")
    assert status == 200 and body["state"] == "resolved" and body["resolution"] == "manual"
    assert (await act(client, iid, "reopen"))[1]["state"] == "open"
    assert (await act(client, iid, "resolve"))[0] == 200
    clock.advance(86400 + 1)  # incidents.close_after
    assert await dm.run_deadlines() >= 1
    detail = await get(client, f"/api/v1/incidents/{iid}")
    assert detail["state"] == "closed" and detail["closed_at"] is not None
    actions = [e["action"] for e in detail["timeline"]]
    assert actions == ["opened", "alert_joined", "alert_joined", "ack", "assigned", "note", "resolve", "reopen",
                       "resolve", "closed"]
    assert detail["timeline"][5]["reason"] == "rebooted <b>it</b>"
    assert detail["timeline"][3]["actor"] == "operator-client"
    assert (await act(client, iid, "reopen"))[0] == 409  # a closed incident never reopens
    assert (await act(client, "INC-999", "ack"))[0] == 404
    assert (await act(client, iid, "explode"))[0] == 404


async def test_after_close_a_recurrence_opens_a_new_incident(
    client: Client, running: tuple[Daemon, FakeClock]
) -> None:
    dm, clock = running
    await send(client, dm, alert("HighCpu", severity="critical", instance="a"))
    [first] = (await get(client, "/api/v1/incidents"))["items"]
    await send(client, dm, alert("HighCpu", "resolved", severity="critical", instance="a"))
    clock.advance(86400 + 1)
    await dm.run_deadlines()
    await send(client, dm, alert("HighCpu", severity="critical", instance="a", starts="2026-11-26T22:00:00Z"))
    newest, old = (await get(client, "/api/v1/incidents"))["items"]
    assert old["id"] == first["id"] and old["state"] == "closed"
    assert newest["state"] == "open" and newest["previous_incident_id"] == first["id"]


async def test_silent_alert_is_flagged_stale_and_signal_lost_never_resolved(
    client: Client, running: tuple[Daemon, FakeClock]
) -> None:
    dm, clock = running
    await send(client, dm, alert("HighCpu", severity="critical", instance="a"))
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    clock.advance(9 * 3600 + 1)  # incidents.stale_after
    await dm.run_deadlines()
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    assert detail["state"] == "open" and detail["signal_lost"] is True and detail["alerts"][0]["stale"] is True
    await send(client, dm, alert("HighCpu", severity="critical", instance="a"))  # heard from again
    await dm.run_deadlines()
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    assert detail["signal_lost"] is False and detail["alerts"][0]["stale"] is False
    assert [e["action"] for e in detail["timeline"]][-2:] == ["signal_lost", "signal_back"]


async def test_alert_refreshed_between_the_stale_read_and_the_write_is_not_flagged(
    client: Client, running: tuple[Daemon, FakeClock]
) -> None:
    """The walk for stale alerts is read outside the writer; a repeat that lands before the write wins."""
    dm, clock = running
    stale_after = dm.config.incidents.stale_after
    await send(client, dm, alert("HighCpu", severity="critical", instance="a"))
    await send(client, dm, alert("HighCpu", severity="critical", instance="b"))
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    clock.advance(stale_after + 1)
    candidates = await dm.store.read(lambda c: incident_actions.stale_candidates(c, clock.now(), stale_after))
    assert len(candidates) == 2
    await send(client, dm, alert("HighCpu", severity="critical", instance="a"))  # heard from again
    flagged = await dm.store.write(lambda c: incident_actions.signal_check(c, clock.now(), stale_after, candidates))
    assert flagged == 1
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    stale = {a["labels"]["instance"]: a["stale"] for a in detail["alerts"]}
    assert stale == {"a": False, "b": True} and detail["signal_lost"] is True


async def test_flapping_marks_the_incident(client: Client, running: tuple[Daemon, FakeClock], tmp_path: Path) -> None:
    dm, clock = running
    (tmp_path / "rules" / "main.yaml").write_text(RULES.replace(
        "  - name: anything-critical", "  - name: flappy\n    match: ['alertname=\"Flappy\"']\n    group_by: []\n"
        "    resolve: manual\n    flapping: {changes: 4, within: 30m}\n  - name: anything-critical"))
    from itsmd.config.routing import load_routing

    dm.pipeline.routing = load_routing(dm.config)
    for i in range(3):
        start = f"2026-11-25T22:{10 + 2 * i:02d}:00Z"
        await send(client, dm, alert("Flappy", starts=start))
        clock.advance(30)
        resolved = alert("Flappy", "resolved", starts=start)
        resolved["endsAt"] = f"2026-11-25T22:{11 + 2 * i:02d}:00Z"
        await send(client, dm, resolved)
        clock.advance(30)
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    assert inc["rule"] == "flappy" and inc["flapping"] is True and inc["state"] == "open"
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    assert "flapping" in [e["action"] for e in detail["timeline"]]
    assert [e["action"] for e in detail["timeline"]].count("alert_resolved") == 3


async def test_merge_moves_alerts_and_closes_the_merged_incident(
    client: Client, running: tuple[Daemon, FakeClock]
) -> None:
    dm, _ = running
    await send(client, dm, alert("HighCpu", severity="critical", instance="a"),
               alert("HighMem", severity="critical", instance="a"))
    second, first = (await get(client, "/api/v1/incidents"))["items"]
    assert (await act(client, first["id"], "merge", {"into": "nope"}))[0] == 400
    assert (await act(client, first["id"], "merge", {"into": first["id"]}))[0] == 409
    status, body = await act(client, first["id"], "merge", {"into": second["id"]})
    assert status == 200 and body["state"] == "closed"
    target = await get(client, f"/api/v1/incidents/{second['id']}")
    assert target["alert_count"] == 2 and len(target["alerts"]) == 2
    assert target["timeline"][-1]["action"] == "merged_in"
    assert (await act(client, first["id"], "merge", {"into": second["id"]}))[0] == 409


INHIBITING = """
rules:
  - name: exporter-down
    match: ['alertname="NodeExporterDown"']
    group_by: [instance]
    inhibits: [{match: ['alertname=~"Node(Cpu|Disk).*"'], equal: [instance]}]
  - name: node-symptoms
    match: ['alertname=~"Node.*"']
    group_by: [instance, alertname]
"""


async def test_inhibited_alerts_join_the_cause_as_symptoms(
    client: Client, running: tuple[Daemon, FakeClock], tmp_path: Path
) -> None:
    dm, _ = running
    (tmp_path / "rules" / "main.yaml").write_text(INHIBITING)
    from itsmd.config.routing import load_routing

    dm.pipeline.routing = load_routing(dm.config)
    await send(client, dm, alert("NodeExporterDown", instance="a"))
    await send(client, dm, alert("NodeCpuHigh", instance="a"), alert("NodeDiskFull", instance="b"))
    incs = {i["rule"]: i for i in (await get(client, "/api/v1/incidents"))["items"]}
    assert set(incs) == {"exporter-down", "node-symptoms"}  # b's disk alert has no cause: its own incident
    cause = await get(client, f"/api/v1/incidents/{incs['exporter-down']['id']}")
    assert cause["alert_count"] == 2
    symptoms = [a for a in cause["alerts"] if a["symptom"] == "inhibited"]
    assert [a["labels"]["alertname"] for a in symptoms] == ["NodeCpuHigh"]
    assert "symptom_joined" in [e["action"] for e in cause["timeline"]]
    # the cause resolving does not wait for its symptoms (resolve: all counts causes only)
    await send(client, dm, alert("NodeExporterDown", "resolved", instance="a"))
    assert (await get(client, f"/api/v1/incidents/{cause['id']}"))["state"] == "resolved"


async def test_a_cause_takes_the_symptoms_behind_it_in_the_same_delivery(
    client: Client, running: tuple[Daemon, FakeClock], tmp_path: Path
) -> None:
    dm, _ = running
    (tmp_path / "rules" / "main.yaml").write_text(INHIBITING)
    from itsmd.config.routing import load_routing

    dm.pipeline.routing = load_routing(dm.config)
    await send(client, dm, alert("NodeExporterDown", instance="a"), alert("NodeCpuHigh", instance="a"))
    [cause] = (await get(client, "/api/v1/incidents"))["items"]
    detail = await get(client, f"/api/v1/incidents/{cause['id']}")
    assert [a["symptom"] for a in detail["alerts"]] == [None, "inhibited"]
