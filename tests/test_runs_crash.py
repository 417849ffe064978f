"""Crash safety of runs: `kill -9` a real `itsmd serve` while a step's process runs. After the restart an
idempotent step runs again and the run completes; a non-idempotent step ends `unknown` (the run needs a human)
and is never started a second time (reliability R11, R12)."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.process import WEBHOOK, Daemons, ServeProcess, firing_alert, webhook_body

pytestmark = pytest.mark.slow

# Appends a line to `<out>.started` at once, then finishes after `hold` seconds unless an earlier attempt
# already started (then at once): the second attempt of a resumed step is quick.
SCRIPT = """\
import sys, time
out, hold = sys.argv[1], float(sys.argv[2])
started = out + ".started"
try:
    seen = len(open(started).read().splitlines())
except FileNotFoundError:
    seen = 0
with open(started, "a") as f:
    f.write("started\\n")
time.sleep(hold if seen == 0 else 0)
with open(out, "a") as f:
    f.write("done\\n")
"""


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    with Daemons(tmp_path) as made:
        yield made


def setup(p: ServeProcess, idempotent: bool) -> Path:
    (p.dir / "act.py").write_text(SCRIPT)
    (p.dir / "rules").mkdir(exist_ok=True)
    (p.dir / "rules" / "r.yaml").write_text(
        "rules:\n  - {name: crash, match: ['alertname=\"Crash\"'], group_by: [instance], playbooks: [act]}\n")
    (p.dir / "playbooks").mkdir(exist_ok=True)
    out = p.dir / "act.out"
    (p.dir / "playbooks" / "act.yaml").write_text(json.dumps({
        "name": "act",
        "steps": [{"name": "act", "exec": [sys.executable, str(p.dir / "act.py"), str(out), "8"], "timeout": "60s",
                   "idempotent": idempotent}],
    }))
    return out


def api(p: ServeProcess, path: str, body: Any = None) -> Any:
    headers = {**(p.ingest_headers() if body is not None else p.viewer_headers()),
               "Content-Type": "application/json"}
    req = urllib.request.Request(p.url + path, data=json.dumps(body).encode() if body is not None else None,
                                 headers=headers, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize("idempotent", [True, False])
def test_kill_9_during_a_step(daemons: Daemons, idempotent: bool) -> None:
    p = daemons.new(config={"rules": ["rules/*.yaml"], "playbooks": ["playbooks/*.yaml"]})
    out = setup(p, idempotent)
    p.start()
    api(p, WEBHOOK, webhook_body([firing_alert({"alertname": "Crash", "instance": "c1"})]))
    started = Path(str(out) + ".started")
    wait("the step's process to start", started.exists)
    p.kill9()  # the daemon dies mid-step; its step process (own session) finishes on its own
    p.start()
    done = wait("the run to end", lambda: next((r for r in api(p, "/api/v1/runs")["items"]
                                                 if r["finished_at"] is not None), None))
    [step] = done["steps"]
    if idempotent:
        assert done["state"] == "succeeded" and step["state"] == "succeeded" and step["attempt"] == 1
        assert started.read_text().count("started") == 2  # run again after the restart
    else:
        assert done["state"] == "unknown" and done["reason"] == "needs_human" and step["state"] == "unknown"
        time.sleep(0.5)
        assert started.read_text().count("started") == 1  # never started a second time
    inc = api(p, f"/api/v1/incidents/{done['incident_id']}")
    actions = [e["action"] for e in inc["timeline"]]
    assert ("run_resumed" in actions) == idempotent and f"run_{done['state']}" in actions
