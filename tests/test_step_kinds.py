"""The `notify` and `silence` step kinds: load-time checks (matcher templates can never add a matcher, notify only
to configured non-PagerDuty notifiers) and the notify step through the running daemon (real pipeline, runner,
outbox, store on SQLite and PostgreSQL) to real local webhook and Slack sinks; the runs in page bodies."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from itsmd.actions.notify import Note
from itsmd.app import Daemon, Timers
from itsmd.clock import FakeClock
from itsmd.config.model import Automation, Notifier
from itsmd.config.playbooks import read_playbooks
from itsmd.config.secret import Secret
from itsmd.core.access import Role
from itsmd.core.playbook import SilenceSpec
from itsmd.notify.outbox import Retry
from itsmd.storage import pages
from itsmd.storage.tables import pages as pages_table
from tests import daemon as d
from tests.daemon import send
from tests.notify_sinks import HttpSink

Client = TestClient  # type: ignore[type-arg]
ING, VIEW = d.bearer(Role.INGEST), d.bearer(Role.VIEWER)
HOSTILE = 'web-1 {{7*7}} <!channel> "q", job="x"'


# --- load-time checks --------------------------------------------------------------------------------------------

def load(tmp_path: Path, steps: str, notifiers: dict[str, str] | None = None) -> tuple[Any, list[str]]:
    (tmp_path / "p.yaml").write_text(f"name: p\nsteps:\n{steps}")
    loaded = read_playbooks([str(tmp_path / "p.yaml")], tmp_path,
                            notifiers if notifiers is not None else {"chat": "slack", "oncall": "pagerduty"})
    return loaded.playbooks.by_name("p"), loaded.problems


def test_silence_matchers_take_the_value_only_from_the_template(tmp_path: Path) -> None:
    book, problems = load(tmp_path, """
  - name: mute
    silence:
      matchers: ['alertname="NodeDown"', 'instance="{{ labels.instance }}"', '"my label"!="x-{{ labels.a }}"',
                 'job=~"node|db"']
      duration: 10m
""")
    assert problems == []
    spec = book.steps[0].spec
    assert isinstance(spec, SilenceSpec) and spec.duration == 600.0
    ctx = {"labels": {"instance": 'a", job="x', "a": "{{7*7}}\nb,c"}}
    got = [(m.name, m.op, m.value.render(ctx), m.is_regex, m.is_equal) for m in spec.matchers]
    assert got == [("alertname", "=", "NodeDown", False, True), ("instance", "=", 'a", job="x', False, True),
                   ("my label", "!=", "x-{{7*7}}\nb,c", False, False), ("job", "=~", "node|db", True, True)]
    assert book.steps[0].idempotent  # found again by its marker: safe to repeat


@pytest.mark.parametrize(("matcher", "message"), [
    ('instance=~"{{ labels.instance }}"', "must be written literally"),
    ('{{ labels.name }}="x"', "not a matcher"),
    ('"{{ labels.name }}"="x"', "label name of a matcher must be written literally"),
    ("instance={{ labels.instance }}", "double-quoted as a whole"),
    ('instance="{{ labels.instance }}", job="{{ labels.job }}"', "one matcher per list item"),
    ('instance="{{ params.nope }}"', "unknown param"),
    ("instance", "not a matcher"),
])
def test_silence_matcher_problems(tmp_path: Path, matcher: str, message: str) -> None:
    book, problems = load(tmp_path, f"""
  - name: mute
    silence: {{matchers: ['{matcher.replace("'", "''")}'], duration: 5m}}
""")
    assert book is None and len(problems) == 1 and "steps[0].silence.matchers[0]" in problems[0], problems
    assert message in problems[0], problems


def test_notify_names_configured_notifiers_but_not_pagerduty(tmp_path: Path) -> None:
    book, problems = load(tmp_path, """
  - {name: a, notify: {to: chat, text: "hi {{ labels.instance }}"}}
  - {name: b, notify: {to: [oncall, nobody], text: hi}}
""")
    assert book is None
    assert any("steps[1].notify.to[0]" in p and "PagerDuty" in p for p in problems), problems
    assert any("steps[1].notify.to[1]" in p and "unknown notifier 'nobody'" in p for p in problems), problems
    book, problems = load(tmp_path, "  - {name: a, notify: {to: chat, text: \"hi {{ labels.instance }}\"}}\n")
    assert problems == [] and book.steps[0].spec.to == ("chat",) and book.steps[0].idempotent


def test_itsmd_check_reports_notify_and_silence_problems(tmp_path: Path) -> None:
    import os
    import subprocess

    config = ("notifiers:\n  - {name: oncall, type: pagerduty, routing_key_env: PD_KEY}\n"
              "  - {name: chat, type: slack, url_env: SLACK_URL}\n")
    (tmp_path / "itsmd.yaml").write_text(config)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "p.yaml").write_text("""
name: p
steps:
  - {name: a, notify: {to: ghost, text: hi}}
  - {name: b, notify: {to: oncall, text: hi}}
  - {name: c, silence: {matchers: ['job=~"{{ labels.job }}"'], duration: 5m}}
  - {name: d, notify: {to: chat, text: "fine {{ labels.instance }}"}}
""")
    env = {**os.environ, "PD_KEY": "k", "SLACK_URL": "https://hooks.example.org/x"}
    out = subprocess.run([sys.executable, "-m", "itsmd", "check"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 1, out
    lines = out.stdout.splitlines()
    assert any("p.yaml: steps[0].notify.to: unknown notifier 'ghost' (known: chat, oncall)" in x for x in lines), lines
    assert any("p.yaml: steps[1].notify.to:" in x and "PagerDuty" in x for x in lines), lines
    assert any("p.yaml: steps[2].silence.matchers[0]:" in x and "literally" in x for x in lines), lines
    assert not any("steps[3]" in x for x in lines), lines
    assert any("p.yaml: steps[2].silence: no alertmanagers configured" in x for x in lines), lines
    (tmp_path / "itsmd.yaml").write_text(config + "alertmanagers: [{url: 'http://127.0.0.1:9093'}]\n")
    out = subprocess.run([sys.executable, "-m", "itsmd", "check"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env=env)
    assert not any("no alertmanagers" in x for x in out.stdout.splitlines()), out.stdout


# --- through the daemon -------------------------------------------------------------------------------------------

RULES = """
rules:
  - name: web-down
    match: ['alertname="WebDown"']
    group_by: [instance]
    playbooks: [tell]
  - name: broken
    match: ['alertname="Broken"']
    group_by: [instance]
    escalate: {to: [hooks, chat]}
    playbooks: [fail-fix]
  - name: storm
    match: ['alertname="Storm"']
    group_by: [instance]
    escalate: {to: [hooks]}
"""
TELL = """
name: tell
steps:
  - name: chat
    notify: {to: [hooks, chat], text: "fixing {{ labels.instance }}"}
  - name: default-only
    notify: {text: "to the defaults"}
"""
FAIL = f"""
name: fail-fix
steps:
  - {{name: act, exec: ["{sys.executable}", "-c", "import sys; sys.exit(3)"], timeout: 20s}}
"""
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


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
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "tell.yaml").write_text(TELL)
    (tmp_path / "playbooks" / "fail.yaml").write_text(FAIL)
    notifiers = (
        Notifier("hooks", "webhook", settings=MappingProxyType({"url": Secret(sink.url("/hook"))})),
        Notifier("chat", "slack", settings=MappingProxyType({"url": Secret(sink.url("/chat"))})),
        Notifier("oncall", "pagerduty", default=True, settings=MappingProxyType({
            "routing_key": Secret("R0UTING"), "api_url": sink.url("/v2/enqueue")})),
        Notifier("mail-hook", "webhook", default=True, settings=MappingProxyType({"url": Secret(sink.url("/dflt"))})),
    )
    cfg = replace(d.config(tmp_path, database=database), notifiers=notifiers,
                  external_url="https://itsmd.example.org/", automation=Automation(max_pages_per_hour=3))
    clock = FakeClock(START)
    timers = Timers(expiry_tick=0.2, pipeline_poll=0.2, shutdown_grace=2.0, deadline_tick=3600.0, run_poll=0.2,
                    pages=Retry(base=10.0, cap=40.0, attempts=3, timeout=5.0, poll=0.1))
    dm = Daemon(cfg, clock=clock, timers=timers)
    await dm.start_core()
    yield dm, clock
    await dm.stop()


@pytest.fixture
async def client(running: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running[0].app)


def alert(name: str, instance: str) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": name, "instance": instance}, "annotations": {},
            "startsAt": "2026-11-28T11:59:00Z", "endsAt": "0001-01-01T00:00:00Z"}


async def ended_run(client: Client, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = await client.get("/api/v1/runs", headers=VIEW)
        items = (await resp.json())["items"]
        if items and items[0]["state"] not in ("pending", "running"):
            return items[0]  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"the run never ended: {items}"
        await asyncio.sleep(0.05)


async def test_notify_step_delivers_through_the_outbox_to_webhook_and_slack(
        client: Client, running: tuple[Daemon, FakeClock], sink: HttpSink) -> None:
    dm, clock = running
    sink.statuses = [503]  # the first delivery fails: the step has succeeded already, the outbox retries
    await send(client, dm, alert("WebDown", HOSTILE))
    run = await ended_run(client)
    assert run["state"] == "succeeded"
    chat, default_only = run["steps"]
    assert (chat["kind"], chat["state"], chat["output"]) == ("notify", "succeeded", "queued for hooks, chat")
    # no `to`: the default notifiers, leaving out PagerDuty (it takes pages, not messages)
    assert default_only["output"] == "queued for mail-hook"
    await sink.wait_for(3)  # one delivery answered 503 and waits for its retry; the other two arrived
    clock.advance(11)
    dm.outbox.wake()
    await sink.wait_for(4)
    bodies = {path: sink.bodies(path) for path in ("/hook", "/chat", "/dflt")}
    assert sorted(len(b) for b in bodies.values()) == [1, 1, 2]  # the failed attempt and its retry
    hook = bodies["/hook"][-1]
    assert hook["event"] == "notify" and hook["text"] == hook["reason"] == f"fixing {HOSTILE}"  # rendered once
    assert hook["run"] == run["id"] and hook["incident"]["id"] == run["incident_id"]
    assert [r["id"] for r in hook["runs"]] == [run["id"]]
    slack = bodies["/chat"][-1]
    assert "{{7*7}}" in slack["text"] and "49" not in slack["text"] and "&lt;!channel&gt;" in slack["text"]
    assert "<!channel>" not in slack["text"] and run["id"] in slack["text"]
    assert sink.bodies("/v2/enqueue") == []
    dflt = bodies["/dflt"][-1]
    assert dflt["text"] == "to the defaults"
    number = int(run["incident_id"].split("-")[1])
    deadline = time.monotonic() + 10
    while True:  # the sender records each delivery just after the sink answered
        rows = await dm.store.read(lambda conn: pages.of_incident(conn, number))
        if all(r["state"] == "sent" for r in rows) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert {(r["event"], r["notifier"], r["state"]) for r in rows} == {
        ("notify", n, "sent") for n in ("hooks", "chat", "mail-hook")}
    detail = await (await client.get(f"/api/v1/incidents/{run['incident_id']}", headers=VIEW)).json()
    assert sum(e["action"] == "run_notified" for e in detail["timeline"]) == 2


async def test_a_repeated_notify_step_queues_nothing_twice(client: Client, running: tuple[Daemon, FakeClock],
                                                          sink: HttpSink) -> None:
    dm, _ = running
    await send(client, dm, alert("WebDown", "web-2"))
    run = await ended_run(client)
    number = int(run["incident_id"].split("-")[1])
    notifier = dm.runner.actions.notifier
    assert notifier is not None
    again = await notifier.send(Note(run["id"], number, 0, "chat", ("hooks", "chat"), "fixing web-2"))
    assert again.succeeded and again.output == "already queued for hooks, chat"
    rows = await dm.store.read(lambda conn: pages.of_incident(conn, number))
    assert len(rows) == 3  # chat: hooks + chat; default-only: mail-hook


async def test_pages_carry_the_incidents_runs(client: Client, running: tuple[Daemon, FakeClock],
                                              sink: HttpSink) -> None:
    dm, clock = running
    await send(client, dm, alert("Broken", "db-1"))
    run = await ended_run(client)
    assert (run["state"], run["reason"]) == ("failed", "step_failed")
    clock.advance(3600)  # past any recheck: the tick decides with the run ended
    review = await dm.page()
    assert review.paged == 1
    await sink.wait_for(2)
    [hook] = sink.bodies("/hook")
    assert hook["event"] == "escalate" and "failed" in hook["reason"]
    [r] = hook["runs"]
    assert (r["id"], r["playbook"], r["state"], r["reason"]) == (run["id"], "fail-fix", "failed", "step_failed")
    [slack] = sink.bodies("/chat")
    assert "*Reason:*" in slack["text"] and f"*Runs:* {run['id']} fail-fix failed (step_failed)" in slack["text"]


async def test_a_storm_tick_decides_in_small_transactions_within_the_budget(
        client: Client, running: tuple[Daemon, FakeClock], sink: HttpSink) -> None:
    dm, clock = running
    await send(client, dm, *(alert("Storm", f"s{i}") for i in range(60)))
    clock.advance(1)
    review = await dm.page()  # three transactions of page_batch (25) incidents in one tick
    assert (review.due, review.paged, review.suppressed) == (60, 3, 57)
    rows = await dm.store.read(lambda conn: [dict(r._mapping) for r in conn.execute(select(pages_table))])
    summaries = [r for r in rows if r["event"] == "summary"]
    assert sorted(r["notifier"] for r in summaries) == ["hooks", "mail-hook", "oncall"]  # one summary, each
    assert sum(r["event"] == "escalate" and r["state"] != "suppressed" for r in rows) == 3
    assert sum(r["state"] == "suppressed" for r in rows) == 57
    assert (await dm.page()).due == 0  # nothing left for the next tick
