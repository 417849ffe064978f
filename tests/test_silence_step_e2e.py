"""The `silence` step against Debian's real prometheus-alertmanager (behind a small proxy that demands the
`token_file` Bearer token): a run silences the incident's symptoms while it runs, with hostile label values as
one literal matcher value each, and expires the silence when it ends; a retried step adds no second silence."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from itsmd.actions.silence import Request, Silencer, marker
from itsmd.app import Daemon, Timers
from itsmd.clock import SystemClock
from itsmd.config.model import AlertmanagerTarget
from itsmd.config.secret import Secret
from itsmd.core.access import Role
from tests import daemon as d
from tests.process import free_port
from tests.test_alertmanager_e2e import AM, WAIT

pytestmark = [pytest.mark.slow, pytest.mark.skipif(AM is None, reason="apt-get install prometheus-alertmanager")]
Client = TestClient  # type: ignore[type-arg]
ING, VIEW = d.bearer(Role.INGEST), d.bearer(Role.VIEWER)
TOKEN = "am-api-token-0123456789"
# Quotes, a comma and a second matcher's text, a template, a newline: all one literal value of `instance`.
HOSTILE = 'web-1", alertname="Other", job=~".*\n{{7*7}},x'

RULES = """
rules:
  - name: web-down
    match: ['alertname="WebDown"']
    group_by: [instance]
    playbooks: [mute-and-fix]
"""
PLAYBOOK = """
name: mute-and-fix
steps:
  - name: mute
    silence:
      matchers: ['alertname="WebDown"', 'instance="{{ labels.instance }}"']
      duration: 1h
      comment: "itsmd is fixing {{ labels.instance }}"
  - name: work
    sleep: 3s
"""


class RealAlertmanager:
    """prometheus-alertmanager on loopback with a receiver that goes nowhere (this test only uses its API)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
        (folder / "am.yml").write_text(yaml.safe_dump(config))
        self.log = (folder / "am.log").open("wb")
        assert AM is not None
        self.proc = subprocess.Popen(
            [AM, f"--config.file={folder / 'am.yml'}", f"--storage.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{self.url}/-/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("alertmanager did not become ready")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class TokenProxy:
    """Forwards to the Alertmanager only requests carrying `Authorization: Bearer TOKEN` (else 401), counting
    the calls by method."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.calls: list[str] = []
        self.server: TestServer | None = None
        self.session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401, text="no token")
        self.calls.append(request.method)
        assert self.session is not None
        async with self.session.request(request.method, self.upstream + request.path_qs, data=await request.read(),
                                        headers={"Content-Type": "application/json"}) as resp:
            return web.Response(status=resp.status, body=await resp.read(), content_type="application/json")

    async def start(self) -> str:
        self.session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url(""))

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
        if self.session is not None:
            await self.session.close()


@pytest.fixture
async def am(tmp_path: Path) -> AsyncIterator[tuple[RealAlertmanager, TokenProxy, str]]:
    real = RealAlertmanager(tmp_path / "am")
    proxy = TokenProxy(real.url)
    try:
        async with aiohttp.ClientSession() as session:
            await real.wait_ready(session)
        url = await proxy.start()
        yield real, proxy, url
    finally:
        await proxy.close()
        real.close()


@pytest.fixture
async def running(tmp_path: Path, am: tuple[RealAlertmanager, TokenProxy, str]) -> AsyncIterator[Daemon]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "mute.yaml").write_text(PLAYBOOK)
    cfg = replace(d.config(tmp_path), alertmanagers=(AlertmanagerTarget(am[2], Secret(TOKEN)),))
    dm = Daemon(cfg, clock=SystemClock(), timers=Timers(expiry_tick=0.2, pipeline_poll=0.2, shutdown_grace=2.0,
                                                        run_poll=0.2))
    await dm.start_core()
    yield dm
    await dm.stop()


@pytest.fixture
async def client(running: Daemon, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running.app)


async def am_get(url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url + path) as resp:
        assert resp.status == 200
        return await resp.json()


async def am_post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as s, s.post(url + "/api/v2/alerts", json=alerts) as resp:
        assert resp.status == 200, await resp.text()


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)


async def test_silence_step_mutes_while_the_run_runs_with_literal_values(
        client: Client, running: Daemon, am: tuple[RealAlertmanager, TokenProxy, str]) -> None:
    real, proxy, _ = am
    body = {"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "WebDown", "instance": HOSTILE},
                                        "annotations": {}, "startsAt": "2026-11-25T21:50:00Z"}]}
    assert (await client.post("/api/v1/webhooks/alertmanager", json=body, headers=ING)).status == 200
    await running.pipeline.drain()

    async def live() -> list[dict[str, Any]]:
        return [s for s in await am_get(real.url, "/api/v2/silences") if s["status"]["state"] == "active"]

    [silence] = await until(live, "a silence in Alertmanager")
    runs = (await (await client.get("/api/v1/runs", headers=VIEW)).json())["items"]
    [run] = runs
    assert silence["createdBy"] == f"itsmd/{run['id']}/mute"
    assert silence["comment"] == f"itsmd is fixing {HOSTILE}"
    assert [(m["name"], m["value"], m["isRegex"], m.get("isEqual", True)) for m in silence["matchers"]] == [
        ("alertname", "WebDown", False, True), ("instance", HOSTILE, False, True)]
    # Alertmanager applies it literally: the alert with the hostile value is muted, its neighbour is not.
    await am_post_alerts(real.url, [{"labels": {"alertname": "WebDown", "instance": HOSTILE}},
                                    {"labels": {"alertname": "WebDown", "instance": "web-1"}},
                                    {"labels": {"alertname": "Other", "instance": "web-1"}}])

    async def states() -> dict[tuple[str, str], str] | None:
        alerts = await am_get(real.url, "/api/v2/alerts")
        got = {(a["labels"]["alertname"], a["labels"]["instance"]): a["status"]["state"] for a in alerts}
        return got if len(got) == 3 and "unprocessed" not in got.values() else None

    assert await until(states, "alerts processed") == {
        ("WebDown", HOSTILE): "suppressed", ("WebDown", "web-1"): "active", ("Other", "web-1"): "active"}

    async def ended() -> dict[str, Any] | None:
        r = await (await client.get(f"/api/v1/runs/{run['id']}", headers=VIEW)).json()
        return r if r["state"] not in ("pending", "running") else None

    done = await until(ended, "the run ended")
    assert done["state"] == "succeeded", [(s["state"], s["output"]) for s in done["steps"]]
    mute = done["steps"][0]
    assert mute["kind"] == "silence" and silence["id"] in mute["output"]
    # The run ended: its silence is expired through the API.
    [after] = [s for s in await am_get(real.url, "/api/v2/silences") if s["id"] == silence["id"]]
    assert after["status"]["state"] == "expired"
    detail = await (await client.get(f"/api/v1/incidents/{run['incident_id']}", headers=VIEW)).json()
    [note] = [e for e in detail["timeline"] if e["action"] == "run_silences_expired"]
    assert silence["id"] in note["reason"] and note["data"]["silences"] == [silence["id"]]
    assert "DELETE" in proxy.calls and "POST" in proxy.calls  # every call went through with the token


async def test_a_retried_silence_step_adds_no_second_silence(am: tuple[RealAlertmanager, TokenProxy, str]) -> None:
    real, _, url = am
    clock = SystemClock()
    matchers = [{"name": "instance", "value": "db-1", "isRegex": False, "isEqual": True}]
    request = Request(marker("RUN-77", "mute"), matchers, 600.0, "retry test")
    async with aiohttp.ClientSession() as session:
        silencer = Silencer(session, lambda: (AlertmanagerTarget(url, Secret(TOKEN)),), clock)
        first = await silencer.silence(request, 10.0)
        again = await silencer.silence(request, 10.0)
        assert first.succeeded and again.succeeded
        assert first.json["ids"] == again.json["ids"] and again.json["silences"][0]["reused"] is True
        live = [s for s in await am_get(real.url, "/api/v2/silences") if s["status"]["state"] == "active"]
        assert [s["createdBy"] for s in live] == ["itsmd/RUN-77/mute"]
        # another run's prefix expires nothing of it; its own does
        assert await silencer.expire(marker("RUN-7", "")) == ([], [])
        assert await silencer.expire(marker("RUN-77", "")) == (first.json["ids"], [])
        assert [s["status"]["state"] for s in await am_get(real.url, "/api/v2/silences")] == ["expired"]
        # without the token the proxy refuses: the step fails, naming the URL but no secret
        no_token = Silencer(session, lambda: (AlertmanagerTarget(url, None),), clock)
        failed = await no_token.silence(request, 10.0)
        assert not failed.succeeded and "answered 401" in (failed.error or "") and TOKEN not in (failed.error or "")
        down = Silencer(session, lambda: (AlertmanagerTarget(f"http://127.0.0.1:{free_port()}", None),), clock)
        assert "cannot connect" in ((await down.silence(request, 5.0)).error or "")
