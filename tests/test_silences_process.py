"""Silences end to end through a real `itsmd serve`: a declared maintenance window and an API silence mute, survive
a restart, and release what still fires when they end (DELETE, or the window removed and SIGHUP)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml

from tests.process import VIEWER_ENV, WEBHOOK, Daemons, ServeProcess, fetch_all_alerts, firing_alert, webhook_body

pytestmark = pytest.mark.slow
T = TypeVar("T")
OPERATOR = "operator-token-for-silences-0123"
RULES = "rules:\n  - {name: any, match: ['alertname=~\".+\"'], group_by: [alertname]}\n"
WINDOW = {"matchers": ['alertname="Backup"'], "schedule": "* * * * *", "duration": "1h", "comment": "always"}


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    with Daemons(tmp_path) as made:
        yield made


def config(silences: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "auth": {"tokens": [
            {"name": "am", "role": "ingest", "token_file": "ingest.token"},
            {"name": "ops", "role": "viewer", "token_env": VIEWER_ENV},
            {"name": "oncall", "role": "operator", "token_file": "operator.token"},
        ]},
        "silences": silences,
    }


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout: float = 15.0) -> T:
    """Poll until `probe` gives something (the pipeline and the silence tick run on their own)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await probe()
        if found is not None:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_silences_through_a_real_daemon(daemons: Daemons) -> None:
    p: ServeProcess = daemons.new("silenced", config=config([WINDOW]))
    (p.dir / "operator.token").write_text(OPERATOR)
    (p.dir / "rules").mkdir()
    (p.dir / "rules" / "any.yaml").write_text(RULES)
    ops = {"Authorization": f"Bearer {OPERATOR}", "Content-Type": "application/json"}
    await p.start_async()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:

        async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
            headers = ops if body is not None else p.viewer_headers()
            async with s.request(method, p.url + path, data=json.dumps(body) if body is not None else None,
                                 headers=headers) as resp:
                return resp.status, await resp.json()

        async def alert(name: str) -> dict[str, Any] | None:
            found = [a for a in await fetch_all_alerts(s, p) if a["labels"]["alertname"] == name]
            return found[0] if found else None

        status, listed = await call("GET", "/api/v1/silences")
        [window] = listed["items"]
        assert status == 200 and window["origin"] == "config" and window["state"] == "active"
        ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        status, api = await call("POST", "/api/v1/silences", {
            "matchers": ['alertname="Deploy"'], "ends_at": ends, "created_by": "oncall", "comment": "rollout"})
        assert status == 201, api
        body = webhook_body([firing_alert({"alertname": "Backup"}), firing_alert({"alertname": "Deploy"})])
        async with s.post(p.url + WEBHOOK, json=body, headers=p.ingest_headers()) as resp:
            assert resp.status == 200
        backup = await eventually(lambda: alert("Backup"), "the Backup alert")
        deploy = await eventually(lambda: alert("Deploy"), "the Deploy alert")
        assert backup["muted_by"] == window["id"] and deploy["muted_by"] == api["id"]
        assert backup["incident_id"] is None and deploy["incident_id"] is None

        status, expired = await call("DELETE", f"/api/v1/silences/{api['id']}", {})
        assert status == 200 and expired["state"] == "expired"
        deploy = await alert("Deploy")
        assert deploy is not None and str(deploy["incident_id"]).startswith("INC-")  # at once, no tick needed

    assert p.terminate() == 0
    await p.start_async()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        backup = next(a for a in await fetch_all_alerts(s, p) if a["labels"]["alertname"] == "Backup")
        assert backup["muted_by"] == window["id"]  # silences and muted alerts survive a restart
        p.extra["silences"] = []  # the maintenance is over: the window goes, SIGHUP reloads
        p.write_config()
        p.signal(signal.SIGHUP)

        async def released() -> str | None:
            found = next(a for a in await fetch_all_alerts(s, p) if a["labels"]["alertname"] == "Backup")
            incident: str | None = found["incident_id"]
            return incident

        assert (await eventually(released, "the Backup alert's incident")).startswith("INC-")
        async with s.get(f"{p.url}/api/v1/silences/{window['id']}", headers=p.viewer_headers()) as resp:
            assert (await resp.json())["state"] == "expired"
    assert p.terminate() == 0
    assert "Traceback" not in p.log()
    assert yaml.safe_load(p.config_file.read_text())["silences"] == []
