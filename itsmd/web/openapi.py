"""The OpenAPI 3.1 description of the HTTP API (DESIGN §1.3), built here in code as the one source of truth and
served at `GET /api/v1/openapi.json`. The shapes mirror the JSON builders of the handlers (`alert_json`,
`incident_json`, `problem_json`, `silence_json`, `record_json`, `event_json`); a test holds the route table and
this document to each other, and schemathesis holds the running daemon to it."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web

from itsmd import __version__
from itsmd.core.alert import Status
from itsmd.core.incident import Action, Resolution
from itsmd.core.incident import State as IncidentState
from itsmd.core.problem import State as ProblemState
from itsmd.core.report import Dimension
from itsmd.core.silence import SilenceState
from itsmd.report import KINDS
from itsmd.web.auth import requires
from itsmd.web.listing import DEFAULT_LIMIT, MAX_LIMIT

Schema = dict[str, Any]

# The incident actions of `POST /api/v1/incidents/{id}/{action}`, each described as a path of its own.
INCIDENT_ACTIONS = (*(str(a) for a in Action), "assign", "merge", "notes")
RUN_STATES = ("pending", "awaiting_approval", "running", "succeeded", "failed", "timed_out", "cancelled", "skipped",
              "rejected", "expired", "unknown")
RUN_ACTIONS = {
    "approve": "Approve a run awaiting approval: it becomes pending and starts at once (approved_by = the caller). "
               "409 unless awaiting_approval; 403 when the caller requested this manual run (four eyes)",
    "reject": "Reject a run awaiting approval: it ends rejected, its steps cancelled, the reason names who and "
              "why (the comment); the incident is paged. 409 unless awaiting_approval",
    "cancel": "Cancel a pending, awaiting or running run. 409 otherwise",
}
STEP_STATES = ("pending", "running", "succeeded", "failed", "timed_out", "skipped", "cancelled", "unknown")


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(props: dict[str, Schema], *, required: tuple[str, ...] | None = None, extra: bool = False) -> Schema:
    return {"type": "object", "properties": props,
            "required": list(props if required is None else required), "additionalProperties": extra}


_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_BOOL: Schema = {"type": "boolean"}
_TIME: Schema = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = _nullable(_TIME)
_STR_OR_NULL = _nullable(_STR)
_LABELS: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_ANY_OBJECT: Schema = {"type": "object"}


def _enum(values: Any) -> Schema:
    return {"type": "string", "enum": [str(v) for v in values]}


def _schemas() -> dict[str, Schema]:
    event = _obj({"at": _TIME, "actor": _STR, "action": _STR, "reason": _STR_OR_NULL,
                  "data": _nullable(_ANY_OBJECT)})
    alert = _obj({
        "id": _STR, "fingerprint": _STR, "status": _enum(Status), "labels": _LABELS, "annotations": _LABELS,
        "generator_url": _STR_OR_NULL, "starts_at": _TIME, "ends_at": _TIME_OR_NULL, "first_seen_at": _TIME,
        "last_seen_at": _TIME, "occurrences": _INT, "incident_id": _STR_OR_NULL,
        "symptom": _nullable(_enum(("inhibited", "dependency"))), "muted_by": _STR_OR_NULL, "stale": _BOOL,
        "flapping": _BOOL,
    })
    incident_props: dict[str, Schema] = {
        "id": {"type": "string", "pattern": "^INC-[0-9]+$"}, "title": _STR, "rule": _STR, "key": _STR,
        "state": _enum(IncidentState), "priority": _enum(("P1", "P2", "P3", "P4", "P5")),
        "impact": _nullable(_INT), "urgency": _nullable(_INT), "service": _STR_OR_NULL, "owner": _STR_OR_NULL,
        "assignee": _STR_OR_NULL, "labels": _LABELS, "alert_count": _INT, "firing_count": _INT,
        "resolution": _nullable(_enum(Resolution)), "problem_id": _STR_OR_NULL,
        "previous_incident_id": _STR_OR_NULL, "reopen_count": _INT, "flapping": _BOOL, "signal_lost": _BOOL,
        "detected_at": _TIME, "opened_at": _TIME, "acknowledged_at": _TIME_OR_NULL,
        "restored_at": _TIME_OR_NULL, "resolved_at": _TIME_OR_NULL, "closed_at": _TIME_OR_NULL,
    }
    known_error = _obj({"root_cause": _STR, "workaround": _STR, "playbook": _STR_OR_NULL})
    problem_props: dict[str, Schema] = {
        "id": {"type": "string", "pattern": "^PRB-[0-9]+$"}, "signature": _STR, "title": _STR,
        "state": _enum(ProblemState), "owner": _STR_OR_NULL, "incident_count": _INT,
        "known_error": _nullable(_ref("KnownError")), "rule": _STR, "reopen_count": _INT,
        "first_seen_at": _TIME, "last_seen_at": _TIME, "opened_at": _TIME, "resolved_at": _TIME_OR_NULL,
        "closed_at": _TIME_OR_NULL,
    }
    silence = _obj({
        "id": _STR, "matchers": {"type": "array", "items": _STR}, "starts_at": _TIME_OR_NULL,
        "ends_at": _TIME_OR_NULL, "schedule": _STR_OR_NULL, "timezone": _STR_OR_NULL,
        "duration": _nullable({"type": "number"}), "created_by": _STR, "comment": _STR, "origin": _STR,
        "created_at": _TIME, "updated_at": _TIME, "expired_at": _TIME_OR_NULL, "state": _enum(SilenceState),
        "active": _BOOL, "next_change_at": _TIME_OR_NULL,
    })
    step = _obj({"name": _STR, "state": _enum(STEP_STATES), "attempt": _INT, "exit_code": _nullable(_INT),
                 "status": _nullable(_INT), "output": _STR_OR_NULL, "started_at": _TIME_OR_NULL,
                 "finished_at": _TIME_OR_NULL}, extra=True)
    run = _obj({
        "id": {"type": "string", "pattern": "^RUN-[0-9]+$"}, "playbook": _STR, "incident_id": _STR_OR_NULL,
        "target": _STR_OR_NULL, "state": _enum(RUN_STATES), "reason": _STR_OR_NULL, "dry_run": _BOOL,
        "requested_by": _STR_OR_NULL, "approved_by": _STR_OR_NULL, "created_at": _TIME,
        "started_at": _TIME_OR_NULL, "finished_at": _TIME_OR_NULL, "approval_expires_at": _TIME_OR_NULL,
        "steps": {"type": "array", "items": step},
    }, extra=True)
    return {
        "Error": _obj({"error": _STR}, extra=True),
        "Event": event,
        "Alert": alert,
        "Quarantined": _obj({"id": _STR, "received_at": _TIME, "source": _STR, "reason": _STR,
                             "alert": {}}),
        "Incident": _obj(incident_props),
        "IncidentDetail": _obj({**incident_props, "alerts": {"type": "array", "items": _ref("Alert")},
                                "timeline": {"type": "array", "items": _ref("Event")},
                                "runs": {"type": "array", "items": _ref("Run")}}),
        "KnownError": known_error,
        "Problem": _obj(problem_props),
        "ProblemDetail": _obj({**problem_props, "incidents": {"type": "array", "items": _STR},
                               "timeline": {"type": "array", "items": _ref("Event")}}),
        "Silence": silence,
        "AuditRecord": _obj({"id": _STR, "at": _TIME, "entity": _STR, "entity_id": _STR_OR_NULL, "actor": _STR,
                             "action": _STR, "reason": _STR_OR_NULL, "data": _nullable(_ANY_OBJECT),
                             "prev_hash": _STR_OR_NULL, "hash": _STR}),
        "Run": run,
        "Automation": _obj({"enabled": _BOOL, "role": {"enum": ["leader", "follower"], "description":
                            "GET only: this replica's role (scale-out, docs/deployment.md)"}},
                           required=("enabled",), extra=True),
        "Accepted": _obj({"accepted": _INT, "quarantined": _INT}),
    }


def _page_of(name: str) -> Schema:
    return _obj({"items": {"type": "array", "items": _ref(name)}, "next_cursor": _STR_OR_NULL})


_LIST_PARAMS: list[Schema] = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}},
    {"name": "cursor", "in": "query", "required": False, "schema": _STR,
     "description": "next_cursor of the previous page"},
]
_SINCE: Schema = {"name": "since", "in": "query", "required": False,
                  "schema": {"anyOf": [_TIME, {"type": "string", "maxLength": 0}]},
                  "description": "created/opened at or after (RFC 3339); empty = no bound"}



_EMPTY: Schema = {"type": "string", "maxLength": 0}


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    """An optional filter; an empty value means no filter, like an absent one."""
    if schema != _STR:
        schema = {"anyOf": [schema, _EMPTY]}
    out: Schema = {"name": name, "in": "query", "required": False, "schema": schema}
    if description:
        out["description"] = description
    return out


def _path_param(name: str = "id", pattern: str | None = None) -> Schema:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", **({"pattern": pattern} if pattern else {})}}


def _json(schema: Schema) -> Schema:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Schema]:
    words = {400: "bad request", 401: "no or wrong credentials", 403: "the role may not do this",
             404: "not found", 409: "the state refuses it", 413: "body too large",
             415: "not Content-Type: application/json", 503: "storage unavailable"}
    return {str(s): {"description": words[s], **_json(_ref("Error"))} for s in statuses}


_READ_ERRORS = (400, 401, 403, 503)
_WRITE_ERRORS = (400, 401, 403, 404, 409, 415, 503)
_BEARER_OR_BASIC: list[Schema] = [{"bearer": []}, {"basic": []}]


def _op(summary: str, role: str | None, responses: dict[str, Schema], *, params: list[Schema] | None = None,
        body: Schema | None = None, errors: tuple[int, ...] = _READ_ERRORS) -> Schema:
    op: Schema = {"summary": summary, "x-itsmd-role": role or "none",
                  "responses": {**responses, **_errors(*(e for e in errors if role or e not in (401, 403)))}}
    op["security"] = _BEARER_OR_BASIC if role else []
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    return op


def _ok(schema: Schema, description: str = "ok", status: int = 200) -> dict[str, Schema]:
    return {str(status): {"description": description, **_json(schema)}}


def _html(description: str) -> dict[str, Schema]:
    return {"200": {"description": description, "content": {"text/html": {"schema": _STR}}}}


def _text(description: str, *statuses: int) -> dict[str, Schema]:
    return {str(s): {"description": description, "content": {"text/plain": {"schema": _STR}}} for s in statuses}


_COMMENT: Schema = {"comment": _STR}


def _incident_action_body(action: str) -> Schema:
    if action == "assign":
        return _obj({"assignee": {"type": "string", "minLength": 1, "maxLength": 200}, **_COMMENT},
                    required=("assignee",), extra=True)
    if action == "merge":
        return _obj({"into": {"type": "string", "pattern": "^INC-[0-9]+$"}, **_COMMENT}, required=("into",),
                    extra=True)
    if action == "notes":
        return _obj({"text": {"type": "string", "minLength": 1, "maxLength": 65536}}, required=("text",),
                    extra=True)
    if action == "resolve":
        return _obj({"resolution": _enum(Resolution), **_COMMENT}, required=(), extra=True)
    return _obj(_COMMENT, required=(), extra=True)


def _paths() -> dict[str, Schema]:
    list_params = _LIST_PARAMS
    ingest_errors = (400, 401, 403, 413, 415, 503)
    paths: dict[str, Schema] = {
        "/api/v1/webhooks/alertmanager": {"post": _op(
            "Alertmanager webhook (format version 4); 200 once every accepted alert is committed", "ingest",
            _ok(_ref("Accepted")), body=_ANY_OBJECT, errors=ingest_errors)},
        "/api/v2/alerts": {"post": _op(
            "The Alertmanager v2 alert list that Prometheus pushes", "ingest", _ok(_ref("Accepted")),
            body={"type": "array", "items": {}, "description": "a bad alert inside is quarantined, not refused"},
            errors=ingest_errors)},
        "/api/v1/alerts": {"get": _op("Alerts, one row per firing episode, newest first", "viewer",
                                      _ok(_page_of("Alert")), params=[
            _query("status", _enum(Status)), _query("incident", _STR, "an incident id like INC-12"),
            _query("unrouted", _BOOL), _query("fingerprint", _STR), _query("muted", _BOOL), *list_params])},
        "/api/v1/alerts/{id}": {"get": _op("One alert (firing episode)", "viewer", _ok(_ref("Alert")),
                                           params=[_path_param()], errors=(*_READ_ERRORS, 404))},
        "/api/v1/quarantine": {"get": _op("Alerts refused at ingest, with the reason", "viewer",
                                          _ok(_page_of("Quarantined")), params=list_params)},
        "/api/v1/incidents": {"get": _op("Incidents, newest first", "viewer", _ok(_page_of("Incident")), params=[
            _query("state", _enum(IncidentState)), _query("service", _STR), _query("priority", _STR), _SINCE,
            *list_params])},
        "/api/v1/incidents/{id}": {"get": _op("One incident with its alerts, timeline and runs", "viewer",
                                              _ok(_ref("IncidentDetail")), params=[_path_param()],
                                              errors=(*_READ_ERRORS, 404))},
        "/api/v1/silences": {
            "get": _op("Silences and maintenance windows, newest first", "viewer", _ok(_page_of("Silence")),
                       params=[_query("active", _BOOL), *list_params]),
            "post": _op("Create a silence (one-off with ends_at, or recurring with schedule and duration)",
                        "operator", _ok(_ref("Silence"), "created", 201), errors=(400, 401, 403, 415, 503),
                        body=_obj({"matchers": {"type": "array", "minItems": 1, "items": _STR},
                                   "starts_at": _TIME, "ends_at": _TIME, "schedule": _STR, "duration": _STR,
                                   "timezone": _STR, "created_by": _STR, "comment": _STR},
                                  required=("matchers", "created_by", "comment"), extra=True)),
        },
        "/api/v1/silences/{id}": {
            "get": _op("One silence", "viewer", _ok(_ref("Silence")), params=[_path_param()],
                       errors=(*_READ_ERRORS, 404)),
            "delete": _op("Expire a silence now (the record stays)", "operator", _ok(_ref("Silence")),
                          params=[_path_param()], errors=_WRITE_ERRORS),
        },
        "/api/v1/problems": {"get": _op("Problems, newest first", "viewer", _ok(_page_of("Problem")), params=[
            _query("state", _enum(ProblemState)), _query("owner", _STR), _query("rule", _STR), _SINCE,
            *list_params])},
        "/api/v1/problems/{id}": {
            "get": _op("One problem with its incidents and timeline", "viewer", _ok(_ref("ProblemDetail")),
                       params=[_path_param()], errors=(*_READ_ERRORS, 404)),
            "patch": _op("Change a problem's state, owner or title", "operator", _ok(_ref("Problem")),
                         params=[_path_param()], errors=_WRITE_ERRORS,
                         body=_obj({"state": _enum(ProblemState), "owner": _STR_OR_NULL, "title": _STR,
                                    **_COMMENT}, required=())),
        },
        "/api/v1/problems/{id}/known-error": {"put": _op(
            "Record the problem's known error (root cause, workaround, playbook)", "operator", _ok(_ref("Problem")),
            params=[_path_param()], errors=_WRITE_ERRORS,
            body=_obj({"root_cause": _STR, "workaround": _STR, "playbook": _STR_OR_NULL, **_COMMENT},
                      required=("root_cause", "workaround")))},
        "/api/v1/runs": {
            "get": _op("Playbook runs with their steps, newest first", "viewer", _ok(_page_of("Run")), params=[
                _query("incident", _STR), _query("playbook", _STR), _query("state", _enum(RUN_STATES)),
                *list_params]),
            "post": _op("Run (or re-run) a playbook for an incident", "operator", _ok(_ref("Run"), "created", 201),
                        errors=_WRITE_ERRORS,
                        body=_obj({"playbook": _STR, "incident_id": _STR}, required=("playbook", "incident_id"),
                                  extra=True)),
        },
        "/api/v1/runs/{id}": {"get": _op("One run with its steps", "viewer", _ok(_ref("Run")),
                                         params=[_path_param()], errors=(*_READ_ERRORS, 404))},
        "/api/v1/automation": {
            "get": _op("The automation kill switch", "viewer", _ok(_ref("Automation"))),
            "put": _op("Turn automation on or off", "admin", _ok(_ref("Automation")), errors=(400, 401, 403, 415, 503),
                       body=_obj({"enabled": _BOOL}, extra=True)),
        },
        "/api/v1/automation/breakers/{playbook}/reset": {"post": _op(
            "Reset a playbook's circuit breaker by hand (closed, failures forgotten)", "admin",
            _ok(_ref("Automation")), params=[_path_param("playbook")], body=_ANY_OBJECT,
            errors=(400, 401, 403, 404, 415, 503))},
        "/api/v1/audit": {"get": _op("Audit records, newest first, with their hash chain", "admin",
                                     _ok(_page_of("AuditRecord")), params=[
            _query("entity", _STR), _query("entity_id", _STR, "a number or an id like INC-12"),
            _query("action", _STR), _SINCE, *list_params])},
        "/api/v1/openapi.json": {"get": _op("This document", None, _ok(_ANY_OBJECT))},
        **{f"/api/v1/reports/{kind}": {"get": _op(
            f"Report: {kind} (DESIGN §1.6 item 17; durations in seconds, rates 0..1)", "viewer", _ok(_ANY_OBJECT),
            params=[_query("from", _STR, "RFC 3339"), _query("to", _STR, "RFC 3339"),
                    _query("by", _enum(Dimension)),
                    _query("noisiest", {"type": "integer", "minimum": 0})])}
           for kind in KINDS},
        "/": {"get": _op("Dashboard: incidents (HTML)", "viewer", _html("the page"), params=[
            _query("state", _STR), _query("priority", _STR), _query("service", _STR), *list_params])},
        "/incidents/{id}": {"get": _op("Dashboard: one incident (HTML)", "viewer", _html("the page"),
                                       params=[_path_param()], errors=(*_READ_ERRORS, 404))},
        "/problems": {"get": _op("Dashboard: problems and known errors (HTML)", "viewer", _html("the page"),
                                 params=[_query("state", _STR), *list_params])},
        "/silences": {"get": _op("Dashboard: silences (HTML)", "viewer", _html("the page"), params=list_params)},
        "/approvals": {"get": _op("Dashboard: runs awaiting approval, approve/reject for operators (HTML)", "viewer",
                                  _html("the page"), params=list_params)},
        "/reports": {"get": _op(
            "Dashboard: reports as charts (HTML; the figures of summary?by=week&noisiest=10 and recurring)", "viewer",
            {**_html("the page"), "400": {"description": "a range it cannot read: the page with the message",
                                          "content": {"text/html": {"schema": _STR}}}},
            params=[_query("range", _STR, "7d, 30d or 90d (default 30d)"),
                    _query("from", _STR, "YYYY-MM-DD (a day in reports.timezone) or RFC 3339"),
                    _query("to", _STR, "YYYY-MM-DD (included) or RFC 3339 (excluded)")],
            errors=(401, 403, 503))},
        "/problems/{id}": {"get": _op("Dashboard: one problem (HTML)", "viewer", _html("the page"),
                                      params=[_path_param()], errors=(*_READ_ERRORS, 404))},
        "/static/{name}": {"get": _op("Dashboard assets (a fixed list)", None, {"200": {
            "description": "the asset",
            "content": {"text/css": {"schema": _STR}, "text/javascript": {"schema": _STR}}}},
            params=[_path_param("name")], errors=(404,))},
        "/metrics": {"get": _op("Prometheus metrics", None, {"200": {
            "description": "Prometheus text format", "content": {"text/plain": {"schema": _STR}}}}, errors=())},
        "/-/healthy": {"get": _op("Liveness: the process answers", None, _text("ok", 200), errors=())},
        "/-/ready": {"get": _op("Readiness: migrated, and a write goes through; header X-Itsmd-Role: leader|follower",
                                None,
                                _text("ready, or why not", 200, 503), errors=())},
        "/-/reload": {"post": _op(
            "Reload the configuration; on any problem answer 400 and keep the running one", "admin", {
                **_ok(_obj({"status": _STR})),
                "400": {"description": "reload failed or is not available; the running configuration is kept",
                        **_json(_obj({"error": _STR, "problems": {"type": "array", "items": _STR}},
                                     required=("error",)))}},
            body={"description": "ignored (any JSON, `{}` is fine)"}, errors=(401, 403, 415, 503))},
    }
    for action in INCIDENT_ACTIONS:
        paths[f"/api/v1/incidents/{{id}}/{action}"] = {"post": _op(
            f"Incident action {action}", "operator", _ok(_ref("Incident")), params=[_path_param()],
            body=_incident_action_body(action), errors=_WRITE_ERRORS)}
    for run_action, summary in RUN_ACTIONS.items():
        paths[f"/api/v1/runs/{{id}}/{run_action}"] = {"post": _op(
            summary, "operator", _ok(_ref("Run")), params=[_path_param()],
            body=_obj(_COMMENT, required=(), extra=True), errors=_WRITE_ERRORS)}
    return paths


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once; never mutate the result)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "itsmd", "version": __version__,
                 "description": "Incident automation daemon. Errors are {\"error\": \"<message>\"}; every "
                                "state-changing request must be Content-Type: application/json."},
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic",
                                          "description": "user = the token's name, password = the token"}},
        },
    }


@requires(None)
async def openapi_json(request: web.Request) -> web.Response:
    """GET /api/v1/openapi.json (no authentication)."""
    return web.json_response(document())
