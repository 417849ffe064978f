"""Report definitions (DESIGN §3, §1.6 item 17): periods, ISO weeks in a zone, groups, rates and statistics.

Pure: the SQL adapter (storage.reports) aggregates in the database; this module decides the periods, the group
names and how the aggregates become the public JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

NO_GROUP = "(none)"  # the group of an incident without a service or owner, and of an alert without an incident
DEFAULT_SPAN = timedelta(days=28)  # the period when `from` is not given: four weeks before `to`
DIGITS = 3  # durations are seconds rounded to the millisecond, so both engines print the same figures
RECURRING_MIN = 2  # a signature recurs when it has at least this many incidents in the period
RECURRING_TOP = 10


class Dimension(StrEnum):
    SERVICE = "service"
    OWNER = "owner"
    PRIORITY = "priority"
    WEEK = "week"


@dataclass(frozen=True, slots=True)
class Targets:
    ack: float | None = None  # seconds
    restore: float | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """What a report needs from the configuration."""

    timezone: str = "UTC"
    sla: Mapping[str, Targets] = field(default_factory=dict)  # priority -> targets
    playbook_rules: frozenset[str] = frozenset()  # rules with at least one playbook (auto-remediation eligible)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Week:
    label: str  # ISO week, e.g. 2026-W48
    period: Period  # the week's part inside the report's period


@dataclass(frozen=True, slots=True)
class Stat:
    mean: float | None
    median: float | None
    p90: float | None
    n: int

    def as_json(self) -> dict[str, float | int | None]:
        return {"mean": seconds(self.mean), "median": seconds(self.median), "p90": seconds(self.p90), "n": self.n}


EMPTY = Stat(None, None, None, 0)


def period(start: datetime | None, end: datetime | None, now: datetime) -> Period:
    """The report's period: [start, end); `end` defaults to now, `start` to four weeks before `end`."""
    stop = end or now
    begin = start or stop - DEFAULT_SPAN
    if begin >= stop:
        raise ValueError("from must be before to")
    return Period(begin, stop)


def week_label(when: datetime, zone: ZoneInfo) -> str:
    year, week, _ = when.astimezone(zone).isocalendar()
    return f"{year}-W{week:02d}"


def weeks(p: Period, timezone: str) -> list[Week]:
    """The ISO weeks (Monday 00:00 local time in `timezone`) that the period touches, each cut to the period."""
    zone = ZoneInfo(timezone)
    local = p.start.astimezone(zone)
    monday = datetime(local.year, local.month, local.day, tzinfo=zone) - timedelta(days=local.weekday())
    out: list[Week] = []
    while True:
        # Local wall-clock arithmetic (a week is 7 local days, 167 or 169 hours across a DST change).
        nxt = datetime(monday.year, monday.month, monday.day, tzinfo=zone) + timedelta(days=7)
        nxt = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
        start, end = max(monday, p.start), min(nxt, p.end)
        if start < end:
            out.append(Week(week_label(start, zone), Period(start, end)))
        if nxt >= p.end:
            return out
        monday = nxt


def rate(part: int, whole: int) -> float | None:
    """A fraction 0..1, null when nothing was measured."""
    return None if whole == 0 else part / whole


def reduction(fewer: int, more: int) -> float | None:
    """1 - fewer/more (dedup ratio, noise reduction), null when `more` is 0."""
    return None if more == 0 else 1 - fewer / more


def seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), DIGITS)


def nearest_rank(count: int, percent: int) -> int:
    """The 1-based nearest rank of the `percent` percentile among `count` sorted values: ceil(p/100 x n)."""
    return max(1, math.ceil(percent * count / 100))


def stat(values: Sequence[float]) -> Stat:
    """Mean, median (the middle value, or the mean of the two middle ones) and nearest-rank p90 of few values
    (MTBF over services; per-incident durations are ranked in SQL)."""
    if not values:
        return EMPTY
    ordered = sorted(values)
    n = len(ordered)
    median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    return Stat(sum(ordered) / n, median, ordered[nearest_rank(n, 90) - 1], n)


def mtbf(period_seconds: float, downtime: float, incidents: int) -> float:
    """(period - union of the service's incident intervals) / incidents."""
    return max(period_seconds - downtime, 0.0) / incidents


def previous_week(now: datetime, timezone: str) -> Period:
    """The last complete ISO week before `now` (Monday 00:00 to Monday 00:00 local time in `timezone`)."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    this_monday = datetime(local.year, local.month, local.day, tzinfo=zone) - timedelta(days=local.weekday())
    last_monday = this_monday - timedelta(days=7)
    return Period(datetime(last_monday.year, last_monday.month, last_monday.day, tzinfo=zone),
                  datetime(this_monday.year, this_monday.month, this_monday.day, tzinfo=zone))


def duration(seconds: float | None) -> str:
    """A duration in at most two units, for people (tables, the dashboard): `3725.5` as `1h 2m`, None as `-`."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if secs or not parts:
        parts.append(f"{secs}s")
    return " ".join(parts[:2])
