"""Several `itsmd serve` replicas on one PostgreSQL for the scale-out tests and bench: one shared ingest token,
short leadership and lease timers, a rule opening one incident per instance and a playbook whose exec step
appends its run id to a file (so a run executed twice shows as a repeated line)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from tests.process import Daemons, ServeProcess, fetch_all_alerts

TAKEOVER_WAIT = 15.0  # seconds a new leader may take (generous: the bound is what matters, not the speed)
SETTLE_WAIT = 60.0  # seconds for the pipeline and the runs to finish after the last delivery

RULES = """
rules:
  - name: down
    match: ['alertname="Down"']
    group_by: [instance]
    playbooks: [act]
  - name: page
    match: ['alertname="Page"']
    group_by: [instance]
"""
# The step appends "<run id> <instance>" to runs.out: a line per execution.
SCRIPT = """\
import os, sys, time
time.sleep(float(sys.argv[3]))
with open(sys.argv[1], "a") as f:
    f.write(os.environ.get("ITSMD_RUN_ID", "?") + " " + sys.argv[2] + "\\n")
"""


def playbook(folder: Path, hold: float) -> str:
    return f"""
name: act
params:
  host: {{from: "{{{{ labels.instance }}}}", pattern: '[a-z0-9-]+'}}
rate_limit: {{max: 1000, per: 1h}}
steps:
  - name: act
    exec: ["{sys.executable}", "{folder / 'act.py'}", "{folder / 'runs.out'}", "{{{{ params.host }}}}", "{hold}"]
    timeout: 30s
    idempotent: false
"""


class Replicas:
    """`n` replicas of one database, sharing rules, playbooks and an ingest token."""

    def __init__(self, daemons: Daemons, folder: Path, database: str, n: int = 3, hold: float = 0.5,
                 extra: dict[str, Any] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        (folder / "rules.yaml").write_text(RULES)
        (folder / "act.py").write_text(SCRIPT)
        (folder / "act.yaml").write_text(playbook(folder, hold))
        self.runs_file = folder / "runs.out"
        config: dict[str, Any] = {
            "database": database, "rules": [str(folder / "rules.yaml")], "playbooks": [str(folder / "act.yaml")],
            "scaleout": {"leader_retry": "500ms", "leader_heartbeat": "500ms", "leader_timeout": "2s",
                         "run_lease": "3s", "run_renew": "1s", "run_poll": "500ms", "page_lease": "5s"},
            "log": {"level": "info"},
            **(extra or {}),
        }
        self.all: list[ServeProcess] = [daemons.new(f"replica{i}", config=config) for i in range(n)]
        token = self.all[0].ingest_token
        for p in self.all:
            p.ingest_token = token
            p.write_config()

    @property
    def alive(self) -> list[ServeProcess]:
        return [p for p in self.all if p.running]

    async def start(self) -> None:
        await asyncio.gather(*(p.start_async() for p in self.all))

    async def roles(self, session: aiohttp.ClientSession) -> dict[int, str]:
        """index -> role of every replica that answers."""
        out: dict[int, str] = {}
        for i, p in enumerate(self.all):
            if not p.running:
                continue
            try:
                async with session.get(f"{p.url}/api/v1/automation", headers=p.viewer_headers()) as resp:
                    if resp.status == 200:
                        out[i] = (await resp.json())["role"]
            except (aiohttp.ClientError, TimeoutError):
                pass
        return out

    async def leader(self, session: aiohttp.ClientSession, timeout: float = TAKEOVER_WAIT) -> ServeProcess:
        """The one replica that leads, once exactly one does (fails after `timeout`)."""
        deadline = time.monotonic() + timeout
        seen: dict[int, str] = {}
        while time.monotonic() < deadline:
            seen = await self.roles(session)
            leaders = [i for i, r in seen.items() if r == "leader"]
            assert len(leaders) <= 1, f"two leaders at once: {seen}"
            if leaders:
                return self.all[leaders[0]]
            await asyncio.sleep(0.1)
        raise AssertionError(f"no leader within {timeout} s: {seen}")

    async def settled(self, session: aiohttp.ClientSession, expected_alerts: set[str],
                      timeout: float = SETTLE_WAIT) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(alerts, runs) once every expected instance has its alert in an incident and every run ended."""
        deadline = time.monotonic() + timeout
        alerts: list[dict[str, Any]] = []
        runs: list[dict[str, Any]] = []
        missing: set[str] = set(expected_alerts)
        while time.monotonic() < deadline:
            p = self.alive[0]
            alerts = await fetch_all_alerts(session, p)
            placed = {a["labels"].get("instance") for a in alerts if a.get("incident_id")}
            missing = expected_alerts - placed
            runs = await list_all(session, p, "/api/v1/runs")
            active = [r for r in runs if r["state"] in ("pending", "running", "awaiting_approval")]
            if not missing and not active and len(runs) >= len(expected_alerts):
                return alerts, runs
            await asyncio.sleep(0.5)
        raise AssertionError(f"not settled within {timeout} s: {len(missing)} alerts missing "
                             f"(e.g. {sorted(missing)[:5]}), runs {Counter(r['state'] for r in runs)}")

    def executions(self) -> Counter[str]:
        """run id -> how many times its exec step ran to the end."""
        if not self.runs_file.exists():
            return Counter()
        return Counter(line.split()[0] for line in self.runs_file.read_text().splitlines() if line.strip())


async def list_all(session: aiohttp.ClientSession, p: ServeProcess, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        async with session.get(f"{p.url}{path}", params=query, headers=p.viewer_headers()) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
