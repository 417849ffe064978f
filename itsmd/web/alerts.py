"""Alert and quarantine listings (viewer)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from itsmd.core.access import Permission
from itsmd.core.alert import Status
from itsmd.core.incident import display_id, parse_id
from itsmd.core.timestamp import format_time
from itsmd.errors import BadRequest, NotFound
from itsmd.storage import alerts, quarantine
from itsmd.web.auth import requires
from itsmd.web.context import ctx, json_response
from itsmd.web.listing import flag, page, window


def alert_json(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "fingerprint": r["fingerprint"],
        "status": r["status"],
        "labels": r["labels"],
        "annotations": r["annotations"],
        "generator_url": r["generator_url"],
        "starts_at": format_time(r["starts_at"]),
        "ends_at": format_time(r["ends_at"]),
        "first_seen_at": format_time(r["first_seen_at"]),
        "last_seen_at": format_time(r["last_seen_at"]),
        "occurrences": r["occurrences"],
        "incident_id": display_id(r["incident_id"]) if r["incident_id"] is not None else None,
        "symptom": r["symptom"],
        "muted_by": r["muted_by"],
        "stale": bool(r["stale"]),
        "flapping": bool(r["flapping"]),
    }


def _incident(text: str | None) -> int | None:
    if not text:
        return None
    number = parse_id(text)
    if number is None:
        raise BadRequest("incident must look like INC-123")
    return number


@requires(Permission.READ)
async def list_alerts(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status is not None and status not in (Status.FIRING, Status.RESOLVED):
        raise BadRequest("status must be firing or resolved")
    f = alerts.AlertFilter(
        status=Status(status) if status else None,
        incident_id=_incident(request.query.get("incident")),
        unrouted=flag(request, "unrouted"),
        fingerprint=request.query.get("fingerprint") or None,
        muted=flag(request, "muted"),
    )
    w = window(request)
    rows = await ctx(request).store.read(lambda conn: alerts.page(conn, f, w.limit, w.before_id))
    return json_response(page([alert_json(r) for r in rows], [r["id"] for r in rows], w))


@requires(Permission.READ)
async def get_alert(request: web.Request) -> web.Response:
    """GET /api/v1/alerts/{id}: one firing episode (ids are the opaque strings of the listing)."""
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound("no such alert")
    row = await ctx(request).store.read(lambda conn: alerts.get(conn, int(text)))
    if row is None:
        raise NotFound("no such alert")
    return json_response(alert_json(row))


@requires(Permission.READ)
async def list_quarantine(request: web.Request) -> web.Response:
    w = window(request)
    rows = await ctx(request).store.read(lambda conn: quarantine.page(conn, w.limit, w.before_id))
    items = [
        {"id": str(r["id"]), "received_at": format_time(r["received_at"]), "source": r["source"],
         "reason": r["reason"], "alert": r["alert"]}
        for r in rows
    ]
    return json_response(page(items, [r["id"] for r in rows], w))
