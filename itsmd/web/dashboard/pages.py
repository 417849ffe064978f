"""Dashboard pages: incidents (filtered, paginated, refreshed by the page's script from the JSON API), one
incident (timeline, alerts, runs; ack/resolve for operators), problems with known errors, silences, and runs
awaiting approval (approve/reject for operators).

Templates are a plain Jinja2 environment with autoescape on (never the sandboxed rule-template environment, and
never a template made from alert data); every asset ships in this package. Pages answer with a strict
Content-Security-Policy: scripts only from this origin, no inline script, so even a missed escape cannot run.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from itsmd.core.access import Permission, allows
from itsmd.core.incident import State
from itsmd.core.priority import Priority
from itsmd.core.run import RunState
from itsmd.errors import BadRequest, NotFound
from itsmd.storage import incidents, problems, runs, silences
from itsmd.web.auth import PRINCIPAL, requires
from itsmd.web.context import ctx
from itsmd.web.dashboard.chart import duration_text
from itsmd.web.incidents import incident_detail, incident_json
from itsmd.web.listing import Window, page, window
from itsmd.web.problems import problem_json
from itsmd.web.runs import run_json
from itsmd.web.silences import silence_json

PAGE_SIZE = 50  # incidents per page unless `limit` says otherwise (the listing's 1..1000)
REFRESH_SECONDS = 5  # the incident list re-reads /api/v1/incidents this often
_SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}


def _web_link(url: object) -> str | None:
    """An alert's URL only when it is http(s): a `javascript:` link from alert data is never rendered."""
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return url
    return None


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("itsmd.web.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["web_link"] = _web_link
_env.filters["duration"] = lambda seconds: "—" if seconds is None else duration_text(seconds)  # reports page


def _render(request: web.Request, name: str, **values: Any) -> web.Response:
    principal = request[PRINCIPAL]
    html = _env.get_template(name).render(
        principal=principal, can_operate=allows(principal.role, Permission.OPERATE), **values)
    return web.Response(text=html, content_type="text/html", charset="utf-8", headers=_SECURITY_HEADERS)


def _page_window(request: web.Request) -> Window:
    """The listing window, with the dashboard's smaller default page."""
    w = window(request)
    return w if "limit" in request.query else Window(PAGE_SIZE, w.before_id)


@requires(Permission.READ)
async def incident_list(request: web.Request) -> web.Response:
    """GET /?state=&service=&priority=&limit=&cursor=: newest first, one page (cheap with any number stored)."""
    q = request.query
    state = q.get("state") or None
    if state is not None and state not in set(State):
        raise BadRequest(f"state must be one of {', '.join(State)}")
    priority = q.get("priority") or None
    if priority is not None and priority not in set(Priority):
        raise BadRequest(f"priority must be one of {', '.join(Priority)}")
    service = q.get("service") or None
    f = incidents.IncidentFilter(state=state, service=service, priority=priority)
    w = _page_window(request)
    rows = await ctx(request).store.read(lambda conn: incidents.page(conn, f, w.limit, w.before_id))
    listed = page([incident_json(r) for r in rows], [r["id"] for r in rows], w)
    return _render(request, "incidents.html", title="Incidents", items=listed["items"],
                   next_cursor=listed["next_cursor"], first_page=w.before_id is None, limit=w.limit,
                   filters={"state": state or "", "service": service or "", "priority": priority or ""},
                   states=list(State), priorities=list(Priority), refresh=REFRESH_SECONDS)


@requires(Permission.READ)
async def incident_page(request: web.Request) -> web.Response:
    found = await incident_detail(request)
    return _render(request, "incident.html", title=f"{found['id']} {found['title']}", incident=found,
                   runs=found["runs"])


@requires(Permission.READ)
async def problem_list(request: web.Request) -> web.Response:
    """GET /problems?state=: problems newest first, with their known errors (root cause, workaround)."""
    state = request.query.get("state") or None
    w = _page_window(request)
    f = problems.ProblemFilter(state=state)
    rows = await ctx(request).store.read(lambda conn: problems.page(conn, f, w.limit, w.before_id))
    listed = page([problem_json(r) for r in rows], [r["id"] for r in rows], w)
    return _render(request, "problems.html", title="Problems and known errors", items=listed["items"],
                   next_cursor=listed["next_cursor"], state=state or "")


@requires(Permission.READ)
async def silence_list(request: web.Request) -> web.Response:
    """GET /silences: silences and maintenance windows, newest first."""
    c, w = ctx(request), _page_window(request)
    now = c.clock.now()
    rows = await c.store.read(lambda conn: silences.page(conn, w.limit, w.before_id, None, now))
    listed = page([silence_json(r, now) for r in rows], [r["seq"] for r in rows], w)
    return _render(request, "silences.html", title="Silences", items=listed["items"],
                   next_cursor=listed["next_cursor"])


@requires(Permission.READ)
async def approval_list(request: web.Request) -> web.Response:
    """GET /approvals: runs awaiting approval, newest first; approve/reject buttons for operators."""
    w = _page_window(request)
    f = runs.RunFilter(state=RunState.AWAITING_APPROVAL)
    rows = await ctx(request).store.read(lambda conn: runs.page(conn, f, w.limit, w.before_id))
    listed = page([run_json(r) for r in rows], [r["id"] for r in rows], w)
    return _render(request, "approvals.html", title="Runs awaiting approval", items=listed["items"],
                   next_cursor=listed["next_cursor"])


@requires(None)
async def static(request: web.Request) -> web.Response:
    """The dashboard's own CSS and script (a fixed list: nothing else of the package is served)."""
    name = request.match_info["name"]
    if name not in _STATIC:
        raise NotFound("no such asset")
    body = resources.files("itsmd.web.dashboard").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=_STATIC[name], charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", incident_list)
    app.router.add_get("/incidents/{id}", incident_page)
    app.router.add_get("/problems", problem_list)
    app.router.add_get("/silences", silence_list)
    app.router.add_get("/approvals", approval_list)
    app.router.add_get("/static/{name}", static)


__all__ = ["add_routes"]
