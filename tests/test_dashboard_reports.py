"""The dashboard's reports page through the running daemon (in-process, real pipeline and store on SQLite and
PostgreSQL): auth, range parsing (bad input is a 400 page, never a 500), the numbers drawn are the report API's for
the same range, alert data escaped inside the SVG, empty ranges, the per-period cache, and the problem page."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.core.access import Role
from itsmd.core.report import Period
from itsmd.core.timestamp import format_time
from itsmd.web.dashboard.reports import FiguresCache, page_period
from tests import daemon as d
from tests.daemon import send

Client = TestClient  # type: ignore[type-arg]
ING, VIEW, OPS = d.bearer(Role.INGEST), d.bearer(Role.VIEWER), d.bearer(Role.OPERATOR)
EVIL = '<script>alert("x")</script>'
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"  # Jinja's escape
SVG_ESCAPED = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"  # the chart module's
RULES = ("rules:\n  - {name: per-instance, match: ['alertname=~\".+\"'], group_by: [instance, service],\n"
         "     problem: {after: 2, within: 1h}}\n")
NOW = datetime(2026, 11, 26, 4, 0, tzinfo=UTC)  # Thursday of 2026-W48
RANGE = {"from": "2026-11-16", "to": "2026-11-26"}  # whole days in UTC: 2026-11-16T00:00Z .. 2026-11-27T00:00Z


@pytest.fixture(params=["sqlite", "postgres"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    database = d.engine_database(request.param)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(RULES)
    clock = FakeClock(NOW)
    dm = d.daemon(d.config(tmp_path, database=database), clock)
    await dm.start_core()
    yield dm, clock
    await dm.stop()


@pytest.fixture
async def client(running: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(running[0].app)


def alert(instance: str, starts: datetime, ends: datetime | None = None, name: str = EVIL,
          service: str = EVIL, **labels: str) -> dict[str, Any]:
    return {"status": "resolved" if ends else "firing",
            "labels": {"alertname": name, "instance": instance, "service": service, **labels}, "annotations": {},
            "startsAt": format_time(starts), "endsAt": format_time(ends) if ends else "0001-01-01T00:00:00Z"}


async def page(client: Client, path: str, headers: dict[str, str] = VIEW, status: int = 200) -> str:
    resp = await client.get(path, headers=headers)
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "text/html"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    return text


async def api(client: Client, path: str, **params: str) -> Any:
    resp = await client.get(path, headers=VIEW, params=params)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def incident_history(client: Client, dm: Daemon, clock: FakeClock) -> None:
    """W47: `a` fires and clears by itself (self-healed). W48: `b` fires, is acknowledged after 2 min and resolved
    by hand (manual), missing its P2 restore target; `c` (another service, a quiet alert name) still fires. `a`
    and `b` share a signature (the service label), so they are a recurring problem."""
    a_start = datetime(2026, 11, 17, 10, 0, tzinfo=UTC)
    await send(client, dm, alert("a", a_start), alert("a", a_start))  # delivered twice
    clock.advance(60)
    await send(client, dm, alert("a", a_start, a_start + timedelta(minutes=30)))
    await send(client, dm, alert("b", datetime(2026, 11, 25, 10, 0, tzinfo=UTC), severity="critical"))  # P2
    await send(client, dm, alert("c", datetime(2026, 11, 26, 3, 0, tzinfo=UTC), name="Quiet", service="web"))
    items = (await api(client, "/api/v1/incidents"))["items"]
    b = next(i for i in items if i["labels"]["instance"] == "b")
    clock.advance(120)
    for action in ("ack", "resolve"):
        resp = await client.post(f"/api/v1/incidents/{b['id']}/{action}", headers=OPS, json={})
        assert resp.status == 200, await resp.text()


def groups(text: str, chart_id: str) -> dict[str, dict[str, float]]:
    """{category: {series: value}} of a column chart's bars."""
    svg = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', text, re.S)
    assert svg is not None, f"no chart {chart_id}"
    out: dict[str, dict[str, float]] = {}
    for cat, body in re.findall(r'<g class="group" data-category="([^"]*)">(.*?)</g>', svg.group(0), re.S):
        out[html.unescape(cat)] = {k: float(v) for k, v in
                                   re.findall(r'data-series="([^"]*)" data-value="([^"]*)"', body)}
    return out


def points(text: str, chart_id: str) -> dict[str, dict[str, float]]:
    """{series: {category: value}} of a line chart's points."""
    svg = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', text, re.S)
    assert svg is not None, f"no chart {chart_id}"
    out: dict[str, dict[str, float]] = {}
    for series, body in re.findall(r'<g class="series" data-series="([^"]*)">(.*?)</g>\n(?=<g class="s|<g class="c)',
                                   svg.group(0), re.S):
        out[series] = {html.unescape(c): float(v) for c, v in
                       re.findall(r'<g class="point" data-category="([^"]*)" data-value="([^"]*)"', body)}
    return out


def ranks(text: str, chart_id: str) -> list[tuple[str, float]]:
    svg = re.search(rf'<svg class="chart" id="{chart_id}".*?</svg>', text, re.S)
    assert svg is not None, f"no chart {chart_id}"
    return [(html.unescape(label), float(v)) for label, v in
            re.findall(r'<g class="rank" data-label="([^"]*)" data-value="([^"]*)"', svg.group(0))]


async def test_reports_page_needs_a_reader_and_is_in_the_navigation(client: Client) -> None:
    resp = await client.get("/reports")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == 'Basic realm="itsmd"'
    assert (await client.get("/reports", headers=ING)).status == 403
    for path in ("/", "/problems", "/silences", "/reports"):
        assert '<a href="/reports"' in await page(client, path)
    assert '<a href="/reports" aria-current="page">Reports</a>' in await page(client, "/reports")


async def test_numbers_drawn_are_the_report_apis(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    await incident_history(client, dm, clock)
    text = await page(client, "/reports?" + "&".join(f"{k}={v}" for k, v in RANGE.items()))
    start, end = "2026-11-16T00:00:00.000000Z", "2026-11-27T00:00:00.000000Z"
    assert f"From <time>{start}</time> to <time>{end}</time>" in text
    summary = await api(client, "/api/v1/reports/summary", **{"from": start, "to": end}, by="week", noisiest="10")
    recurring = await api(client, "/api/v1/reports/recurring", **{"from": start, "to": end})
    weeks = summary["by"]

    # What the data says (so the comparison below is not between two empty answers)...
    assert list(weeks) == ["2026-W47", "2026-W48"] and summary["incidents"] == 3
    assert weeks["2026-W47"]["resolutions"] == {"auto_remediated": 0, "self_healed": 1, "manual": 0}
    assert weeks["2026-W48"]["resolutions"] == {"auto_remediated": 0, "self_healed": 0, "manual": 1}
    assert weeks["2026-W48"]["mtta"]["n"] == 1 and weeks["2026-W47"]["mttr"]["n"] == 1
    assert summary["sla_breaches"] == {"P1": {"ack": 0, "restore": 0}, "P2": {"ack": 0, "restore": 1}}
    # ... and the page draws exactly the API's numbers.
    assert groups(text, "chart-resolutions") == {w: {k: float(v) for k, v in g["resolutions"].items()}
                                                 for w, g in weeks.items()}
    for metric in ("mttr", "mtta"):
        drawn = points(text, f"chart-{metric}")
        assert drawn == {k: {w: g[metric][k] for w, g in weeks.items() if g[metric][k] is not None}
                         for k in ("mean", "p90")}, metric
    assert groups(text, "chart-sla") == {p: {k: float(v) for k, v in b.items()}
                                         for p, b in summary["sla_breaches"].items()}
    assert ranks(text, "chart-noisiest") == [(n["alertname"], n["deliveries"]) for n in summary["noisiest"]]
    assert [n for n, _ in ranks(text, "chart-noisiest")] == [EVIL, "Quiet"]
    [item] = recurring["items"]
    assert ranks(text, "chart-recurring") == [(item["signature"], item["incidents"])]
    assert item["incidents"] == 2 and item["problem_id"] is not None
    assert f'<a href="/problems/{item["problem_id"]}">' in text  # in the table beside the chart
    assert f'<dt>Incidents</dt><dd>{summary["incidents"]}</dd>' in text
    for w in weeks:  # the data tables say the same
        assert f'<th scope="row">{w}</th><td>{weeks[w]["incidents"]}</td>' in text

    # Alert data is text everywhere: in SVG <text>, <title>, <desc>, attributes and the tables.
    assert EVIL not in text and text.count("<script") == 1  # the dashboard's own script only
    assert f">{SVG_ESCAPED}</text>" in text and f'data-label="{SVG_ESCAPED}"' in text
    assert f"<td>{ESCAPED}</td>" in text


async def test_bad_ranges_answer_a_400_page(client: Client) -> None:
    for query, message in (
        ("range=5d", "range must be one of 7d, 30d, 90d"),
        ("from=2026-13-01", "from: not a date"),
        ("from=yesterday", "from: "),
        ("to=2026-11-26T25:00:00Z", "to: "),
        ("from=2026-11-20&to=2026-11-10", "from must be before to"),
        ("from=2024-01-01&to=2026-01-01", "at most 366 days"),
        ("from=9999-12-30&to=9999-12-31", "to: out of range"),
        (f"from={EVIL}", "from: "),
    ):
        text = await page(client, f"/reports?{query}", status=400)
        assert 'role="alert"' in text and html.escape(message, quote=True).replace("&#x27;", "&#39;") in text, query
        assert '<form class="filters"' in text and "<svg" not in text  # the form stays, to correct the range
        assert EVIL not in text
    assert "No incidents in this range." in await page(client, "/reports?from=0001-01-01&to=0001-01-02")  # edge, fine


async def test_quick_ranges_and_an_empty_range(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    text = await page(client, "/reports")  # the last 30 days by default
    assert '<a href="/reports?range=30d" aria-current="true">' in text
    assert "From <time>2026-10-27T04:00:00.000000Z</time> to <time>2026-11-26T04:00:00.000000Z</time>" in text
    # nothing stored: every chart is a sentence, no empty axis
    assert "<svg" not in text and text.count("No incidents in this range.") >= 5
    assert "No alerts in this range." in text
    text = await page(client, "/reports?range=7d")
    assert "From <time>2026-11-19T04:00:00.000000Z</time>" in text


async def incidents_shown(client: Client, path: str, want: int) -> None:
    """Wait (bounded) until the page shows `want` incidents: a background refresh is under way."""
    for _ in range(200):
        if f"<dt>Incidents</dt><dd>{want}</dd>" in await page(client, path):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"{path} never showed {want} incidents")


async def test_figures_are_reused_then_refreshed(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    path = "/reports?from=2026-11-20&to=2026-11-26"
    assert "<dt>Incidents</dt><dd>0</dd>" in await page(client, path)
    await send(client, dm, alert("x", datetime(2026, 11, 25, 9, 0, tzinfo=UTC)))
    assert "<dt>Incidents</dt><dd>0</dd>" in await page(client, path)  # fresh for a minute: reused
    other = "/reports?from=2026-11-21&to=2026-11-26"  # another period: computed at once
    assert "<dt>Incidents</dt><dd>1</dd>" in await page(client, other)
    clock.advance(61)
    # older than a minute: shown once more while the new figures are computed in the background
    assert "<dt>Incidents</dt><dd>0</dd>" in await page(client, path)
    await incidents_shown(client, path, 1)
    await send(client, dm, alert("y", datetime(2026, 11, 25, 9, 0, tzinfo=UTC)))
    clock.advance(601)  # too old to show: computed afresh, and waited for
    assert "<dt>Incidents</dt><dd>2</dd>" in await page(client, path)


async def test_the_cache_shares_one_computation_and_keeps_no_failure() -> None:
    cache = FiguresCache(fresh=60, stale=600)
    calls: list[int] = []
    gate = asyncio.Event()

    async def compute() -> dict[str, Any]:
        calls.append(1)
        await gate.wait()
        return {"n": len(calls)}

    waiting = [asyncio.ensure_future(cache.get(("k",), 0.0, compute)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    assert [await w for w in waiting] == [{"n": 1}] * 3 and len(calls) == 1

    async def broken() -> dict[str, Any]:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        await cache.get(("other",), 0.0, broken)
    assert await cache.get(("other",), 1.0, compute) == {"n": 2}  # the failure was not kept
    for k in range(40):  # bounded: old idle entries make room
        await cache.get(("many", k), 2.0, compute)
    assert len(cache.entries) <= 16
    await cache.close()


async def test_problem_page(client: Client, running: tuple[Daemon, FakeClock]) -> None:
    dm, clock = running
    await incident_history(client, dm, clock)
    problems = (await api(client, "/api/v1/problems"))["items"]
    [problem] = problems
    text = await page(client, f"/problems/{problem['id']}")
    assert f"<h1>{problem['id']}: " in text and EVIL not in text and "&lt;script&gt;alert(" in text
    assert len(re.findall(r'<a href="/incidents/INC-\d+">', text)) == 2
    assert (await client.get("/problems/PRB-99999", headers=VIEW)).status == 404
    assert (await client.get("/problems/nope", headers=VIEW)).status == 404


def test_page_periods_in_the_reports_time_zone() -> None:
    now = datetime(2026, 11, 26, 4, 0, 30, 500, tzinfo=UTC)
    berlin = page_period({"from": "2026-11-16", "to": "2026-11-22"}, now, "Europe/Berlin")
    # the ISO week 2026-W47 in Berlin (UTC+1): Monday 00:00 local to the next Monday 00:00 local
    assert berlin == (Period(datetime(2026, 11, 15, 23, tzinfo=UTC), datetime(2026, 11, 22, 23, tzinfo=UTC)), "")
    exact = page_period({"from": "2026-11-16T10:00:00+02:00", "to": "2026-11-17T00:00:00Z"}, now, "Europe/Berlin")
    assert exact[0] == Period(datetime(2026, 11, 16, 8, tzinfo=UTC), datetime(2026, 11, 17, tzinfo=UTC))
    only_from = page_period({"from": "2026-11-20"}, now, "UTC")[0]
    assert only_from == Period(datetime(2026, 11, 20, tzinfo=UTC), now)  # `to` = now, as in the API
    week, quick = page_period({"range": "7d"}, now, "Europe/Berlin")
    assert quick == "7d" and week.end == datetime(2026, 11, 26, 4, 0, tzinfo=UTC)  # to the minute
    assert week.end - week.start == timedelta(days=7)
    assert page_period({}, now, "UTC")[1] == "30d"
    with pytest.raises(ValueError, match="range must be one of"):
        page_period({"range": "1y"}, now, "UTC")
