"""Silences and maintenance windows: list and show (viewer), create and expire (operator)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd.config.silences import from_request
from itsmd.core.access import Permission
from itsmd.core.timestamp import format_time
from itsmd.errors import BadRequest, NotFound
from itsmd.storage import silences
from itsmd.storage.silences import API
from itsmd.web.auth import PRINCIPAL, requires
from itsmd.web.context import ctx, json_body, json_response
from itsmd.web.listing import flag, page, window


def silence_json(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    s = silences.silence_of(row)
    state = s.state(now)
    return {
        "id": row["id"], "matchers": row["matchers"], "starts_at": format_time(row["starts_at"]),
        "ends_at": format_time(row["ends_at"]), "schedule": row["schedule"], "timezone": row["timezone"],
        "duration": row["duration"], "created_by": row["created_by"], "comment": row["comment"],
        "origin": row["origin"], "created_at": format_time(row["created_at"]),
        "updated_at": format_time(row["updated_at"]), "expired_at": format_time(row["expired_at"]),
        "state": str(state), "active": state == "active", "next_change_at": format_time(s.next_change(now)),
    }


@requires(Permission.READ)
async def list_silences(request: web.Request) -> web.Response:
    """GET /api/v1/silences?active=true|false: newest first."""
    c, active, w = ctx(request), flag(request, "active"), window(request)
    now = c.clock.now()
    rows = await c.store.read(lambda conn: silences.page(conn, w.limit, w.before_id, active, now))
    return json_response(page([silence_json(r, now) for r in rows], [r["seq"] for r in rows], w))


@requires(Permission.READ)
async def get_silence(request: web.Request) -> web.Response:
    c, sid = ctx(request), request.match_info["id"]
    row = await c.store.read(lambda conn: silences.get(conn, sid))
    if row is None:
        raise NotFound("no such silence")
    return json_response(silence_json(row, c.clock.now()))


@requires(Permission.OPERATE)
async def create_silence(request: web.Request) -> web.Response:
    """POST /api/v1/silences: 201 with the silence; 400 naming every problem of the body."""
    c, body = ctx(request), await json_body(request)
    now, actor = c.clock.now(), request[PRINCIPAL].name
    try:
        silence = from_request(body, now, str(uuid.uuid4()))
    except ValueError as e:
        raise BadRequest(str(e)) from e
    row = await c.store.write(lambda conn: silences.create(conn, silence, API, actor, now))
    return json_response(silence_json(row, now), status=201)


@requires(Permission.OPERATE)
async def expire_silence(request: web.Request) -> web.Response:
    """DELETE /api/v1/silences/{id}: it ends now (the row stays); alerts it muted that still fire are correlated."""
    c, sid = ctx(request), request.match_info["id"]
    now, actor = c.clock.now(), request[PRINCIPAL].name

    def expire(conn: Connection) -> dict[str, Any]:
        row = silences.expire(conn, sid, actor, now)
        c.release_muted(conn)
        return row

    return json_response(silence_json(await c.store.write(expire), now))
