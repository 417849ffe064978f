"""The aiohttp application: middlewares (metrics, errors, access) and the route table."""

from __future__ import annotations

import time

from aiohttp import web

from itsmd.errors import UnsupportedMediaType
from itsmd.web import alerts, ingest, ops
from itsmd.web.auth import PRINCIPAL, Handler, check
from itsmd.web.context import CONTEXT, WebContext, ctx
from itsmd.web.errors import errors

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    finally:
        m = ctx(request).metrics
        m.requests.labels(route, str(status)).inc()
        m.request_seconds.labels(route).observe(time.perf_counter() - started)


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate, authorise by the handler's permission, and insist on JSON for every state change."""
    permission = getattr(request.match_info.handler, "permission", None)
    if permission is not None:
        principal = ctx(request).authenticator.authenticate(request.headers.get("Authorization"))
        check(principal, permission)
        request[PRINCIPAL] = principal
    if request.method in _STATE_CHANGING and request.content_type != "application/json":
        raise UnsupportedMediaType("state-changing requests must be Content-Type: application/json")
    return await handler(request)


def build_app(context: WebContext, max_body_bytes: int) -> web.Application:
    app = web.Application(middlewares=[observe, errors, access], client_max_size=max_body_bytes)
    app[CONTEXT] = context
    app.router.add_post("/api/v1/webhooks/alertmanager", ingest.alertmanager_webhook)
    app.router.add_post("/api/v2/alerts", ingest.prometheus_push)
    app.router.add_get("/api/v1/alerts", alerts.list_alerts)
    app.router.add_get("/api/v1/quarantine", alerts.list_quarantine)
    app.router.add_get("/metrics", ops.metrics)
    app.router.add_get("/-/healthy", ops.healthy)
    app.router.add_get("/-/ready", ops.ready)
    app.router.add_post("/-/reload", ops.reload)
    return app
