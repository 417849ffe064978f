"""Reconciliation end to end: a real `itsmd serve` and Debian's prometheus-alertmanager, whose webhooks are truncated
by `max_alerts`; itsmd reads the rest from `GET /api/v2/alerts`, and flags what Alertmanager no longer has."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.process import WEBHOOK, Daemons, ServeProcess, fetch_all_alerts, firing_alert, free_port, webhook_body
from tests.test_alertmanager_e2e import AM, WAIT, Alertmanager, am_alert

pytestmark = [pytest.mark.slow, pytest.mark.skipif(AM is None, reason="apt-get install prometheus-alertmanager")]


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    with Daemons(tmp_path) as d:
        yield d


def itsmd_for(daemons: Daemons, am_port: int) -> ServeProcess:
    """An itsmd reconciling with the Alertmanager on `am_port` (the token is sent; Alertmanager ignores it)."""
    itsmd = daemons.new("itsmd", config={
        "alertmanagers": [{"url": f"http://127.0.0.1:{am_port}", "token_file": "am-api.token"}],
        "ingest": {"reconcile_interval": "0s", "reconcile_timeout": "5s"},
    })
    (itsmd.dir / "am-api.token").write_text("am-api-token-0123456789\n")
    return itsmd


async def metric(session: aiohttp.ClientSession, itsmd: ServeProcess, name: str, **labels: str) -> float:
    async with session.get(f"{itsmd.url}/metrics") as resp:
        text = await resp.text()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def eventually(session: aiohttp.ClientSession, itsmd: ServeProcess, what: str,
                     check: Any) -> list[dict[str, Any]]:
    """Poll the alerts until `check(alerts by instance)` holds."""
    deadline = time.monotonic() + WAIT
    by_instance: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        items = await fetch_all_alerts(session, itsmd)
        by_instance = {a["labels"]["instance"]: a for a in items}
        if check(by_instance):
            return items
        await asyncio.sleep(0.2)
    itsmd.fail(f"wanted {what}; itsmd has {by_instance}")


async def test_truncated_webhooks_are_completed_and_lost_alerts_flagged_at_start(
    daemons: Daemons, tmp_path: Path
) -> None:
    am_port = free_port()
    itsmd = itsmd_for(daemons, am_port)
    await itsmd.start_async()
    am = Alertmanager(tmp_path / "am", itsmd, port=am_port, max_alerts=2)
    try:
        async with aiohttp.ClientSession() as session:
            await am.wait_ready(session)
            nodes = [f"node-{i}" for i in range(5)]
            await am.post(session, [am_alert("DiskFull", n) for n in nodes])
            await eventually(session, itsmd, "all 5 firing", lambda got: all(
                got.get(n, {}).get("status") == "firing" for n in nodes))
            # Alertmanager sent 2 and left 3 out; reconciliation, asked for by that webhook, added them.
            assert await metric(session, itsmd, "itsmd_alerts_truncated_total") >= 3
            assert await metric(session, itsmd, "itsmd_reconciled_alerts_total", action="added") >= 3

            # An alert only itsmd has (posted to it directly): at the next start, Alertmanager lacks it.
            ghost = firing_alert({"alertname": "Ghost", "instance": "ghost", "severity": "critical"})
            async with session.post(f"{itsmd.url}{WEBHOOK}", json=webhook_body([ghost]),
                                    headers=itsmd.ingest_headers()) as resp:
                assert resp.status == 200
            await eventually(session, itsmd, "the ghost firing", lambda got: "ghost" in got)
            await itsmd.restart_async()
            items = await eventually(session, itsmd, "the ghost flagged stale", lambda got: got["ghost"]["stale"])
            by_instance = {a["labels"]["instance"]: a for a in items}
            assert by_instance["ghost"]["status"] == "firing"  # flagged, never resolved
            assert all(by_instance[n]["status"] == "firing" and not by_instance[n]["stale"] for n in nodes)
            assert len(items) == 6
    finally:
        am.close()


async def test_an_unreachable_alertmanager_flags_nothing(daemons: Daemons) -> None:
    itsmd = itsmd_for(daemons, free_port())  # nothing listens there
    await itsmd.start_async()
    async with aiohttp.ClientSession() as session:
        alone = firing_alert({"alertname": "Alone", "instance": "alone"})
        async with session.post(f"{itsmd.url}{WEBHOOK}", json=webhook_body([alone]),
                                headers=itsmd.ingest_headers()) as resp:
            assert resp.status == 200
        await eventually(session, itsmd, "the alert firing", lambda got: "alone" in got)
        await itsmd.restart_async()
        deadline = time.monotonic() + WAIT
        while await metric(session, itsmd, "itsmd_reconciliations_total", result="failed") < 1:
            assert time.monotonic() < deadline, "no failed reconciliation at start"
            await asyncio.sleep(0.1)
        [alert] = await fetch_all_alerts(session, itsmd)
        assert alert["status"] == "firing" and alert["stale"] is False
        assert "cannot connect" in itsmd.log() and "am-api-token" not in itsmd.log()
