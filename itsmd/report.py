"""Manager reports (DESIGN §3, §1.6 item 17): summary, mttr and recurring, as JSON documents, from one connection.

The figures come aggregated from storage.reports; core.report holds the definitions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from itsmd.config.model import Config
from itsmd.core import report as core
from itsmd.core.problem import display_id
from itsmd.core.report import Dimension, Period, Settings, Stat, Targets

__all__ = ["KINDS", "Settings", "build", "from_database", "mttr", "recurring", "settings", "summary"]
from itsmd.core.rule import Rule
from itsmd.core.timestamp import format_time
from itsmd.errors import StorageUnavailable
from itsmd.storage import reports as sql
from itsmd.storage.reports import AlertCounts, Counts, Scope

KINDS = ("summary", "mttr", "recurring")


def settings(config: Config, rules: Iterable[Rule] = ()) -> Settings:
    sla = {p: Targets(t.ack, t.restore) for p, t in config.reports.sla.items()}
    return Settings(config.reports.timezone, sla, frozenset(r.name for r in rules if r.playbooks))


def _scope(p: Period, by: Dimension | None, s: Settings) -> Scope:
    return Scope(p, by, core.weeks(p, s.timezone) if by is Dimension.WEEK else ())


def _mtbf(rows: list[tuple[str, str, float, int, float]], scope: Scope) -> dict[str, Stat]:
    starts = {w.label: w.period.start.timestamp() for w in scope.weeks}
    values: dict[str, list[float]] = defaultdict(list)
    for group, _service, downtime, n, end in rows:
        start = starts.get(group, scope.period.start.timestamp())
        values[group].append(core.mtbf(end - start, downtime, n))
    return {g: core.stat(v) for g, v in values.items()}


def _figures(conn: Connection, scope: Scope, s: Settings, now: datetime) -> dict[str, dict[str, Any]]:
    """The summary's keys for every group of the scope."""
    sla = {p: (t.ack, t.restore) for p, t in s.sla.items()}
    counts = sql.counts(conn, scope, sla, s.playbook_rules, now)
    mtta, mttr = sql.durations(conn, scope, "mtta"), sql.durations(conn, scope, "mttr")
    mtbf = _mtbf(sql.mtbf_rows(conn, scope), scope)
    alerts = sql.alert_counts(conn, scope)
    runs = sql.playbook_runs(conn, scope)
    resolved = sql.resolutions(conn, scope)
    groups = set(counts) | set(alerts)
    if scope.by is None:
        groups = {""}
    elif scope.by is Dimension.WEEK:
        groups = {w.label for w in scope.weeks}
    out: dict[str, dict[str, Any]] = {}
    for g in sorted(groups):
        c, a = counts.get(g, Counts()), alerts.get(g, AlertCounts())
        ok, started = runs.get(g, (0, 0))
        breaches = c.sla or {}
        out[g] = {
            "incidents": c.incidents, "alerts": a.deliveries, "episodes": a.episodes,
            "mtta": mtta.get(g, core.EMPTY).as_json(), "mttr": mttr.get(g, core.EMPTY).as_json(),
            "mtbf": mtbf.get(g, core.EMPTY).as_json(), "unrestored": c.unrestored,
            "auto_remediation_rate": core.rate(c.auto_remediated, c.eligible),
            "self_healed_rate": core.rate(c.self_healed, c.resolved),
            "playbook_success_rate": core.rate(ok, started),
            "dedup_ratio": core.reduction(a.episodes, a.deliveries),
            "noise_reduction": core.reduction(c.incidents, a.episodes),
            "sla_breaches": {p: {"ack": breaches.get(p, (0, 0))[0], "restore": breaches.get(p, (0, 0))[1]}
                             for p in sorted(s.sla)},
            "resolutions": resolved.get(g, dict.fromkeys(sql.RESOLUTIONS, 0)),
        }
    return out


def summary(conn: Connection, s: Settings, p: Period, by: Dimension | None, now: datetime,
            noisiest: int = 0) -> dict[str, Any]:
    """The summary; with `noisiest` > 0 also that many alert names by deliveries (`noisiest`: it reads every
    alert's labels, the one costly part, so it is asked for)."""
    doc: dict[str, Any] = {"from": format_time(p.start), "to": format_time(p.end)}
    doc.update(_figures(conn, _scope(p, None, s), s, now)[""])
    if noisiest > 0:
        doc["noisiest"] = sql.noisiest(conn, p, noisiest)
    doc["by"] = _figures(conn, _scope(p, by, s), s, now) if by is not None else {}
    return doc


def mttr(conn: Connection, s: Settings, p: Period, by: Dimension | None) -> dict[str, Any]:
    """MTTR and MTTA overall, per week, and per `by` group and week."""
    weekly = _scope(p, Dimension.WEEK, s)

    def block(stats: dict[str, Stat], acks: dict[str, Stat], g: str) -> dict[str, Any]:
        return {"mttr": stats.get(g, core.EMPTY).as_json(), "mtta": acks.get(g, core.EMPTY).as_json()}

    overall = _scope(p, None, s)
    doc: dict[str, Any] = {"from": format_time(p.start), "to": format_time(p.end)}
    doc.update(block(sql.durations(conn, overall, "mttr"), sql.durations(conn, overall, "mtta"), ""))
    w_mttr, w_mtta = sql.durations(conn, weekly, "mttr"), sql.durations(conn, weekly, "mtta")
    doc["weeks"] = {w.label: block(w_mttr, w_mtta, w.label) for w in weekly.weeks}
    doc["by"] = {}
    if by is Dimension.WEEK:  # the weeks above, again
        doc["by"] = dict(doc["weeks"])
    elif by is not None:
        scope = _scope(p, by, s)
        g_mttr, g_mtta = sql.durations(conn, scope, "mttr"), sql.durations(conn, scope, "mtta")
        groups = sorted(set(g_mttr) | set(g_mtta) | set(sql.counts(conn, scope, {}, frozenset(), p.end)))
        weekly_in = {m: sql.durations_within(conn, weekly, scope, m) for m in ("mttr", "mtta")}
        for g in groups:
            doc["by"][g] = block(g_mttr, g_mtta, g)
            doc["by"][g]["weeks"] = {
                w.label: {m: weekly_in[m].get((g, w.label), core.EMPTY).as_json() for m in ("mttr", "mtta")}
                for w in weekly.weeks}
    return doc


def recurring(conn: Connection, p: Period, limit: int = core.RECURRING_TOP) -> dict[str, Any]:
    items = sql.recurring(conn, p, core.RECURRING_MIN, limit)
    for item in items:
        item["problem_id"] = None if item["problem_id"] is None else display_id(item["problem_id"])
        item["downtime"] = core.seconds(item["downtime"])
        item["last_seen_at"] = format_time(item["last_seen_at"])
    return {"from": format_time(p.start), "to": format_time(p.end), "items": items}


def build(conn: Connection, kind: str, s: Settings, p: Period, by: Dimension | None, now: datetime,
          noisiest: int = 0) -> dict[str, Any]:
    if kind == "summary":
        return summary(conn, s, p, by, now, noisiest)
    if kind == "mttr":
        return mttr(conn, s, p, by)
    return recurring(conn, p)


def from_database(config: Config, kind: str, p: Period, by: Dimension | None, now: datetime,
                  noisiest: int = 0) -> dict[str, Any]:
    """A report read straight from the configured database (`itsmd report -c`), without a daemon; the schema is
    not migrated (a report never writes)."""
    from itsmd.config.routing import load_routing
    from itsmd.storage.database import open_database

    s = settings(config, load_routing(config).rules)
    db = open_database(config.database, pool_size=1)
    try:
        with db.engine.connect() as conn:
            return build(conn, kind, s, p, by, now, noisiest)
    except SQLAlchemyError as e:
        raise StorageUnavailable(f"cannot read the reports from the database: {e.__class__.__name__}: {e}") from e
    finally:
        db.engine.dispose()
