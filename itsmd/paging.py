"""The paging tick: decide about incidents whose paging deadline passed (core.paging), write their pages to the
outbox in the same transaction, and tell the humans paged once an incident is acknowledged or resolved.

Level-triggered: the tick compares stored facts with the paging state, so whatever resolved or acknowledged an
incident (a person, a quiet period, a merge, a run) is noticed without a hook at each place. Opening and reopening
set `page_at` (the deadline), and so must anything that adds a cause (a run that ended: `pages.review_soon`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select

from itsmd.config.model import Notifier
from itsmd.core.paging import (
    RUN_IN_PROGRESS_STATES,
    Budget,
    Cause,
    Decision,
    Policy,
    Situation,
    budget,
    decide,
    describe,
    run_cause,
)
from itsmd.core.rule import RuleSet
from itsmd.storage import events, incidents, pages
from itsmd.storage.events import Event
from itsmd.storage.tables import events as events_table
from itsmd.storage.tables import metadata

log = logging.getLogger("itsmd.paging")
SYSTEM = "system"


@dataclass(frozen=True)
class Settings:
    """What the tick needs of the running configuration."""

    rules: RuleSet
    notifiers: Sequence[Notifier]
    max_pages_per_hour: int
    recheck: float = 5.0  # seconds between looks while a run is in progress
    summary_delay: float = 60.0  # the hourly summary waits this long to count the rest of a storm

    def targets(self, names: Sequence[str]) -> list[str]:
        """`escalate.to`, else the notifiers marked `default`; names a reload removed are left out."""
        known = {n.name for n in self.notifiers}
        if names:
            return [n for n in names if n in known]
        return [n.name for n in self.notifiers if n.default]

    def of_type(self, names: Sequence[str], kind: str) -> list[str]:
        types = {n.name: n.type for n in self.notifiers}
        return [n for n in names if types.get(n) == kind]


@dataclass
class Review:
    """What one tick did (counts by outcome, for the log and the metrics)."""

    paged: int = 0
    suppressed: int = 0
    timeline_only: int = 0
    closed_out: int = 0
    notes: list[Event] = field(default_factory=list)
    due: int = 0  # incidents decided about
    # The hourly budget as read once per review and kept up to date by its own pages (a storm reviews many
    # incidents in one transaction: two queries per page decision would cost more than the decision).
    paged_last_hour: int | None = None
    summary_last_hour: bool | None = None

    def add(self, other: Review) -> Review:
        """The counts of two reviews (one tick done in several transactions)."""
        return Review(self.paged + other.paged, self.suppressed + other.suppressed,
                      self.timeline_only + other.timeline_only, self.closed_out + other.closed_out, [],
                      self.due + other.due)


def review(conn: Connection, now: datetime, settings: Settings, limit: int = 200) -> Review:
    """One paging tick in one transaction: close out incidents that ended, then decide about the due ones."""
    out = Review()
    _close_out(conn, now, settings, out, limit)
    due = pages.due_incidents(conn, now, limit)
    out.due = len(due)
    state_of = pages.states(conn, [r["id"] for r in due])
    facts = run_facts_of(conn, [r["id"] for r in due])
    writes = _Writes()
    for incident in due:
        _decide_one(conn, now, settings, incident, state_of.get(incident["id"]), facts, out, writes)
    writes.flush(conn)
    events.append(conn, out.notes)
    return out


@dataclass
class _Writes:
    """A review's writes, made with a few statements for all its incidents (one statement per incident and kind
    held the writer ~1 ms per incident in a storm, and ingest commits wait for the writer)."""

    pages: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[int, dict[str, Any], bool]] = field(default_factory=list)  # (incident, state, stored)
    page_at: list[tuple[int, datetime | None]] = field(default_factory=list)

    def flush(self, conn: Connection) -> None:
        pages.enqueue(conn, self.pages)
        pages.save_states(conn, self.states)
        incidents.change_many(conn, [(i, {"page_at": at}) for i, at in self.page_at])


def _policy(settings: Settings, rule_name: str) -> tuple[Policy, tuple[str, ...]]:
    rule = settings.rules.by_name(rule_name)
    if rule is None:  # removed by a reload: page at once, to the default notifiers
        return Policy(), ()
    repeat = rule.escalate.repeat if rule.escalate else None
    to = rule.escalate.to if rule.escalate else ()
    return Policy(hold=rule.hold, after=rule.escalate_after, repeat=repeat), to


def _reopened_at(conn: Connection, incident_id: int) -> datetime | None:
    q = select(func.max(events_table.c.at)).where(
        events_table.c.entity == "incident", events_table.c.entity_id == incident_id,
        events_table.c.action.in_(["reopened", "reopen"]))
    return conn.execute(q).scalar()


RunFacts = Mapping[tuple[int, int], Sequence[tuple[str, str | None]]]  # (incident, cycle): (state, reason)


def run_facts_of(conn: Connection, incident_ids: Sequence[int]) -> RunFacts:
    """The distinct (state, reason) of the runs of these incidents by (incident, cycle), in one query (the reason
    only of expired runs). Reads the `runs` table when the schema has one; without it there are no runs."""
    runs = metadata.tables.get("runs")
    if runs is None or not incident_ids:
        return {}
    reason = case((runs.c.state == "expired", runs.c.reason), else_=None)
    q = (select(runs.c.incident_id, runs.c.cycle, runs.c.state, reason)
         .where(runs.c.incident_id.in_(list(incident_ids))).distinct())
    out: dict[tuple[int, int], list[tuple[str, str | None]]] = {}
    for incident_id, cycle, state, why in conn.execute(q):
        out.setdefault((int(incident_id), int(cycle)), []).append((state, why))
    return out


def run_facts(incident_id: int, cycle: int, known: RunFacts) -> tuple[bool, frozenset[Cause]]:
    """Whether a run of the incident's cycle is in progress, and the causes of those that ended badly (from
    `known`, as run_facts_of read them)."""
    facts = known.get((incident_id, cycle), ())
    states = {state for state, _ in facts}
    causes = {c for c in (run_cause(s) for s in states - {"expired"}) if c is not None}
    # whether an expired run pages depends on the playbook's on_timeout, kept in the reason
    causes.update(c for c in (run_cause("expired", r) for s, r in facts if s == "expired") if c is not None)
    return bool(states & RUN_IN_PROGRESS_STATES), frozenset(causes)


def _fresh_state(conn: Connection, incident: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    cycle = incident["reopen_count"]
    since = incident["opened_at"] if cycle == 0 else (_reopened_at(conn, incident["id"]) or now)
    return {"cycle": cycle, "since": since, "causes": [], "pages": 0, "last_paged_at": None, "notifiers": [],
            "outstanding": None, "updated_at": now}


def _decide_one(conn: Connection, now: datetime, settings: Settings, incident: Mapping[str, Any],
                stored: dict[str, Any] | None, facts: RunFacts, out: Review, writes: _Writes) -> None:
    incident_id = incident["id"]
    fresh = stored is None or stored["cycle"] != incident["reopen_count"]
    state = _fresh_state(conn, incident, now) if fresh else dict(stored or {})
    policy, to = _policy(settings, incident["rule"])
    in_progress, run_causes = run_facts(incident_id, state["cycle"], facts)
    situation = Situation(
        state=incident["state"], since=state["since"], run_in_progress=in_progress, run_causes=run_causes,
        paged=frozenset(Cause(c) for c in state["causes"]), pages=state["pages"],
        last_paged_at=state["last_paged_at"])
    decision = decide(policy, situation, now, settings.recheck)
    if decision.page:
        _page(conn, now, settings, incident, state, policy, to, decision, out, writes.pages)
    state["updated_at"] = now
    writes.states.append((incident_id, state, stored is not None))
    writes.page_at.append((incident_id, decision.next_at))


def _page(conn: Connection, now: datetime, settings: Settings, incident: Mapping[str, Any], state: dict[str, Any],
          policy: Policy, to: tuple[str, ...], decision: Decision, out: Review, queued: list[dict[str, Any]],
          ) -> None:
    """Record one page decision: to the notifiers, or held back by the hourly budget, or the timeline only."""
    incident_id, cycle, sequence = incident["id"], state["cycle"], state["pages"]
    causes = [str(c) for c in decision.causes]
    reason = describe(decision.causes, policy, sequence)
    cause = causes[0] if len(causes) == 1 else "+".join(causes)
    state.update(causes=sorted(set(state["causes"]) | {c for c in causes if c != Cause.REPEAT}),
                 pages=sequence + 1, last_paged_at=now)
    targets = settings.targets(to)
    data = {"causes": causes, "notifiers": targets, "sequence": sequence, "decision": str(decision.reason)}
    if not targets:
        out.timeline_only += 1
        out.notes.append(Event(now, "incident", incident_id, SYSTEM, "paged",
                               f"{reason} (no notifiers: timeline only)", data))
        return
    if out.paged_last_hour is None or out.summary_last_hour is None:
        out.paged_last_hour = pages.decisions_since(conn, pages.hour_before(now))
        out.summary_last_hour = pages.summary_since(conn, pages.hour_before(now)) is not None
    verdict = budget(out.paged_last_hour, settings.max_pages_per_hour, out.summary_last_hour)
    if verdict is Budget.SEND:
        out.paged_last_hour += 1
        rows = [pages.new_row(pages.page_key(incident_id, cycle, cause, sequence, n), incident_id, cycle,
                              "escalate", cause, reason, n, now) for n in targets]
        queued.extend(rows)
        state.update(notifiers=sorted(set(state["notifiers"]) | set(targets)), outstanding="paged")
        out.paged += 1
        out.notes.append(Event(now, "incident", incident_id, SYSTEM, "paged", reason, data))
        return
    out.suppressed += 1
    key = pages.page_key(incident_id, cycle, cause, sequence, None)
    queued.append(pages.new_row(key, incident_id, cycle, "escalate", cause, reason, None, now,
                                state=pages.SUPPRESSED))
    limit = settings.max_pages_per_hour
    out.notes.append(Event(now, "incident", incident_id, SYSTEM, "page_suppressed",
                           f"{reason} (held back: max_pages_per_hour {limit} reached; told in one summary page)",
                           {**data, "budget": str(verdict)}))
    if verdict is Budget.SUMMARISE:
        summary_to = sorted(set(targets) | set(settings.targets(())))
        at = now + timedelta(seconds=settings.summary_delay)
        stamp = now.strftime("%Y%m%dT%H%M%S.%f")
        text = f"max_pages_per_hour ({limit}) reached; further pages in the next hour are held back"
        rows = [{**pages.new_row(f"summary/{stamp}/{n}", None, 0, pages.SUMMARY, "budget", text, n, now),
                 "next_attempt_at": at} for n in summary_to]
        queued.extend(rows)
        out.summary_last_hour = True


def _close_out(conn: Connection, now: datetime, settings: Settings, out: Review, limit: int) -> None:
    """Tell the notifiers paged in an incident's cycle of its resolution (a reopening ends the cycle too), and
    PagerDuty of its acknowledgement."""
    for state, incident in pages.outstanding(conn, limit):
        incident_id, cycle = state["incident_id"], state["cycle"]
        ended = incident["reopen_count"] != cycle or incident["state"] in ("resolved", "closed")
        if ended:
            reason = f"incident {incident['state']}" if incident["reopen_count"] == cycle else "incident resolved"
            targets = [n for n in state["notifiers"] if n in {x.name for x in settings.notifiers}]
            pages.enqueue(conn, [pages.new_row(pages.page_key(incident_id, cycle, "resolve", 0, n), incident_id,
                                               cycle, "resolve", "resolve", reason, n, now) for n in targets])
            pages.save_state(conn, incident_id, {"outstanding": None, "updated_at": now}, exists_=True)
            out.notes.append(Event(now, "incident", incident_id, SYSTEM, "resolution_notified",
                                   f"{reason}; told {', '.join(targets) or 'nobody'}", {"notifiers": targets}))
            out.closed_out += 1
        elif incident["state"] == "acknowledged" and state["outstanding"] == "paged":
            targets = settings.of_type(state["notifiers"], "pagerduty")
            pages.enqueue(conn, [pages.new_row(pages.page_key(incident_id, cycle, "acknowledge", 0, n), incident_id,
                                               cycle, "acknowledge", "acknowledge", "incident acknowledged", n, now)
                                 for n in targets])
            pages.save_state(conn, incident_id, {"outstanding": "acknowledged", "updated_at": now}, exists_=True)
            if targets:
                out.notes.append(Event(now, "incident", incident_id, SYSTEM, "acknowledgement_notified",
                                       f"told {', '.join(targets)}", {"notifiers": targets}))

