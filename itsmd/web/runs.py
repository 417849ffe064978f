"""Playbook runs: listing and detail with steps (viewer), manual runs and cancel (operator), and the persisted
automation switch (`GET` viewer, `PUT` admin)."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from sqlalchemy import Connection

from itsmd import approval
from itsmd.core.access import Permission
from itsmd.core.guard import breaker_reset
from itsmd.core.incident import UNRESOLVED
from itsmd.core.incident import display_id as incident_id
from itsmd.core.incident import parse_id as incident_number
from itsmd.core.run import ACTIVE, RunState, Trigger, display_id, manual_key, parse_id
from itsmd.core.timestamp import format_time
from itsmd.errors import BadRequest, Conflict, NotFound
from itsmd.pipeline import remediate
from itsmd.runner.runner import cancel_stored
from itsmd.storage import breakers, events, incidents, runs, settings
from itsmd.storage.events import Event
from itsmd.web.auth import PRINCIPAL, requires
from itsmd.web.context import ctx, json_body, json_response
from itsmd.web.listing import page, window

_TIMES = ("created_at", "started_at", "finished_at")
_STEP_TIMES = ("started_at", "finished_at")


def step_json(s: dict[str, Any]) -> dict[str, Any]:
    out = {"name": s["name"], "phase": s["phase"], "kind": s["kind"], "state": s["state"], "attempt": s["attempt"],
           "exit_code": s["exit_code"], "status": s["status"], "output": s["output"]}
    out.update({k: format_time(s[k]) for k in _STEP_TIMES})
    return out


def run_json(r: dict[str, Any], steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {
        "id": display_id(r["id"]), "playbook": r["playbook"],
        "incident_id": incident_id(r["incident_id"]) if r["incident_id"] is not None else None,
        "target": r["target"], "state": r["state"], "reason": r["reason"], "dry_run": bool(r["dry_run"]),
        "trigger": r["trigger"], "requested_by": r["requested_by"], "approved_by": r["approved_by"],
    }
    out.update({k: format_time(r[k]) for k in _TIMES})
    # While a run awaits approval, its stored deadline is the approval's (then it ends `expired`).
    out["approval_expires_at"] = format_time(r["deadline"]) if r["state"] == RunState.AWAITING_APPROVAL else None
    if steps is not None:
        out["steps"] = [step_json(s) for s in steps]
    return out


def runs_of_incident(conn: Connection, number: int) -> list[dict[str, Any]]:
    """The runs of one incident with their steps (for the incident's detail)."""
    rows = runs.of_incident(conn, number)
    steps = runs.steps_of(conn, [r["id"] for r in rows])
    return [run_json(r, steps[r["id"]]) for r in rows]


def _number(request: web.Request) -> int:
    number = parse_id(request.match_info["id"])
    if number is None:
        raise NotFound("no such run")
    return number


@requires(Permission.READ)
async def list_runs(request: web.Request) -> web.Response:
    q = request.query
    state = q.get("state") or None
    if state is not None and state not in set(RunState):
        raise BadRequest(f"state must be one of {', '.join(RunState)}")
    incident = None
    if q.get("incident"):
        incident = incident_number(q["incident"])
        if incident is None:
            raise BadRequest("incident must be an incident id like INC-12")
    f = runs.RunFilter(incident_id=incident, playbook=q.get("playbook") or None, state=state)
    w = window(request)

    def query(conn: Connection) -> list[dict[str, Any]]:
        rows = runs.page(conn, f, w.limit, w.before_id)
        steps = runs.steps_of(conn, [r["id"] for r in rows])
        return [{**run_json(r, steps[r["id"]]), "_id": r["id"]} for r in rows]

    items = await ctx(request).store.read(query)
    ids = [i.pop("_id") for i in items]
    return json_response(page(items, ids, w))


@requires(Permission.READ)
async def get_run(request: web.Request) -> web.Response:
    number = _number(request)

    def detail(conn: Connection) -> dict[str, Any] | None:
        row = runs.get(conn, number)
        return None if row is None else run_json(row, runs.steps_of(conn, [number])[number])

    found = await ctx(request).store.read(detail)
    if found is None:
        raise NotFound("no such run")
    return json_response(found)


@requires(Permission.OPERATE)
async def create_run(request: web.Request) -> web.Response:
    """POST /api/v1/runs `{"playbook", "incident_id"}`: a manual run (or re-run) of a playbook on an unresolved
    incident; the guards still apply (kill switch, params, breaker, concurrency, dry run). 201 with the run."""
    c, body = ctx(request), await json_body(request)
    playbook, inc = body.get("playbook"), body.get("incident_id")
    if not isinstance(playbook, str) or not playbook:
        raise BadRequest("playbook must be a playbook name")
    number = incident_number(inc) if isinstance(inc, str) else None
    if number is None:
        raise BadRequest("incident_id must be an incident id like INC-12")
    routing = c.routing()
    if routing.playbooks.by_name(playbook) is None:
        raise BadRequest(f"no playbook {playbook[:200]!r} is loaded")
    actor, now, switches = request[PRINCIPAL].name, c.clock.now(), c.switches()

    def work(conn: Connection) -> tuple[list[dict[str, Any]], int]:
        row = incidents.get(conn, number)
        if row is None:
            raise NotFound("no such incident")
        if row["state"] not in UNRESOLVED:
            raise Conflict(f"the incident is {row['state']}; runs act on open or acknowledged incidents")
        out = remediate.Triggered()
        req = remediate.Request(row, playbook, Trigger.MANUAL, actor, manual_key(secrets.token_hex(16)))
        made = remediate.request(conn, routing, switches, req, now, out)
        events.append(conn, out.events)
        steps = runs.steps_of(conn, made)
        return [run_json(r, steps[r["id"]]) for r in (runs.get(conn, i) for i in made) if r], out.created

    made, created = await c.store.write(work)
    if created:
        c.wake_runner()
    if not made:
        raise Conflict("the playbook has no target on this incident (no firing alert)")
    return json_response(made[0] if len(made) == 1 else {"items": made}, status=201)


@requires(Permission.OPERATE)
async def cancel_run(request: web.Request) -> web.Response:
    c, number = ctx(request), _number(request)
    await json_body(request)
    actor, now = request[PRINCIPAL].name, c.clock.now()

    def work(conn: Connection) -> tuple[dict[str, Any] | None, str | None]:
        before = runs.get(conn, number)
        row = cancel_stored(conn, number, actor, now)
        return row, before["state"] if before else None

    row, before = await c.store.write(work)
    if row is None:
        raise NotFound("no such run")
    if before not in ACTIVE:
        raise Conflict(f"the run is {before}; only pending, awaiting_approval or running runs can be cancelled")
    if before == RunState.RUNNING:
        await c.cancel_run(number)
    found = await c.store.read(lambda conn: (runs.get(conn, number), runs.steps_of(conn, [number])[number]))
    return json_response(run_json(found[0], found[1]) if found[0] else run_json(row))


def _comment_of(body: dict[str, Any]) -> str | None:
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise BadRequest("comment must be a string")
    return comment or None


async def _decide(request: web.Request, decide: Any) -> dict[str, Any]:
    """Approve or reject (`decide` is approval.approve or approval.reject): the run with its steps after."""
    c, number = ctx(request), _number(request)
    comment = _comment_of(await json_body(request))
    actor, now = request[PRINCIPAL].name, c.clock.now()

    def work(conn: Connection) -> dict[str, Any]:
        row = decide(conn, number, actor, comment, now)
        return run_json(row, runs.steps_of(conn, [number])[number])

    return dict(await c.store.write(work))


@requires(Permission.OPERATE)
async def approve_run(request: web.Request) -> web.Response:
    """POST /api/v1/runs/{id}/approve `{"comment"?}`: a run awaiting approval becomes pending and starts at once;
    409 in any other state; 403 when the approver requested this manual run (four eyes)."""
    found = await _decide(request, approval.approve)
    ctx(request).wake_runner()
    return json_response(found)


@requires(Permission.OPERATE)
async def reject_run(request: web.Request) -> web.Response:
    """POST /api/v1/runs/{id}/reject `{"comment"?}`: a run awaiting approval ends rejected; 409 otherwise."""
    found = await _decide(request, approval.reject)
    ctx(request).metrics.runs_finished.labels(found["playbook"], found["state"]).inc()
    return json_response(found)


def _automation(conn: Connection, config_enabled: bool, dry_run: bool) -> dict[str, Any]:
    row = settings.get(conn, settings.AUTOMATION)
    runtime = True if row is None else bool(row["value"])
    return {"enabled": runtime, "config_enabled": config_enabled, "effective": runtime and config_enabled,
            "dry_run": dry_run, "updated_by": row["updated_by"] if row else None,
            "updated_at": format_time(row["updated_at"]) if row else None,
            "breakers": [{"playbook": b["playbook"], "state": b["state"], "failures": len(b["failures"]),
                          "opened_at": format_time(b["opened_at"]) if b["opened_at"] else None}
                         for b in breakers.every(conn)]}


@requires(Permission.READ)
async def get_automation(request: web.Request) -> web.Response:
    c = ctx(request)
    sw = c.switches()
    found = await c.store.read(lambda conn: _automation(conn, sw.enabled, sw.dry_run))
    return json_response({**found, "role": c.role()})  # scale-out: this replica's role


@requires(Permission.ADMINISTER)
async def put_automation(request: web.Request) -> web.Response:
    """PUT /api/v1/automation `{"enabled": bool}`: the persisted run-time kill switch."""
    c, body = ctx(request), await json_body(request)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise BadRequest("enabled must be true or false")
    actor, now, sw = request[PRINCIPAL].name, c.clock.now(), c.switches()

    def work(conn: Connection) -> dict[str, Any]:
        settings.put(conn, settings.AUTOMATION, enabled, actor, now)
        events.append(conn, [Event(now, "config", None, actor, "automation_" + ("enabled" if enabled else "disabled"),
                                   f"automation switched {'on' if enabled else 'off'} by {actor}")])
        return _automation(conn, sw.enabled, sw.dry_run)

    answer = await c.store.write(work)
    c.metrics.automation_enabled.set(1 if enabled else 0)
    return json_response(answer)


@requires(Permission.ADMINISTER)
async def reset_breaker(request: web.Request) -> web.Response:
    """POST /api/v1/automation/breakers/{playbook}/reset: the manual reset of a playbook's circuit breaker
    (closed, its failures forgotten); audited."""
    c, playbook = ctx(request), request.match_info["playbook"]
    actor, now, sw = request[PRINCIPAL].name, c.clock.now(), c.switches()
    if c.routing().playbooks.by_name(playbook) is None:
        raise NotFound("no such playbook")

    def work(conn: Connection) -> dict[str, Any]:
        before = breakers.get(conn, playbook)
        remediate.save_breaker(conn, playbook, breaker_reset(), now)
        events.append(conn, [Event(now, "config", None, actor, "breaker_reset",
                                   f"circuit breaker of {playbook} reset by {actor}",
                                   {"playbook": playbook, "was": before["state"] if before else "closed"})])
        return _automation(conn, sw.enabled, sw.dry_run)

    return json_response(await c.store.write(work))
