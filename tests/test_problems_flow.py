"""Recurring incidents become problems through the running daemon (real pipeline, real store on SQLite and
PostgreSQL); the problems API."""

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
from itsmd.errors import StorageError
from itsmd.storage import problems
from itsmd.storage.store import SqlStore
from tests import daemon as d

Client = TestClient  # type: ignore[type-arg]
ING, VIEW, OPS = d.bearer(Role.INGEST), d.bearer(Role.VIEWER), d.bearer(Role.OPERATOR)
RULES = """
rules:
  - name: exporter-down
    match: ['alertname="NodeExporterDown"']
    group_by: [cluster, instance]
    reopen_within: 0s
    problem: {after: 3, within: 1h}
  - name: disk-low
    match: ['alertname="DiskSpaceLow"']
    group_by: [cluster, instance]
    reopen_within: 0s
    problem: {after: 2, within: 1h, by: [cluster, instance]}
  - name: no-policy
    match: ['alertname="Other"']
    group_by: [instance]
"""
PLAYBOOK = """
name: restart-node-exporter
params:
  instance: {from: "{{ labels.instance }}", pattern: '[a-z0-9.-]+(:[0-9]+)?'}
concurrency: {key: "{{ params.instance }}", limit: 1}
approval: {required: true, timeout: 1h}
steps:
  - {name: pause, sleep: 1s}
"""  # awaits approval: nothing executes in these tests
T0 = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "restart.yaml").write_text(PLAYBOOK)
    clock = FakeClock(T0)
    dm = d.daemon(d.config(tmp_path, database=database), clock)
    await dm.start_core()
    yield dm, clock
    await dm.stop()


@pytest.fixture
async def client(running: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running[0].app)


class Alerts:
    """Sends alerts the way Alertmanager does, with times from the fake clock."""

    def __init__(self, client: Client, dm: Daemon, clock: FakeClock) -> None:
        self.client, self.dm, self.clock = client, dm, clock

    async def send(self, *alerts: dict[str, Any]) -> None:
        resp = await self.client.post("/api/v1/webhooks/alertmanager", headers=ING,
                                      json={"version": "4", "alerts": list(alerts)})
        assert resp.status == 200
        await self.dm.pipeline.drain()

    def alert(self, labels: dict[str, str], starts: datetime, ends: datetime | None = None) -> dict[str, Any]:
        return {"status": "resolved" if ends else "firing", "labels": labels, "annotations": {},
                "startsAt": format_time(starts), "endsAt": format_time(ends) if ends else "0001-01-01T00:00:00Z"}

    async def recur(self, name: str = "NodeExporterDown", **labels: str) -> dict[str, Any]:
        """One recurrence: the alert fires (an incident opens), clears a minute later (it resolves); returns
        the incident as it was when it opened."""
        labels = {"alertname": name, "cluster": "eu", **labels}
        starts = self.clock.now()
        await self.send(self.alert(labels, starts))
        opened = (await get(self.client, "/api/v1/incidents"))["items"][0]
        assert opened["opened_at"] == format_time(starts), "the recurrence opened a new incident"
        self.clock.advance(60)
        await self.send(self.alert(labels, starts, self.clock.now()))
        self.clock.advance(60)
        return opened


@pytest.fixture
def am(client: Client, running: tuple[Daemon, FakeClock]) -> Alerts:
    return Alerts(client, *running)


async def get(client: Client, path: str, **params: str) -> Any:
    resp = await client.get(path, headers=VIEW, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def incident(client: Client, iid: str) -> Any:
    return await get(client, f"/api/v1/incidents/{iid}")


async def patch(client: Client, pid: str, body: dict[str, Any], headers: dict[str, str] = OPS) -> tuple[int, Any]:
    resp = await client.patch(f"/api/v1/problems/{pid}", json=body, headers=headers)
    return resp.status, await resp.json()


async def put_known_error(client: Client, pid: str, body: dict[str, Any],
                          headers: dict[str, str] = OPS) -> tuple[int, Any]:
    resp = await client.put(f"/api/v1/problems/{pid}/known-error", json=body, headers=headers)
    return resp.status, await resp.json()


def actions(detail: dict[str, Any]) -> list[str]:
    return [e["action"] for e in detail["timeline"]]


async def test_three_recurrences_open_a_problem_a_fourth_attaches_and_a_known_error_links_at_once(
    client: Client, running: tuple[Daemon, FakeClock], am: Alerts
) -> None:
    dm, _ = running
    first = await am.recur(instance="a:9100")
    second = await am.recur(instance="b:9100")  # another instance: the same signature (instance is volatile)
    assert (await get(client, "/api/v1/problems"))["items"] == []
    assert (await incident(client, second["id"]))["problem_id"] is None
    third = await am.recur(instance="a:9100")  # the same instance again: a new incident, previous_incident_id set
    assert third["previous_incident_id"] == first["id"]

    [prb] = (await get(client, "/api/v1/problems"))["items"]
    assert prb["id"] == "PRB-1" and prb["state"] == "open" and prb["rule"] == "exporter-down"
    assert prb["signature"] == 'exporter-down{cluster="eu"}' and prb["title"] == f"Recurring: {prb['signature']}"
    assert prb["incident_count"] == 3 and prb["known_error"] is None and prb["owner"] is None
    assert prb["first_seen_at"] == first["opened_at"] and prb["last_seen_at"] == third["opened_at"]
    detail = await get(client, "/api/v1/problems/PRB-1")
    assert detail["incidents"] == [first["id"], second["id"], third["id"]]
    assert actions(detail) == ["opened", "incident_linked", "incident_linked", "incident_linked"]
    assert detail["timeline"][0]["reason"] == "3 incidents of the signature within 3600s (after 3)"
    for inc in (first, second, third):
        linked = await incident(client, inc["id"])
        assert linked["problem_id"] == "PRB-1" and "problem_linked" in actions(linked)

    fourth = await am.recur(instance="c:9100")
    assert (await incident(client, fourth["id"]))["problem_id"] == "PRB-1"
    detail = await get(client, "/api/v1/problems/PRB-1")
    assert detail["incident_count"] == 4 and detail["last_seen_at"] == fourth["opened_at"]
    assert detail["incidents"][-1] == fourth["id"] and actions(detail)[-1] == "incident_linked"
    assert detail["timeline"][-1]["data"] == {"incident_id": fourth["id"], "decision": "attach"}

    status, body = await put_known_error(client, "PRB-1", {
        "root_cause": "exporter OOM-killed by the new scrape config", "workaround": "restart node_exporter",
        "playbook": "restart-node-exporter"})
    assert status == 200 and body["state"] == "known_error"
    assert body["known_error"] == {"root_cause": "exporter OOM-killed by the new scrape config",
                                   "workaround": "restart node_exporter", "playbook": "restart-node-exporter"}
    fifth = await am.recur(instance="d:9100")
    linked = await incident(client, fifth["id"])
    assert linked["problem_id"] == "PRB-1"
    [record] = [e for e in linked["timeline"] if e["action"] == "known_error_linked"]
    assert record["data"] == {"problem_id": "PRB-1", "playbook": "restart-node-exporter"}
    assert "restart node_exporter" in record["reason"]
    runs = (await get(client, f"/api/v1/runs?incident={fifth['id']}"))["items"]  # §1.6 item 10: it runs
    assert [(r["playbook"], r["trigger"], r["target"], r["state"], r["reason"]) for r in runs] == [
        ("restart-node-exporter", "known_error", "d:9100", "cancelled", "resolved")]  # recur() resolves it
    assert (await get(client, f"/api/v1/runs?incident={fourth['id']}"))["items"] == []  # linked before it
    detail = await get(client, "/api/v1/problems/PRB-1")
    assert detail["incident_count"] == 5 and detail["state"] == "known_error"
    assert actions(detail)[-2:] == ["known_error", "incident_linked"]
    assert detail["timeline"][-2]["actor"] == "operator-client"

    other = await am.recur(instance="a:9100", cluster="us")  # another cluster: another signature
    assert (await incident(client, other["id"]))["problem_id"] is None
    samples = {d: dm.metrics.registry.get_sample_value("itsmd_problem_decisions_total", {"decision": d})
               for d in ("none", "open", "attach", "known_error")}
    assert samples == {"none": 3.0, "open": 1.0, "attach": 1.0, "known_error": 1.0}


async def test_only_incidents_within_the_window_count(client: Client, running: tuple[Daemon, FakeClock],
                                                     am: Alerts) -> None:
    _, clock = running
    await am.recur(instance="a")
    await am.recur(instance="b")
    clock.advance(3600)  # the first two fall out of `within`
    late = [await am.recur(instance=i) for i in ("c", "d")]
    assert (await get(client, "/api/v1/problems"))["items"] == []
    late.append(await am.recur(instance="e"))
    [prb] = (await get(client, "/api/v1/problems"))["items"]
    assert prb["incident_count"] == 3 and prb["first_seen_at"] == late[0]["opened_at"]
    assert (await get(client, f"/api/v1/problems/{prb['id']}"))["incidents"] == [i["id"] for i in late]


async def test_incidents_opened_in_one_batch_open_one_problem(client: Client, running: tuple[Daemon, FakeClock],
                                                            am: Alerts) -> None:
    _, clock = running
    now = clock.now()
    await am.send(*[am.alert({"alertname": "NodeExporterDown", "cluster": "eu", "instance": i}, now)
                    for i in ("a", "b", "c")],
                  am.alert({"alertname": "NodeExporterDown", "cluster": "us", "instance": "a"}, now))
    incs = (await get(client, "/api/v1/incidents"))["items"]
    assert len(incs) == 4
    [prb] = (await get(client, "/api/v1/problems"))["items"]
    assert prb["incident_count"] == 3 and prb["signature"] == 'exporter-down{cluster="eu"}'
    assert sorted(i["problem_id"] or "-" for i in incs) == ["-", "PRB-1", "PRB-1", "PRB-1"]
    detail = await get(client, "/api/v1/problems/PRB-1")
    assert actions(detail) == ["opened", "incident_linked", "incident_linked", "incident_linked"]


async def test_by_decides_the_signature(client: Client, running: tuple[Daemon, FakeClock], am: Alerts) -> None:
    await am.recur("DiskSpaceLow", instance="a")
    await am.recur("DiskSpaceLow", instance="b")  # `by` keeps instance: another signature
    assert (await get(client, "/api/v1/problems"))["items"] == []
    await am.recur("DiskSpaceLow", instance="a")
    [prb] = (await get(client, "/api/v1/problems"))["items"]
    assert prb["signature"] == 'disk-low{cluster="eu", instance="a"}' and prb["incident_count"] == 2


async def test_a_resolved_problem_reopens_on_a_recurrence_within_the_window(
    client: Client, running: tuple[Daemon, FakeClock], am: Alerts
) -> None:
    _, clock = running
    for i in ("a", "b", "c"):
        await am.recur(instance=i)
    assert (await patch(client, "PRB-1", {"state": "resolved", "comment": "scrape config fixed"}))[0] == 200
    clock.advance(600)
    back = await am.recur(instance="d")  # the fix did not hold
    detail = await get(client, "/api/v1/problems/PRB-1")
    assert detail["state"] == "investigating" and detail["reopen_count"] == 1 and detail["resolved_at"] is None
    assert detail["incident_count"] == 4 and (await incident(client, back["id"]))["problem_id"] == "PRB-1"
    assert actions(detail)[-3:] == ["state_changed", "reopened", "incident_linked"]
    assert detail["timeline"][-2]["data"] == {"from": "resolved", "to": "investigating"}

    assert (await patch(client, "PRB-1", {"state": "resolved"}))[0] == 200
    clock.advance(3601)  # beyond `within` of the resolution: recurrences count toward a new problem
    later = [await am.recur(instance=i) for i in ("e", "f")]
    assert (await incident(client, later[0]["id"]))["problem_id"] is None
    later.append(await am.recur(instance="g"))
    newest, old = (await get(client, "/api/v1/problems"))["items"]
    assert (newest["id"], newest["state"], newest["incident_count"]) == ("PRB-2", "open", 3)
    assert old["state"] == "resolved" and old["signature"] == newest["signature"]
    status, body = await patch(client, "PRB-1", {"state": "investigating"})
    assert status == 409 and "PRB-2" in body["error"]  # one unresolved problem per signature


async def test_patch_state_owner_title_and_refusals(client: Client, running: tuple[Daemon, FakeClock],
                                                    am: Alerts) -> None:
    for i in ("a", "b", "c"):
        await am.recur(instance=i)
    assert (await patch(client, "PRB-1", {"state": "investigating"}, VIEW))[0] == 403
    resp = await client.patch("/api/v1/problems/PRB-1", data=b'{"state": "investigating"}', headers=OPS)
    assert resp.status == 415
    for body, message in [
        ({}, "give at least one of state, owner, title"),
        ({"status": "closed"}, "unknown field(s) 'status'"),
        ({"state": "fixed"}, "state must be one of"),
        ({"state": ["open"]}, "state must be one of"),
        ({"owner": 7}, "owner must be"),
        ({"owner": ""}, "owner must be"),
        ({"title": " "}, "title must be"),
        ({"title": "x" * 1001}, "title must be"),
        ({"state": "investigating", "comment": 1}, "comment must be a string"),
    ]:
        status, answer = await patch(client, "PRB-1", body)
        assert status == 400 and message in answer["error"], (body, answer)
    status, answer = await patch(client, "PRB-1", {"state": "known_error"})
    assert status == 409 and "known-error" in answer["error"]
    status, body = await patch(client, "PRB-1", {"state": "investigating", "owner": "sre-team",
                                                 "title": "Exporters die on the EU nodes"})
    assert status == 200 and body["state"] == "investigating" and body["owner"] == "sre-team"
    assert body["title"] == "Exporters die on the EU nodes"
    assert (await patch(client, "PRB-1", {"state": "investigating"}))[0] == 200  # staying put is no conflict
    assert (await patch(client, "PRB-1", {"state": "open"}))[0] == 409
    assert (await patch(client, "PRB-1", {"owner": None}))[1]["owner"] is None
    assert (await patch(client, "PRB-1", {"state": "closed", "comment": "duplicate of PRB-7"}))[0] == 200
    for target in ("open", "investigating", "resolved"):
        assert (await patch(client, "PRB-1", {"state": target}))[0] == 409
    status, answer = await put_known_error(client, "PRB-1", {"root_cause": "x", "workaround": "y"})
    assert status == 409 and "closed" in answer["error"]
    detail = await get(client, "/api/v1/problems/PRB-1")
    assert detail["state"] == "closed" and detail["closed_at"] is not None
    assert actions(detail)[4:] == ["state_changed", "updated", "updated", "state_changed"]
    assert detail["timeline"][5]["data"] == {"owner": "sre-team", "title": "Exporters die on the EU nodes"}
    assert detail["timeline"][-1]["reason"] == "duplicate of PRB-7"
    assert detail["timeline"][-1]["actor"] == "operator-client"
    for path in ("/api/v1/problems/PRB-99", "/api/v1/problems/INC-1", "/api/v1/problems/nope"):
        assert (await client.get(path, headers=VIEW)).status == 404
    assert (await patch(client, "PRB-99", {"state": "closed"}))[0] == 404


async def test_known_error_validation(client: Client, running: tuple[Daemon, FakeClock], am: Alerts) -> None:
    for i in ("a", "b", "c"):
        await am.recur(instance=i)
    good = {"root_cause": "leak", "workaround": "restart"}
    assert (await put_known_error(client, "PRB-1", good, VIEW))[0] == 403
    for body in [{"workaround": "restart"}, {"root_cause": "leak"}, {**good, "root_cause": ""},
                 {**good, "playbook": "no spaces allowed"}, {**good, "playbook": 3}, {**good, "extra": 1}]:
        assert (await put_known_error(client, "PRB-1", body))[0] == 400, body
    assert (await put_known_error(client, "PRB-9", good))[0] == 404
    status, body = await put_known_error(client, "PRB-1", good)
    assert status == 200 and body["known_error"] == {**good, "playbook": None}
    status, body = await put_known_error(client, "PRB-1", {**good, "workaround": "restart, then drain"})
    assert status == 200 and body["known_error"]["workaround"] == "restart, then drain"
    assert (await patch(client, "PRB-1", {"state": "resolved"}))[0] == 200
    assert (await put_known_error(client, "PRB-1", good))[0] == 409
    status, body = await patch(client, "PRB-1", {"state": "known_error"})  # reopened to its known error
    assert status == 200 and body["state"] == "known_error" and body["reopen_count"] == 1
    detail = await get(client, "/api/v1/problems/PRB-1")
    assert [e["reason"] for e in detail["timeline"] if e["action"] == "known_error"] == [
        "known error recorded by operator-client", "known error updated by operator-client"]


async def test_listing_filters_and_pages(client: Client, running: tuple[Daemon, FakeClock], am: Alerts) -> None:
    for i in ("a", "b", "c"):
        await am.recur(instance=i)
    for i in ("a", "a"):
        await am.recur("DiskSpaceLow", instance=i)
    assert (await patch(client, "PRB-2", {"owner": "storage-team"}))[0] == 200
    assert [p["id"] for p in (await get(client, "/api/v1/problems"))["items"]] == ["PRB-2", "PRB-1"]
    first = await get(client, "/api/v1/problems", limit="1")
    assert [p["id"] for p in first["items"]] == ["PRB-2"] and first["next_cursor"]
    rest = await get(client, "/api/v1/problems", limit="1", cursor=first["next_cursor"])
    assert [p["id"] for p in rest["items"]] == ["PRB-1"]
    assert [p["id"] for p in (await get(client, "/api/v1/problems", owner="storage-team"))["items"]] == ["PRB-2"]
    assert [p["id"] for p in (await get(client, "/api/v1/problems", rule="exporter-down"))["items"]] == ["PRB-1"]
    assert (await get(client, "/api/v1/problems", state="closed"))["items"] == []
    assert len((await get(client, "/api/v1/problems", state="open"))["items"]) == 2
    later = format_time(T0 + timedelta(days=1))
    assert (await get(client, "/api/v1/problems", since=later))["items"] == []
    for params in ({"state": "bogus"}, {"limit": "0"}, {"since": "yesterday"}, {"cursor": "!!"}):
        assert (await client.get("/api/v1/problems", headers=VIEW, params=params)).status == 400
    assert (await client.get("/api/v1/problems", headers=d.bearer(Role.INGEST))).status == 403


async def test_one_unresolved_problem_per_signature(store: SqlStore) -> None:
    row = {"rule": "r", "signature": "r{}", "signature_hash": "h", "title": "t", "state": "open", "owner": None,
           "incident_count": 1, "first_seen_at": T0, "last_seen_at": T0, "known_error": None, "opened_at": T0,
           "reopen_count": 0, "updated_at": T0}
    await store.write(lambda c: problems.create(c, {**row, "state": "resolved"}))
    await store.write(lambda c: problems.create(c, row))
    with pytest.raises(StorageError):
        await store.write(lambda c: problems.create(c, {**row, "state": "known_error"}))
    await store.write(lambda c: problems.create(c, {**row, "state": "closed"}))
    latest = await store.read(lambda c: problems.latest(c, "h"))
    assert latest is not None and latest["state"] == "open"  # the unresolved one, though not the newest
