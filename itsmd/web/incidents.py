"""Incident listings and detail with alerts and timeline (viewer)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd import incident_actions
from itsmd.core.access import Permission
from itsmd.core.incident import Action, State, display_id, parse_id
from itsmd.core.problem import display_id as problem_id
from itsmd.core.timestamp import format_time
from itsmd.errors import BadRequest, NotFound
from itsmd.storage import events, incidents
from itsmd.web.alerts import alert_json
from itsmd.web.auth import PRINCIPAL, requires
from itsmd.web.context import ctx, json_body, json_response
from itsmd.web.listing import page, since, window
from itsmd.web.runs import runs_of_incident
from itsmd.web.timeline import event_json

_TIMES = ("detected_at", "opened_at", "acknowledged_at", "restored_at", "resolved_at", "closed_at")


def incident_json(r: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": display_id(r["id"]), "title": r["title"], "rule": r["rule"], "key": r["key"], "state": r["state"],
        "priority": r["priority"], "impact": r["impact"], "urgency": r["urgency"], "service": r["service"],
        "owner": r["owner"], "assignee": r["assignee"], "labels": r["labels"], "alert_count": r["alert_count"],
        "firing_count": r["firing_count"], "resolution": r["resolution"],
        "problem_id": problem_id(r["problem_id"]) if r["problem_id"] else None,
        "previous_incident_id": display_id(r["previous_incident_id"]) if r["previous_incident_id"] else None,
        "reopen_count": r["reopen_count"], "flapping": bool(r["flapping"]), "signal_lost": bool(r["signal_lost"]),
    }
    out.update({k: format_time(r[k]) for k in _TIMES})
    return out


@requires(Permission.READ)
async def list_incidents(request: web.Request) -> web.Response:
    q = request.query
    state = q.get("state") or None
    if state is not None and state not in set(State):
        raise BadRequest(f"state must be one of {', '.join(State)}")
    f = incidents.IncidentFilter(state=state, service=q.get("service") or None,
                                 priority=q.get("priority") or None, since=since(request))
    w = window(request)
    rows = await ctx(request).store.read(lambda conn: incidents.page(conn, f, w.limit, w.before_id))
    return json_response(page([incident_json(r) for r in rows], [r["id"] for r in rows], w))


@requires(Permission.READ)
async def get_incident(request: web.Request) -> web.Response:
    return json_response(await incident_detail(request))


async def incident_detail(request: web.Request) -> dict[str, Any]:
    """The incident of the request's `{id}` with its alerts, timeline and runs (the API's and the dashboard's)."""
    number = parse_id(request.match_info["id"])
    if number is None:
        raise NotFound("no such incident")

    def detail(conn: Connection) -> dict[str, Any] | None:
        row = incidents.get(conn, number)
        if row is None:
            return None
        return {**incident_json(row),
                "alerts": [alert_json(a) for a in incidents.alerts_of(conn, number)],
                "timeline": [event_json(e) for e in events.of(conn, "incident", number)],
                "runs": runs_of_incident(conn, number)}

    found = await ctx(request).store.read(detail)
    if found is None:
        raise NotFound("no such incident")
    return found


def _number(request: web.Request) -> int:
    number = parse_id(request.match_info["id"])
    if number is None:
        raise NotFound("no such incident")
    return number


@requires(Permission.OPERATE)
async def act(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/{action}: ack, resolve, close, reopen, assign, merge, notes."""
    c, number, body = ctx(request), _number(request), await json_body(request)
    actor, now, verb = request[PRINCIPAL].name, c.clock.now(), request.match_info["action"]
    if verb == "assign":
        row = await c.store.write(lambda conn: incident_actions.assign(conn, number, actor, body, now))
    elif verb == "merge":
        row = await c.store.write(lambda conn: incident_actions.merge(conn, number, actor, body, now))
    elif verb == "notes":
        row = await c.store.write(lambda conn: incident_actions.note(conn, number, actor, body, now))
    elif verb in set(Action):
        action = Action(verb)
        row = await c.store.write(lambda conn: incident_actions.lifecycle(
            conn, number, action, actor, body, now, c.close_after()))
    else:
        raise NotFound(f"no incident action {verb[:40]!r}")
    return json_response(incident_json(row))
