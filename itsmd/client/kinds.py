"""What the client knows of each collection of the API: its path, its `ls` filters and its table columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from itsmd.client.render import Column, field


@dataclass(frozen=True)
class Filter:
    option: str  # --option on the command line
    param: str  # query parameter
    help: str
    choices: tuple[str, ...] | None = None
    flag_value: str | None = None  # a flag without argument that sends this value


@dataclass(frozen=True)
class Kind:
    name: str
    path: str
    columns: tuple[Column, ...]
    filters: tuple[Filter, ...] = ()


def _firing(item: dict[str, Any]) -> str:
    return f"{item.get('firing_count')}/{item.get('alert_count')}"


def _alertname(item: dict[str, Any]) -> Any:
    return (item.get("labels") or {}).get("alertname")


def _other_labels(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (item.get("labels") or {}).items() if k != "alertname"}


def _alert_flags(item: dict[str, Any]) -> str:
    flags = [item["symptom"]] if item.get("symptom") else []
    flags += [name for name in ("stale", "flapping") if item.get(name)]
    if item.get("muted_by"):
        flags.append("muted")
    return ",".join(flags)


def _silence_end(item: dict[str, Any]) -> Any:
    return item.get("ends_at") or item.get("next_change_at")


STATE = (field("id"), field("state", toned=True))
INCIDENTS = Kind("incidents", "/api/v1/incidents", (
    *STATE, field("priority", "PRI", toned=True), field("service"), field("assignee"),
    Column("FIRING", _firing), field("opened_at", "OPENED"), field("title"),
), (
    Filter("--state", "state", "open|acknowledged|resolved|closed",
           ("open", "acknowledged", "resolved", "closed")),
    Filter("--service", "service", "service name"),
    Filter("--priority", "priority", "P1..P5", ("P1", "P2", "P3", "P4", "P5")),
    Filter("--since", "since", "opened at or after (RFC 3339)"),
))
PROBLEMS = Kind("problems", "/api/v1/problems", (
    *STATE, field("owner"), field("incident_count", "INCIDENTS"), field("last_seen_at", "LAST SEEN"), field("title"),
), (
    Filter("--state", "state", "open|investigating|known_error|resolved|closed",
           ("open", "investigating", "known_error", "resolved", "closed")),
    Filter("--owner", "owner", "owner"),
    Filter("--rule", "rule", "rule name"),
    Filter("--since", "since", "opened at or after (RFC 3339)"),
))
ALERTS = Kind("alerts", "/api/v1/alerts", (
    field("id"), field("status", toned=True), Column("ALERTNAME", _alertname), field("incident_id", "INCIDENT"),
    field("starts_at", "STARTS"), Column("FLAGS", _alert_flags), Column("LABELS", _other_labels),
), (
    Filter("--status", "status", "firing|resolved", ("firing", "resolved")),
    Filter("--incident", "incident", "alerts of this incident (INC-...)"),
    Filter("--unrouted", "unrouted", "only alerts that matched no rule", flag_value="true"),
    Filter("--fingerprint", "fingerprint", "the episodes of one fingerprint"),
))
RUNS = Kind("runs", "/api/v1/runs", (
    *STATE, field("playbook"), field("incident_id", "INCIDENT"), field("target"), field("created_at", "CREATED"),
    field("reason"),
), (
    Filter("--incident", "incident", "runs of this incident (INC-...)"),
    Filter("--playbook", "playbook", "playbook name"),
    Filter("--state", "state", "run state"),
))
SILENCES = Kind("silences", "/api/v1/silences", (
    *STATE, Column("ENDS", _silence_end), field("created_by", "CREATED BY"), field("matchers"), field("comment"),
), (
    Filter("--active", "active", "only silences in force now", flag_value="true"),
    Filter("--inactive", "active", "only silences not in force now", flag_value="false"),
))
AUDIT = Kind("audit", "/api/v1/audit", (
    field("id"), field("at"), field("entity"), field("entity_id", "ENTITY ID"), field("actor"), field("action"),
    field("reason"),
), (
    Filter("--entity", "entity", "incident, problem, run, silence, config, auth ..."),
    Filter("--entity-id", "entity_id", "INC-12, PRB-3, RUN-4 or a number"),
    Filter("--action", "action", "action name"),
    Filter("--since", "since", "at or after (RFC 3339)"),
))
KINDS = {k.name: k for k in (INCIDENTS, PROBLEMS, ALERTS, RUNS, SILENCES)}

# Tables inside one object's detail view, by key.
SECTIONS: dict[str, tuple[Column, ...]] = {
    "alerts": ALERTS.columns,
    "runs": RUNS.columns,
    "timeline": (field("at"), field("actor"), field("action"), field("reason")),
    "steps": (field("name"), field("state", toned=True), field("attempt"), field("exit_code", "EXIT"),
              field("started_at", "STARTED"), field("finished_at", "FINISHED")),
}
