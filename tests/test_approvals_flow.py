"""Approval gates through the running daemon's HTTP API (real pipeline, runner and store on SQLite and
PostgreSQL): approve (the run starts at once, the approver recorded), reject, four eyes on manual runs, expiry
with `on_timeout: escalate` (pages) and `abort` (does not), errors, the audit log and the timeline."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd.app import Daemon, Timers
from itsmd.clock import FakeClock
from itsmd.core.access import Role
from tests import daemon as d
from tests.daemon import send

Client = TestClient  # type: ignore[type-arg]
ING, VIEW, OPS, ADMIN = (d.bearer(r) for r in (Role.INGEST, Role.VIEWER, Role.OPERATOR, Role.ADMIN))
HOUR = 3600.0

RULES = """
rules:
  - name: gated
    match: ['alertname="Gated"']
    group_by: [instance]
    playbooks: [gated-fix]
    escalate: {after: 1h}
  - name: quiet
    match: ['alertname="Quiet"']
    group_by: [instance]
    playbooks: [quiet-fix]
    escalate: {after: 1h}
"""
SCRIPT = "import sys\nopen(sys.argv[1], 'a').write(sys.argv[2] + '\\n')\n"


def playbook(name: str, tmp: Path, approval: str) -> str:
    return f"""
name: {name}
params:
  host: {{from: "{{{{ labels.instance }}}}", pattern: '[a-z0-9-]+'}}
concurrency: {{key: "{{{{ params.host }}}}", limit: 1}}
approval: {approval}
steps:
  - name: act
    exec: ["{sys.executable}", "{tmp / 'act.py'}", "{tmp / (name + '.out')}", "{{{{ params.host }}}}"]
    timeout: 20s
"""


@pytest.fixture(params=["sqlite", "postgres"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    (tmp_path / "act.py").write_text(SCRIPT)
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "gated-fix.yaml").write_text(playbook("gated-fix", tmp_path, "{required: true}"))
    (books / "quiet-fix.yaml").write_text(playbook("quiet-fix", tmp_path,
                                                   "{required: true, timeout: 60s, on_timeout: abort}"))
    clock = FakeClock(datetime(2026, 11, 26, 6, 0, tzinfo=UTC))
    # Ticks far apart: the test calls the approval expiry and the paging decision itself, on its fake clock.
    timers = Timers(expiry_tick=0.2, pipeline_poll=0.2, shutdown_grace=2.0, run_poll=0.2, wait_poll=0.05,
                    run_lease=5.0, deadline_tick=HOUR, approval_tick=HOUR)
    dm = Daemon(d.config(tmp_path, database=database), clock=clock, timers=timers)
    await dm.start_core()
    yield dm, clock
    await dm.stop()


@pytest.fixture
async def client(running: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running[0].app)


def alert(name: str, instance: str) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": name, "instance": instance}, "annotations": {},
            "startsAt": "2026-11-26T05:55:00Z", "endsAt": "0001-01-01T00:00:00Z"}


async def get(client: Client, path: str, headers: dict[str, str] = VIEW, **params: str) -> Any:
    resp = await client.get(path, headers=headers, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def post(client: Client, path: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    resp = await client.post(path, json={} if body is None else body, headers=headers)
    return resp.status, await resp.json()


async def until(client: Client, path: str, done: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await get(client, path)
        if done(found):
            return found
        assert time.monotonic() < deadline, f"{path} never got there: {found}"
        await asyncio.sleep(0.05)


async def waiting_run(client: Client, dm: Daemon, name: str, instance: str) -> dict[str, Any]:
    await send(client, dm, alert(name, instance))
    [run] = (await get(client, "/api/v1/runs", state="awaiting_approval"))["items"]
    return run  # type: ignore[no-any-return]


def timeline(detail: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [e for e in detail["timeline"] if e["action"] == action]


async def test_approve_starts_the_run_and_records_the_approver(
        client: Client, running: tuple[Daemon, FakeClock], tmp_path: Path) -> None:
    dm, _ = running
    run = await waiting_run(client, dm, "Gated", "db1")
    assert run["approval_expires_at"] == "2026-11-26T06:15:00.000000Z"  # created + approval.timeout (default 15m)
    assert run["approved_by"] is None and {s["state"] for s in run["steps"]} == {"pending"}
    path = f"/api/v1/runs/{run['id']}/approve"
    assert (await post(client, path, VIEW))[0] == 403  # viewers may not
    resp = await client.post(path, data="{}", headers={**OPS, "Content-Type": "text/plain"})
    assert resp.status == 415  # the content-type rule of state changes
    status, body = await post(client, path, OPS, {"comment": "go ahead"})
    assert status == 200, body
    assert body["approved_by"] == "operator-client" and body["state"] in ("pending", "running", "succeeded")
    assert body["approval_expires_at"] is None
    done = await until(client, f"/api/v1/runs/{run['id']}", lambda r: r["state"] == "succeeded")
    assert done["approved_by"] == "operator-client" and done["steps"][0]["exit_code"] == 0
    assert (tmp_path / "gated-fix.out").read_text() == "db1\n"
    status, body = await post(client, path, OPS)
    assert status == 409 and "succeeded" in body["error"]
    for bad in ("RUN-9999", "nope"):
        assert (await post(client, f"/api/v1/runs/{bad}/approve", OPS))[0] == 404
        assert (await post(client, f"/api/v1/runs/{bad}/reject", OPS))[0] == 404
    assert (await post(client, path, OPS, {"comment": 5}))[0] == 400

    detail = await get(client, f"/api/v1/incidents/{run['incident_id']}")
    [approved] = timeline(detail, "run_approved")
    assert approved["actor"] == "operator-client" and "go ahead" in approved["reason"]
    assert approved["data"]["run_id"] == run["id"]
    actions = [e["action"] for e in detail["timeline"]]
    assert actions.index("run_awaiting_approval") < actions.index("run_approved") < actions.index("run_succeeded")
    audit = await get(client, "/api/v1/audit", ADMIN, action="run_approved")
    [record] = audit["items"]
    assert record["actor"] == "operator-client" and record["entity_id"] == run["incident_id"]
    assert record["data"]["comment"] == "go ahead" and len(record["hash"]) == 64


async def test_reject_ends_the_run_and_pages(client: Client, running: tuple[Daemon, FakeClock],
                                             tmp_path: Path) -> None:
    dm, _ = running
    run = await waiting_run(client, dm, "Gated", "db2")
    await dm.page()
    detail = await get(client, f"/api/v1/incidents/{run['incident_id']}")
    assert timeline(detail, "paged") == []  # a run is waiting and escalate.after (1h) has not passed
    status, body = await post(client, f"/api/v1/runs/{run['id']}/reject", OPS, {"comment": "not during the sale"})
    assert status == 200, body
    assert body["state"] == "rejected" and body["reason"] == "rejected by operator-client: not during the sale"
    assert body["finished_at"] is not None and {s["state"] for s in body["steps"]} == {"cancelled"}
    assert (await post(client, f"/api/v1/runs/{run['id']}/reject", OPS))[0] == 409
    assert (await post(client, f"/api/v1/runs/{run['id']}/approve", ADMIN))[0] == 409
    await dm.page()  # the pager looks at once: the rejection asked for it
    detail = await get(client, f"/api/v1/incidents/{run['incident_id']}")
    [paged] = timeline(detail, "paged")
    assert paged["data"]["causes"] == ["run_rejected"] and "rejected" in paged["reason"]
    [rejected] = timeline(detail, "run_rejected")
    assert rejected["actor"] == "operator-client"
    assert (await get(client, "/api/v1/audit", ADMIN, action="run_rejected"))["items"][0]["data"]["run_id"] == run["id"]
    assert not (tmp_path / "gated-fix.out").exists()
    metrics = await (await client.get("/metrics")).text()
    assert 'itsmd_runs_finished_total{playbook="gated-fix",state="rejected"} 1.0' in metrics


async def test_four_eyes_the_requester_of_a_manual_run_cannot_approve_it(
        client: Client, running: tuple[Daemon, FakeClock], tmp_path: Path) -> None:
    dm, _ = running
    first = await waiting_run(client, dm, "Gated", "db3")
    assert (await post(client, f"/api/v1/runs/{first['id']}/reject", OPS))[0] == 200  # frees the target
    status, manual = await post(client, "/api/v1/runs", OPS, {"playbook": "gated-fix",
                                                              "incident_id": first["incident_id"]})
    assert status == 201, manual
    assert manual["state"] == "awaiting_approval" and manual["requested_by"] == "operator-client"
    status, body = await post(client, f"/api/v1/runs/{manual['id']}/approve", OPS)
    assert status == 403 and "four eyes" in body["error"] and "another operator" in body["error"]
    assert (await get(client, f"/api/v1/runs/{manual['id']}"))["state"] == "awaiting_approval"
    status, body = await post(client, f"/api/v1/runs/{manual['id']}/approve", ADMIN)
    assert status == 200 and body["approved_by"] == "admin-client"
    await until(client, f"/api/v1/runs/{manual['id']}", lambda r: r["state"] == "succeeded")
    assert (tmp_path / "gated-fix.out").read_text() == "db3\n"


async def test_an_unapproved_run_expires_and_pages_with_escalate(
        client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    run = await waiting_run(client, dm, "Gated", "db4")
    clock.advance(899)
    assert await dm.expire_approvals() == 0
    clock.advance(1)
    status, body = await post(client, f"/api/v1/runs/{run['id']}/approve", OPS)  # due, the tick not yet there
    assert status == 409 and "expired at 2026-11-26T06:15:00" in body["error"], body
    assert (await get(client, f"/api/v1/runs/{run['id']}"))["state"] == "awaiting_approval"
    assert await dm.expire_approvals() == 1
    done = await get(client, f"/api/v1/runs/{run['id']}")
    assert done["state"] == "expired" and done["reason"] == "approval_timed_out_escalate"
    assert {s["state"] for s in done["steps"]} == {"cancelled"} and done["finished_at"] == "2026-11-26T06:15:00.000000Z"
    assert (await post(client, f"/api/v1/runs/{run['id']}/approve", OPS))[0] == 409
    await dm.page()
    detail = await get(client, f"/api/v1/incidents/{run['incident_id']}")
    [expired] = timeline(detail, "run_expired")
    assert "approval timed out" in expired["reason"] and expired["actor"] == "system"
    [paged] = timeline(detail, "paged")
    assert paged["data"]["causes"] == ["run_expired"]


async def test_an_unapproved_run_expires_quietly_with_abort(
        client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    run = await waiting_run(client, dm, "Quiet", "db5")
    assert run["approval_expires_at"] == "2026-11-26T06:01:00.000000Z"
    clock.advance(60)
    assert await dm.expire_approvals() == 1
    done = await get(client, f"/api/v1/runs/{run['id']}")
    assert done["state"] == "expired" and done["reason"] == "approval_timed_out_abort"
    await dm.page()
    detail = await get(client, f"/api/v1/incidents/{run['incident_id']}")
    assert "nobody is paged" in timeline(detail, "run_expired")[0]["reason"]
    assert timeline(detail, "paged") == []
    clock.advance(HOUR)  # escalate.after still pages the unattended incident, for that cause only
    await dm.page()
    detail = await get(client, f"/api/v1/incidents/{run['incident_id']}")
    assert [p["data"]["causes"] for p in timeline(detail, "paged")] == [["unattended"]]


async def test_the_dashboard_lists_waiting_runs_with_buttons_for_operators(
        client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, _ = running
    auto = await waiting_run(client, dm, "Gated", "db6")
    assert (await post(client, f"/api/v1/runs/{auto['id']}/reject", OPS))[0] == 200
    status, manual = await post(client, "/api/v1/runs", OPS, {"playbook": "gated-fix",
                                                              "incident_id": auto["incident_id"]})
    assert status == 201, manual
    await send(client, dm, alert("Quiet", "db7"))
    resp = await client.get("/approvals", headers=OPS)
    assert resp.status == 200 and "script-src 'self'" in resp.headers["Content-Security-Policy"]
    html = await resp.text()
    assert manual["id"] in html and auto["id"] not in html  # only runs still waiting
    assert 'aria-current="page">Approvals' in html
    assert html.count('data-decision="reject"') == 2
    assert html.count('data-decision="approve"') == 1  # not the operator's own manual run (four eyes)
    assert "another operator must approve it" in html
    viewer = await (await client.get("/approvals", headers=VIEW)).text()
    assert manual["id"] in viewer and "data-decision" not in viewer
    assert (await client.get("/approvals")).status == 401
