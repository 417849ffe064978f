"""A page survives `kill -9` of a real `itsmd serve`: decided and stored in the outbox, not yet delivered when the
daemon dies, it is sent after the restart, once. So does the message of a playbook's notify step."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.notify_sinks import HttpSink
from tests.process import WEBHOOK, Daemons, ServeProcess, firing_alert, webhook_body

pytestmark = pytest.mark.slow
WAIT = 30.0  # seconds for a page to arrive (the daemon's paging tick and first retry are 5 s each)
RULES = """
rules:
  - name: node-down
    match: ['alertname="NodeDown"']
    group_by: [instance]
"""


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    with Daemons(tmp_path) as made:
        yield made


@pytest.fixture
async def sink() -> AsyncIterator[HttpSink]:
    s = await HttpSink().start()
    yield s
    await s.close()


async def wait_until(what: str, p: ServeProcess, check: object) -> None:
    deadline = time.monotonic() + WAIT
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            p.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_pending_page_is_sent_after_kill_9(daemons: Daemons, sink: HttpSink) -> None:
    folder = daemons.root / "itsmd"
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "main.yaml").write_text(RULES)
    (folder / "hook.url").write_text(sink.url("/hook/s3cret") + "\n")
    p = daemons.new("itsmd", config={
        "rules": ["rules/*.yaml"],
        "notifiers": [{"name": "hooks", "type": "webhook", "url_file": "hook.url", "default": True}],
    })
    sink.statuses = [503] * 1000  # the receiver is down: the page stays pending in the outbox
    await p.start_async()
    headers = {**p.ingest_headers(), "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s:
        body = webhook_body([firing_alert({"alertname": "NodeDown", "instance": "db1"})])
        async with s.post(p.url + WEBHOOK, data=json.dumps(body), headers=headers) as resp:
            assert resp.status == 200
    await wait_until("the first delivery attempt", p, lambda: len(sink.received) >= 1)
    p.kill9()
    attempts = len(sink.received)
    sink.statuses = []  # the receiver is back
    await p.start_async()
    await wait_until("the page after the restart", p, lambda: len(sink.received) > attempts)
    await asyncio.sleep(6.0)  # one more retry interval: nothing else may come
    bodies = sink.bodies("/hook/s3cret")
    assert len(bodies) == attempts + 1
    assert {b["incident"]["id"] for b in bodies} == {"INC-1"} and {b["event"] for b in bodies} == {"escalate"}
    assert "s3cret" not in p.log()
    p.terminate()


async def test_a_notify_steps_message_survives_kill_9(daemons: Daemons, sink: HttpSink) -> None:
    """The notify step succeeded once its message was queued; the receiver is down, the daemon is killed, and the
    message still arrives after the restart — once, the run not repeated."""
    folder = daemons.root / "itsmd"
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "main.yaml").write_text(RULES.replace(
        "group_by: [instance]", "group_by: [instance]\n    escalate: {after: 1h}\n    playbooks: [tell]"))
    (folder / "playbooks").mkdir()
    (folder / "playbooks" / "tell.yaml").write_text(
        'name: tell\nsteps:\n  - {name: say, notify: {to: hooks, text: "fixing {{ labels.instance }}"}}\n')
    (folder / "hook.url").write_text(sink.url("/hook/s3cret") + "\n")
    p = daemons.new("itsmd", config={
        "rules": ["rules/*.yaml"], "playbooks": ["playbooks/*.yaml"],
        "notifiers": [{"name": "hooks", "type": "webhook", "url_file": "hook.url"}],
    })
    sink.statuses = [503] * 1000  # the receiver is down: the message stays pending in the outbox
    await p.start_async()
    headers = {**p.ingest_headers(), "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s:
        body = webhook_body([firing_alert({"alertname": "NodeDown", "instance": "db1"})])
        async with s.post(p.url + WEBHOOK, data=json.dumps(body), headers=headers) as resp:
            assert resp.status == 200
        await wait_until("the first delivery attempt", p, lambda: len(sink.received) >= 1)
        deadline = time.monotonic() + WAIT
        while True:  # the run's end is written just after the step queued the message
            async with s.get(p.url + "/api/v1/runs", headers=p.viewer_headers()) as resp:
                [run] = (await resp.json())["items"]
            if run["state"] != "running" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert run["state"] == "succeeded" and run["steps"][0]["output"] == "queued for hooks"
    p.kill9()
    attempts = len(sink.received)
    sink.statuses = []  # the receiver is back
    await p.start_async()
    await wait_until("the message after the restart", p, lambda: len(sink.received) > attempts)
    await asyncio.sleep(6.0)  # one more retry interval: nothing else may come
    bodies = sink.bodies("/hook/s3cret")
    assert len(bodies) == attempts + 1
    assert {(b["event"], b["text"], b["run"]) for b in bodies} == {("notify", "fixing db1", run["id"])}
    p.terminate()
