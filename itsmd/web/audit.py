"""The audit log over HTTP: `GET /api/v1/audit` (admin), and the authentication failures the edge records in it."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from itsmd.core.access import Permission
from itsmd.core.timestamp import format_time
from itsmd.errors import BadRequest, Forbidden, RequestError, StorageError
from itsmd.storage import events
from itsmd.storage.events import AuditFilter, Event
from itsmd.web.auth import PRINCIPAL, requires
from itsmd.web.context import ctx, json_response
from itsmd.web.listing import page, since, window

log = logging.getLogger("itsmd.web")

# The public id of an entity's number (the timeline of these entities is keyed by their number).
_PREFIXES = {"incident": "INC", "problem": "PRB", "run": "RUN"}
_ENTITIES = {prefix: entity for entity, prefix in _PREFIXES.items()}
_MAX_PATH = 200  # characters of a failed request's path kept in its record (the path is the client's text)


def _entity_id(entity: str, number: int | None) -> str | None:
    if number is None:
        return None
    prefix = _PREFIXES.get(entity)
    return f"{prefix}-{number}" if prefix else str(number)


def record_json(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(r["id"]), "at": format_time(r["at"]), "entity": r["entity"],
            "entity_id": _entity_id(r["entity"], r["entity_id"]), "actor": r["actor"], "action": r["action"],
            "reason": r["reason"], "data": r["data"], "prev_hash": r["prev_hash"], "hash": r["hash"]}


def _filter(request: web.Request) -> AuditFilter:
    q = request.query
    entity, text = q.get("entity") or None, q.get("entity_id") or None
    number = None
    if text is not None:
        prefix, dash, tail = text.partition("-")
        digits = tail if dash else text
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 18 or (dash and prefix not in _ENTITIES):
            raise BadRequest("entity_id must be a number or an id like INC-12, PRB-3, RUN-4")
        number = int(digits)
        if dash:
            if entity is not None and entity != _ENTITIES[prefix]:
                raise BadRequest(f"entity_id {text[:40]!r} is not of entity {entity[:40]!r}")
            entity = _ENTITIES[prefix]
    return AuditFilter(entity=entity, entity_id=number, action=q.get("action") or None, since=since(request))


@requires(Permission.ADMINISTER)
async def list_audit(request: web.Request) -> web.Response:
    """GET /api/v1/audit?entity=&entity_id=&action=&since=: records newest first, with their hashes."""
    f, w = _filter(request), window(request)
    rows = await ctx(request).store.read(lambda conn: events.page(conn, f, w.limit, w.before_id))
    return json_response(page([record_json(r) for r in rows], [r["id"] for r in rows], w))


async def record_auth_failure(request: web.Request, error: RequestError) -> None:
    """Audit a refused request that presented credentials (a wrong token, or a role without the permission);
    within the budget of `WebContext.auth_audit`. A request without credentials is not an attempt (a browser's
    first visit is one) and is not recorded. The token itself never enters the record."""
    c = ctx(request)
    if not request.headers.get("Authorization"):
        return
    now = c.clock.now()
    admission = c.auth_audit.admit(now)
    if not admission.record:
        return
    principal = request.get(PRINCIPAL)
    forbidden = isinstance(error, Forbidden)
    data: dict[str, Any] = {"method": request.method, "path": request.path[:_MAX_PATH], "remote": request.remote,
                            "status": error.status, "suppressed": admission.suppressed}
    record = Event(now, "auth", None, principal.name if principal and forbidden else "unauthenticated",
                   "forbidden" if forbidden else "auth_failed", str(error), data)
    try:
        await c.store.write(lambda conn: events.append(conn, [record]))
    except StorageError as e:
        log.warning("could not audit an authentication failure: %s", e)
