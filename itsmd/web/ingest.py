"""Ingest endpoints: Alertmanager webhooks and Prometheus pushes, answered 200 only after the commit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from sqlalchemy import Connection

from itsmd.core.access import Permission
from itsmd.pipeline import normalize
from itsmd.pipeline.delivery import Delivery
from itsmd.storage import inbox, quarantine
from itsmd.web.auth import requires
from itsmd.web.context import WebContext, ctx, json_response


def _store(received_at: datetime, source: str, delivery: Delivery) -> Callable[[Connection], None]:
    payload = delivery.encode() if delivery.alerts else None

    def work(conn: Connection) -> None:
        if payload is not None:
            inbox.add(conn, received_at, source, payload)
        quarantine.add(conn, received_at, source, delivery.rejected)

    return work


async def _accept(c: WebContext, source: str, delivery: Delivery, received_at: datetime) -> web.Response:
    await c.store.write(_store(received_at, source, delivery))
    if delivery.alerts:
        c.wake_pipeline()
    c.metrics.alerts_received.labels(source).inc(len(delivery.alerts) + len(delivery.rejected))
    if delivery.rejected:
        c.metrics.alerts_quarantined.labels(source).inc(len(delivery.rejected))
    if delivery.truncated:
        c.metrics.truncated.inc(delivery.truncated)
    return json_response({"accepted": len(delivery.alerts), "quarantined": len(delivery.rejected)})


@requires(Permission.INGEST)
async def alertmanager_webhook(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await request.read()
    now = c.clock.now()
    delivery = normalize.webhook(normalize.parse_json(body), now, c.max_alerts_per_request)
    return await _accept(c, "webhook", delivery, now)


@requires(Permission.INGEST)
async def prometheus_push(request: web.Request) -> web.Response:
    c = ctx(request)
    body = await request.read()
    now = c.clock.now()
    delivery = normalize.push(normalize.parse_json(body), now, c.resolve_timeout, c.max_alerts_per_request)
    return await _accept(c, "push", delivery, now)
