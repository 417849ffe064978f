"""Cron schedules (5 fields, Vixie cron semantics) in a time zone: parsing and the next firing after a time.

`minute hour day-of-month month day-of-week`, each `*`, `N`, `A-B`, `*/S`, `A-B/S`, `A/S` or a comma list of
them; months and weekdays also by name (`JAN`, `MON`); weekday 0 and 7 are Sunday. As in cron, when both
day-of-month and day-of-week are restricted (neither starts with `*`), a day matching either fires. The macros
`@hourly @daily @midnight @weekly @monthly @yearly @annually` stand for their expressions.

Wall times are in the schedule's zone: a time skipped by a DST change fires when the gap ends; a time that
happens twice fires the first time only.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February as in a leap year


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names of low, low + 1, ...


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day-of-month", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day-of-week", 0, 7, _DAYS),
)
HORIZON_YEARS = 28  # the calendar repeats after 28 years (within a century): a schedule firing never fires in it
_MAX_STEPS = 10_000  # candidate wall times tried per search (DST folds cost a few; the bound is a safety net)
_MINUTE = timedelta(minutes=1)


def _value(text: str, f: _Field) -> int:
    upper = text.upper()
    if f.names and upper in f.names:
        return f.low + f.names.index(upper)
    if not text.isascii() or not text.isdigit():
        named = f" or a name like {f.names[0]}" if f.names else ""
        raise ValueError(f"{f.name}: {text[:20]!r} is not a number{named}")
    number = int(text)
    if not f.low <= number <= f.high:
        raise ValueError(f"{f.name}: {number} is out of range {f.low}-{f.high}")
    return number


def _parse_field(text: str, f: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isascii() or not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{f.name}: step {step_text[:20]!r} must be a whole number >= 1")
            step = int(step_text)
        if span == "*":
            low, high = f.low, f.high
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _value(first, f), _value(last, f)
            if low > high:
                raise ValueError(f"{f.name}: range {span[:20]!r} goes backwards")
        elif span:
            low = _value(span, f)
            high = f.high if slash else low  # `5/15` is 5, 20, 35, 50 as in cronie
        else:
            raise ValueError(f"{f.name}: empty value in {text[:40]!r}")
        values.update(range(low, high + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed cron expression and the zone its wall times are in; see the module docstring."""

    expression: str
    timezone: str = "UTC"
    _minutes: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _hours: frozenset[int] = field(init=False, repr=False, compare=False)
    _days: frozenset[int] = field(init=False, repr=False, compare=False)
    _months: frozenset[int] = field(init=False, repr=False, compare=False)
    _weekdays: frozenset[int] = field(init=False, repr=False, compare=False)
    _either_day: bool = field(init=False, repr=False, compare=False)  # both day fields restricted: OR
    _zone: ZoneInfo | None = field(init=False, repr=False, compare=False)  # None: UTC

    def __post_init__(self) -> None:
        text = _MACROS.get(self.expression.strip().lower(), self.expression)
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(
                f"cron needs 5 fields (minute hour day-of-month month day-of-week) or a macro like @daily; "
                f"got {len(parts)}"
            )
        minutes, hours, days, months, weekdays = (_parse_field(p, f) for p, f in zip(parts, _FIELDS, strict=True))
        either = not parts[2].startswith("*") and not parts[4].startswith("*")
        if not either and not any(d <= _DAYS_IN_MONTH[m - 1] for m in months for d in days):
            raise ValueError("the schedule never fires: no month it names has any of its days")
        try:
            zone = None if self.timezone == "UTC" else ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {self.timezone[:60]!r}; use an IANA name like Europe/Berlin") from None
        for name, value in (("_minutes", tuple(sorted(minutes))), ("_hours", hours), ("_days", days),
                            ("_months", months), ("_weekdays", frozenset(d % 7 for d in weekdays)),
                            ("_either_day", either), ("_zone", zone)):
            object.__setattr__(self, name, value)

    def next_after(self, when: datetime) -> datetime | None:
        """The first firing strictly after `when` (timezone-aware), in UTC; None if it never fires again."""
        zone = self._zone or UTC
        local = when.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0, fold=0)
        cursor: datetime | None = local
        for _ in range(_MAX_STEPS):
            assert cursor is not None
            cursor = self._next_wall(cursor, local.year + HORIZON_YEARS)
            if cursor is None:
                return None
            instant = self._instant(cursor)
            if instant > when:
                return instant
            cursor += _MINUTE
        return None

    def _day_matches(self, day: datetime) -> bool:
        in_month = day.day in self._days
        in_week = (day.weekday() + 1) % 7 in self._weekdays  # Python counts from Monday, cron from Sunday
        return (in_month or in_week) if self._either_day else (in_month and in_week)

    def _next_wall(self, n: datetime, last_year: int) -> datetime | None:
        """The first matching wall time at or after `n` (naive, whole minutes), searching up to `last_year`."""
        while n.year <= last_year:
            if n.month not in self._months:
                n = datetime(n.year + (n.month == 12), n.month % 12 + 1, 1)
            elif not self._day_matches(n):
                n = n.replace(hour=0, minute=0) + timedelta(days=1)
            elif n.hour not in self._hours:
                n = n.replace(minute=0) + timedelta(hours=1)
            else:
                i = bisect.bisect_left(self._minutes, n.minute)
                if i < len(self._minutes):
                    return n.replace(minute=self._minutes[i])
                n = n.replace(minute=0) + timedelta(hours=1)
        return None

    def _instant(self, wall: datetime) -> datetime:
        """The UTC instant of a wall time in the zone; a wall time in a DST gap maps to the gap's end."""
        if self._zone is None:
            return wall.replace(tzinfo=UTC)
        instant = wall.replace(tzinfo=self._zone, fold=0).astimezone(UTC)  # the first of a repeated time
        if instant.astimezone(self._zone).replace(tzinfo=None) == wall:
            return instant
        probe = wall
        for _ in range(24 * 60):  # gaps last an hour or two
            probe += _MINUTE
            instant = probe.replace(tzinfo=self._zone, fold=0).astimezone(UTC)
            if instant.astimezone(self._zone).replace(tzinfo=None) == probe:
                return instant
        return instant
