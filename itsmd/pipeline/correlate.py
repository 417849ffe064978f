"""Correlate stage: new episodes are routed by the rules and placed into incidents; alert changes move incidents.

Runs inside the pipeline's transaction, after dedup: what it decides commits together with the episodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from itsmd.core.alert import Status
from itsmd.core.episode import Episode
from itsmd.core.incident import (
    Placement,
    Resolution,
    State,
    common_labels,
    display_id,
    is_flapping,
    place,
    progress,
)
from itsmd.core.priority import parse_level, priority
from itsmd.core.rule import DEFAULT_IMPACT, DEFAULT_TITLE, DEFAULT_URGENCY, Rule, RuleSet
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
    events: list[Event] = field(default_factory=list)


def route(rules: RuleSet, changed: dict[int, Episode]) -> None:
    """Give each episode that begins in this batch its rule and key (first matching rule wins)."""
    for eid, ep in list(changed.items()):
        if eid < 0 and ep.rule is None and ep.labels is not None:
            rule = rules.route(ep.labels)
            if rule is not None:
                key = rule.key(ep.labels)
                changed[eid] = replace(ep, rule=rule.name, key=key, key_hash=key_hash(key))


def _render(rule: Rule, labels: dict[str, str], count: int, incident: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Title, impact, urgency and priority from the rule's templates; a failing template falls back to the
    default and says why (alert values are data in the context, never templates)."""
    context = rule.context(labels, incident=incident, service={"name": None, "tier": None, "owner": None})
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
    """Unresolved incidents of rules with `inhibits`, loaded only when some new alert matches an inhibit."""

    def __init__(self, conn: Connection, rules: RuleSet, new: list[Episode]) -> None:
        self._rules = {r.name: r for r in rules.inhibitors()}
        wanted = any(
            all(m.matches(ep.labels or {}) for m in i.matchers)
            for r in self._rules.values() for i in r.inhibits for ep in new
        )
        self._open = incidents.of_rules(conn, list(self._rules)) if wanted else []

    def opened(self, rule: Rule, incident: dict[str, Any]) -> None:
        if rule.name in self._rules and all(i["id"] != incident["id"] for i in self._open):
            self._open.append(incident)

    def find(self, ep: Episode) -> int | None:
        """The incident whose rule inhibits this alert, if any (first rule in precedence order)."""
        labels = ep.labels or {}
        for row in self._open:
            rule = self._rules[row["rule"]]
            if rule.name != ep.rule and any(i.inhibits(row["labels"], labels) for i in rule.inhibits):
                return int(row["id"])
        return None


def place_new(conn: Connection, rules: RuleSet, changed: dict[int, Episode], now: datetime) -> Correlation:
    """Place every routed episode that begins firing in this batch (in arrival order)."""
    out = Correlation()
    beginning = sorted((eid for eid, ep in changed.items() if eid < 0 and ep.status == Status.FIRING),
                       reverse=True)  # provisional ids count down in arrival order
    causes = _Causes(conn, rules, [changed[eid] for eid in beginning])
    fresh = []
    for eid in beginning:
        ep = changed[eid]
        cause = causes.find(ep)
        if cause is not None:
            changed[eid] = replace(ep, incident_id=cause, symptom="inhibited")
            out.touched.add(cause)
            out.events.append(Event(now, "incident", cause, SYSTEM, "symptom_joined",
                                    "an alert inhibited by this incident's rule joined it as a symptom",
                                    {"fingerprint": ep.fingerprint}))
        elif ep.rule:
            fresh.append(eid)
    if not fresh:
        return out
    pairs = {(changed[eid].rule, changed[eid].key_hash) for eid in fresh}
    open_ = incidents.unresolved(conn, pairs)  # type: ignore[arg-type]
    last = incidents.latest(conn, pairs)  # type: ignore[arg-type]
    waiting_here: dict[tuple[str, str], list[int]] = {}
    for eid in fresh:
        ep = changed[eid]
        assert ep.rule is not None and ep.key_hash is not None and ep.labels is not None
        rule = rules.by_name(ep.rule)
        if rule is None:
            continue
        pair = (ep.rule, ep.key_hash)
        latest = last.get(pair)
        resolved_at = latest["resolved_at"] if latest and latest["state"] == State.RESOLVED else None
        stored = [] if pair in open_ else incidents.waiting(conn, rule.name, ep.key_hash,
                                                           now - timedelta(seconds=rule.window))
        mine = waiting_here.setdefault(pair, [])
        decision = place(pair in open_, resolved_at, rule.reopen_within, len(stored) + len(mine) + 1,
                         rule.min_alerts, now)
        if decision == Placement.PENDING:
            mine.append(eid)
            continue
        if decision == Placement.REOPEN:
            assert latest is not None
            incidents.change(conn, latest["id"], {
                "state": State.OPEN, "reopen_count": latest["reopen_count"] + 1, "resolved_at": None,
                "resolution": None, "close_at": None, "resolve_at": None, "updated_at": now,
            })
            open_[pair] = {**latest, "state": State.OPEN}
            out.events.append(Event(now, "incident", latest["id"], SYSTEM, "reopened",
                                    f"an alert fired within reopen_within of the resolution ({rule.name})"))
        elif decision == Placement.OPEN:
            open_[pair] = _open(conn, rule, ep, stored, [changed[i] for i in mine], latest, now, out)
            for other in mine:
                changed[other] = replace(changed[other], incident_id=open_[pair]["id"])
            mine.clear()
        incident = open_[pair]
        causes.opened(rule, incident)
        changed[eid] = replace(ep, incident_id=incident["id"])
        out.touched.add(incident["id"])
        if decision != Placement.OPEN:
            out.joined.setdefault(incident["id"], []).append(ep.labels)
        out.events.append(Event(now, "incident", incident["id"], SYSTEM, "alert_joined",
                                f"{decision}: an alert fired", {"fingerprint": ep.fingerprint}))
    return out


def _open(conn: Connection, rule: Rule, ep: Episode, stored: list[dict[str, Any]], batch: list[Episode],
          latest: dict[str, Any] | None, now: datetime, out: Correlation) -> dict[str, Any]:
    assert ep.labels is not None and ep.key is not None and ep.key_hash is not None
    labels: dict[str, str] | None = None
    for lab in [r["labels"] for r in stored] + [dict(b.labels or {}) for b in batch] + [dict(ep.labels)]:
        labels = common_labels(labels, lab)
    starts = [r["starts_at"] for r in stored] + [b.starts_at for b in batch] + [ep.starts_at]
    count = len(starts)
    rendered, problem = _render(rule, labels or {}, count, {"state": State.OPEN})
    signature = rule.signature(labels or {})  # from the labels its alerts share: fixed for its lifetime
    values = {
        "rule": rule.name, "key": ep.key, "key_hash": ep.key_hash, "state": State.OPEN, **rendered,
        "signature": signature, "signature_hash": key_hash(signature),
        "labels": labels or {}, "alert_count": count, "firing_count": count, "detected_at": min(starts),
        "opened_at": now, "reopen_count": 0, "flapping": False, "signal_lost": False, "updated_at": now,
        "previous_incident_id": latest["id"] if latest else None,
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


def settle(conn: Connection, rules: RuleSet, ids: Iterable[int], close_after: float, now: datetime,
           out: Correlation) -> None:
    """Recount the touched incidents' alerts and apply each rule's resolve policy."""
    ids = set(ids)
    if not ids:
        return
    for incident_id, counts in incidents.counts(conn, ids).items():
        row = incidents.get(conn, incident_id)
        if row is None:
            continue
        values: dict[str, Any] = {"alert_count": counts.alerts, "firing_count": counts.firing,
                                  "signal_lost": counts.stale > 0, "updated_at": now}
        rule = rules.by_name(row["rule"])
        if rule is not None and incident_id in out.joined:  # the alerts changed: labels and templates follow
            labels = row["labels"]
            for joined in out.joined[incident_id]:
                labels = common_labels(labels, dict(joined))
            rendered, problem = _render(rule, labels, counts.alerts, {"state": row["state"]})
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
                values.update(state=State.RESOLVED, resolved_at=now, resolution=Resolution.SELF_HEALED,
                              resolve_at=None, close_at=now + timedelta(seconds=close_after))
                out.events.append(Event(now, "incident", incident_id, SYSTEM, "resolved",
                                        f"{p.reason} ({Resolution.SELF_HEALED})"))
        incidents.change(conn, incident_id, values)
