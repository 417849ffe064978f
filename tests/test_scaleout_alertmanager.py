"""The issue 11 scenario: three replicas on one PostgreSQL fed by a real Alertmanager HA pair (two Debian
prometheus-alertmanager processes gossiping on loopback, each sending to every replica), the leader killed with
SIGKILL at random moments over 10 rounds: 0 accepted alerts lost, 0 incidents doubled, 0 runs executed twice;
the takeover times are measured (and printed), bounded only generously."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import POSTGRES_URL, reset_postgres
from tests.process import WEBHOOK, Daemons, free_port
from tests.replicas import TAKEOVER_WAIT, Replicas, list_all

AM = shutil.which("prometheus-alertmanager")
pytestmark = [
    pytest.mark.slow, pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="set ITSMD_TEST_POSTGRES to run the scale-out tests"),
    pytest.mark.skipif(AM is None, reason="apt-get install prometheus-alertmanager"),
]
ROUNDS = 10
PER_ROUND = 3  # new alerts (one group each) posted to both Alertmanagers each round


class HAPair:
    """Two Alertmanagers in one cluster; each sends every group to all the replicas."""

    def __init__(self, folder: Path, cluster: Replicas) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        token = folder / "itsmd.token"
        folder.mkdir(parents=True, exist_ok=True)
        token.write_text(cluster.all[0].ingest_token)
        config = {
            "route": {"receiver": "itsmd", "group_by": ["instance"], "group_wait": "1s", "group_interval": "1s",
                      "repeat_interval": "1h"},
            "receivers": [{"name": "itsmd", "webhook_configs": [{
                "url": f"{p.url}{WEBHOOK}", "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token)}},
            } for p in cluster.all]}],
        }
        (folder / "am.yml").write_text(yaml.safe_dump(config))
        gossip = [free_port(), free_port()]
        for i in range(2):
            port = free_port()
            self.urls.append(f"http://127.0.0.1:{port}")
            log = (folder / f"am{i}.log").open("wb")
            assert AM is not None
            self.procs.append(subprocess.Popen(
                [AM, f"--config.file={folder / 'am.yml'}", f"--storage.path={folder / f'data{i}'}",
                 f"--web.listen-address=127.0.0.1:{port}", f"--cluster.listen-address=127.0.0.1:{gossip[i]}",
                 f"--cluster.advertise-address=127.0.0.1:{gossip[i]}", f"--cluster.peer=127.0.0.1:{gossip[1 - i]}",
                 "--cluster.peer-timeout=2s", "--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=2s"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            log.close()

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        for url in self.urls:
            while True:
                try:
                    async with session.get(f"{url}/api/v2/status") as resp:
                        if resp.status == 200 and len((await resp.json())["cluster"].get("peers") or []) == 2:
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, "the Alertmanager pair did not form a cluster"
                await asyncio.sleep(0.2)

    async def post(self, session: aiohttp.ClientSession, alerts: list[dict[str, Any]]) -> None:
        """As Prometheus does: the same alerts to every Alertmanager."""
        for url in self.urls:
            async with session.post(f"{url}/api/v2/alerts", json=alerts) as resp:
                assert resp.status == 200, await resp.text()

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    with Daemons(tmp_path) as d:
        yield d


async def test_leader_killed_at_random_moments_behind_an_alertmanager_ha_pair(
        daemons: Daemons, tmp_path: Path) -> None:
    assert POSTGRES_URL
    reset_postgres(POSTGRES_URL).engine.dispose()
    cluster = Replicas(daemons, tmp_path / "shared", POSTGRES_URL, hold=0.5)
    await cluster.start()
    pair = HAPair(tmp_path / "am", cluster)
    rng = random.Random()
    takeovers: list[float] = []
    expected: set[str] = set()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
            await pair.wait_ready(s)
            for round_ in range(ROUNDS):
                leader = await cluster.leader(s)
                now = datetime.now(UTC).isoformat()
                batch = [f"r{round_}-{i}" for i in range(PER_ROUND)]
                expected |= set(batch)
                await pair.post(s, [{"labels": {"alertname": "Down", "instance": i}, "startsAt": now}
                                    for i in batch])
                await asyncio.sleep(rng.uniform(0.0, 2.5))  # before, during or after delivery and the runs
                t0 = time.monotonic()
                leader.kill9()
                await cluster.leader(s, TAKEOVER_WAIT)
                takeovers.append(time.monotonic() - t0)
                await leader.start_async()
            alerts, runs = await cluster.settled(s, expected)
            incidents = await list_all(s, cluster.alive[0], "/api/v1/incidents")
    finally:
        pair.close()
    print(f"takeover seconds over {len(takeovers)} kills: " + " ".join(f"{t:.2f}" for t in sorted(takeovers))
          + f"; runs {dict(Counter(r['state'] for r in runs))}")
    instances = Counter(a["labels"]["instance"] for a in alerts)
    assert instances == Counter(expected), "every accepted alert stored once: none lost, none doubled"
    assert len(incidents) == len(expected), "one incident per group: none doubled"
    assert len({a["incident_id"] for a in alerts}) == len(expected)
    assert Counter(r["incident_id"] for r in runs) == Counter({i["id"]: 1 for i in incidents})
    executions = cluster.executions()
    assert executions and max(executions.values()) == 1, f"a run executed twice: {executions.most_common(3)}"
    assert set(Counter(r["state"] for r in runs)) <= {"succeeded", "unknown"}
    assert all(t <= TAKEOVER_WAIT for t in takeovers)
