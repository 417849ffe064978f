"""Remediate stage: an incident that opened or reopened triggers its rule's playbooks; each run is decided by the
guards and stored (skipped ones with their reason) in the pipeline's transaction, under an idempotency key.

The runner is woken after the commit (`Triggered.created`); nothing here executes anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from itsmd.config.routing import Routing
from itsmd.core import approval, binding
from itsmd.core.binding import ParamInvalid
from itsmd.core.guard import Breaker, BreakerPhase, Decision, Facts, SkipReason, should_run
from itsmd.core.incident import UNRESOLVED, Resolution, common_labels, display_id
from itsmd.core.playbook import ForEach, Playbook
from itsmd.core.run import Reason, RunState, StepState, Trigger, idempotency_key
from itsmd.core.run import display_id as run_display_id
from itsmd.core.service import service_context
from itsmd.core.timestamp import format_time, parse_time
from itsmd.storage import breakers, incidents, pages, runs, settings
from itsmd.storage.events import Event
from itsmd.storage.runs import NewStep, TargetHistory
from itsmd.storage.tables import incidents as incidents_table

SYSTEM = "system"
MAX_CONTEXT_ALERTS = 100  # alerts kept in a run's template context (`alerts`)
MAX_RUN_ALERTS = 1000  # for_each alert: runs for at most this many firing alerts of an incident


@dataclass(frozen=True, slots=True)
class Switches:
    """What `automation:` in the config says (the run-time switch is read from the store)."""

    enabled: bool = True
    dry_run: bool = False


@dataclass
class Triggered:
    created: int = 0  # runs to execute (pending): the runner is woken when non-zero
    decisions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (playbook, state or skip reason)
    events: list[Event] = field(default_factory=list)
    # Read once per batch of triggers (one transaction): the run-time switch, and each playbook's breaker, kept
    # current as the batch's decisions change it.
    runtime_enabled: bool | None = None
    breakers: dict[str, Breaker] = field(default_factory=dict)

    def enabled_at_runtime(self, conn: Connection) -> bool:
        if self.runtime_enabled is None:
            self.runtime_enabled = settings.automation_enabled(conn)
        return self.runtime_enabled

    def breaker(self, conn: Connection, playbook: str) -> Breaker:
        if playbook not in self.breakers:
            self.breakers[playbook] = load_breaker(conn, playbook)
        return self.breakers[playbook]


@dataclass(frozen=True, slots=True)
class Request:
    """One run to decide: `incident` (a stored row), why, and by whom."""

    incident: Mapping[str, Any]
    playbook: str
    trigger: Trigger
    requested_by: str = SYSTEM
    key: str | None = None  # manual runs bring their own unique key


def on_incidents(conn: Connection, routing: Routing, switches: Switches, opened: Iterable[int],
                 reopened: Iterable[int], now: datetime,
                 known_errors: Iterable[tuple[int, str]] = ()) -> Triggered:
    """The runs of every rule playbook of the incidents that opened or reopened in this batch, and of the known
    error playbook of those that linked to a known error (DESIGN §1.6 item 10), while still unresolved once the
    batch settled: decided in order, stored together (`_decide_and_store`). A known error's playbook that the
    rule also runs is the same run (same idempotency key)."""
    out = Triggered()
    planned: list[Event | _Planned] = []
    extra: dict[int, list[str]] = {}
    for number, name in known_errors:
        extra.setdefault(number, []).append(name)
    triggers = [(Trigger.OPENED, list(opened)), (Trigger.REOPENED, list(reopened))]
    rows = incidents.get_many(conn, [n for _, ids in triggers for n in ids] + list(extra))  # one query
    acting = {n: row for n, row in rows.items()
              if row["state"] in UNRESOLVED and (_playbooks(routing, row) or n in extra)}
    firing = incidents.firing_causes(conn, acting, MAX_RUN_ALERTS)
    for trigger, ids in [*triggers, (Trigger.KNOWN_ERROR, list(extra))]:
        for number in ids:
            row = acting.get(number)
            if row is None:
                continue
            names = extra[number] if trigger == Trigger.KNOWN_ERROR else _playbooks(routing, row)
            for name in names:
                planned.extend(_plan(routing, Request(row, name, trigger), firing[number], now))
    _decide_and_store(conn, switches, planned, now, out)
    return out


def request(conn: Connection, routing: Routing, switches: Switches, req: Request, now: datetime,
            out: Triggered) -> list[int]:
    """Decide and store the run(s) of one playbook for one incident; returns the new run ids."""
    firing = incidents.firing_causes(conn, [req.incident["id"]], MAX_RUN_ALERTS)[req.incident["id"]]
    made = [i for i in _decide_and_store(conn, switches, _plan(routing, req, firing, now), now, out) if i is not None]
    if made:  # a run a guard skipped pages: the pager decides now, not at the incident's next paging deadline
        pages.review_soon(conn, req.incident["id"], now)
    return made


def _playbooks(routing: Routing, incident: Mapping[str, Any]) -> tuple[str, ...]:
    rule = routing.rules.by_name(incident["rule"])
    return rule.playbooks if rule is not None else ()


@dataclass(frozen=True, slots=True)
class _Planned:
    """One run to decide: its playbook, request, template context and bound target."""

    playbook: Playbook
    req: Request
    context: dict[str, Any]
    params: dict[str, Any]
    target: str
    problem: str | None
    key: str


def _plan(routing: Routing, req: Request, firing: incidents.Firing, now: datetime) -> list[Event | _Planned]:
    playbook = routing.playbooks.by_name(req.playbook)
    if playbook is None:
        return [Event(now, "incident", req.incident["id"], SYSTEM, "run_not_started",
                      f"playbook {req.playbook!r} is not loaded", {"playbook": req.playbook})]
    out: list[Event | _Planned] = []
    incident = req.incident
    for context, default_target in _contexts(routing, incident, firing, playbook):
        bound = binding.bind(playbook, context, default_target)
        if isinstance(bound, ParamInvalid):
            params, target, problem = {}, default_target, bound.detail
        else:
            params, target, problem = dict(bound.params), bound.target, None
        key = req.key or idempotency_key(incident["id"], incident["reopen_count"], playbook.name, target)
        out.append(_Planned(playbook, req, context, params, target, problem, key))
    return out


# --- template context (adapter: what the trigger saw, stored with the run) -----------------------------------

def _alert_json(a: Mapping[str, Any]) -> dict[str, Any]:
    return {"labels": a["labels"], "annotations": a["annotations"], "status": a["status"],
            "starts_at": format_time(a["starts_at"]), "fingerprint": a["fingerprint"]}


def _contexts(routing: Routing, incident: Mapping[str, Any], causes: incidents.Firing,
              playbook: Playbook) -> list[tuple[dict[str, Any], str]]:
    """One template context and default target per run: the incident's (for_each incident) or each firing cause
    alert's (for_each alert)."""
    firing = causes.alerts
    service = routing.services.by_name(incident["service"]) if incident["service"] else None
    inc = {"id": display_id(incident["id"]), "title": incident["title"], "rule": incident["rule"],
           "state": incident["state"], "priority": incident["priority"], "service": incident["service"],
           "owner": incident["owner"], "labels": incident["labels"]}
    svc = dict(service_context(service))
    if playbook.for_each == ForEach.ALERT:
        return [(binding.context(a["labels"], annotations=a["annotations"], alerts=[_alert_json(a)], incident=inc,
                                 service=svc), f"alert:{a['fingerprint']}") for a in firing]
    shown = [_alert_json(a) for a in firing[:MAX_CONTEXT_ALERTS]]
    annotations: dict[str, str] | None = None
    for a in firing:
        annotations = common_labels(annotations, a["annotations"])
    ctx = binding.context(incident["labels"], annotations=annotations or {},
                          alerts=shown, incident=inc, service=svc)
    ctx["alert_count"] = causes.count
    return [(ctx, inc["id"])]


# --- guards and storage --------------------------------------------------------------------------------------

def load_breaker(conn: Connection, playbook: str) -> Breaker:
    row = breakers.get(conn, playbook)
    if row is None:
        return Breaker()
    failures = tuple(t for t in (parse_time(x) for x in row["failures"]) if t is not None)
    return Breaker(BreakerPhase(row["state"]), failures, row["opened_at"],
                   probing=row["state"] == BreakerPhase.HALF_OPEN)


def save_breaker(conn: Connection, playbook: str, b: Breaker, now: datetime) -> None:
    breakers.save(conn, playbook, str(b.phase), [format_time(t) or "" for t in b.failures], b.opened_at, now)


def _targets(conn: Connection, service: str | None) -> tuple[int, int]:
    """(firing, known) targets of a service for the blast radius: its unresolved incidents, and the distinct
    rule keys it ever had an incident for."""
    if not service:
        return 0, 0
    t = incidents_table
    known = conn.execute(select(func.count(func.distinct(t.c.key_hash))).where(t.c.service == service)).scalar_one()
    firing = conn.execute(select(func.count()).select_from(t).where(
        t.c.service == service, t.c.state.in_(list(UNRESOLVED)))).scalar_one()
    return int(firing), int(known)


def _steps(playbook: Playbook) -> list[NewStep]:
    return ([NewStep(s.name, str(s.kind), s.idempotent, "main") for s in playbook.steps]
            + [NewStep(s.name, str(s.kind), s.idempotent, "on_failure") for s in playbook.on_failure])


def _histories(conn: Connection, planned: Sequence[_Planned], now: datetime) -> dict[tuple[str, str], TargetHistory]:
    """The guards' counts of every (playbook, target) planned: one query per playbook."""
    targets: dict[str, tuple[Playbook, set[str]]] = {}
    for p in planned:
        targets.setdefault(p.playbook.name, (p.playbook, set()))[1].add(p.target)
    out: dict[tuple[str, str], TargetHistory] = {}
    for name, (playbook, wanted) in targets.items():
        since = now - timedelta(seconds=playbook.rate_limit.per)
        for target, history in runs.target_histories(conn, name, wanted, since).items():
            out[(name, target)] = history
    return out


@dataclass(frozen=True, slots=True)
class _Decided:
    planned: _Planned
    state: RunState
    reason: SkipReason | None
    detail: str


def _decide_and_store(conn: Connection, switches: Switches, planned: Sequence[Event | _Planned], now: datetime,
                      out: Triggered) -> list[int | None]:
    """Decide the planned runs in order and store them together (one statement for the runs, one for their
    steps); returns each planned run's id (None: its trigger was seen before). The guards' facts are read once
    for the batch and kept current as runs are decided, so a later run on the same target sees the earlier ones
    (concurrency, rate limit). Events keep the planned order."""
    todo = [p for p in planned if isinstance(p, _Planned)]
    seen = runs.existing_keys(conn, [p.key for p in todo]) if todo else set()
    history = _histories(conn, todo, now) if todo else {}
    radius: dict[str | None, tuple[int, int]] = {}
    decided: list[_Decided | None] = []
    for p in todo:
        if p.key in seen:
            decided.append(None)  # this trigger was seen before: its run exists
            continue
        seen.add(p.key)
        playbook, incident = p.playbook, p.req.incident
        if playbook.blast_radius is not None:
            if incident["service"] not in radius:
                radius[incident["service"]] = _targets(conn, incident["service"])
            firing, known = radius[incident["service"]]
        else:
            firing, known = 0, 0
        h = history.get((playbook.name, p.target), TargetHistory(0, 0, None))
        facts = Facts(
            enabled_in_config=switches.enabled, enabled_at_runtime=out.enabled_at_runtime(conn),
            dry_run=switches.dry_run, param_problem=p.problem, flapping=bool(incident["flapping"]),
            firing_targets=firing, known_targets=known, breaker=out.breaker(conn, playbook.name),
            last_finished_at=h.last_finished, recent_runs=h.recent, active_runs=h.active,
            manual=p.req.trigger == Trigger.MANUAL,
        )
        decision: Decision = should_run(playbook, facts, now)
        if decision.run:
            state = RunState.AWAITING_APPROVAL if playbook.approval.required else RunState.PENDING
            if decision.breaker is not None and decision.breaker != facts.breaker:  # a half-open probe taken
                save_breaker(conn, playbook.name, decision.breaker, now)
                out.breakers[playbook.name] = decision.breaker
            history[(playbook.name, p.target)] = TargetHistory(h.active + 1, h.recent + 1, h.last_finished)
            decided.append(_Decided(p, state, None, decision.detail))
        else:
            decided.append(_Decided(p, RunState.SKIPPED, decision.reason, decision.detail))
    made = iter(runs.create_many(conn, [_new_run(d, now) for d in decided if d is not None]))
    ids = {id(d): next(made) for d in decided if d is not None}
    results = iter(decided)
    got: list[int | None] = []
    for item in planned:
        if isinstance(item, Event):
            out.events.append(item)
            continue
        d = next(results)
        if d is None:
            got.append(None)
            continue
        got.append(ids[id(d)])
        _record(d, ids[id(d)], now, out)
    return got


def _new_run(d: _Decided, now: datetime) -> tuple[dict[str, Any], list[NewStep], StepState]:
    p, incident, state, reason = d.planned, d.planned.req.incident, d.state, d.reason
    values = {
        "playbook": p.playbook.name, "incident_id": incident["id"], "target": p.target, "state": state,
        "reason": str(reason) if reason else None, "dry_run": reason == SkipReason.DRY_RUN,
        "trigger": str(p.req.trigger), "cycle": incident["reopen_count"], "requested_by": p.req.requested_by,
        "approved_by": None, "context": {**p.context, "params": p.params},
        "idempotency_key": p.key, "created_at": now, "updated_at": now,
        "finished_at": now if state == RunState.SKIPPED else None,
        # While awaiting approval, `deadline` is the approval's (core.approval); the run's start replaces it.
        "deadline": approval.deadline(now, p.playbook.approval.timeout)
        if state == RunState.AWAITING_APPROVAL else None,
    }
    return values, _steps(p.playbook), StepState.SKIPPED if state == RunState.SKIPPED else StepState.PENDING


def _record(d: _Decided, run_id: int, now: datetime, out: Triggered) -> None:
    p, reason = d.planned, d.reason
    name, incident, actor = p.playbook.name, p.req.incident, p.req.requested_by
    data = {"run_id": run_display_id(run_id), "playbook": name, "target": p.target}
    if d.state == RunState.SKIPPED:
        text = f"run of {name} skipped: {reason} ({d.detail})"
        out.events.append(Event(now, "incident", incident["id"], actor, "run_skipped", text,
                                {**data, "reason": str(reason)}))
    else:
        out.events.append(Event(now, "incident", incident["id"], actor, f"run_{d.state}",
                                f"run of {name} ({p.req.trigger})", data))
        if d.state == RunState.PENDING:
            out.created += 1
    out.decisions[(name, str(reason) if reason else str(d.state))] += 1


def on_resolved(conn: Connection, resolving: Sequence[Mapping[str, Any]],
                now: datetime) -> dict[int, tuple[Resolution, list[Event]]]:
    """The resolution of each incident whose alerts cleared (DESIGN §1.6 item 7), by id: `auto_remediated` when a
    remediation step of a run of this opening succeeded; else `self_healed`, and its pending and awaiting runs
    are cancelled (reason `resolved`). A few queries for all of them."""
    done = runs.remediated(conn, {(i["id"], i["reopen_count"]) for i in resolving})
    waiting = runs.waiting_of(conn, [i["id"] for i in resolving if (i["id"], i["reopen_count"]) not in done])
    out: dict[int, tuple[Resolution, list[Event]]] = {}
    for incident in resolving:
        number = incident["id"]
        if (number, incident["reopen_count"]) in done:
            out[number] = (Resolution.AUTO_REMEDIATED, [])
        else:
            out[number] = (Resolution.SELF_HEALED, _cancel(conn, number, waiting.get(number, []), now))
    return out


def _cancel(conn: Connection, incident_id: int, waiting: Sequence[Mapping[str, Any]], now: datetime) -> list[Event]:
    out = []
    for row in waiting:
        runs.change(conn, row["id"], {"state": RunState.CANCELLED, "reason": str(Reason.RESOLVED), "finished_at": now,
                                      "updated_at": now})
        runs.finish_steps(conn, row["id"], StepState.CANCELLED, now)
        out.append(Event(now, "incident", incident_id, SYSTEM, "run_cancelled",
                         f"run of {row['playbook']}: the incident resolved before the run acted",
                         {"run_id": run_display_id(row["id"]), "playbook": row["playbook"],
                          "reason": str(Reason.RESOLVED)}))
    return out
