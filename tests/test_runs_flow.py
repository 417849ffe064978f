"""Playbook runs through the running daemon (real pipeline, runner, store on SQLite and PostgreSQL, real
processes): triggers, outcomes, guards, cancel, manual runs, recovery of orphaned runs, a flapping storm."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import Connection

from itsmd.app import Daemon, Timers
from itsmd.clock import FakeClock
from itsmd.config.model import Automation
from itsmd.core.access import Role
from itsmd.core.guard import Breaker, BreakerPhase
from itsmd.core.run import RunState, StepState
from itsmd.pipeline import remediate
from itsmd.storage import runs, settings
from tests import daemon as d
from tests.daemon import send

Client = TestClient  # type: ignore[type-arg]
ING, VIEW, OPS, ADMIN = (d.bearer(r) for r in (Role.INGEST, Role.VIEWER, Role.OPERATOR, Role.ADMIN))
JSON = {"Content-Type": "application/json"}

RULES = """
rules:
  - name: web-down
    match: ['alertname="WebDown"']
    group_by: [instance]
    reopen_within: 1h
    playbooks: [fix-web]
  - name: gated
    match: ['alertname="Gated"']
    group_by: [instance]
    playbooks: [gated-fix]
  - name: storm
    match: ['alertname="Storm"']
    group_by: [instance]
    reopen_within: 1h
    playbooks: [storm-fix]
  - name: paired
    match: ['alertname="Paired"']
    group_by: [instance, zone]
    playbooks: [gated-fix]
"""
# The step: a real process appending its argument and run id to a file; `hold` seconds of sleep first.
SCRIPT = """\
import os, sys, time
out, arg, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(out + ".started", "a") as f:
    f.write(arg + "\\n")
time.sleep(hold)
with open(out, "a") as f:
    f.write(arg + " " + os.environ.get("ITSMD_RUN_ID", "") + "\\n")
"""


def playbook(name: str, tmp: Path, hold: str = "0", extra: str = "", verify: bool = True) -> str:
    return f"""
name: {name}
params:
  host: {{from: "{{{{ labels.instance }}}}", pattern: '[a-z0-9$();` -]+'}}
concurrency: {{key: "{{{{ params.host }}}}", limit: 1}}
{extra}
steps:
  - name: act
    exec: ["{sys.executable}", "{tmp / 'act.py'}", "{tmp / (name + '.out')}", "{{{{ params.host }}}}", "{hold}"]
    timeout: 20s
    idempotent: true
""" + ("""  - name: verify
    wait_resolved: 10s
""" if verify else "")


@pytest.fixture(params=["sqlite", "postgres"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    (tmp_path / "act.py").write_text(SCRIPT)
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "fix-web.yaml").write_text(playbook("fix-web", tmp_path))
    (books / "gated-fix.yaml").write_text(playbook("gated-fix", tmp_path, extra="approval: {required: true}"))
    (books / "storm-fix.yaml").write_text(playbook("storm-fix", tmp_path, verify=False,
                                                   extra="rate_limit: {max: 3, per: 1h}"))
    clock = FakeClock(datetime(2026, 11, 25, 22, 0, tzinfo=UTC))
    cfg = d.config(tmp_path, database=database)
    timers = Timers(expiry_tick=0.2, pipeline_poll=0.2, shutdown_grace=2.0, run_poll=0.2, wait_poll=0.05,
                    run_lease=5.0)
    dm = Daemon(cfg, clock=clock, timers=timers)
    await dm.start_core()
    yield dm, clock
    await dm.stop()


@pytest.fixture
async def client(running: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running[0].app)


def alert(name: str, status: str = "firing", starts: str = "2026-11-25T21:50:00Z", ends: str | None = None,
          **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": name, **labels}, "annotations": {}, "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else (ends or "2026-11-25T21:59:00Z")}


async def get(client: Client, path: str, **params: str) -> Any:
    resp = await client.get(path, headers=VIEW, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def until(client: Client, path: str, done: Callable[[Any], bool], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await get(client, path)
        if done(found):
            return found
        assert time.monotonic() < deadline, f"{path} never got there: {found}"
        await asyncio.sleep(0.05)


async def only_run(client: Client, **params: str) -> dict[str, Any]:
    [run] = (await get(client, "/api/v1/runs", **params))["items"]
    return run  # type: ignore[no-any-return]


async def test_a_run_fixes_the_incident_and_it_resolves_auto_remediated(
        client: Client, running: tuple[Daemon, FakeClock], tmp_path: Path) -> None:
    dm, _ = running
    hostile = "$(touch pwned); `id`"
    await send(client, dm, alert("WebDown", instance=hostile))
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    run = await only_run(client, incident=inc["id"])
    assert run["playbook"] == "fix-web" and run["trigger"] == "opened" and run["target"] == hostile
    await until(client, f"/api/v1/runs/{run['id']}", lambda r: r["steps"][0]["state"] == "succeeded")
    assert (tmp_path / "fix-web.out").read_text() == f"{hostile} {run['id']}\n"  # one literal argv element
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    await send(client, dm, alert("WebDown", "resolved", instance=hostile))
    done = await until(client, f"/api/v1/runs/{run['id']}", lambda r: r["state"] == "succeeded")
    assert [(s["name"], s["state"], s["attempt"], s["exit_code"]) for s in done["steps"]] == [
        ("act", "succeeded", 1, 0), ("verify", "succeeded", 1, None)]
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    assert detail["state"] == "resolved" and detail["resolution"] == "auto_remediated"
    assert [r["id"] for r in detail["runs"]] == [run["id"]]
    actions = [e["action"] for e in detail["timeline"]]
    assert actions.index("run_pending") < actions.index("run_running") < actions.index("run_succeeded")
    page = await (await client.get(f"/incidents/{inc['id']}", headers=VIEW)).text()  # the dashboard shows it
    assert run["id"] in page and "act: succeeded, exit 0" in page and "verify: succeeded" in page


async def test_self_healed_incident_cancels_its_waiting_runs(client: Client, running: tuple[Daemon, FakeClock],
                                                             tmp_path: Path) -> None:
    dm, _ = running
    await send(client, dm, alert("Gated", instance="db1"))
    run = await only_run(client)
    assert run["state"] == "awaiting_approval"
    await send(client, dm, alert("Gated", "resolved", instance="db1"))
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    assert inc["resolution"] == "self_healed"
    run = await get(client, f"/api/v1/runs/{run['id']}")
    assert run["state"] == "cancelled" and run["reason"] == "resolved"
    assert {s["state"] for s in run["steps"]} == {"cancelled"}
    assert not (tmp_path / "gated-fix.out.started").exists()


async def test_kill_switch_is_persisted_and_skips_runs(client: Client, running: tuple[Daemon, FakeClock],
                                                       tmp_path: Path) -> None:
    dm, _ = running
    assert (await get(client, "/api/v1/automation"))["enabled"] is True
    resp = await client.put("/api/v1/automation", json={"enabled": False}, headers=OPS)
    assert resp.status == 403  # admin only
    resp = await client.put("/api/v1/automation", json={"enabled": False}, headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["effective"] is False
    await send(client, dm, alert("WebDown", instance="web2"))
    run = await only_run(client)
    assert run["state"] == "skipped" and run["reason"] == "kill_switch"
    assert {s["state"] for s in run["steps"]} == {"skipped"}
    assert await dm.store.read(settings.automation_enabled) is False  # a row: it survives restarts
    assert not (tmp_path / "fix-web.out.started").exists()


async def test_a_trigger_seen_twice_makes_one_run(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    await dm.store.write(lambda conn: settings.put(conn, "automation.enabled", False, "t", clock.now()))
    await send(client, dm, alert("WebDown", instance="web3"))
    await send(client, dm, alert("WebDown", instance="web3"))  # a re-delivery
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    number = int(inc["id"].split("-")[1])

    def again(conn: Connection) -> int:  # the opening's trigger processed once more, as after a crash
        return remediate.on_incidents(conn, dm.pipeline.routing, dm.pipeline.switches, [number], [],
                                      clock.now()).created

    assert await dm.store.write(again) == 0
    assert len((await get(client, "/api/v1/runs"))["items"]) == 1


async def test_two_incidents_on_one_target_in_one_batch_make_one_run(
        client: Client, running: tuple[Daemon, FakeClock]) -> None:
    """The runs of one pipeline batch are decided in order on facts kept current: the second incident on the
    same target (concurrency key: the host) sees the first's run."""
    dm, _ = running
    await send(client, dm, alert("Paired", instance="db1", zone="a"), alert("Paired", instance="db1", zone="b"))
    assert len((await get(client, "/api/v1/incidents"))["items"]) == 2
    got = (await get(client, "/api/v1/runs"))["items"]
    assert sorted((r["state"], r["reason"], r["target"]) for r in got) == [
        ("awaiting_approval", None, "db1"), ("skipped", "concurrency", "db1")]
    assert len({r["incident_id"] for r in got}) == 2
    first, second = sorted(got, key=lambda r: int(r["id"].split("-")[1]))
    assert first["state"] == "awaiting_approval"  # decided in the batch's order
    assert [s["state"] for s in first["steps"]] == ["pending", "pending"]
    assert [s["state"] for s in second["steps"]] == ["skipped", "skipped"]


async def test_cancel_and_manual_rerun(client: Client, running: tuple[Daemon, FakeClock], tmp_path: Path) -> None:
    dm, _ = running
    slow = playbook("fix-web", tmp_path, hold="30")
    (tmp_path / "playbooks" / "fix-web.yaml").write_text(slow)
    from itsmd.config.routing import load_routing
    dm.pipeline.routing = load_routing(dm.config)
    await send(client, dm, alert("WebDown", instance="web4"))
    run = await only_run(client)
    await until(client, f"/api/v1/runs/{run['id']}", lambda r: r["steps"][0]["state"] == "running")
    for _ in range(100):
        if (tmp_path / "fix-web.out.started").exists():
            break
        await asyncio.sleep(0.05)
    resp = await client.post(f"/api/v1/runs/{run['id']}/cancel", json={}, headers=VIEW)
    assert resp.status == 403
    resp = await client.post(f"/api/v1/runs/{run['id']}/cancel", json={}, headers=OPS)
    assert resp.status == 200, await resp.text()
    done = await until(client, f"/api/v1/runs/{run['id']}", lambda r: r["finished_at"] is not None
                       and r["steps"][0]["state"] != "running")
    assert done["state"] == "cancelled" and done["steps"][0]["state"] == "cancelled"
    assert not (tmp_path / "fix-web.out").exists()  # the process was stopped before it finished
    resp = await client.post(f"/api/v1/runs/{run['id']}/cancel", json={}, headers=OPS)
    assert resp.status == 409

    (tmp_path / "playbooks" / "fix-web.yaml").write_text(playbook("fix-web", tmp_path, verify=False))
    dm.pipeline.routing = load_routing(dm.config)
    resp = await client.post("/api/v1/runs", json={"playbook": "fix-web", "incident_id": done["incident_id"]},
                             headers=OPS)
    assert resp.status == 201, await resp.text()
    again = await resp.json()
    assert again["requested_by"] == "operator-client" and again["trigger"] == "manual"
    await until(client, f"/api/v1/runs/{again['id']}", lambda r: r["state"] == "succeeded")
    assert (tmp_path / "fix-web.out").read_text() == f"web4 {again['id']}\n"
    resp = await client.post("/api/v1/runs", json={"playbook": "nope", "incident_id": done["incident_id"]},
                             headers=OPS)
    assert resp.status == 400


async def test_flapping_storm_runs_at_most_the_rate_limit(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    start = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
    for i in range(100):
        fire = (start + timedelta(seconds=6 * i)).isoformat().replace("+00:00", "Z")
        end = (start + timedelta(seconds=6 * i + 3)).isoformat().replace("+00:00", "Z")
        clock.advance(3)
        await send(client, dm, alert("Storm", starts=fire, instance="s1"))
        clock.advance(3)
        await send(client, dm, alert("Storm", "resolved", starts=fire, ends=end, instance="s1"))
    items = (await get(client, "/api/v1/runs", limit="1000"))["items"]
    acted = [r for r in items if r["state"] != "skipped"]
    assert 1 <= len(acted) <= 3, [(r["state"], r["reason"]) for r in acted]
    reasons = {r["reason"] for r in items if r["state"] == "skipped"}
    assert "rate_limited" in reasons and reasons <= {"rate_limited", "concurrency"}
    [inc] = (await get(client, "/api/v1/incidents"))["items"]
    assert inc["reopen_count"] == 99 and len(items) == 100


@pytest.mark.parametrize("idempotent", [True, False])
async def test_an_orphaned_run_resumes_or_ends_unknown(client: Client, running: tuple[Daemon, FakeClock],
                                                       tmp_path: Path, idempotent: bool) -> None:
    """A run left `running` by a dead runner (its lease expired): an idempotent step runs again, a non-idempotent
    one ends `unknown` and the run needs a human."""
    dm, clock = running
    await dm.store.write(lambda conn: settings.put(conn, "automation.enabled", False, "t", clock.now()))
    await send(client, dm, alert("WebDown", instance="web5"))
    run = await only_run(client)
    number = int(run["id"].split("-")[1])
    past = clock.now() - timedelta(seconds=60)

    def orphan(conn: Connection) -> None:
        runs.change(conn, number, {"state": RunState.RUNNING, "reason": None, "lease_owner": "runner-dead",
                                   "lease_until": past, "started_at": past, "finished_at": None,
                                   "deadline": clock.now() + timedelta(hours=1)})
        runs.change_step(conn, number, 0, {"state": StepState.RUNNING, "attempt": 1, "started_at": past,
                                           "idempotent": idempotent})
        runs.change_step(conn, number, 1, {"state": StepState.PENDING})

    await dm.store.write(orphan)
    dm.runner.wake()
    done = await until(client, f"/api/v1/runs/{run['id']}", lambda r: r["state"] not in ("running", "skipped"))
    if idempotent:
        assert done["state"] in ("succeeded", "failed")  # verify may time out: the alert still fires
        assert done["steps"][0]["state"] == "succeeded"
        assert (tmp_path / "fix-web.out").read_text() == f"web5 {run['id']}\n"
    else:
        assert done["state"] == "unknown" and done["reason"] == "needs_human"
        assert done["steps"][0]["state"] == "unknown" and done["steps"][1]["state"] == "skipped"
        assert not (tmp_path / "fix-web.out.started").exists()


async def test_at_most_max_concurrent_runs_execute(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
                                                   ) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    (tmp_path / "act.py").write_text(SCRIPT)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "fix-web.yaml").write_text(playbook("fix-web", tmp_path, hold="0.5", verify=False))
    for other in ("gated-fix", "storm-fix"):
        (tmp_path / "playbooks" / f"{other}.yaml").write_text(playbook(other, tmp_path))
    cfg = replace(d.config(tmp_path), automation=Automation(max_concurrent_runs=2))
    dm = Daemon(cfg, timers=Timers(pipeline_poll=0.2, shutdown_grace=2.0, run_poll=0.2))
    await dm.start_core()
    try:
        client = await aiohttp_client(dm.app)
        await send(client, dm, *(alert("WebDown", instance=f"w{i}") for i in range(6)))
        most = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            most = max(most, dm.runner.executing)
            items = (await get(client, "/api/v1/runs"))["items"]
            if len(items) == 6 and all(r["state"] == "succeeded" for r in items):
                break
            await asyncio.sleep(0.02)
        assert most == 2
        lines = (tmp_path / "fix-web.out").read_text().splitlines()
        assert sorted(line.split()[0] for line in lines) == [f"w{i}" for i in range(6)]
    finally:
        await dm.stop()


async def test_a_circuit_breaker_is_reset_by_hand(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    now = clock.now()
    tripped = Breaker(BreakerPhase.OPEN, (now, now), now)
    await dm.store.write(lambda c: remediate.save_breaker(c, "fix-web", tripped, now))
    [b] = (await get(client, "/api/v1/automation"))["breakers"]
    assert b == {"playbook": "fix-web", "state": "open", "failures": 2, "opened_at": b["opened_at"]}
    path = "/api/v1/automation/breakers/fix-web/reset"
    assert (await client.post(path, json={}, headers=OPS)).status == 403  # admin only
    assert (await client.post("/api/v1/automation/breakers/nope/reset", json={}, headers=ADMIN)).status == 404
    resp = await client.post(path, json={}, headers=ADMIN)
    assert resp.status == 200
    assert (await resp.json())["breakers"] == [{"playbook": "fix-web", "state": "closed", "failures": 0,
                                                "opened_at": None}]
    audit = await (await client.get("/api/v1/audit", params={"action": "breaker_reset"}, headers=ADMIN)).json()
    [record] = audit["items"]
    assert record["data"] == {"playbook": "fix-web", "was": "open"}
