"""The aiohttp application: the edge middleware (metrics, access, errors) and the route table."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from itsmd.errors import Forbidden, RequestTimeout, Unauthenticated, UnsupportedMediaType
from itsmd.web import alerts, audit, incidents, ingest, openapi, ops, problems, reports, runs, silences
from itsmd.web.auth import PRINCIPAL, Handler, check
from itsmd.web.context import CONTEXT, WebContext, ctx
from itsmd.web.dashboard import pages as dashboard
from itsmd.web.dashboard import reports as dashboard_reports
from itsmd.web.errors import error_answer

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware (each layer costs on every request): time and count the answer, authenticate and
    authorise by the handler's permission, insist on JSON for every state change, and map errors to answers."""
    started = time.perf_counter()
    c = ctx(request)
    info = request.match_info
    try:
        permission = getattr(info.handler, "permission", None)
        if permission is not None:
            principal = c.authenticator.authenticate(request.headers.get("Authorization"))
            request[PRINCIPAL] = principal
            check(principal, permission)
        if request.method in _STATE_CHANGING:
            if request.content_type != "application/json":
                raise UnsupportedMediaType("state-changing requests must be Content-Type: application/json")
            await _read_body(request, c.body_timeout)
        response = await handler(request)
    except Exception as e:
        if isinstance(e, Unauthenticated | Forbidden):
            await audit.record_auth_failure(request, e)
        response = error_answer(request, e)
        if isinstance(e, RequestTimeout):
            response.force_close()  # the rest of a late body must not be read as the next request
    resource = info.route.resource
    c.metrics.observe_request(
        resource.canonical if resource is not None else "unmatched", response.status, time.perf_counter() - started
    )
    return response


async def _read_body(request: web.Request, timeout: float) -> None:
    """Receive the whole body within `timeout` (kept by aiohttp for the handler's read()); a client that trickles
    it is answered 408 and cut off."""
    if request.can_read_body:
        try:
            async with asyncio.timeout(timeout):
                await request.read()
        except TimeoutError:
            raise RequestTimeout(f"request body not received within {timeout:g} s") from None


def build_app(context: WebContext, max_body_bytes: int) -> web.Application:
    app = web.Application(middlewares=[edge], client_max_size=max_body_bytes)
    app[CONTEXT] = context
    app.router.add_post("/api/v1/webhooks/alertmanager", ingest.alertmanager_webhook)
    app.router.add_post("/api/v2/alerts", ingest.prometheus_push)
    app.router.add_get("/api/v1/alerts", alerts.list_alerts)
    app.router.add_get("/api/v1/alerts/{id}", alerts.get_alert)
    app.router.add_get("/api/v1/quarantine", alerts.list_quarantine)
    app.router.add_get("/api/v1/incidents", incidents.list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", incidents.get_incident)
    app.router.add_post("/api/v1/incidents/{id}/{action}", incidents.act)
    app.router.add_get("/api/v1/silences", silences.list_silences)
    app.router.add_post("/api/v1/silences", silences.create_silence)
    app.router.add_get("/api/v1/silences/{id}", silences.get_silence)
    app.router.add_delete("/api/v1/silences/{id}", silences.expire_silence)
    app.router.add_get("/api/v1/problems", problems.list_problems)
    app.router.add_get("/api/v1/problems/{id}", problems.get_problem)
    app.router.add_patch("/api/v1/problems/{id}", problems.patch_problem)
    app.router.add_put("/api/v1/problems/{id}/known-error", problems.put_known_error)
    app.router.add_get("/api/v1/audit", audit.list_audit)
    app.router.add_get("/api/v1/runs", runs.list_runs)
    app.router.add_post("/api/v1/runs", runs.create_run)
    app.router.add_get("/api/v1/runs/{id}", runs.get_run)
    app.router.add_post("/api/v1/runs/{id}/cancel", runs.cancel_run)
    app.router.add_post("/api/v1/runs/{id}/approve", runs.approve_run)
    app.router.add_post("/api/v1/runs/{id}/reject", runs.reject_run)
    app.router.add_get("/api/v1/automation", runs.get_automation)
    app.router.add_put("/api/v1/automation", runs.put_automation)
    app.router.add_post("/api/v1/automation/breakers/{playbook}/reset", runs.reset_breaker)
    app.router.add_get("/api/v1/openapi.json", openapi.openapi_json)
    app.router.add_get("/api/v1/reports/{kind}", reports.get_report)
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_get("/-/healthy", ops.healthy)
    app.router.add_get("/-/ready", ops.ready)
    app.router.add_post("/-/reload", ops.reload)
    dashboard.add_routes(app)  # the web dashboard: GET /, its pages and static assets
    dashboard_reports.add_routes(app)  # the dashboard's reports page and problem page
    return app
