"""`itsmd serve` and `itsmd check` as real processes: defaults, the single-daemon lock, unsafe or invalid
configs, graceful SIGTERM under load, and secrets kept out of the log (DESIGN §1.1, §1.2, §1.6 item 15)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from itsmd.core.fingerprint import fingerprint
from tests.process import (
    ALERTS,
    DEFAULT_PORT,
    EXIT_TIMEOUT,
    LOG_MARKER,
    READY_TIMEOUT,
    VIEWER_ENV,
    WEBHOOK,
    Daemons,
    ServeProcess,
    fetch_all_alerts,
    firing_alert,
    port_open,
    run_itsmd,
    webhook_body,
)

pytestmark = pytest.mark.slow

JSON = {"Content-Type": "application/json"}


def listened(p: ServeProcess) -> bool:
    """Whether the daemon logged that it listens on its port (the wording of the line is not fixed)."""
    return re.search(rf"listening\b[^\n]*:{p.port}\b", p.log()) is not None


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    with Daemons(tmp_path) as made:
        yield made


def daemon_lines(p: ServeProcess) -> list[str]:
    """The daemon's own output lines (without the markers the test harness writes)."""
    return [line for line in p.log().splitlines() if line.strip() and not line.startswith(LOG_MARKER)]


def assert_never_listened(p: ServeProcess) -> None:
    """Poll the port while the process lives (it must exit on its own), then check its log."""
    assert p.proc is not None
    deadline = time.monotonic() + EXIT_TIMEOUT  # past it, the caller's wait_exit fails and kills
    while p.proc.poll() is None and time.monotonic() < deadline:
        assert not port_open(p.port), f"the refused daemon listens on {p.port}\n{p.log()}"
    assert not port_open(p.port)
    assert not listened(p), p.log()


async def post_json(session: aiohttp.ClientSession, url: str, body: Any,
                    headers: dict[str, str]) -> tuple[int, str]:
    async with session.post(url, data=json.dumps(body), headers={**headers, **JSON}) as resp:
        return resp.status, await resp.text()


# --- (a) defaults ------------------------------------------------------------------------------------


async def test_minimal_config_runs_on_defaults(daemons: Daemons, tmp_path: Path) -> None:
    """Only `listen` set: SQLite beside the config file (not in the cwd), no auth, default limits."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    p = daemons.new("minimal", auth=False, cwd=cwd, config={"database": None})
    assert p.config_file.read_text().strip() == f"listen: 127.0.0.1:{p.port}"
    await p.start_async()
    assert p.database_file.is_file(), "the database belongs beside the config file"
    assert list(cwd.iterdir()) == [], "nothing is written to the working directory"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        async with s.get(f"{p.url}/-/healthy") as resp:
            assert resp.status == 200
        labels = {"alertname": "Minimal", "instance": "a"}
        status, text = await post_json(s, p.url + WEBHOOK, webhook_body([firing_alert(labels)]), {})
        assert (status, json.loads(text)) == (200, {"accepted": 1, "quarantined": 0})
        too_many = webhook_body([firing_alert({"alertname": "Many", "i": str(i)}) for i in range(10001)])
        status, text = await post_json(s, p.url + WEBHOOK, too_many, {})
        assert status == 413, text  # limits.max_alerts_per_request defaults to 10000
        big = webhook_body([firing_alert({"alertname": "Big", "pad": "x" * (10 * 1024 * 1024)})])
        status, text = await post_json(s, p.url + WEBHOOK, big, {})
        assert status == 413, text  # limits.max_body_bytes defaults to 10 MiB
        for _ in range(100):
            listed = await fetch_all_alerts(s, p)
            if listed:
                break
            await asyncio.sleep(0.1)
        assert [(a["fingerprint"], a["labels"]) for a in listed] == [(fingerprint(labels), labels)]
    assert p.terminate() == 0


def test_no_config_file_runs_on_defaults_in_the_cwd(daemons: Daemons, tmp_path: Path) -> None:
    """Plain `itsmd serve` in an empty folder: 127.0.0.1:9797 and ./itsmd.db."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemon does: TIME_WAIT is fine
        try:
            probe.bind(("127.0.0.1", DEFAULT_PORT))
        except OSError as e:
            pytest.skip(f"port {DEFAULT_PORT} is in use ({e}); the config-less defaults cannot be tried here")
    cwd = tmp_path / "empty"
    cwd.mkdir()
    p = daemons.new("config-less", cwd=cwd, config_less=True)
    p.spawn()
    # Only once our own daemon has bound the port can a 200 from /-/ready be its answer.
    deadline = time.monotonic() + READY_TIMEOUT
    while p.running and not listened(p) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not p.running and "address already in use" in p.log().lower():
        pytest.skip(f"port {DEFAULT_PORT} was taken meanwhile")
    assert listened(p), p.log()
    assert p.wait_ready(), p.log()
    assert (cwd / "itsmd.db").is_file()
    assert p.terminate() == 0


# --- (b) one daemon per database -----------------------------------------------------------------------


def test_second_daemon_on_the_same_sqlite_file_refuses_to_start(daemons: Daemons) -> None:
    first = daemons.new("first")
    first.start()
    second = daemons.new("second", auth=False, config={"database": f"sqlite:///{first.database_file}"})
    second.spawn()
    assert_never_listened(second)
    code = second.wait_exit()
    out = "\n".join(daemon_lines(second))
    assert code != 0, out
    assert "another itsmd" in out and "lock" in out, out
    assert first.running and first.wait_ready(5), "the first daemon must keep serving"
    assert first.terminate() == 0


def test_port_in_use_is_a_clear_refusal(daemons: Daemons) -> None:
    first = daemons.new("first")
    first.start()
    second = daemons.new("second", config={"listen": f"127.0.0.1:{first.port}"})
    second.spawn()
    code = second.wait_exit()
    out = "\n".join(daemon_lines(second))
    assert code == 2, out
    assert f"cannot listen on 127.0.0.1:{first.port}" in out and "Traceback" not in out, out
    assert first.terminate() == 0


# --- (c), (d) configs that must not start -------------------------------------------------------------


def test_public_listen_without_auth_exits_2_and_never_listens(daemons: Daemons) -> None:
    p = daemons.new("public", auth=False)
    p.extra = {"listen": f"0.0.0.0:{p.port}"}
    p.write_config()
    p.spawn()
    assert_never_listened(p)
    assert p.wait_exit() == 2
    lines = daemon_lines(p)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{p.config_file}: listen: "), lines
    assert "0.0.0.0" in lines[0] and "auth" in lines[0], lines
    assert not p.database_file.exists(), "a refused daemon touches no database"


def test_invalid_config_exits_2_with_every_problem(daemons: Daemons) -> None:
    p = daemons.new("invalid", config={"limits": {"max_body_bytes": "big"}, "frobnicate": 1,
                                       "automation": {"enabled": "yes"}})
    p.spawn()
    assert_never_listened(p)
    assert p.wait_exit() == 2
    lines = daemon_lines(p)
    file = re.escape(str(p.config_file))
    assert all(re.fullmatch(rf"{file}: [\w.\[\]()]+: .+", line) for line in lines), lines
    paths = Counter(line.split(": ")[1] for line in lines)
    assert paths == {"(root)": 1, "limits.max_body_bytes": 1, "automation.enabled": 1}, lines
    assert "frobnicate" in "\n".join(lines)
    assert not p.database_file.exists()


# --- (f) itsmd check ---------------------------------------------------------------------------------


def test_check_exit_codes(daemons: Daemons) -> None:
    p = daemons.new("check")
    env = {VIEWER_ENV: p.viewer_token}
    good = run_itsmd("check", "-c", "itsmd.yaml", cwd=p.dir, env=env)
    assert (good.returncode, good.stdout.strip()) == (0, "ok"), good.stderr
    (p.dir / "bad.yaml").write_text(
        f"listen: 127.0.0.1:{p.port}\nlimits: {{max_body_bytes: big}}\nfrobnicate: 1\n"
        "auth:\n  tokens:\n    - {name: am, role: ingest, token_file: missing.token}\n"
    )
    bad = run_itsmd("check", "-c", "bad.yaml", cwd=p.dir, env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    lines = bad.stdout.splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith("bad.yaml: ") for line in lines), lines
    assert {line.split(": ")[1] for line in lines} == {
        "(root)", "limits.max_body_bytes", "auth.tokens[0].token_file"}, lines
    missing_env = run_itsmd("check", "-c", "itsmd.yaml", cwd=p.dir)
    assert missing_env.returncode == 1
    assert missing_env.stdout.startswith("itsmd.yaml: auth.tokens[1].token_env: ")
    assert VIEWER_ENV in missing_env.stdout


# --- (e) SIGTERM under load ----------------------------------------------------------------------------


async def test_sigterm_under_load_loses_no_accepted_alert(daemons: Daemons) -> None:
    p = daemons.new("sigterm")
    await p.start_async()
    sent: dict[str, dict[str, str]] = {}
    accepted: list[str] = []
    answers: Counter[str] = Counter()
    enough = asyncio.Event()
    serial = iter(range(10**9))

    async def client(s: aiohttp.ClientSession, n: int) -> None:
        while p.running:
            alerts = []
            for _ in range(1 + n % 5):
                labels = {"alertname": "Sigterm", "uid": f"{n}-{next(serial)}"}
                sent[fingerprint(labels)] = labels
                alerts.append(firing_alert(labels))
            try:
                status, _ = await post_json(s, p.url + WEBHOOK, webhook_body(alerts), p.ingest_headers())
                answer = str(status)
            except (aiohttp.ClientError, ConnectionError, TimeoutError):
                answer = "connection error"
                await asyncio.sleep(0.01)  # the daemon is going away; do not spin
            answers[answer] += 1
            if answer == "200":
                accepted.extend(fingerprint(a["labels"]) for a in alerts)
                if answers["200"] >= 200:
                    enough.set()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        tasks = [asyncio.create_task(client(s, n)) for n in range(8)]
        await asyncio.wait_for(enough.wait(), 30)
        p.signal(signal.SIGTERM)
        code = await p.wait_exit_async(10)
        await asyncio.gather(*tasks)
        assert code == 0, p.log()
        assert set(answers) <= {"200", "503", "connection error"}, answers
        await p.start_async()
        listed = await fetch_all_alerts(s, p)
        for _ in range(100):
            if not set(accepted) - {a["fingerprint"] for a in listed}:
                break
            await asyncio.sleep(0.1)
            listed = await fetch_all_alerts(s, p)
    stored = Counter(a["fingerprint"] for a in listed)
    lost = set(accepted) - set(stored)
    assert not lost, f"{len(lost)} of {len(accepted)} accepted alerts lost; answers {answers}"
    assert max(stored.values()) == 1 and set(stored) <= set(sent)
    assert all(a["occurrences"] == 1 for a in listed)
    errors = [line for line in p.log().splitlines() if re.search(r"\blevel\W+(error|critical)|Traceback", line, re.I)]
    assert errors == [], "\n".join(errors)
    print(f"SIGTERM under load: answers {dict(answers)}")


# --- (g) secrets stay out of the log ---------------------------------------------------------------------


async def test_token_values_never_appear_in_the_log(daemons: Daemons) -> None:
    p = daemons.new("secrets", config={"log": {"level": "debug"}})
    await p.start_async()
    wrong = f"wrong-{secrets.token_hex(16)}"
    body = webhook_body([firing_alert({"alertname": "Secret"})])

    def basic(user: str, token: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        url = p.url + WEBHOOK
        assert (await post_json(s, url, body, {"Authorization": f"Bearer {wrong}"}))[0] == 401
        assert (await post_json(s, url, body, basic("am", wrong)))[0] == 401
        assert (await post_json(s, url, body, {"Authorization": f"Token {p.ingest_token}"}))[0] == 401
        assert (await post_json(s, url, body, p.viewer_headers()))[0] == 403
        assert (await post_json(s, url, body, p.ingest_headers()))[0] == 200
        assert (await post_json(s, url, body, basic("am", p.ingest_token)))[0] == 200
        async with s.post(url, data=b"{not json", headers={**p.ingest_headers(), **JSON}) as resp:
            assert resp.status == 400
        async with s.get(p.url + ALERTS, headers=p.ingest_headers()) as resp:
            assert resp.status == 403
        async with s.get(p.url + ALERTS, headers=p.viewer_headers()) as resp:
            assert resp.status == 200
    assert p.terminate() == 0
    log = p.log()
    assert listened(p), log  # the log was written at all
    for name, token in (("wrong", wrong), ("ingest", p.ingest_token), ("viewer", p.viewer_token)):
        assert token not in log, f"the {name} token appears in the log"
