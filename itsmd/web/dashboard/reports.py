"""The reports page for managers (`GET /reports`, viewer) and the problem page it links to (`GET /problems/PRB-n`).

The page computes no figure itself: it asks the report engine (`itsmd.report`, the same calls as `GET
/api/v1/reports/summary?by=week&noisiest=10` and `.../recurring`) and draws the answer as server-side SVG
(`chart`). Ranges: the last 7, 30 or 90 days (ending at the current minute), or `from`/`to` as dates (whole days
in `reports.timezone`, `to` included) or RFC 3339 times (`to` excluded). The engine's answers are cached per
range for `CACHE_SECONDS` and shown (dated) while a newer answer is computed, because a report reads every incident
of its period: up to about 2 s at 100,000 incidents on SQLite (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from markupsafe import Markup
from sqlalchemy import Connection

from itsmd import report
from itsmd.core.access import Permission
from itsmd.core.incident import display_id as incident_id
from itsmd.core.problem import parse_id
from itsmd.core.report import Dimension, Period, Settings, period
from itsmd.core.timestamp import format_time, parse_time
from itsmd.errors import NotFound
from itsmd.storage import problems
from itsmd.storage.reports import RESOLUTIONS
from itsmd.task import cancel
from itsmd.web.auth import requires
from itsmd.web.context import ctx
from itsmd.web.dashboard import chart
from itsmd.web.dashboard.pages import _render
from itsmd.web.problems import problem_json

RANGES = {"7d": 7, "30d": 30, "90d": 90}  # the quick ranges: last N days
DEFAULT_RANGE = "30d"
MAX_DAYS = 366  # a longer custom range is refused (a year of weeks is the most a chart can show)
NOISIEST = 10
CACHE_SECONDS = 60.0  # how long the engine's answer for one range is reused as it is
STALE_SECONDS = 600.0  # until then an older answer is shown while a new one is computed
CACHE_ENTRIES = 16
log = logging.getLogger("itsmd.web")
RESOLUTION_NAMES = {"auto_remediated": "auto-remediated", "self_healed": "self-healed",
                    "manual": "resolved by a person"}


def _day_or_time(text: str, zone: ZoneInfo, end: bool) -> datetime | None:
    """`YYYY-MM-DD` = that day in the zone (as an end: the next midnight, so the day is included), else RFC 3339."""
    try:
        if len(text) == 10:
            try:
                day = date.fromisoformat(text)
            except ValueError as e:
                raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from e
            if end:
                day += timedelta(days=1)
            return datetime.combine(day, time(), zone).astimezone(UTC)
        return parse_time(text)
    except OverflowError as e:  # the first or last day a datetime can hold
        raise ValueError(f"out of range: {text!r}") from e


def page_period(query: Mapping[str, str], now: datetime, timezone: str) -> tuple[Period, str]:
    """The period a query asks for and the quick range it is ("" for a custom range). ValueError when invalid."""
    start_text, end_text = query.get("from", "").strip(), query.get("to", "").strip()
    if start_text or end_text:
        zone = ZoneInfo(timezone)
        try:
            start = _day_or_time(start_text, zone, end=False) if start_text else None
        except ValueError as e:
            raise ValueError(f"from: {e}") from e
        try:
            end = _day_or_time(end_text, zone, end=True) if end_text else None
        except ValueError as e:
            raise ValueError(f"to: {e}") from e
        p = period(start, end, now)
        if p.end - p.start > timedelta(days=MAX_DAYS):
            raise ValueError(f"the range may span at most {MAX_DAYS} days")
        return p, ""
    quick = query.get("range") or DEFAULT_RANGE
    if quick not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}")
    end = now.replace(second=0, microsecond=0)  # to the minute: reloads within it share the cached figures
    return Period(end - timedelta(days=RANGES[quick]), end), quick


@dataclass
class _Entry:
    doc: dict[str, Any] | None = None  # the last answer
    at: float = 0.0  # when it was asked for (monotonic seconds)
    task: asyncio.Task[dict[str, Any]] | None = None  # a computation in flight


@dataclass
class FiguresCache:
    """The engine's answers per key (a quick range, or a custom period; and the settings). An answer younger
    than `fresh` seconds is reused; an older one, up to `stale` seconds, is still shown while a new one is computed
    in the background (the page says when its figures were computed), so only the first visit of a range waits
    for the engine. Concurrent requests share one computation; a failed one is not kept."""

    fresh: float = CACHE_SECONDS
    stale: float = STALE_SECONDS
    entries: dict[tuple[Any, ...], _Entry] = field(default_factory=dict)

    def _start(self, entry: _Entry, now: float,
               compute: Callable[[], Awaitable[dict[str, Any]]]) -> asyncio.Task[dict[str, Any]]:
        async def run() -> dict[str, Any]:
            try:
                doc = await compute()
            except BaseException:
                log.warning("reports page: computing the figures failed", exc_info=True)
                raise
            finally:
                entry.task = None
            entry.doc, entry.at = doc, now
            return doc

        task = asyncio.ensure_future(run())
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())  # retrieved: logged above
        return task

    async def get(self, key: tuple[Any, ...], now: float,
                  compute: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        entry = self.entries.get(key)
        if entry is None:
            idle = [k for k, e in self.entries.items() if e.task is None]
            for old in idle[:max(0, len(self.entries) - CACHE_ENTRIES + 1)]:
                del self.entries[old]
            entry = self.entries[key] = _Entry()
        age = now - entry.at
        if entry.doc is not None and age < self.stale:
            if age >= self.fresh and entry.task is None:
                entry.task = self._start(entry, now, compute)  # refresh in the background
            return entry.doc
        if entry.task is None:
            entry.task = self._start(entry, now, compute)
        return await asyncio.shield(entry.task)

    async def close(self, app: web.Application | None = None) -> None:
        """End the computations in flight (at shutdown)."""
        for e in list(self.entries.values()):
            await cancel(e.task)


FIGURES = web.AppKey("itsmd.dashboard.report_figures", FiguresCache)


def figures(conn: Connection, s: Settings, p: Period, now: datetime) -> dict[str, Any]:
    """What the page shows: the summary by week with the noisiest alert names, and the recurring problems — the
    engine's answers, as `GET /api/v1/reports/summary?by=week&noisiest=10` and `.../recurring` give them."""
    summary = report.summary(conn, s, p, Dimension.WEEK, now, NOISIEST)
    return {"summary": summary, "recurring": report.recurring(conn, p), "at": format_time(now)}


def _short_week(label: str) -> str:
    return label.rsplit("-", 1)[-1]  # 2026-W48 -> W48


def _charts(doc: dict[str, Any]) -> dict[str, Markup]:
    s = doc["summary"]
    by: dict[str, Any] = s["by"]
    weeks = sorted(by)
    none_yet = s["incidents"] == 0

    def msg(text: str) -> str:
        return chart.EMPTY if none_yet else text

    def stat_series(metric: str) -> list[chart.Series]:
        return [chart.Series(k, name, [by[w][metric][k] for w in weeks]) for k, name in (("mean", "mean"),
                                                                                           ("p90", "p90"))]

    out = {
        "mttr": chart.lines("chart-mttr", "MTTR per week (detected to restored)", weeks, stat_series("mttr"),
                            short=_short_week, empty_text=msg("No incident was restored in this range.")),
        "mtta": chart.lines("chart-mtta", "MTTA per week (opened to acknowledged)", weeks, stat_series("mtta"),
                            short=_short_week, empty_text=msg("No incident was acknowledged in this range.")),
        "resolutions": chart.columns(
            "chart-resolutions", "Resolved incidents per week by how they were resolved", weeks,
            [chart.Series(r, RESOLUTION_NAMES[r], [by[w]["resolutions"][r] for w in weeks]) for r in RESOLUTIONS],
            short=_short_week, empty_text=msg("No incident was resolved in this range.")),
        "recurring": chart.ranking(
            "chart-recurring", "Top recurring problems by incidents",
            [chart.Bar(str(i["signature"]), i["incidents"],
                       f"down {chart.duration_text(i['downtime'])}" + (", known error" if i["known_error"] else ""))
             for i in doc["recurring"]["items"]],
            empty_text=msg("No problem recurred in this range (2 or more incidents).")),
        "noisiest": chart.ranking(
            "chart-noisiest", "Noisiest alert names by deliveries",
            [chart.Bar("(no alertname)" if n["alertname"] is None else str(n["alertname"]), n["deliveries"],
                       f"{n['episodes']} episode{'' if n['episodes'] == 1 else 's'}") for n in s.get("noisiest", [])],
            empty_text="No alerts in this range."),
    }
    sla = s["sla_breaches"]
    if sla:
        priorities = sorted(sla)
        out["sla"] = chart.columns(
            "chart-sla", "SLA breaches per priority", priorities,
            [chart.Series(k, f"{k} target missed", [sla[p][k] for p in priorities]) for k in ("ack", "restore")],
            stacked=False, empty_text=msg("No SLA target was missed in this range."))
    else:
        out["sla"] = chart.empty("No SLA targets are configured (reports.sla).")
    return {k: Markup(v) for k, v in out.items()}  # noqa: S704 - chart escapes every text it draws


@requires(Permission.READ)
async def report_page(request: web.Request) -> web.Response:
    """GET /reports?range=7d|30d|90d or ?from=&to=: charts of the engine's figures; 400 (the page, with the
    form) for a range it cannot read."""
    c = ctx(request)
    now, s = c.clock.now(), c.report_settings()
    q = request.query
    form = {"range": q.get("range", ""), "from": q.get("from", ""), "to": q.get("to", "")}
    base: dict[str, Any] = {"title": "Reports", "ranges": list(RANGES), "form": form, "timezone": s.timezone}
    try:
        p, quick = page_period(q, now, s.timezone)
    except ValueError as e:
        resp = _render(request, "reports.html", error=str(e), **base)
        resp.set_status(400)
        return resp
    cache = request.app[FIGURES]

    async def compute() -> dict[str, Any]:
        at = c.clock.now()  # a refresh of a quick range ends at its own minute
        period_now, _ = page_period(q, at, s.timezone) if quick else (p, quick)
        return await c.store.read(lambda conn: figures(conn, s, period_now, at))

    key = ("range", quick, repr(s)) if quick else ("period", p.start, p.end, repr(s))
    doc = await cache.get(key, c.clock.monotonic(), compute)
    summary = doc["summary"]
    return _render(request, "reports.html", error=None, quick=quick, summary=summary, weeks=sorted(summary["by"]),
                   recurring=doc["recurring"]["items"], charts=_charts(doc), computed_at=doc["at"],
                   cache_seconds=cache.fresh, api_query=urlencode({"from": summary["from"], "to": summary["to"]}),
                   resolution_names=RESOLUTION_NAMES, **base)


@requires(Permission.READ)
async def problem_page(request: web.Request) -> web.Response:
    """GET /problems/PRB-n: one problem with its known error and its incidents (linked from the reports)."""
    number = parse_id(request.match_info["id"])

    def detail(conn: Connection) -> dict[str, Any] | None:
        row = problems.get(conn, number) if number is not None else None
        if row is None:
            return None
        return {**problem_json(row), "incidents": [incident_id(i) for i in problems.incident_ids(conn, row["id"])]}

    found = await ctx(request).store.read(detail)
    if found is None:
        raise NotFound("no such problem")
    return _render(request, "problem.html", title=f"{found['id']} {found['title']}", problem=found)


def add_routes(app: web.Application) -> None:
    cache = app[FIGURES] = FiguresCache()
    app.on_cleanup.append(cache.close)
    app.router.add_get("/reports", report_page)
    app.router.add_get("/problems/{id}", problem_page)


__all__ = ["FIGURES", "FiguresCache", "add_routes", "page_period"]
