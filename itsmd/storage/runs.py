"""Playbook runs in the database: creation under an idempotency key, leases, step progress, listings, and the
counts the guards read."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, or_, select, update

from itsmd.core.run import ACTIVE, REMEDIATION_KINDS, WAITING, RunState, StepState
from itsmd.storage.tables import run_steps, runs

Row = dict[str, Any]
CHUNK = 500  # values in one IN list


@dataclass(frozen=True, slots=True)
class NewStep:
    name: str
    kind: str
    idempotent: bool
    phase: str


def existing_keys(conn: Connection, keys: Collection[str]) -> set[str]:
    """Which of these idempotency keys a stored run already has."""
    found: set[str] = set()
    wanted = sorted(set(keys))
    for i in range(0, len(wanted), CHUNK):
        q = select(runs.c.idempotency_key).where(runs.c.idempotency_key.in_(wanted[i:i + CHUNK]))
        found.update(conn.execute(q).scalars())
    return found


def create(conn: Connection, values: Row, steps: Sequence[NewStep], step_state: StepState) -> int:
    """Insert a run and its steps (all `step_state`); the caller checked `existing_keys` in this transaction (the
    one writer), the UNIQUE key stops a second replica."""
    return create_many(conn, [(values, steps, step_state)])[0]


def create_many(conn: Connection, new: Sequence[tuple[Row, Sequence[NewStep], StepState]]) -> list[int]:
    """Insert runs (values with the same keys) and their steps: one statement for the runs, one for the steps;
    returns the run ids in the order given."""
    if not new:
        return []
    stmt = insert(runs).returning(runs.c.id, sort_by_parameter_order=True)  # values as parameters: the
    # statement's compiled form is cached
    ids = [int(r.id) for r in conn.execute(stmt, [values for values, _, _ in new])]
    step_rows = [
        {"run_id": run_id, "seq": i, "phase": s.phase, "name": s.name, "kind": s.kind,
         "idempotent": s.idempotent, "state": step_state, "attempt": 0}
        for run_id, (_, steps, step_state) in zip(ids, new, strict=True) for i, s in enumerate(steps)
    ]
    if step_rows:
        conn.execute(insert(run_steps), step_rows)
    return ids


def get(conn: Connection, run_id: int) -> Row | None:
    r = conn.execute(select(runs).where(runs.c.id == run_id)).first()
    return dict(r._mapping) if r else None


def steps_of(conn: Connection, run_ids: Collection[int]) -> dict[int, list[Row]]:
    out: dict[int, list[Row]] = {i: [] for i in run_ids}
    if run_ids:
        q = select(run_steps).where(run_steps.c.run_id.in_(list(run_ids))).order_by(run_steps.c.run_id,
                                                                                     run_steps.c.seq)
        for r in conn.execute(q):
            out[r.run_id].append(dict(r._mapping))
    return out


def change(conn: Connection, run_id: int, values: Row) -> None:
    conn.execute(update(runs).where(runs.c.id == run_id).values(values))


def change_step(conn: Connection, run_id: int, seq: int, values: Row) -> None:
    conn.execute(update(run_steps).where(run_steps.c.run_id == run_id, run_steps.c.seq == seq).values(values))


def finish_steps(conn: Connection, run_id: int, state: StepState, now: datetime) -> None:
    """Every step not finished yet ends `state` (a run that ends early: cancelled, timed out)."""
    conn.execute(update(run_steps).where(
        run_steps.c.run_id == run_id, run_steps.c.state.in_([StepState.PENDING, StepState.RUNNING]),
    ).values(state=state, finished_at=now))


@dataclass(frozen=True, slots=True)
class RunFilter:
    incident_id: int | None = None
    playbook: str | None = None
    state: str | None = None


def page(conn: Connection, f: RunFilter, limit: int, before_id: int | None) -> list[Row]:
    q = select(runs).order_by(runs.c.id.desc()).limit(limit)
    if before_id is not None:
        q = q.where(runs.c.id < before_id)
    if f.incident_id is not None:
        q = q.where(runs.c.incident_id == f.incident_id)
    if f.playbook is not None:
        q = q.where(runs.c.playbook == f.playbook)
    if f.state is not None:
        q = q.where(runs.c.state == f.state)
    return [dict(r._mapping) for r in conn.execute(q)]


def of_incident(conn: Connection, incident_id: int, limit: int = 1000) -> list[Row]:
    q = select(runs).where(runs.c.incident_id == incident_id).order_by(runs.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(q)]


# --- the runner ---------------------------------------------------------------------------------------------

def claim(conn: Connection, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[Row]:
    """Take up to `limit` runs to execute, oldest first: pending ones, and running ones whose lease expired.
    Rows are returned as they were before the claim.
    On PostgreSQL the rows are locked with SKIP LOCKED, so replicas never take the same run."""
    if limit <= 0:
        return []
    orphaned = and_(runs.c.state == RunState.RUNNING, runs.c.lease_until < now)
    q = select(runs).where(or_(runs.c.state == RunState.PENDING, orphaned)).order_by(runs.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    rows = [dict(r._mapping) for r in conn.execute(q)]
    if rows:
        conn.execute(update(runs).where(runs.c.id.in_([r["id"] for r in rows])).values(
            state=RunState.RUNNING, lease_owner=owner, lease_until=lease_until, updated_at=now))
    return rows


def renew(conn: Connection, owner: str, run_ids: Collection[int], lease_until: datetime) -> None:
    if run_ids:
        conn.execute(update(runs).where(runs.c.id.in_(list(run_ids)), runs.c.lease_owner == owner,
                                        runs.c.state == RunState.RUNNING).values(lease_until=lease_until))


def state_of(conn: Connection, run_id: int) -> str | None:
    return conn.execute(select(runs.c.state).where(runs.c.id == run_id)).scalar()


def waiting_of(conn: Connection, incident_ids: Collection[int]) -> dict[int, list[Row]]:
    """The pending and awaiting runs of these incidents, by incident (none: left out)."""
    out: dict[int, list[Row]] = {}
    wanted = sorted(set(incident_ids))
    for i in range(0, len(wanted), CHUNK):
        q = (select(runs).where(runs.c.incident_id.in_(wanted[i:i + CHUNK]), runs.c.state.in_(list(WAITING)))
             .order_by(runs.c.id))
        for r in conn.execute(q):
            out.setdefault(r.incident_id, []).append(dict(r._mapping))
    return out


def approvals_due(conn: Connection, now: datetime, limit: int) -> list[Row]:
    """Runs awaiting approval whose deadline (stored at creation) passed, oldest first."""
    q = (select(runs).where(runs.c.state == RunState.AWAITING_APPROVAL, runs.c.deadline <= now)
         .order_by(runs.c.id).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]


def change_if(conn: Connection, run_id: int, state: str, values: Row) -> bool:
    """Change a run only while it is in `state`; whether it was."""
    done = conn.execute(update(runs).where(runs.c.id == run_id, runs.c.state == state).values(values))
    return bool(done.rowcount)


def remediated(conn: Connection, cycles: Collection[tuple[int, int]]) -> set[tuple[int, int]]:
    """Those of these (incident id, cycle) where a remediation step (exec, http) of a run of the incident since it
    last (re)opened (`cycle`: its reopen_count) succeeded."""
    wanted, found = set(cycles), set()
    ids = sorted({i for i, _ in wanted})
    for i in range(0, len(ids), CHUNK):
        q = (select(runs.c.incident_id, runs.c.cycle).distinct().join(run_steps, runs.c.id == run_steps.c.run_id)
             .where(runs.c.incident_id.in_(ids[i:i + CHUNK]), runs.c.dry_run.is_(False),
                    run_steps.c.kind.in_(sorted(REMEDIATION_KINDS)), run_steps.c.state == StepState.SUCCEEDED))
        found |= {(r.incident_id, r.cycle) for r in conn.execute(q)}
    return found & wanted


# --- what the guards count ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TargetHistory:
    """What the pacing guards read of one playbook's runs on one target."""

    active: int  # pending, awaiting approval or running
    recent: int  # created since `since`, not stopped by a guard (rate limit)
    last_finished: datetime | None  # when the last executed run (not skipped, not cancelled before it ran) ended


def target_history(conn: Connection, playbook: str, target: str, since: datetime) -> TargetHistory:
    """The guards' counts of this playbook and target in one query."""
    return target_histories(conn, playbook, [target], since)[target]


def target_histories(conn: Connection, playbook: str, targets: Collection[str],
                     since: datetime) -> dict[str, TargetHistory]:
    """The guards' counts of this playbook on each of these targets (one query per CHUNK targets); a target
    without runs has zero counts."""
    def count(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)
    wanted = sorted(set(targets))
    out = {t: TargetHistory(0, 0, None) for t in wanted}
    for i in range(0, len(wanted), CHUNK):
        q = (select(runs.c.target, count(runs.c.state.in_(list(ACTIVE))),
                    count(and_(runs.c.created_at >= since, runs.c.state != RunState.SKIPPED)),
                    func.max(case((runs.c.started_at.is_not(None), runs.c.finished_at), else_=None)))
             .where(runs.c.playbook == playbook, runs.c.target.in_(wanted[i:i + CHUNK]))
             .group_by(runs.c.target))
        for target, active, recent, last in conn.execute(q):
            if isinstance(last, str):  # SQLite returns an expression over a DateTime column as text
                last = datetime.fromisoformat(last)
            if last is not None and last.tzinfo is None:
                last = last.replace(tzinfo=UTC)
            out[target] = TargetHistory(int(active), int(recent), last)
    return out


def change_step_if(conn: Connection, run_id: int, seq: int, state: str, values: Row) -> None:
    """Change a step only while it is in `state`."""
    conn.execute(update(run_steps).where(run_steps.c.run_id == run_id, run_steps.c.seq == seq,
                                         run_steps.c.state == state).values(values))


def expire_leases(conn: Connection, now: datetime) -> int:
    """Make every `running` run claimable now (at start on SQLite: the daemon lock proves their runner dead)."""
    done = conn.execute(update(runs).where(runs.c.state == RunState.RUNNING).values(lease_until=now))
    return int(done.rowcount or 0)
