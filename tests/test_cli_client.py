"""The command-line client against a running daemon (real HTTP on a loopback port, real store and pipeline):
every command family, table and JSON output, exit codes (404, 409, 401, connection refused, usage), `--all`
paging, colour only on a terminal without NO_COLOR, and hostile alert text escaped in tables."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from itsmd import cli
from itsmd.app import Daemon
from itsmd.client import commands
from itsmd.core.access import Role
from tests import daemon as d
from tests.process import free_port

RULES = """
rules:
  - name: cpu
    match: ['alertname="HighCpu"']
    group_by: [instance]
    title: "{{ labels.instance }} is busy"
    problem: {after: 1, within: 1h}
"""
ING = d.bearer(Role.INGEST)
OPS, VIEWER, ADMIN = d.TOKENS[Role.OPERATOR], d.TOKENS[Role.VIEWER], d.TOKENS[Role.ADMIN]
HOSTILE = "\x1b[2J\x1b]0;pwned\x07evil\nline\u202eabc"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Running:
    def __init__(self, dm: Daemon, url: str) -> None:
        self.dm, self.url = dm, url

    async def itsmd(self, *argv: str, token: str | None = OPS) -> tuple[int, str, str]:
        """`itsmd ARGV --url URL [--token T]` in a thread (the client blocks; the daemon runs on this loop)."""
        extra = ["--url", self.url] + (["--token", token] if token else [])
        return await run_cli(*argv, *extra)

    async def json(self, *argv: str, token: str | None = OPS) -> Any:
        code, out, err = await self.itsmd(*argv, "--format", "json", token=token)
        assert code == 0, err
        return orjson.loads(out)

    async def fire(self, *alerts: dict[str, Any]) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as s, s.post(
                f"{self.url}/api/v1/webhooks/alertmanager", headers=ING,
                json={"version": "4", "alerts": list(alerts)}) as resp:
            assert resp.status == 200
        await self.dm.pipeline.drain()


async def run_cli(*argv: str) -> tuple[int, str, str]:
    def call() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = cli.main(list(argv))
            except SystemExit as e:
                code = int(e.code or 0)
        return code, out.getvalue(), err.getvalue()

    return await asyncio.to_thread(call)


def alert(instance: str, **labels: str) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": "HighCpu", "instance": instance, **labels},
            "annotations": {}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}


@pytest.fixture
async def running(tmp_path: Path, aiohttp_server: Callable[..., Awaitable[TestServer]],
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    for name in ("ITSMD_URL", "ITSMD_TOKEN", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "tester")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    dm = d.daemon(d.config(tmp_path))
    await dm.start_core()
    server = await aiohttp_server(dm.app)
    yield Running(dm, f"http://127.0.0.1:{server.port}")
    await dm.stop()


async def test_incident_commands_table_json_and_conflicts(running: Running) -> None:
    await running.fire(alert("a"), alert("b"))
    listed = await running.json("incidents", "ls")
    assert [i["title"] for i in listed["items"]] == ["b is busy", "a is busy"] and listed["next_cursor"] is None
    code, out, _ = await running.itsmd("incidents", "ls", "--state", "open")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["ID", "STATE", "PRI"]
    assert lines[1].startswith("INC-2") and "b is busy" in lines[1] and "1/1" in lines[1]

    acked = await running.json("incidents", "ack", "INC-1", "--comment", "on it")
    assert acked["state"] == "acknowledged"
    code, _, err = await running.itsmd("incidents", "ack", "INC-1")
    assert code == 1 and "HTTP 409" in err and "acknowledged" in err
    assert (await running.json("incidents", "assign", "INC-1", "--assignee", "bob"))["assignee"] == "bob"
    await running.json("incidents", "note", "INC-1", "--text", "looked at it")
    resolved = await running.json("incidents", "resolve", "INC-1", "--resolution", "manual")
    assert (resolved["state"], resolved["resolution"]) == ("resolved", "manual")
    assert (await running.json("incidents", "reopen", "INC-1"))["state"] == "open"
    merged = await running.json("incidents", "merge", "INC-2", "--into", "INC-1")
    assert merged["state"] == "closed"
    assert (await running.json("incidents", "ls", "--state", "closed"))["items"][0]["id"] == "INC-2"

    code, out, _ = await running.itsmd("incidents", "show", "INC-1")
    assert code == 0 and "assignee" in out and "bob" in out
    timeline = out[out.index("timeline:"):]
    assert all(a in timeline for a in ("ack", "on it", "assigned", "looked at it", "merged_in"))
    assert "alerts:" in out and "instance=a" in out and "instance=b" in out  # both alerts now belong to INC-1
    code, out, err = await running.itsmd("incidents", "show", "INC-99")
    assert (code, out) == (1, "") and "no such incident" in err and "HTTP 404" in err


async def test_problem_commands(running: Running) -> None:
    await running.fire(alert("a"))
    [problem] = (await running.json("problems", "ls"))["items"]
    pid = problem["id"]
    changed = await running.json("problems", "set", pid, "--state", "investigating", "--owner", "dba")
    assert (changed["state"], changed["owner"]) == ("investigating", "dba")
    known = await running.json("problems", "known-error", pid, "--root-cause", "leak", "--workaround", "restart")
    assert known["known_error"]["root_cause"] == "leak" and known["state"] == "known_error"
    code, out, _ = await running.itsmd("problems", "show", pid)
    assert code == 0 and "root_cause: leak" in out and "known_error" in out
    code, _, err = await running.itsmd("problems", "set", pid, "--state", "sideways")
    assert code == 2 and "invalid choice" in err  # refused before any request


async def test_alert_commands_escape_hostile_text_in_tables(running: Running) -> None:
    await running.fire(alert("a", note=HOSTILE), {**alert("x"), "labels": {"alertname": HOSTILE}})
    code, out, _ = await running.itsmd("alerts", "ls")
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b[2J\\x1b]0;pwned\\x07evil\\nline\\u202eabc" in out
    assert len(out.splitlines()) == 3  # the newline inside a label did not start a row of its own
    items = (await running.json("alerts", "ls"))["items"]
    assert {a["labels"]["alertname"] for a in items} == {"HighCpu", HOSTILE}  # JSON keeps the data as it is
    code, out, _ = await running.itsmd("alerts", "ls", "--unrouted")
    assert code == 0 and len(out.splitlines()) == 2 and "\\x1b" in out
    hostile = next(a for a in items if a["labels"]["alertname"] == "HighCpu")
    code, out, _ = await running.itsmd("alerts", "show", hostile["id"])
    assert code == 0 and "\x1b" not in out and "note: \\x1b[2J" in out
    code, _, err = await running.itsmd("alerts", "show", "../incidents")
    assert code == 1 and "no such alert" in err


async def test_silence_commands_and_paging(running: Running) -> None:
    for n in range(3):
        await running.json("silences", "add", "--matcher", f'instance="i{n}"', "--matcher", "job=~node.*",
                           "--duration", "1h", "--comment", f"window {n}", "--created-by", "alice")
    scheduled = await running.json("silences", "add", "--matcher", 'job="db"', "--schedule", "0 2 * * SUN",
                                   "--duration", "2h", "--comment", "backups")
    assert scheduled["schedule"] == "0 2 * * SUN" and scheduled["duration"] == 7200.0
    assert scheduled["created_by"] == "tester"  # $USER
    first = await running.json("silences", "ls", "--limit", "1")
    assert len(first["items"]) == 1 and first["next_cursor"]
    code, _, err = await running.itsmd("silences", "ls", "--limit", "1")
    assert code == 0 and f"--cursor {first['next_cursor']}" in err
    every = await running.json("silences", "ls", "--limit", "1", "--all")
    assert len(every["items"]) == 4 and every["next_cursor"] is None
    active = await running.json("silences", "ls", "--active")
    assert {s["comment"] for s in active["items"]} == {"window 0", "window 1", "window 2"}
    sid = active["items"][0]["id"]
    assert active["items"][0]["matchers"][1] == 'job=~"node.*"'
    assert (await running.json("silences", "expire", sid))["state"] == "expired"
    code, _, err = await running.itsmd("silences", "expire", sid)
    assert code == 1 and "already ended" in err and "HTTP 409" in err
    code, out, _ = await running.itsmd("silences", "show", sid)
    assert code == 0 and "expired" in out and "window" in out
    code, _, err = await running.itsmd("silences", "add", "--matcher", 'job="x"', "--comment", "c")
    assert code == 2 and "--ends-at, --duration" in err
    code, _, err = await running.itsmd("silences", "add", "--matcher", 'job="x"', "--comment", "c",
                                       "--duration", "soon")
    assert code == 2 and "not a duration" in err


async def test_exit_codes_for_auth_connection_and_usage(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = await running.itsmd("incidents", "ls", token=None)
    assert (code, out) == (1, "") and "authentication required" in err and "HTTP 401" in err
    code, _, err = await running.itsmd("incidents", "ls", token="wrong-token")
    assert code == 1 and "invalid credentials" in err
    code, _, err = await running.itsmd("silences", "expire", "x", token=VIEWER)
    assert code == 1 and "HTTP 403" in err
    code, _, err = await run_cli("incidents", "ls", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 3 and "cannot reach" in err
    code, _, err = await run_cli("incidents", "ls", "--url", "ftp://example")
    assert code == 2 and "--url must be" in err
    code, _, err = await running.itsmd("incidents", "assign", "INC-1")
    assert code == 2 and "--assignee" in err
    monkeypatch.setenv("ITSMD_URL", running.url)
    monkeypatch.setenv("ITSMD_TOKEN", VIEWER)
    code, out, _ = await run_cli("incidents", "ls", "--format", "json")  # URL and token from the environment
    assert code == 0 and orjson.loads(out) == {"items": [], "next_cursor": None}


async def test_colour_only_on_a_terminal_without_no_color(running: Running) -> None:
    await running.fire(alert("a", note=HOSTILE))
    parser = cli._parser()

    def table(env: dict[str, str], out: io.StringIO) -> str:
        args = parser.parse_args(["incidents", "ls", "--url", running.url, "--token", VIEWER])
        assert commands.run(args, env, out, io.StringIO()) == 0
        return out.getvalue()

    coloured = await asyncio.to_thread(table, {}, Tty())
    assert "\x1b[31mopen" in coloured and "\x1b[1mID" in coloured
    assert "\x1b" not in await asyncio.to_thread(table, {"NO_COLOR": "1"}, Tty())
    assert "\x1b" not in await asyncio.to_thread(table, {}, io.StringIO())


async def test_run_commands_send_the_contract_requests(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> None:
    """The runs endpoints live on another branch: a recording stand-in checks method, path and body."""
    seen: list[tuple[str, str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        assert request.method == "GET" or request.content_type == "application/json"
        seen.append((request.method, request.path_qs, body))
        if request.path == "/api/v1/runs" and request.method == "GET":
            return web.json_response({"items": [{"id": "RUN-1", "state": "succeeded", "playbook": "p",
                                                 "incident_id": "INC-1"}], "next_cursor": None})
        return web.json_response({"id": "RUN-1", "state": "running", "steps": [
            {"name": "restart", "state": "running", "attempt": 1}]}, status=201 if request.method == "POST" else 200)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    url = f"http://127.0.0.1:{server.port}"
    for argv in (["ls", "--incident", "INC-1", "--state", "running"], ["show", "RUN-1"],
                 ["run", "--playbook", "p", "--incident", "INC-1"], ["approve", "RUN-1", "--comment", "ok"],
                 ["reject", "RUN-1"], ["cancel", "RUN-1"]):
        code, out, err = await run_cli("runs", *argv, "--url", url)
        assert code == 0, err
    assert seen == [
        ("GET", "/api/v1/runs?incident=INC-1&state=running", None), ("GET", "/api/v1/runs/RUN-1", None),
        ("POST", "/api/v1/runs", {"playbook": "p", "incident_id": "INC-1"}),
        ("POST", "/api/v1/runs/RUN-1/approve", {"comment": "ok"}), ("POST", "/api/v1/runs/RUN-1/reject", {}),
        ("POST", "/api/v1/runs/RUN-1/cancel", {}),
    ]
    code, out, _ = await run_cli("runs", "show", "RUN-1", "--url", url)
    assert "steps:" in out and "restart" in out
