"""Report queries: every figure is aggregated in the database, per group, in SQL that SQLite and PostgreSQL both run.

Percentiles are ranked with window functions (ROW_NUMBER and COUNT over the group's partition), never by loading
the durations. MTBF is computed per group and service in SQL (the union of the incident intervals, one window);
only those per-service figures (one row per group and service) reach Python for their mean/median/p90.

Speed (docs/benchmarks.md, "Reports"): no GROUP BY or PARTITION BY on a constant (`_grouped`), table scans of the
incidents (`unindexed`), MTBF from the covering index incidents_report_service.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Float,
    String,
    and_,
    case,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from itsmd.core.report import NO_GROUP, Dimension, Period, Stat, Week
from itsmd.storage.tables import alerts, incidents, problems, runs


class epoch(FunctionElement[float]):
    """Seconds since 1970 of a UtcDateTime column, as a float, on both engines."""

    type = Float()
    inherit_cache = True


# unixepoch() (SQLite 3.38+) is about twice as fast as strftime('%s') and gives the same whole seconds.
_WHOLE_SECONDS = "unixepoch({})" if sqlite3.sqlite_version_info >= (3, 38) else "CAST(strftime('%s', {}) AS INTEGER)"


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds from the date functions (which would drop the
    # microseconds), the fraction from the text.
    x = compiler.process(next(iter(element.clauses)), **kw)
    return f"({_WHOLE_SECONDS.format(x)} + CAST(substr({x}, 20) AS REAL))"


@compiles(epoch, "postgresql")
def _epoch_postgresql(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    return f"CAST(EXTRACT(EPOCH FROM {x}) AS DOUBLE PRECISION)"


class alertname(FunctionElement[str]):
    """The `alertname` label of a labels column, JSON-encoded (null when absent). On PostgreSQL by pattern: casting
    the text to json fails on a label holding an escaped NUL, and label values are untrusted."""

    type = String()
    inherit_cache = True


@compiles(alertname, "sqlite")
def _alertname_sqlite(element: alertname, compiler: SQLCompiler, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    return f"json_quote(json_extract({x}, '$.\"alertname\"'))"


@compiles(alertname, "postgresql")
def _alertname_postgresql(element: alertname, compiler: SQLCompiler, **kw: Any) -> str:
    x = compiler.process(next(iter(element.clauses)), **kw)
    # The store writes compact JSON with sorted keys: a key is preceded by { or , and followed by ":"
    return f"substring({x} from '[{{,]\"alertname\":(\"(?:[^\"\\\\]|\\\\.)*\")')"


@dataclass(frozen=True, slots=True)
class Scope:
    """One grouping of one report: the period, the dimension (None: everything in one group) and its weeks."""

    period: Period
    by: Dimension | None
    weeks: Sequence[Week]


@dataclass(frozen=True, slots=True)
class Counts:
    incidents: int = 0
    resolved: int = 0
    unrestored: int = 0  # resolved by hand while the alerts still fired: no restore time
    self_healed: int = 0
    eligible: int = 0  # resolved, and a playbook could have run (the rule's or the known error's)
    auto_remediated: int = 0  # of those, auto_remediated without a human acknowledging or assigning
    sla: Mapping[str, tuple[int, int]] | None = None  # priority -> (ack breaches, restore breaches)


@dataclass(frozen=True, slots=True)
class AlertCounts:
    deliveries: int = 0
    episodes: int = 0


class unindexed(FunctionElement[Any]):
    """A column the SQLite planner must not look up through an index (SQLite's unary `+`); plain on PostgreSQL.

    A report reads (nearly) every incident of its period: a table scan is the fastest way there. With statistics
    (ANALYZE) SQLite would otherwise skip-scan incidents_report_service for the period's detected_at range and
    fetch each row by its id, twice as slow as the scan (0.23 s against 0.10 s for `counts`, 100,000 incidents)."""

    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(unindexed, "sqlite")
def _unindexed_sqlite(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(next(iter(element.clauses)), **kw)


@compiles(unindexed, "postgresql")
def _unindexed_postgresql(element: unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(next(iter(element.clauses)), **kw)


def _in_period(p: Period) -> ColumnElement[bool]:
    i = incidents.c
    merged = and_(i.state == "closed", i.resolved_at.is_(None))  # closed by a merge: not an incident of its own
    detected = unindexed(i.detected_at)
    return and_(detected >= p.start, detected < p.end, not_(merged))


def _week_of(when: Any, weeks: Sequence[Week]) -> ColumnElement[Any]:
    """The label of the week holding `when` (a CASE ladder over the week boundaries, bound as parameters)."""
    if not weeks:
        return literal(NO_GROUP)
    whens = [(when < w.period.end, literal(w.label)) for w in weeks[:-1]]
    return case(*whens, else_=literal(weeks[-1].label)) if whens else literal(weeks[-1].label)


def _week_end(when: Any, weeks: Sequence[Week]) -> ColumnElement[Any]:
    ends = [w.period.end.timestamp() for w in weeks]
    whens = [(when < w.period.end, literal(e, Float())) for w, e in zip(weeks[:-1], ends, strict=False)]
    last = literal(ends[-1] if ends else 0.0, Float())
    return case(*whens, else_=last) if whens else last


def group_of(scope: Scope) -> ColumnElement[Any]:
    """The incident's group under the scope's dimension."""
    i = incidents.c
    if scope.by is None:
        return literal("")
    if scope.by is Dimension.WEEK:
        return _week_of(i.detected_at, scope.weeks)
    col = {Dimension.SERVICE: i.service, Dimension.OWNER: i.owner, Dimension.PRIORITY: i.priority}[scope.by]
    return func.coalesce(col, literal(NO_GROUP))


def _grouped(q: Any, *keys: Any) -> Any:
    """`q` grouped by those keys that are not constants. A constant key (no `by`: every row in the group "") is
    left out: SQLite sorts the rows for a GROUP BY or PARTITION BY on a bound parameter as for any other key (a
    temporary B-tree over every row, e.g. 0.2 s of 0.35 s for the deliveries over 1,000,000 alerts)."""
    keys = tuple(k for k in keys if k is not None)
    return q.group_by(*keys) if keys else q


def _period_end(scope: Scope) -> ColumnElement[Any]:
    if scope.by is Dimension.WEEK:
        return _week_end(incidents.c.detected_at, scope.weeks)
    return literal(scope.period.end.timestamp(), Float())


class least(FunctionElement[float]):
    """The smaller of two non-null numbers (SQLite's scalar min, PostgreSQL's LEAST): each argument once."""

    type = Float()
    inherit_cache = True


@compiles(least, "sqlite")
def _least_sqlite(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"min({compiler.process(element.clauses, **kw)})"


@compiles(least, "postgresql")
def _least_postgresql(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"LEAST({compiler.process(element.clauses, **kw)})"


def _known_error_playbook_ids() -> Any:
    # known_error is {root_cause, workaround, playbook} as compact sorted JSON; a playbook is a non-null string.
    return select(problems.c.id).where(problems.c.known_error.is_not(None),
                                       problems.c.known_error.like('%"playbook":"%'))


def counts(conn: Connection, scope: Scope, sla: Mapping[str, tuple[float | None, float | None]],
           playbook_rules: frozenset[str], now: datetime) -> dict[str, Counts]:
    i = incidents.c
    now_s = literal(now.timestamp(), Float())
    opened, detected = epoch(i.opened_at), epoch(i.detected_at)
    # Ack: measured when acknowledged, or still unresolved and unacknowledged (until now); an incident resolved
    # without anyone acknowledging it needed no one and breaches nothing.
    ack_end = func.coalesce(epoch(i.acknowledged_at), case((i.resolved_at.is_(None), now_s)))
    restore_end = func.coalesce(epoch(i.restored_at), epoch(i.resolved_at), now_s)
    resolved = i.resolved_at.is_not(None)
    eligible = and_(resolved, or_(i.rule.in_(sorted(playbook_rules)) if playbook_rules else literal(False),
                                  i.problem_id.in_(_known_error_playbook_ids())))
    human = or_(i.acknowledged_at.is_not(None), i.assignee.is_not(None))

    def n(cond: ColumnElement[bool]) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    cols: list[Any] = [
        func.count().label("incidents"), n(resolved), n(and_(resolved, i.restored_at.is_(None))),
        n(and_(resolved, i.resolution == "self_healed")), n(eligible),
        n(and_(eligible, i.resolution == "auto_remediated", not_(human))),
    ]
    priorities = sorted(sla)
    for p in priorities:
        ack, restore = sla[p]
        cols.append(n(and_(i.priority == p, ack_end - opened > ack)) if ack is not None else literal(0))
        cols.append(n(and_(i.priority == p, restore_end - detected > restore)) if restore is not None else literal(0))
    grp = group_of(scope).label("grp")
    q = _grouped(select(grp, *cols).where(_in_period(scope.period)), grp if scope.by is not None else None)
    rows = conn.execute(q).all()
    out: dict[str, Counts] = {}
    for r in rows:
        v = [int(x) for x in r[1:]]
        breaches = {p: (v[6 + 2 * k], v[7 + 2 * k]) for k, p in enumerate(priorities)}
        out[r[0]] = Counts(v[0], v[1], v[2], v[3], v[4], v[5], sla=breaches)
    return out


def durations(conn: Connection, scope: Scope, metric: str) -> dict[str, Stat]:
    """MTTA (`acknowledged_at - opened_at`) or MTTR (`restored_at - detected_at`): mean, median, nearest-rank p90
    and n per group, ranked in SQL."""
    return {g: stat for (_, g), stat in durations_within(conn, scope, None, metric).items()}


def durations_within(conn: Connection, scope: Scope, outer: Scope | None, metric: str) -> dict[tuple[str, str], Stat]:
    """The same per (group of `outer`, group of `scope`): e.g. per service and week, in one ranked pass."""
    i = incidents.c
    start, end = (i.opened_at, i.acknowledged_at) if metric == "mtta" else (i.detected_at, i.restored_at)
    grp = group_of(scope).label("grp")
    top = (group_of(outer) if outer is not None else literal("")).label("top")
    d = (epoch(end) - epoch(start)).label("d")
    base = select(top, grp, d).where(_in_period(scope.period), end.is_not(None)).subquery("base")
    b = base.c
    keys = [k for k, varies in ((b.top, outer is not None and outer.by is not None), (b.grp, scope.by is not None))
            if varies]  # constant keys are left out (see _grouped)
    ranked = select(
        b.top, b.grp, b.d,
        func.row_number().over(partition_by=keys or None, order_by=b.d).label("rn"),
        func.count().over(partition_by=keys or None).label("n"),
    ).subquery("ranked")
    r = ranked.c
    middle = or_(r.rn == (r.n + 1) // 2, r.rn == (r.n + 2) // 2)  # integer division on both engines
    q = _grouped(select(
        func.max(r.top), func.max(r.grp), func.max(r.n), func.avg(r.d), func.avg(case((middle, r.d))),
        func.max(case((r.rn == (r.n * 9 + 9) // 10, r.d))),  # nearest rank: ceil(0.9 n)
    ), *[r[k.name] for k in keys])
    return {(t, g): Stat(mean, median, p90, int(n))
            for t, g, n, mean, median, p90 in conn.execute(q).all() if n is not None}


def mtbf_rows(conn: Connection, scope: Scope) -> list[tuple[str, str, float, int, float]]:
    """Per group and service: (group, service, downtime = union of [detected, restored] cut to the group's
    period, incidents, the group's period end). Open incidents count until the period's end."""
    i = incidents.c
    grp = group_of(scope).label("grp")
    pend = _period_end(scope)
    s = epoch(i.detected_at)
    stop = func.coalesce(epoch(i.restored_at), epoch(i.resolved_at), pend)
    base = select(grp, i.service.label("service"), i.detected_at.label("at"), s.label("s"),
                  least(stop, pend).label("e"), pend.label("pend")).where(
        _in_period(scope.period), i.service.is_not(None)).subquery("base")
    b = base.c
    # Sorted by start, an interval adds to the union only what reaches past every earlier one's end:
    # max(0, e - max(s, the earlier ends' maximum)). One window, no islands; named once (SQL repeats what it uses
    # twice). Intervals with the same start may come in any order (the union is the same), so the window sorts by
    # the stored detected_at, which the index incidents_report_service hands over already sorted per service
    # (no sort on SQLite) when there is no `by`.
    parts = (b.grp, b.service) if scope.by is not None else (b.service,)  # constant keys left out (_grouped)
    before = func.max(b.e).over(partition_by=parts, order_by=b.at, rows=(None, -1))
    windowed = select(b.grp, b.service, b.s, b.e, b.pend, before.label("before")).subquery("windowed")
    w = windowed.c
    covered = case((w.before > w.s, w.before), else_=w.s)  # null `before` (the first interval): s
    added = select(w.grp, w.service, w.e, w.pend, covered.label("c")).subquery("added")
    x = added.c
    down = func.sum(case((x.e > x.c, x.e - x.c), else_=0.0))
    q = _grouped(select(func.max(x.grp), x.service, down, func.count(), func.max(x.pend)),
                 x.grp if scope.by is not None else None, x.service)
    return [(g, svc, float(dt), int(k), float(pe)) for g, svc, dt, k, pe in conn.execute(q).all()]


def alert_counts(conn: Connection, scope: Scope) -> dict[str, AlertCounts]:
    """Deliveries (occurrences, duplicates included) and episodes, by the alerts' `startsAt` in the period; grouped
    by their incident's service, owner or priority (no incident: NO_GROUP), or by the week they fired in."""
    a, i = alerts.c, incidents.c
    where = and_(a.starts_at >= scope.period.start, a.starts_at < scope.period.end)
    deliveries, episodes = func.coalesce(func.sum(a.occurrences), 0), func.count()
    if scope.by is None or scope.by is Dimension.WEEK:
        grp = literal("") if scope.by is None else _week_of(a.starts_at, scope.weeks)
        g = grp.label("grp")
        q = _grouped(select(g, deliveries, episodes).where(where), g if scope.by is not None else None)
    else:
        col = {Dimension.SERVICE: i.service, Dimension.OWNER: i.owner, Dimension.PRIORITY: i.priority}[scope.by]
        g = func.coalesce(col, literal(NO_GROUP)).label("grp")
        if conn.dialect.name == "sqlite":
            # Per incident first, then its group: SQLite looks the incident up once per incident rather than once
            # per alert (0.54 s instead of 1.25 s over 1,000,000 alerts; `unindexed` makes it sort the scanned
            # rows rather than walk alerts_incident and fetch every alert by its id). PostgreSQL hash-joins the
            # alerts to their incidents faster than it aggregates them per incident (0.16 s against 0.34 s).
            per = (select(a.incident_id, deliveries.label("d"), episodes.label("n")).where(where)
                   .group_by(unindexed(a.incident_id)).subquery())
            q = (select(g, func.sum(per.c.d), func.sum(per.c.n))
                 .select_from(per.outerjoin(incidents, i.id == per.c.incident_id)).group_by(g))
        else:
            q = (select(g, deliveries, episodes).select_from(alerts.outerjoin(incidents, i.id == a.incident_id))
                 .where(where).group_by(g))
    return {r[0]: AlertCounts(int(r[1]), int(r[2])) for r in conn.execute(q).all()}


def playbook_runs(conn: Connection, scope: Scope) -> dict[str, tuple[int, int]]:
    """Per group: (runs succeeded, runs that reached running and ended) of the period's incidents; dry runs and
    runs still running are left out."""
    r = runs.c
    grp = group_of(scope).label("grp")
    ended = and_(r.started_at.is_not(None), r.state != "running", r.dry_run.is_(False))
    q = select(grp, func.coalesce(func.sum(case((and_(ended, r.state == "succeeded"), 1), else_=0)), 0),
               func.coalesce(func.sum(case((ended, 1), else_=0)), 0)).select_from(
        runs.join(incidents, incidents.c.id == r.incident_id)).where(_in_period(scope.period))
    q = _grouped(q, grp if scope.by is not None else None)
    return {g: (int(ok), int(total)) for g, ok, total in conn.execute(q).all()}


def noisiest(conn: Connection, p: Period, limit: int = 10) -> list[dict[str, Any]]:
    """Alert names by deliveries in the period (the noise to tune), most first."""
    a = alerts.c
    name = alertname(a.labels).label("name")
    deliveries = func.sum(a.occurrences).label("deliveries")
    q = (select(name, deliveries, func.count()).where(a.starts_at >= p.start, a.starts_at < p.end)
         .group_by(name).order_by(deliveries.desc(), name).limit(limit))
    return [{"alertname": None if n is None else orjson.loads(n), "deliveries": int(d), "episodes": int(e)}
            for n, d, e in conn.execute(q).all()]


def recurring(conn: Connection, p: Period, minimum: int, limit: int) -> list[dict[str, Any]]:
    """Signatures with at least `minimum` incidents in the period: count, downtime (sum of [detected, restored],
    open ones until the period's end), the last detection, the problem and whether it has a known error."""
    i = incidents.c
    end = literal(p.end.timestamp(), Float())
    stop = least(func.coalesce(epoch(i.restored_at), epoch(i.resolved_at), end), end)
    k = func.count().label("k")
    down = func.sum(stop - epoch(i.detected_at)).label("down")
    q = (select(i.signature_hash, k, down, func.max(i.detected_at).label("last"), func.max(i.problem_id),
                func.max(i.id))
         .where(_in_period(p), i.signature_hash.is_not(None)).group_by(i.signature_hash)
         .having(func.count() >= minimum).order_by(k.desc(), down.desc(), i.signature_hash).limit(limit))
    rows = conn.execute(q).all()
    newest = [r[5] for r in rows]
    sigs: dict[int, Any] = {r[0]: r[1] for r in conn.execute(select(i.id, i.signature).where(i.id.in_(newest)))}
    pids = [r[4] for r in rows if r[4] is not None]
    known: dict[int, Any] = {r[0]: r[1] for r in conn.execute(
        select(problems.c.id, problems.c.known_error).where(problems.c.id.in_(pids)))}
    out = []
    for _hash, count, downtime, last, pid, newest_id in rows:
        last_at = last if isinstance(last, datetime) else datetime.fromisoformat(str(last))
        out.append({"signature": sigs.get(newest_id), "problem_id": pid, "incidents": int(count),
                    "downtime": float(downtime or 0.0), "last_seen_at": last_at,
                    "known_error": known.get(pid) is not None if pid is not None else False})
    return out


RESOLUTIONS = ("auto_remediated", "self_healed", "manual")  # the incident's `resolution` values, as counted


def resolutions(conn: Connection, scope: Scope) -> dict[str, dict[str, int]]:
    """Per group: the period's resolved incidents by their `resolution` (auto_remediated, self_healed, manual),
    as recorded on the incident (an auto-remediation a person also touched counts as auto_remediated here)."""
    i = incidents.c
    grp = group_of(scope).label("grp")
    cols = [func.coalesce(func.sum(case((and_(i.resolved_at.is_not(None), i.resolution == r), 1), else_=0)), 0)
            for r in RESOLUTIONS]
    q = _grouped(select(grp, *cols).where(_in_period(scope.period)), grp if scope.by is not None else None)
    return {r[0]: {name: int(v) for name, v in zip(RESOLUTIONS, r[1:], strict=True)} for r in conn.execute(q).all()}
