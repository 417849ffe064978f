"""Problem stage: each incident opened in this batch joins its signature's problem, reopens it, opens one when
it recurred `after` times within `within`, or does nothing (core.problem.recur decides, with the reason).

Runs inside the pipeline's transaction, right after the incidents opened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from itsmd.core.incident import display_id as incident_id
from itsmd.core.problem import (
    UNRESOLVED,
    Decision,
    Latest,
    Recurrence,
    State,
    default_title,
    display_id,
    recur,
    reopen_state,
)
from itsmd.core.rule import RuleSet
from itsmd.storage import problems
from itsmd.storage.events import Event

SYSTEM = "system"


@dataclass
class Recurred:
    events: list[Event] = field(default_factory=list)
    decisions: Counter[Recurrence] = field(default_factory=Counter)
    known_playbooks: list[tuple[int, str]] = field(default_factory=list)  # (incident, playbook of its known error)


def _latest(row: dict[str, Any] | None) -> Latest | None:
    if row is None:
        return None
    return Latest(State(row["state"]), row["known_error"] is not None, row["resolved_at"])


def recur_opened(conn: Connection, rules: RuleSet, opened: Iterable[dict[str, Any]], now: datetime) -> Recurred:
    """Apply the recurrence decision to every incident opened in this batch (in the order they opened)."""
    out = Recurred()
    linked: set[int] = set()
    opened = list(opened)
    # Read once for the batch and kept current as the loop changes them.
    latest_of = problems.latest_many(conn, [i["signature_hash"] for i in opened if i.get("signature_hash")])
    for incident in opened:
        sig = incident.get("signature_hash")
        if incident["id"] in linked or sig is None:
            continue
        rule = rules.by_name(incident["rule"])
        policy = rule.problem if rule is not None else None
        row = latest_of.get(sig)
        latest = _latest(row)
        recent: list[dict[str, Any]] = []
        if policy is not None and (latest is None or latest.state not in UNRESOLVED):
            recent = problems.unlinked_since(conn, incident["signature_hash"], now - timedelta(seconds=policy.within))
        decision = recur(policy.after if policy else None, policy.within if policy else 0.0, latest, len(recent),
                         now)
        out.decisions[decision.action] += 1
        if decision.action == Recurrence.NONE:
            continue
        if decision.action == Recurrence.OPEN:
            ids = [r["id"] for r in recent]
            latest_of[sig] = _open(conn, incident, recent, decision, now, out)
        else:
            assert row is not None
            ids = [incident["id"]]
            if decision.action == Recurrence.REOPEN:
                row = _reopen(conn, row, decision, now, out)
            latest_of[sig] = _attach(conn, row, incident["id"], decision, now, out)
        linked.update(ids)
    return out


def _open(conn: Connection, incident: dict[str, Any], recent: list[dict[str, Any]], decision: Decision,
          now: datetime, out: Recurred) -> dict[str, Any]:
    seen = [r["opened_at"] for r in recent]
    values = {
        "rule": incident["rule"], "signature": incident["signature"], "signature_hash": incident["signature_hash"],
        "title": default_title(incident["signature"]), "state": State.OPEN, "owner": incident.get("owner"),
        "incident_count": len(recent), "first_seen_at": min(seen), "last_seen_at": max(seen), "known_error": None,
        "opened_at": now, "reopen_count": 0, "updated_at": now,
    }
    number = problems.create(conn, values)
    ids = [r["id"] for r in recent]
    problems.link(conn, ids, number)
    out.events.append(Event(now, "problem", number, SYSTEM, "opened", decision.reason,
                            {"signature": incident["signature"], "incidents": [incident_id(i) for i in ids]}))
    for i in ids:
        _linked_events(number, i, None, decision, now, out)
    row = problems.get(conn, number)
    assert row is not None
    return row


def _reopen(conn: Connection, row: dict[str, Any], decision: Decision, now: datetime,
            out: Recurred) -> dict[str, Any]:
    state = reopen_state(row["known_error"] is not None)
    values = {"state": state, "resolved_at": None, "reopen_count": row["reopen_count"] + 1, "updated_at": now}
    problems.change(conn, row["id"], values)
    out.events.append(Event(now, "problem", row["id"], SYSTEM, "reopened", decision.reason,
                            {"from": row["state"], "to": state}))
    return {**row, **values}


def _attach(conn: Connection, row: dict[str, Any], number: int, decision: Decision, now: datetime,
            out: Recurred) -> dict[str, Any]:
    problems.link(conn, [number], row["id"])
    values = {"incident_count": row["incident_count"] + 1, "last_seen_at": now, "updated_at": now}
    problems.change(conn, row["id"], values)
    _linked_events(row["id"], number, row["known_error"], decision, now, out)
    return {**row, **values}


def _linked_events(problem: int, incident: int, known: dict[str, Any] | None, decision: Decision, now: datetime,
                   out: Recurred) -> None:
    pid = display_id(problem)
    out.events.append(Event(now, "problem", problem, SYSTEM, "incident_linked", decision.reason,
                            {"incident_id": incident_id(incident), "decision": str(decision.action)}))
    if known is not None:
        if known.get("playbook"):
            out.known_playbooks.append((incident, known["playbook"]))
        out.events.append(Event(now, "incident", incident, SYSTEM, "known_error_linked",
                                f"{pid} has a known error; workaround: {known['workaround']}",
                                {"problem_id": pid, "playbook": known.get("playbook")}))
    else:
        out.events.append(Event(now, "incident", incident, SYSTEM, "problem_linked", decision.reason,
                                {"problem_id": pid, "decision": str(decision.action)}))
