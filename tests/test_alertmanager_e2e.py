"""End to end with the real upstream: Debian's prometheus-alertmanager posting webhooks to a real itsmd.

Alerts posted to Alertmanager appear in itsmd; repeats do not duplicate; resolutions resolve; an itsmd outage in
the middle loses nothing, because Alertmanager retries until it gets a 2xx.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.process import Daemons, ServeProcess, fetch_all_alerts, free_port

AM = shutil.which("prometheus-alertmanager")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(AM is None, reason="apt-get install prometheus-alertmanager")]
WAIT = 30.0  # seconds for Alertmanager's group timers (1s) and retries to deliver


class Alertmanager:
    def __init__(self, folder: Path, itsmd: ServeProcess, port: int | None = None, max_alerts: int = 0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (folder / "itsmd.token").write_text(itsmd.ingest_token)
        config: dict[str, Any] = {
            "global": {"resolve_timeout": "5m"},
            "route": {"receiver": "itsmd", "group_by": ["alertname"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "itsmd", "webhook_configs": [{
                "url": f"{itsmd.url}/api/v1/webhooks/alertmanager", "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer",
                                                  "credentials_file": str(folder / "itsmd.token")}},
            }]}],
        }
        if max_alerts:  # webhooks carry at most this many alerts, the rest counted in truncatedAlerts
            config["receivers"][0]["webhook_configs"][0]["max_alerts"] = max_alerts
        (folder / "am.yml").write_text(yaml.safe_dump(config))
        self.log = (folder / "am.log").open("wb")
        assert AM is not None
        self.proc = subprocess.Popen(
            [AM, f"--config.file={folder / 'am.yml'}", f"--storage.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=debug"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

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

    async def post(self, session: aiohttp.ClientSession, alerts: list[dict[str, Any]]) -> None:
        async with session.post(f"{self.url}/api/v2/alerts", json=alerts) as resp:
            assert resp.status == 200, await resp.text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    with Daemons(tmp_path) as d:
        yield d


def am_alert(name: str, instance: str, ends: datetime | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {"labels": {"alertname": name, "instance": instance, "severity": "critical"},
                         "annotations": {"summary": f"{name} on {instance}"},
                         "generatorURL": "http://prometheus.example/graph"}
    if ends is not None:
        a["endsAt"] = ends.isoformat()
    return a


async def wait_for(session: aiohttp.ClientSession, itsmd: ServeProcess, want: dict[str, str]) -> list[dict[str, Any]]:
    """Poll itsmd until the latest episode of each instance has the wanted status."""
    deadline = time.monotonic() + WAIT
    latest: dict[str, str] = {}
    while time.monotonic() < deadline:
        items = await fetch_all_alerts(session, itsmd)
        latest = {}
        for a in sorted(items, key=lambda a: int(a["id"])):
            latest[a["labels"]["instance"]] = a["status"]
        if all(latest.get(k) == v for k, v in want.items()):
            return items
        await asyncio.sleep(0.2)
    itsmd.fail(f"wanted {want}, itsmd has {latest}")


async def test_alertmanager_delivers_dedups_resolves_and_survives_an_outage(
    daemons: Daemons, tmp_path: Path
) -> None:
    itsmd = daemons.new("itsmd")
    await itsmd.start_async()
    am = Alertmanager(tmp_path / "am", itsmd)
    try:
        async with aiohttp.ClientSession() as session:
            await am.wait_ready(session)
            first = [am_alert("DiskFull", f"node-{i}") for i in range(3)]
            await am.post(session, first)
            await wait_for(session, itsmd, {f"node-{i}": "firing" for i in range(3)})

            # Repeats: posting the same alerts again and letting AM flush must not create new episodes.
            for _ in range(3):
                await am.post(session, first)
                await asyncio.sleep(0.5)
            items = await fetch_all_alerts(session, itsmd)
            assert len(items) == 3 and {a["labels"]["instance"] for a in items} == {"node-0", "node-1", "node-2"}

            # Resolution: AM sends the resolved alert, itsmd closes the episode.
            await am.post(session, [am_alert("DiskFull", "node-0", ends=datetime.now(UTC) - timedelta(seconds=1))])
            await wait_for(session, itsmd, {"node-0": "resolved", "node-1": "firing"})

            # Outage: itsmd is killed; alerts fired meanwhile are delivered once it is back.
            itsmd.kill9()
            await am.post(session, [am_alert("CpuHigh", "node-7"), am_alert("CpuHigh", "node-8")])
            await am.post(session, [am_alert("DiskFull", "node-1", ends=datetime.now(UTC) - timedelta(seconds=1))])
            await asyncio.sleep(3)  # several failed flushes while itsmd is down
            await itsmd.restart_async()
            items = await wait_for(session, itsmd, {"node-7": "firing", "node-8": "firing", "node-1": "resolved",
                                                    "node-0": "resolved", "node-2": "firing"})
            fingerprints = [a["fingerprint"] for a in items]
            assert len(fingerprints) == len(set(fingerprints)) == 5  # one episode per alert, nothing twice
    finally:
        am.close()


async def test_alertmanager_alerts_become_an_incident_that_resolves(daemons: Daemons, tmp_path: Path) -> None:
    itsmd = daemons.new("itsmd")
    (itsmd.dir / "rules").mkdir()
    (itsmd.dir / "rules" / "disk.yaml").write_text(
        "rules:\n  - name: disk-full\n    match: ['alertname=\"DiskFull\"']\n    group_by: [alertname]\n"
        "    min_alerts: 2\n    title: \"disk full on {{ alert_count }} nodes\"\n"
    )
    await itsmd.start_async()
    am = Alertmanager(tmp_path / "am", itsmd)
    try:
        async with aiohttp.ClientSession() as session:
            await am.wait_ready(session)
            await am.post(session, [am_alert("DiskFull", f"node-{i}") for i in range(2)])
            await wait_for(session, itsmd, {"node-0": "firing", "node-1": "firing"})
            incident = await wait_incident(session, itsmd, "open")
            assert incident["rule"] == "disk-full" and incident["alert_count"] == 2
            assert incident["title"] == "disk full on 2 nodes"
            ended = datetime.now(UTC) - timedelta(seconds=1)
            await am.post(session, [am_alert("DiskFull", f"node-{i}", ends=ended) for i in range(2)])
            resolved = await wait_incident(session, itsmd, "resolved")
            assert resolved["id"] == incident["id"] and resolved["resolution"] == "self_healed"
    finally:
        am.close()


async def wait_incident(session: aiohttp.ClientSession, itsmd: ServeProcess, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        async with session.get(f"{itsmd.url}/api/v1/incidents", headers=itsmd.viewer_headers()) as resp:
            items = (await resp.json())["items"]
        if len(items) == 1 and items[0]["state"] == state:
            return items[0]
        await asyncio.sleep(0.2)
    itsmd.fail(f"wanted one {state} incident, itsmd has {items}")
