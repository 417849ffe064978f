"""Operations endpoints: /metrics, /-/healthy, /-/ready."""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Connection, text

from itsmd.core.access import Permission
from itsmd.errors import StorageError
from itsmd.storage import breakers, inbox
from itsmd.web.auth import PRINCIPAL, requires
from itsmd.web.context import ctx, json_response

READY_TIMEOUT = 2.0


def _scraped(conn: Connection) -> tuple[tuple[int, datetime | None], dict[str, str]]:
    """What /metrics reads from the database at each scrape: the inbox lag, and the circuit breakers as persisted
    (so the gauge is right after a restart, and whichever process changed a breaker)."""
    return inbox.lag(conn), {b["playbook"]: b["state"] for b in breakers.every(conn)}


@requires(None)
async def metrics(request: web.Request) -> web.Response:
    c = ctx(request)
    try:  # inbox lag is measured at scrape time, so a stuck pipeline shows as a growing lag
        (depth, oldest), states = await c.store.read(_scraped)
        c.metrics.inbox_depth.set(depth)
        c.metrics.inbox_lag.set(max(0.0, (c.clock.now() - oldest).total_seconds()) if oldest else 0.0)
        c.metrics.breakers(states)
    except StorageError:
        pass  # the metrics that do not need the database are still worth serving
    body = generate_latest(c.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@requires(None)
async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _probe(conn: Connection) -> None:
    """A write statement that changes nothing: it still needs the database's write lock."""
    conn.execute(text("DELETE FROM inbox WHERE id = -1"))


@requires(None)
async def ready(request: web.Request) -> web.Response:
    """Ready when the schema is migrated and a write transaction goes through the writer. Followers are ready
    too (they ingest and serve); the `X-Itsmd-Role` header says which role this replica holds."""
    c = ctx(request)
    if not c.ready():
        return web.Response(status=503, text="starting\n")
    try:
        await asyncio.wait_for(c.store.write(_probe), READY_TIMEOUT)
    except (StorageError, TimeoutError):
        return web.Response(status=503, text="storage unavailable\n")
    return web.Response(text="ready\n", headers={"X-Itsmd-Role": c.role()})


@requires(Permission.ADMINISTER)
async def reload(request: web.Request) -> web.Response:
    """Reload the configuration; on any problem answer 400 and keep the running one."""
    c = ctx(request)
    if c.reload is None:
        return json_response({"error": "reload is not available"}, status=400)
    problems = await c.reload(request[PRINCIPAL].name)
    if problems:
        return json_response({"error": "reload failed; the running configuration is kept", "problems": problems},
                             status=400)
    return json_response({"status": "reloaded"})
