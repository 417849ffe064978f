"""The dashboard's pages through the running daemon (in-process, real store on SQLite and PostgreSQL): basic auth
with the 401 challenge, alert data escaped, filters and pagination, operator-only buttons, shipped assets."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.core.access import Role
from tests import daemon as d
from tests.daemon import send

Client = TestClient  # type: ignore[type-arg]
ING = d.bearer(Role.INGEST)
RULES = ("rules:\n  - {name: per-instance, match: ['alertname=~\".+\"'], group_by: [instance],\n"
         "     problem: {after: 2, within: 1h}}\n")
EVIL = '<script>alert("x")</script>'


def basic(role: Role) -> dict[str, str]:
    pair = f"{role}-client:{d.TOKENS[role]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


VIEW, OPS = basic(Role.VIEWER), basic(Role.OPERATOR)


@pytest.fixture(params=["sqlite", "postgres"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Daemon]:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    dm = d.daemon(d.config(tmp_path, database=database), FakeClock(datetime(2026, 11, 26, 4, 0, tzinfo=UTC)))
    await dm.start_core()
    yield dm
    await dm.stop()


@pytest.fixture
async def client(running: Daemon, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running.app)


def alert(instance: str, **labels: str) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": "Down", "instance": instance, **labels},
            "annotations": {"summary": f"{instance} is down"}, "startsAt": "2026-11-26T03:59:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "javascript:alert(1)"}


async def html(client: Client, path: str, headers: dict[str, str] = VIEW, status: int = 200) -> str:
    resp = await client.get(path, headers=headers)
    text = await resp.text()
    assert resp.status == status, text
    if status == 200:
        assert resp.content_type == "text/html"
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    return text


def listed_ids(page: str) -> list[str]:
    return re.findall(r'<a href="/incidents/(INC-\d+)">', page)


async def test_unauthenticated_dashboard_is_challenged_and_basic_auth_opens_it(client: Client) -> None:
    resp = await client.get("/")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == 'Basic realm="itsmd"'
    wrong = {"Authorization": "Basic " + base64.b64encode(b"viewer-client:nope").decode()}
    assert (await client.get("/", headers=wrong)).status == 401
    assert (await client.get("/", headers=basic(Role.INGEST))).status == 403  # ingest may only post alerts
    page = await html(client, "/")
    assert "No incidents match." in page and "viewer-client (viewer)" in page
    for path in ("/problems", "/silences"):
        assert (await client.get(path)).status == 401
        await html(client, path)


async def test_alert_data_is_escaped_and_unsafe_links_dropped(client: Client, running: Daemon) -> None:
    await send(client, running, alert("web-1", team=EVIL))
    page = await html(client, "/")
    [inc] = listed_ids(page)
    detail = await html(client, f"/incidents/{inc}")
    assert EVIL not in detail and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in detail
    assert "javascript:" not in detail  # the alert's generatorURL is not http(s): no link
    assert "web-1 is down" in detail and "opened" in detail  # the alert and the timeline
    await html(client, "/incidents/INC-999999", status=404)
    await html(client, "/incidents/nope", status=404)


async def test_filters_and_pagination(client: Client, running: Daemon) -> None:
    await send(client, running, alert("a", severity="critical"), alert("b", severity="info"), alert("c"))
    everything = listed_ids(await html(client, "/"))
    assert len(everything) == 3 and everything == sorted(everything, key=lambda i: -int(i[4:]))
    critical = listed_ids(await html(client, "/?priority=P2"))
    assert len(critical) == 1 and set(critical) < set(everything)
    assert listed_ids(await html(client, "/?state=resolved")) == []
    await html(client, "/?state=bogus", status=400)
    await html(client, "/?priority=P9", status=400)

    first = await html(client, "/?limit=2")
    assert listed_ids(first) == everything[:2]
    [older] = re.findall(r'class="more" href="([^"]+)"', first)
    second = await html(client, older.replace("&amp;", "&"))
    assert listed_ids(second) == everything[2:] and 'class="more"' not in second
    assert "not refreshed" in second  # only the first page refreshes itself


async def test_ack_buttons_only_for_operators(client: Client, running: Daemon) -> None:
    await send(client, running, alert("x"))
    [inc] = listed_ids(await html(client, "/"))
    assert 'data-action="ack"' not in await html(client, f"/incidents/{inc}")
    page = await html(client, f"/incidents/{inc}", headers=OPS)
    assert 'data-action="ack"' in page and 'data-action="resolve"' in page
    resp = await client.post(f"/api/v1/incidents/{inc}/ack", json={}, headers=OPS)
    assert resp.status == 200
    page = await html(client, f"/incidents/{inc}", headers=OPS)
    assert 'data-action="ack"' not in page and 'data-action="resolve"' in page


async def test_assets_ship_in_the_package(client: Client) -> None:
    for name, kind in (("dashboard.css", "text/css"), ("dashboard.js", "text/javascript")):
        resp = await client.get(f"/static/{name}")
        assert resp.status == 200 and resp.content_type == kind and len(await resp.read()) > 500
    assert (await client.get("/static/pages.py")).status == 404
    assert (await client.get("/static/..%2Fpages.py")).status == 404


async def test_problems_show_known_errors_as_text(client: Client, running: Daemon) -> None:
    assert "No problems recorded." in await html(client, "/problems")
    await send(client, running, alert("p-1"), alert("p-2"))  # two incidents of one rule: a problem
    [problem] = re.findall(r'<td><a href="/problems/(PRB-\d+)">PRB-\d+</a></td>', await html(client, "/problems"))
    assert problem in await html(client, f"/problems/{problem}")  # the list links to the problem's page
    resp = await client.put(f"/api/v1/problems/{problem}/known-error", headers=OPS,
                            json={"root_cause": "<b>disk</b> full", "workaround": "rotate logs"})
    assert resp.status == 200, await resp.text()
    page = await html(client, "/problems")
    assert "<dt>Root cause</dt><dd>&lt;b&gt;disk&lt;/b&gt; full</dd>" in page
    assert "<dt>Workaround</dt><dd>rotate logs</dd>" in page and "<dt>Playbook</dt>" not in page
