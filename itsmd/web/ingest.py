"""Ingest endpoints: Alertmanager webhooks and Prometheus pushes, answered 200 only after the commit."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from sqlalchemy import Connection

from itsmd.core.access import Permission
from itsmd.pipeline import normalize
from itsmd.pipeline.delivery import Delivery
from itsmd.storage import inbox, quarantine
from itsmd.storage.writer import Rows
from itsmd.web.auth import requires
from itsmd.web.context import WebContext, ctx, json_response


async def _accept(c: WebContext, source: str, delivery: Delivery, received_at: datetime) -> web.Response:
    # Urgent writes: the client waits for the commit, so it goes before queued pipeline steps and paging chunks.
    writes: list[Rows] = []
    if delivery.alerts:
        writes.append(inbox.add(received_at, source, delivery.encode()))
    if delivery.rejected:
        writes.append(quarantine.add(received_at, source, delivery.rejected))
    if len(writes) == 1:
        await c.store.write(writes[0], urgent=True)
    elif writes:

        def both(conn: Connection) -> None:
            for w in writes:
                w(conn)

        await c.store.write(both, urgent=True)
    if delivery.alerts:
        c.wake_pipeline()
    if delivery.truncated:
        c.reconcile()  # the webhook left alerts out: Alertmanager's API has them (debounced)
    c.metrics.count_delivery(source, len(delivery.alerts), len(delivery.rejected), delivery.truncated)
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
