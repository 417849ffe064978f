"""Problems: listing and detail with incidents and timeline (viewer); state, owner, title and known errors
(operator)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd import problem_actions
from itsmd.core.access import Permission
from itsmd.core.incident import display_id as incident_id
from itsmd.core.problem import State, display_id, parse_id
from itsmd.core.timestamp import format_time
from itsmd.errors import BadRequest, NotFound
from itsmd.storage import events, problems
from itsmd.web.auth import PRINCIPAL, requires
from itsmd.web.context import ctx, json_body, json_response
from itsmd.web.listing import page, since, window
from itsmd.web.timeline import event_json

_TIMES = ("first_seen_at", "last_seen_at", "opened_at", "resolved_at", "closed_at")


def problem_json(r: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": display_id(r["id"]), "signature": r["signature"], "title": r["title"], "state": r["state"],
        "owner": r["owner"], "incident_count": r["incident_count"], "known_error": r["known_error"],
        "rule": r["rule"], "reopen_count": r["reopen_count"],
    }
    out.update({k: format_time(r[k]) for k in _TIMES})
    return out


def _number(request: web.Request) -> int:
    number = parse_id(request.match_info["id"])
    if number is None:
        raise NotFound("no such problem")
    return number


@requires(Permission.READ)
async def list_problems(request: web.Request) -> web.Response:
    q = request.query
    state = q.get("state") or None
    if state is not None and state not in set(State):
        raise BadRequest(f"state must be one of {', '.join(State)}")
    f = problems.ProblemFilter(state=state, owner=q.get("owner") or None, rule=q.get("rule") or None,
                               since=since(request))
    w = window(request)
    rows = await ctx(request).store.read(lambda conn: problems.page(conn, f, w.limit, w.before_id))
    return json_response(page([problem_json(r) for r in rows], [r["id"] for r in rows], w))


@requires(Permission.READ)
async def get_problem(request: web.Request) -> web.Response:
    number = _number(request)

    def detail(conn: Connection) -> dict[str, Any] | None:
        row = problems.get(conn, number)
        if row is None:
            return None
        return {**problem_json(row),
                "incidents": [incident_id(i) for i in problems.incident_ids(conn, number)],
                "timeline": [event_json(e) for e in events.of(conn, "problem", number)]}

    found = await ctx(request).store.read(detail)
    if found is None:
        raise NotFound("no such problem")
    return json_response(found)


@requires(Permission.OPERATE)
async def patch_problem(request: web.Request) -> web.Response:
    """PATCH /api/v1/problems/{id} `{"state"?, "owner"?, "title"?, "comment"?}`."""
    c, number, body = ctx(request), _number(request), await json_body(request)
    actor, now = request[PRINCIPAL].name, c.clock.now()
    row = await c.store.write(lambda conn: problem_actions.patch(conn, number, actor, body, now))
    return json_response(problem_json(row))


@requires(Permission.OPERATE)
async def put_known_error(request: web.Request) -> web.Response:
    """PUT /api/v1/problems/{id}/known-error `{"root_cause", "workaround", "playbook"?, "comment"?}`."""
    c, number, body = ctx(request), _number(request), await json_body(request)
    actor, now = request[PRINCIPAL].name, c.clock.now()
    row = await c.store.write(lambda conn: problem_actions.record_known_error(conn, number, actor, body, now))
    return json_response(problem_json(row))
