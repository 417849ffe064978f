"""Correlate stage: new episodes are routed by the rules and placed into incidents; alert changes move incidents.

Runs inside the pipeline's transaction, after dedup: what it decides commits together with the episodes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from itsmd.config.routing import Routing
from itsmd.core.alert import Status
from itsmd.core.episode import Episode
from itsmd.core.incident import (
    Placement,
    State,
    Symptom,
    common_labels,
    display_id,
    is_flapping,
    place,
    progress,
)
from itsmd.core.priority import parse_level, priority
from itsmd.core.rule import DEFAULT_IMPACT, DEFAULT_TITLE, DEFAULT_URGENCY, Rule, RuleSet
from itsmd.core.service import Catalogue, Service, service_context
from itsmd.pipeline import remediate
from itsmd.storage import events, incidents
from itsmd.storage.events import Event
from itsmd.storage.incidents import key_hash

SYSTEM = "system"
_CHANGES = ("alert_joined", "alert_resolved")  # what counts toward `flapping`


@dataclass
class Correlation:
    touched: set[int] = field(default_factory=set)  # incidents whose alerts changed
    joined: dict[int, list[Mapping[str, str]]] = field(default_factory=dict)  # labels of cause alerts that joined
    opened: list[dict[str, Any]] = field(default_factory=list)  # incidents opened, in order (for the problem stage)
    reopened: list[int] = field(default_factory=list)  # incidents reopened, in order (for the remediate stage)
    events: list[Event] = field(default_factory=list)
    unmapped: Counter[str] = field(default_factory=Counter)  # new alerts of no service, by rule ("": unrouted)


def route(rules: RuleSet, changed: dict[int, Episode], ids: Iterable[int] | None = None) -> None:
    """Give each episode that begins in this batch its rule and key (first matching rule wins); with `ids`,
    route those episodes afresh (none matching: unrouted)."""
    for eid in list(changed) if ids is None else ids:
        ep = changed[eid]
        if ep.labels is None or (ids is None and (eid >= 0 or ep.rule is not None)):
            continue
        rule = rules.route(ep.labels)
        if rule is not None:
            key = rule.key(ep.labels)
            changed[eid] = replace(ep, rule=rule.name, key=key, key_hash=key_hash(key))
        elif ids is not None:
            changed[eid] = replace(ep, rule=None, key=None, key_hash=None)


def _render(rule: Rule, labels: dict[str, str], count: int, incident: dict[str, Any],
            service: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Title, impact, urgency and priority from the rule's templates; a failing template falls back to the
    default and says why (alert values are data in the context, never templates)."""
    context = rule.context(labels, incident=incident, service=service)
    context["alert_count"] = count
    problems: list[str] = []
    try:
        title = rule.title.render(context)
    except ValueError as e:
        title = DEFAULT_TITLE.render(context)
        problems.append(f"title: {e}")
    try:
        impact, urgency = rule.impact_level(context), rule.urgency_level(context)
    except ValueError as e:
        impact = parse_level(DEFAULT_IMPACT.render(context))
        urgency = parse_level(DEFAULT_URGENCY.render(context))
        problems.append(f"impact/urgency: {e}")
    values = {"title": title, "impact": str(impact), "urgency": str(urgency),
              "priority": str(priority(impact, urgency))}
    return values, "; ".join(problems)


class _Causes:
    """Unresolved incidents that take new alerts as symptoms (DESIGN §1.6 item 6): those of rules with
    `inhibits`, and those of the services that a new alert's service depends on. Each kind is loaded only when
    some new alert could be its symptom."""

    def __init__(self, conn: Connection, rules: RuleSet, services: Catalogue,
                 new: list[tuple[Episode, Service | None]]) -> None:
        self._rules = {r.name: r for r in rules.inhibitors()}
        self._services = services
        inhibitable = any(
            all(m.matches(ep.labels or {}) for m in i.matchers)
            for r in self._rules.values() for i in r.inhibits for ep, _ in new
        )
        self._inhibiting = incidents.of_rules(conn, list(self._rules)) if inhibitable else []
        self._needed = {name for _, service in new if service for name in services.dependencies(service.name)}
        self._of_service: dict[str, list[dict[str, Any]]] = {}
        # Two per service suffice: `find` passes over at most one (the alert's own rule and key's).
        for row in incidents.of_services(conn, self._needed, limit=2):
            self._of_service.setdefault(row["service"], []).append(row)

    def opened(self, incident: dict[str, Any]) -> None:
        """An incident took a cause alert in this batch: it may take later alerts of the batch as symptoms."""
        if incident["rule"] in self._rules and all(i["id"] != incident["id"] for i in self._inhibiting):
            self._inhibiting.append(incident)
        if incident["service"] in self._needed:
            rows = self._of_service.setdefault(incident["service"], [])
            if all(i["id"] != incident["id"] for i in rows):
                rows.append(incident)

    def find(self, ep: Episode, service: Service | None) -> tuple[dict[str, Any], Symptom] | None:
        """The incident that takes this alert as a symptom, if any: the first whose rule inhibits it (rules in
        precedence order), else the oldest of the nearest service its service depends on. An incident of the
        alert's own rule and key is no cause: the alert joins that one as a cause."""
        labels = ep.labels or {}
        for row in self._inhibiting:
            rule = self._rules[row["rule"]]
            if rule.name != ep.rule and any(i.inhibits(row["labels"], labels) for i in rule.inhibits):
                return row, Symptom.INHIBITED
        for name in self._services.dependencies(service.name) if service else ():
            for row in self._of_service.get(name, ()):
                if (row["rule"], row["key_hash"]) != (ep.rule, ep.key_hash):
                    return row, Symptom.DEPENDENCY
        return None


def _symptom_reason(symptom: Symptom, service: Service | None, cause: dict[str, Any]) -> str:
    if symptom is Symptom.DEPENDENCY and service is not None:
        return f"an alert of {service.name}, which depends on {cause['service']}, joined it as a symptom"
    return "an alert inhibited by this incident's rule joined it as a symptom"


def place_new(conn: Connection, routing: Routing, changed: dict[int, Episode], now: datetime,
              order: list[int] | None = None) -> Correlation:
    """Place every episode that begins firing in this batch, muted ones aside, in arrival order (so a cause that
    arrives first takes the symptoms that follow it, in the same batch too): as a symptom into a cause's incident,
    else by its rule (alerts of no rule stay unrouted).

    `order` names the episodes to place instead, in order: stored ones a silence released count as beginning.
    """
    out = Correlation()
    services = routing.services
    beginning = order if order is not None else sorted(
        (eid for eid, ep in changed.items() if eid < 0 and ep.status == Status.FIRING and ep.muted_by is None),
        reverse=True)  # provisional ids count down in arrival order
    service_of = {eid: services.of(changed[eid].labels or {}) for eid in beginning}
    for eid, service in service_of.items():
        if service is None:
            out.unmapped[changed[eid].rule or ""] += 1
    causes = _Causes(conn, routing.rules, services, [(changed[eid], service_of[eid]) for eid in beginning])
    placer = _Placer(conn, routing, changed, [eid for eid in beginning if changed[eid].rule], now, out)
    for eid in beginning:
        ep = changed[eid]
        found = causes.find(ep, service_of[eid])
        if found is not None:
            cause, symptom = found
            changed[eid] = replace(ep, incident_id=cause["id"], symptom=str(symptom))
            out.touched.add(cause["id"])
            out.events.append(Event(now, "incident", cause["id"], SYSTEM, "symptom_joined",
                                    _symptom_reason(symptom, service_of[eid], cause),
                                    {"fingerprint": ep.fingerprint, "symptom": str(symptom)}))
        elif ep.rule:
            incident = placer.place(eid)
            if incident is not None:
                causes.opened(incident)
    return out


class _Placer:
    """Places routed alerts into the incidents of their rule and key: join, reopen, open at min_alerts, or wait.
    The keys' unresolved and latest incidents are loaded once for the batch."""

    def __init__(self, conn: Connection, routing: Routing, changed: dict[int, Episode], routed: list[int],
                 now: datetime, out: Correlation) -> None:
        self._conn, self._routing, self._changed, self._now, self._out = conn, routing, changed, now, out
        pairs = {(changed[eid].rule, changed[eid].key_hash) for eid in routed}
        self._open = incidents.unresolved(conn, pairs)  # type: ignore[arg-type]
        self._last = incidents.latest(conn, pairs)  # type: ignore[arg-type]
        self._stored = self._stored_waiting(set(pairs) - set(self._open))  # type: ignore[arg-type]
        self._waiting: dict[tuple[str, str], list[int]] = {}  # alerts of this batch below min_alerts, by key

    def _stored_waiting(self, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The stored alerts waiting for min_alerts of the keys without an unresolved incident (the batch's own
        alerts are saved after placing, so this stays right for the whole batch)."""
        by_rule: dict[str, list[str]] = {}
        for rule_name, khash in pairs:
            by_rule.setdefault(rule_name, []).append(khash)
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for rule_name, hashes in by_rule.items():
            rule = self._routing.rules.by_name(rule_name)
            if rule is not None:
                since = self._now - timedelta(seconds=rule.window)
                for khash, rows in incidents.waiting(self._conn, rule_name, hashes, since).items():
                    out[(rule_name, khash)] = rows
        return out

    def place(self, eid: int) -> dict[str, Any] | None:
        """Place one routed alert; the incident that took it (None: it waits for min_alerts)."""
        conn, changed, now, out = self._conn, self._changed, self._now, self._out
        ep = changed[eid]
        assert ep.rule is not None and ep.key_hash is not None and ep.labels is not None
        rule = self._routing.rules.by_name(ep.rule)
        if rule is None:
            return None
        pair = (ep.rule, ep.key_hash)
        latest = self._last.get(pair)
        resolved_at = latest["resolved_at"] if latest and latest["state"] == State.RESOLVED else None
        stored = [] if pair in self._open else self._stored.get(pair, [])
        mine = self._waiting.setdefault(pair, [])
        decision = place(pair in self._open, resolved_at, rule.reopen_within, len(stored) + len(mine) + 1,
                         rule.min_alerts, now)
        if decision == Placement.PENDING:
            mine.append(eid)
            return None
        if decision == Placement.REOPEN:
            assert latest is not None
            incidents.change(conn, latest["id"], {
                "state": State.OPEN, "reopen_count": latest["reopen_count"] + 1, "resolved_at": None,
                "resolution": None, "close_at": None, "resolve_at": None, "updated_at": now,
                "page_at": now,  # paging decides about the new cycle at its next tick
            })
            self._open[pair] = {**latest, "state": State.OPEN}
            out.reopened.append(latest["id"])
            out.events.append(Event(now, "incident", latest["id"], SYSTEM, "reopened",
                                    f"an alert fired within reopen_within of the resolution ({rule.name})"))
        elif decision == Placement.OPEN:
            self._open[pair] = _open(conn, rule, self._routing.services, ep, stored, [changed[i] for i in mine],
                                     latest, now, out)
            for other in mine:
                changed[other] = replace(changed[other], incident_id=self._open[pair]["id"])
            mine.clear()
        incident = self._open[pair]
        changed[eid] = replace(ep, incident_id=incident["id"])
        out.touched.add(incident["id"])
        if decision != Placement.OPEN:
            out.joined.setdefault(incident["id"], []).append(ep.labels)
        out.events.append(Event(now, "incident", incident["id"], SYSTEM, "alert_joined",
                                f"{decision}: an alert fired", {"fingerprint": ep.fingerprint}))
        return incident


def _open(conn: Connection, rule: Rule, services: Catalogue, ep: Episode, stored: list[dict[str, Any]],
          batch: list[Episode], latest: dict[str, Any] | None, now: datetime, out: Correlation) -> dict[str, Any]:
    """Open an incident with the key's waiting alerts (`stored` oldest first, then `batch`) and `ep`; its service
    and owner are those of the first of them."""
    assert ep.labels is not None and ep.key is not None and ep.key_hash is not None
    every = [r["labels"] for r in stored] + [dict(b.labels or {}) for b in batch] + [dict(ep.labels)]
    labels: dict[str, str] | None = None
    for lab in every:
        labels = common_labels(labels, lab)
    starts = [r["starts_at"] for r in stored] + [b.starts_at for b in batch] + [ep.starts_at]
    count = len(starts)
    service = services.of(every[0])
    rendered, problem = _render(rule, labels or {}, count, {"state": State.OPEN}, service_context(service))
    signature = rule.signature(labels or {})  # from the labels its alerts share: fixed for its lifetime
    values = {
        "rule": rule.name, "key": ep.key, "key_hash": ep.key_hash, "state": State.OPEN, **rendered,
        "service": service.name if service else None, "owner": service.owner if service else None,
        "signature": signature, "signature_hash": key_hash(signature),
        "labels": labels or {}, "alert_count": count, "firing_count": count, "detected_at": min(starts),
        "opened_at": now, "reopen_count": 0, "flapping": False, "signal_lost": False, "updated_at": now,
        "previous_incident_id": latest["id"] if latest else None,
        "page_at": now,  # paging decides at its next tick (itsmd.paging)
    }
    new_id = incidents.create(conn, values)
    incidents.attach(conn, [r["id"] for r in stored], new_id)
    reason = f"rule {rule.name}: {count} alert(s) within the window (min_alerts {rule.min_alerts})"
    out.events.append(Event(now, "incident", new_id, SYSTEM, "opened", reason,
                            {"key": ep.key, "previous_incident_id": display_id(latest["id"]) if latest else None}))
    if problem:
        out.events.append(Event(now, "incident", new_id, SYSTEM, "template_error", problem))
    out.opened.append({**values, "id": new_id})
    return out.opened[-1]


def _service_of(services: Catalogue, incident: dict[str, Any]) -> Mapping[str, Any]:
    """The template context `service` of a stored incident: its service as the catalogue has it now; one that a
    reload removed keeps its name and owner, without a tier."""
    service = services.by_name(incident["service"])
    if service is None and incident["service"] is not None:
        return {"name": incident["service"], "owner": incident["owner"], "tier": None}
    return service_context(service)


def settle(conn: Connection, routing: Routing, ids: Iterable[int], close_after: float, now: datetime,
           out: Correlation) -> None:
    """Recount the touched incidents' alerts and apply each rule's resolve policy."""
    rules = routing.rules
    ids = set(ids)
    if not ids:
        return
    rows = incidents.get_many(conn, ids)
    updates: list[tuple[int, dict[str, Any]]] = []
    resolving: list[tuple[dict[str, Any], str, dict[str, Any]]] = []
    for incident_id, counts in incidents.counts(conn, ids).items():
        row = rows.get(incident_id)
        if row is None:
            continue
        values: dict[str, Any] = {"alert_count": counts.alerts, "firing_count": counts.firing,
                                  "signal_lost": counts.stale > 0, "updated_at": now}
        rule = rules.by_name(row["rule"])
        if rule is not None and incident_id in out.joined:  # the alerts changed: labels and templates follow
            labels = row["labels"]
            for joined in out.joined[incident_id]:
                labels = common_labels(labels, dict(joined))
            rendered, problem = _render(rule, labels, counts.alerts, {"state": row["state"]},
                                        _service_of(routing.services, row))
            values.update(labels=labels, **rendered)
            if problem:
                out.events.append(Event(now, "incident", incident_id, SYSTEM, "template_error", problem))
        if rule is not None and rule.flapping is not None:
            since = now - timedelta(seconds=rule.flapping.within)
            changes = events.count_since(conn, "incident", incident_id, _CHANGES, since)
            values["flapping"] = is_flapping(changes, rule.flapping.changes)
            if values["flapping"] and not row["flapping"]:
                out.events.append(Event(now, "incident", incident_id, SYSTEM, "flapping",
                                        f"{changes} fire/resolve changes within {rule.flapping.within:g}s"))
        if rule is not None and row["state"] in (State.OPEN, State.ACKNOWLEDGED):
            p = progress(str(rule.resolve.kind), rule.resolve.quiet, counts, now)
            values["restored_at"] = p.restored_at or row["restored_at"]
            values["resolve_at"] = (row["resolve_at"] or p.resolve_at) if p.resolve_at else None
            if p.resolve:
                values.update(state=State.RESOLVED, resolved_at=now, resolve_at=None,
                              close_at=now + timedelta(seconds=close_after))
                resolving.append((row, p.reason, values))
        updates.append((incident_id, values))
    # Each incident's resolution is its last change here, so deciding them together keeps its timeline's order.
    resolutions = remediate.on_resolved(conn, [row for row, _, _ in resolving], now)
    for row, reason, values in resolving:
        resolution, cancelled = resolutions[row["id"]]
        values["resolution"] = resolution
        out.events.append(Event(now, "incident", row["id"], SYSTEM, "resolved", f"{reason} ({resolution})"))
        out.events += cancelled
    incidents.change_many(conn, updates)
