"""Services through the running daemon (SQLite and PostgreSQL): service and owner on incidents, tier-driven impact,
dependency symptoms, resolution by causes only, the unmapped counter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from tests import daemon as d
from tests.test_incidents_flow import alert, get, send

Client = TestClient  # type: ignore[type-arg]
RULES = """
rules:
  - name: service-down
    match: ['alertname="ServiceDown"']
    group_by: [job, namespace]
    title: "{{ service.name if service else 'unmapped' }} down"
    impact: "{{ 'high' if service.tier == 1 else 'low' }}"
    urgency: high
  - name: errors
    match: ['alertname="HighErrorRate"']
    group_by: [namespace]
    urgency: medium
  - name: latency
    match: ['alertname="Latency"']
    group_by: [alertname]
"""
SERVICES = """
services:
  - {name: postgres-main, owner: dba-team, tier: 1, match: ['job="postgres"']}
  - {name: checkout, owner: payments-team, tier: 1, match: ['namespace="checkout"'], depends_on: [postgres-main]}
  - {name: reports, owner: analytics-team, tier: 3, match: ['namespace="reports"'], depends_on: [checkout]}
"""


@pytest.fixture(params=["sqlite", "postgres"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Daemon]:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    (tmp_path / "services.yaml").write_text(SERVICES)
    config = replace(d.config(tmp_path, database=database), services=tmp_path / "services.yaml")
    dm = d.daemon(config, FakeClock(datetime(2026, 11, 25, 22, 0, tzinfo=UTC)))
    await dm.start_core()
    yield dm
    await dm.stop()


@pytest.fixture
async def client(running: Daemon, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running.app)


async def incidents(client: Client) -> list[dict[str, Any]]:
    return list(reversed((await get(client, "/api/v1/incidents"))["items"]))  # oldest first


def postgres_down(status: str = "firing") -> dict[str, Any]:
    return alert("ServiceDown", status, job="postgres", instance="db-1")


async def test_incidents_carry_service_owner_and_tier_driven_impact(client: Client, running: Daemon) -> None:
    await send(client, running, alert("HighErrorRate", namespace="reports"), postgres_down(),
               alert("HighErrorRate", namespace="elsewhere"), alert("ServiceDown", job="mystery"))
    reports, postgres, elsewhere, mystery = await incidents(client)
    fields = ("rule", "service", "owner", "impact", "urgency", "priority", "title")
    # `errors` has no impact template: the default impact follows the tier (3 -> low; unmapped -> medium)
    assert [reports[f] for f in fields] == ["errors", "reports", "analytics-team", "low", "medium", "P4",
                                            "HighErrorRate"]
    assert [elsewhere[f] for f in fields] == ["errors", None, None, "medium", "medium", "P3", "HighErrorRate"]
    # `service-down` reads service.tier in its templates; for an unmapped alert that is false, not an error
    assert [postgres[f] for f in fields] == ["service-down", "postgres-main", "dba-team", "high", "high", "P1",
                                             "postgres-main down"]
    assert [mystery[f] for f in fields] == ["service-down", None, None, "low", "high", "P3", "unmapped down"]
    detail = await get(client, f"/api/v1/incidents/{mystery['id']}")
    assert "template_error" not in [e["action"] for e in detail["timeline"]]
    assert [i["id"] for i in (await get(client, "/api/v1/incidents", service="dba-team"))["items"]] == []
    assert [i["id"] for i in (await get(client, "/api/v1/incidents", service="postgres-main"))["items"]] == [
        postgres["id"]]


async def test_dependent_services_alerts_join_the_cause_as_symptoms(client: Client, running: Daemon) -> None:
    await send(client, running, postgres_down())
    [cause] = await incidents(client)
    await send(client, running, alert("HighErrorRate", namespace="checkout", pod="a"))
    await send(client, running, alert("HighErrorRate", namespace="reports"))  # reports -> checkout -> postgres
    assert [i["id"] for i in await incidents(client)] == [cause["id"]]  # no incident of their own
    detail = await get(client, f"/api/v1/incidents/{cause['id']}")
    assert detail["alert_count"] == 3 and detail["firing_count"] == 3
    symptoms = [(a["labels"]["namespace"], a["symptom"]) for a in detail["alerts"] if a["symptom"]]
    assert symptoms == [("checkout", "dependency"), ("reports", "dependency")]
    joined = [e for e in detail["timeline"] if e["action"] == "symptom_joined"]
    assert [e["reason"] for e in joined] == [
        "an alert of checkout, which depends on postgres-main, joined it as a symptom",
        "an alert of reports, which depends on postgres-main, joined it as a symptom",
    ]
    assert joined[0]["data"]["symptom"] == "dependency"
    assert detail["title"] == "postgres-main down" and detail["labels"]["job"] == "postgres"  # causes only

    # Resolution counts the cause alerts only: the symptoms still fire, the incident resolves.
    await send(client, running, postgres_down("resolved"))
    detail = await get(client, f"/api/v1/incidents/{cause['id']}")
    assert detail["state"] == "resolved" and detail["resolution"] == "self_healed" and detail["firing_count"] == 2

    # With no unresolved cause left, a dependent service's new alert opens its own incident.
    await send(client, running, alert("HighErrorRate", namespace="checkout", pod="b"))
    _, own = await incidents(client)
    assert (own["rule"], own["service"], own["owner"], own["priority"]) == ("errors", "checkout", "payments-team",
                                                                            "P2")  # tier 1: high x medium


async def test_without_a_cause_a_dependent_alert_opens_its_own_incident(client: Client, running: Daemon) -> None:
    await send(client, running, alert("HighErrorRate", namespace="checkout", pod="a"))
    await send(client, running, postgres_down())
    checkout, postgres = await incidents(client)
    assert (checkout["service"], checkout["alert_count"]) == ("checkout", 1)
    assert (postgres["service"], postgres["alert_count"]) == ("postgres-main", 1)  # nothing moves afterwards
    # From now on, checkout's new alerts are symptoms of the postgres incident (as inhibited alerts are).
    await send(client, running, alert("HighErrorRate", namespace="checkout", pod="b"))
    assert (await get(client, f"/api/v1/incidents/{postgres['id']}"))["alert_count"] == 2
    assert (await get(client, f"/api/v1/incidents/{checkout['id']}"))["alert_count"] == 1


async def test_cause_and_symptom_in_one_delivery(client: Client, running: Daemon) -> None:
    await send(client, running, postgres_down(), alert("HighErrorRate", namespace="checkout"))
    [cause] = await incidents(client)  # the cause came first: it takes the symptom that follows it
    alerts = (await get(client, "/api/v1/alerts", incident=cause["id"]))["items"]
    assert sorted((a["labels"].get("namespace", ""), a["symptom"] or "") for a in alerts) == [
        ("", ""), ("checkout", "dependency")]


async def test_symptom_before_its_cause_in_one_delivery_opens_its_own(client: Client, running: Daemon) -> None:
    await send(client, running, alert("HighErrorRate", namespace="checkout"), postgres_down())
    assert [(i["service"], i["alert_count"]) for i in await incidents(client)] == [("checkout", 1),
                                                                                  ("postgres-main", 1)]


async def test_an_alert_of_the_causes_own_rule_and_key_joins_as_a_cause(client: Client, running: Daemon) -> None:
    await send(client, running, alert("Latency", job="postgres"))
    await send(client, running, alert("Latency", namespace="checkout"))  # same rule, same key: a cause
    [inc] = await incidents(client)
    detail = await get(client, f"/api/v1/incidents/{inc['id']}")
    assert detail["service"] == "postgres-main" and [a["symptom"] for a in detail["alerts"]] == [None, None]


async def test_unmapped_alerts_are_counted(client: Client, running: Daemon) -> None:
    await send(client, running, alert("HighErrorRate", namespace="elsewhere"), alert("Nothing"),
               alert("HighErrorRate", namespace="reports"), alert("Nothing", instance="2"))
    await send(client, running, alert("Nothing"))  # a repeat of a firing alert is no new alert
    text = await (await client.get("/metrics")).text()
    assert 'itsmd_alerts_unmapped_total{rule="errors"} 1.0' in text
    assert 'itsmd_alerts_unmapped_total{rule=""} 2.0' in text
