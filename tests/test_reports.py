"""Report math against a hand-computed fixture, on SQLite and PostgreSQL (the same expected figures on both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection

from itsmd import report
from itsmd.core import report as core
from itsmd.core.report import Dimension, Period, Settings, Targets
from itsmd.storage.database import Database
from itsmd.storage.tables import alerts, incidents, problems, runs

UTC0 = datetime(2026, 11, 16, tzinfo=UTC)  # Monday 01:00 in Berlin (UTC+1)
PERIOD = Period(UTC0, datetime(2026, 11, 30, tzinfo=UTC))  # 14 days = 1,209,600 s
NOW = PERIOD.end
SETTINGS = Settings("Europe/Berlin", {"P1": Targets(300.0, 3600.0), "P2": Targets(900.0, 14400.0)},
                    frozenset({"r1"}))
SIG = {"rule": "r1", "labels": {"service": "web"}}


def t(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def s(base: datetime, seconds: float | None) -> datetime | None:
    return None if seconds is None else base + timedelta(seconds=seconds)


def incident(conn: Connection, *, detected: datetime, opened: float = 0, ack: float | None = None,
             restored: float | None = None, resolved: float | None = None, state: str = "resolved",
             priority: str = "P1", service: str | None = "web", owner: str | None = "team-a", rule: str = "r1",
             resolution: str | None = None, signature_hash: str | None = None, problem_id: int | None = None,
             reopen_count: int = 0) -> int:
    row: dict[str, Any] = dict(
        rule=rule, key={}, key_hash="k", title="t", state=state, priority=priority, impact="high",
        urgency="high", service=service, owner=owner, labels={}, alert_count=1, firing_count=0,
        detected_at=detected, opened_at=s(detected, opened), acknowledged_at=s(detected, ack),
        restored_at=s(detected, restored), resolved_at=s(detected, resolved), resolution=resolution,
        signature=SIG if signature_hash else None, signature_hash=signature_hash, problem_id=problem_id,
        reopen_count=reopen_count, flapping=False, signal_lost=False, updated_at=detected)
    return int(conn.execute(incidents.insert().values(**row)).inserted_primary_key[0])


def alert(conn: Connection, fp: str, name: str, starts: datetime, occurrences: int, incident_id: int | None) -> None:
    conn.execute(alerts.insert().values(
        fingerprint=fp, status="resolved", labels={"alertname": name, "instance": "x"}, annotations={},
        generator_url="", starts_at=starts, first_seen_at=starts, last_seen_at=starts, occurrences=occurrences,
        incident_id=incident_id))


def run(conn: Connection, incident_id: int, state: str, started: bool = True, dry_run: bool = False) -> None:
    at = t(20, 10)
    conn.execute(runs.insert().values(
        playbook="fix", incident_id=incident_id, state=state, dry_run=dry_run, trigger="opened", cycle=0,
        requested_by="system", context={}, idempotency_key=f"{incident_id}-{state}-{dry_run}", created_at=at,
        started_at=at if started else None, updated_at=at))


def fixture(conn: Connection) -> None:
    conn.execute(problems.insert().values(
        id=1, rule="r1", signature=SIG, signature_hash="h1", title="web down", state="known_error",
        incident_count=3, first_seen_at=t(20, 10), last_seen_at=t(25, 8), opened_at=t(20, 10), reopen_count=0,
        known_error={"root_cause": "x", "workaround": "y", "playbook": None}, updated_at=t(25, 8)))
    # A: acknowledged after 300 s (opened 60 s after detection), restored after 1800 s, by hand.
    a = incident(conn, detected=t(20, 10), opened=60, ack=360, restored=1800, resolved=1800, resolution="manual",
                 signature_hash="h1", problem_id=1)
    # B: Sunday 23:59:59 in Berlin (week 47); never acknowledged, auto-remediated after 600 s.
    b = incident(conn, detected=t(22, 22, 59, 59), opened=1, restored=600, resolved=600,
                 resolution="auto_remediated", signature_hash="h1", problem_id=1)
    # C: Monday 00:00 in Berlin (week 48); P2, acknowledged after 1000 s (> 900), resolved by hand while firing.
    c = incident(conn, detected=t(22, 23), ack=1000, resolved=2000, priority="P2", rule="r2",
                 resolution="manual", signature_hash="h2")
    # D: still open, never acknowledged, no owner, another service.
    d = incident(conn, detected=t(24, 12), state="open", service="db", owner=None, rule="r2")
    # E: reopened once, acknowledged after 60 s (opened 30 s after detection), restored after 7200 s (> 3600).
    e = incident(conn, detected=t(25, 8), opened=30, ack=90, restored=7200, resolved=7200, rule="r2",
                 resolution="self_healed", signature_hash="h1", problem_id=1, reopen_count=1)
    # Merged away (closed, never resolved) and outside the period: neither counts.
    incident(conn, detected=t(21, 9), state="closed", signature_hash="h1", problem_id=1)
    incident(conn, detected=t(10, 9), restored=10, resolved=10, resolution="manual", signature_hash="h1")
    # Runs: B's succeeded, A's failed; D's still running, E's dry run and C's skipped one do not count.
    run(conn, b, "succeeded")
    run(conn, a, "failed")
    run(conn, d, "running")
    run(conn, e, "succeeded", dry_run=True)
    run(conn, c, "skipped", started=False)
    alert(conn, "a1", "HighLatency", t(20, 10), 5, a)
    alert(conn, "a2", "HighLatency", t(22, 22, 59, 59), 3, b)
    alert(conn, "a3", "Disk", t(21, 0), 2, None)
    alert(conn, "a4", "Down", t(22, 23), 1, c)
    alert(conn, "a5", "Down", t(24, 12), 1, d)
    alert(conn, "a6", "Down", t(25, 8), 1, e)
    alert(conn, "a7", "Down", t(25, 9), 2, e)
    alert(conn, "a8", "Old", t(10, 9), 10, None)


@pytest.fixture
def conn(database: Database) -> Any:
    with database.engine.begin() as c:
        fixture(c)
    with database.engine.connect() as c:
        yield c


def stat(mean: float | None, median: float | None, p90: float | None, n: int) -> dict[str, Any]:
    return {"mean": mean, "median": median, "p90": p90, "n": n}


def test_summary_matches_the_hand_computed_figures(conn: Connection) -> None:
    doc = report.summary(conn, SETTINGS, PERIOD, None, NOW, noisiest=10)
    assert doc["from"] == "2026-11-16T00:00:00.000000Z" and doc["to"] == "2026-11-30T00:00:00.000000Z"
    assert doc["incidents"] == 5
    assert doc["mtta"] == stat(453.333, 300.0, 1000.0, 3)  # A 300, C 1000, E 60
    assert doc["mttr"] == stat(3200.0, 1800.0, 7200.0, 3)  # A 1800, B 600, E 7200; C excluded, D open
    assert doc["unrestored"] == 1
    # web: A 1800 + (B and C overlap: 22:59:59 .. 23:33:20 = 2001) + E 7200 = 11001 down, 4 incidents;
    # db: D open from 24th 12:00 to the end = 475200 down, 1 incident.
    assert doc["mtbf"] == stat(517024.875, 517024.875, 734400.0, 2)
    assert doc["self_healed_rate"] == 0.25  # E of A, B, C, E
    assert doc["auto_remediation_rate"] == 0.5  # B of A, B (rule r1 has a playbook)
    assert doc["playbook_success_rate"] == 0.5
    assert doc["alerts"] == 15 and doc["episodes"] == 7
    assert doc["dedup_ratio"] == pytest.approx(1 - 7 / 15)
    assert doc["noise_reduction"] == pytest.approx(1 - 5 / 7)
    assert doc["sla_breaches"] == {"P1": {"ack": 1, "restore": 2}, "P2": {"ack": 1, "restore": 0}}
    assert doc["noisiest"] == [{"alertname": "HighLatency", "deliveries": 8, "episodes": 2},
                               {"alertname": "Down", "deliveries": 5, "episodes": 4},
                               {"alertname": "Disk", "deliveries": 2, "episodes": 1}]
    assert doc["by"] == {}


def test_weeks_follow_the_report_time_zone(conn: Connection) -> None:
    doc = report.summary(conn, SETTINGS, PERIOD, Dimension.WEEK, NOW)
    assert list(doc["by"]) == ["2026-W47", "2026-W48", "2026-W49"]
    w47, w48, w49 = (doc["by"][w] for w in ("2026-W47", "2026-W48", "2026-W49"))
    assert (w47["incidents"], w48["incidents"], w49["incidents"]) == (2, 3, 0)
    assert w47["mttr"] == stat(1200.0, 1200.0, 1800.0, 2)
    assert w48["mttr"] == stat(7200.0, 7200.0, 7200.0, 1)
    # Week 47 ends Sunday 23:00 UTC: 601200 s; B is cut to its one second inside the week.
    assert w47["mtbf"] == stat(299699.5, 299699.5, 299699.5, 1)
    assert (w47["alerts"], w47["episodes"]) == (10, 3)
    assert (w47["playbook_success_rate"], w48["playbook_success_rate"]) == (0.5, None)
    assert w49 == {**w49, "incidents": 0, "mttr": stat(None, None, None, 0), "self_healed_rate": None,
                   "dedup_ratio": None}


def test_groups_by_service_owner_and_priority(conn: Connection) -> None:
    by_service = report.summary(conn, SETTINGS, PERIOD, Dimension.SERVICE, NOW)["by"]
    assert {g: v["incidents"] for g, v in by_service.items()} == {"db": 1, "web": 4, core.NO_GROUP: 0}
    assert by_service["web"]["mtbf"] == stat(299649.75, 299649.75, 299649.75, 1)
    assert by_service[core.NO_GROUP]["alerts"] == 2  # the unrouted Disk alert
    # deliveries and episodes by the alerts' incident: web a1 5 + a2 3 + a4 1 + a6 1 + a7 2, db a5
    assert {g: (v["alerts"], v["episodes"]) for g, v in by_service.items()} == {
        "web": (12, 5), "db": (1, 1), core.NO_GROUP: (2, 1)}
    by_owner = report.summary(conn, SETTINGS, PERIOD, Dimension.OWNER, NOW)["by"]
    assert by_owner["team-a"]["mtta"]["n"] == 3 and by_owner[core.NO_GROUP]["incidents"] == 1
    assert {g: (v["alerts"], v["episodes"]) for g, v in by_owner.items()} == {  # D has no owner: a5 + Disk
        "team-a": (12, 5), core.NO_GROUP: (3, 2)}
    by_priority = report.summary(conn, SETTINGS, PERIOD, Dimension.PRIORITY, NOW)["by"]
    assert by_priority["P2"]["sla_breaches"]["P2"] == {"ack": 1, "restore": 0}
    assert by_priority["P1"]["sla_breaches"]["P2"] == {"ack": 0, "restore": 0}


def test_mttr_report_per_group_and_week(conn: Connection) -> None:
    doc = report.mttr(conn, SETTINGS, PERIOD, Dimension.SERVICE)
    assert doc["mttr"] == stat(3200.0, 1800.0, 7200.0, 3)
    assert doc["weeks"]["2026-W47"]["mttr"]["n"] == 2
    web = doc["by"]["web"]
    assert web["mttr"]["n"] == 3 and web["weeks"]["2026-W48"]["mtta"] == stat(530.0, 530.0, 1000.0, 2)
    assert doc["by"]["db"]["mttr"] == stat(None, None, None, 0)


def test_recurring_problems(conn: Connection) -> None:
    doc = report.recurring(conn, PERIOD)
    assert doc["items"] == [{"signature": SIG, "problem_id": "PRB-1", "incidents": 3, "downtime": 9600.0,
                             "last_seen_at": "2026-11-25T08:00:00.000000Z", "known_error": True}]


def test_zero_incidents(database: Database) -> None:
    with database.engine.connect() as c:
        doc = report.summary(c, SETTINGS, PERIOD, Dimension.SERVICE, NOW)
    assert doc["incidents"] == 0 and doc["mttr"] == stat(None, None, None, 0) and doc["by"] == {}
    assert doc["auto_remediation_rate"] is None and doc["dedup_ratio"] is None and "noisiest" not in doc
