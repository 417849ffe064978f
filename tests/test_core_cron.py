"""Cron schedules: Vixie cron fields and semantics, time zones with DST, agreement with APScheduler's arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger

from itsmd.core.cron import CronSchedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def firings(expr: str, start: str, n: int, zone: str = "UTC") -> list[str]:
    schedule, out, when = CronSchedule(expr, zone), [], at(start)
    for _ in range(n):
        found = schedule.next_after(when)
        assert found is not None
        out.append(found.strftime("%Y-%m-%dT%H:%MZ"))
        when = found
    return out


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        ("0 2 * * *", "2026-11-25T01:59:59+00:00", ["2026-11-25T02:00Z", "2026-11-26T02:00Z"]),
        ("0 2 * * *", "2026-11-25T02:00:00+00:00", ["2026-11-26T02:00Z", "2026-11-27T02:00Z"]),  # strictly after
        ("*/20 * * * *", "2026-11-25T10:05:00+00:00", ["2026-11-25T10:20Z", "2026-11-25T10:40Z", "2026-11-25T11:00Z"]),
        ("5/20 9-10 * * *", "2026-11-25T10:30:00+00:00", ["2026-11-25T10:45Z", "2026-11-26T09:05Z"]),
        ("30 22 * * MON-FRI", "2026-11-27T23:00:00+00:00", ["2026-11-30T22:30Z", "2026-12-01T22:30Z"]),  # Fri -> Mon
        ("0 0 * * 0", "2026-11-25T00:00:00+00:00", ["2026-11-29T00:00Z"]),  # 0 is Sunday
        ("0 0 * * 7", "2026-11-25T00:00:00+00:00", ["2026-11-29T00:00Z"]),  # and so is 7
        ("0 12 1,15 * *", "2026-11-20T00:00:00+00:00", ["2026-12-01T12:00Z", "2026-12-15T12:00Z"]),
        ("0 0 29 2 *", "2026-03-01T00:00:00+00:00", ["2028-02-29T00:00Z", "2032-02-29T00:00Z"]),
        ("0 0 31 * *", "2026-11-01T00:00:00+00:00", ["2026-12-31T00:00Z", "2027-01-31T00:00Z"]),  # skips Nov, Feb
        ("0 6 1 jan,Jul *", "2026-11-25T00:00:00+00:00", ["2027-01-01T06:00Z", "2027-07-01T06:00Z"]),
        ("@daily", "2026-11-25T12:00:00+00:00", ["2026-11-26T00:00Z"]),
        ("@hourly", "2026-11-25T12:00:00+00:00", ["2026-11-25T13:00Z"]),
        ("@weekly", "2026-11-25T12:00:00+00:00", ["2026-11-29T00:00Z"]),
        ("@yearly", "2026-11-25T12:00:00+00:00", ["2027-01-01T00:00Z"]),
    ],
)
def test_next_firings(expr: str, start: str, expected: list[str]) -> None:
    assert firings(expr, start, len(expected)) == expected


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # cron: the 13th OR any Friday
    assert firings("0 0 13 * FRI", "2026-11-01T00:00:00+00:00", 4) == [
        "2026-11-06T00:00Z", "2026-11-13T00:00Z", "2026-11-20T00:00Z", "2026-11-27T00:00Z"]
    # a day field starting with `*` counts as unrestricted (Vixie cron's rule): then a day must match both
    assert firings("0 0 */10 * FRI", "2026-11-01T00:00:00+00:00", 2) == ["2026-12-11T00:00Z", "2027-01-01T00:00Z"]
    assert firings("0 0 * * FRI", "2026-11-01T00:00:00+00:00", 1) == ["2026-11-06T00:00Z"]


def test_wall_times_follow_the_zone_across_dst() -> None:
    # Europe/Berlin: 02:00 does not exist on 2026-03-29 (fires when the gap ends, 03:00 CEST = 01:00 UTC)
    assert firings("30 2 * * *", "2026-03-27T12:00:00+00:00", 3, "Europe/Berlin") == [
        "2026-03-28T01:30Z", "2026-03-29T01:00Z", "2026-03-30T00:30Z"]
    # 02:30 happens twice on 2026-10-25: it fires the first time only
    assert firings("30 2 * * *", "2026-10-24T12:00:00+00:00", 3, "Europe/Berlin") == [
        "2026-10-25T00:30Z", "2026-10-26T01:30Z", "2026-10-27T01:30Z"]
    assert firings("0 9 * * *", "2026-11-25T00:00:00+00:00", 1, "America/New_York") == ["2026-11-25T14:00Z"]


def test_an_instant_inside_the_repeated_hour() -> None:
    every = CronSchedule("*/30 * * * *", "Europe/Berlin")
    second_0215 = at("2026-10-25T01:15:00+00:00")  # 02:15 CET, the second 02:15 of the night
    assert every.next_after(second_0215) == at("2026-10-25T02:00:00+00:00")  # 03:00 CET; 02:30 fired already


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 2 * *", "cron needs 5 fields"),
        ("0 2 * * * *", "got 6"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month: 0 is out of range 1-31"),
        ("* * * 13 *", "month: 13 is out of range 1-12"),
        ("* * * * 8", "day-of-week: 8 is out of range 0-7"),
        ("* * * * FRI-MON", "range 'FRI-MON' goes backwards"),
        ("*/0 * * * *", "step '0' must be a whole number >= 1"),
        ("a * * * *", "minute: 'a' is not a number"),
        ("* * * FOO *", "or a name like JAN"),
        ("1,,2 * * * *", "empty value"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6 *", "never fires"),
        ("@reboot", "cron needs 5 fields"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("*", r"\*").replace("(", r"\(")):
        CronSchedule(expr)


def test_unknown_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        CronSchedule("0 0 * * *", "Mars/Olympus")


@pytest.mark.parametrize("expr", ["0 2 * * *", "*/7 3-5 * * *", "15 10 1,15 * *", "0 0 29 2 *", "45 23 31 * *",
                                  "0 12 * 1-3,10 *", "@monthly"])
def test_agrees_with_apscheduler_where_their_semantics_meet(expr: str) -> None:
    """APScheduler 3 counts weekdays from Monday and ANDs the day fields: compare with `*` weekdays only, in UTC
    (across DST it can skip a firing: from 2026-03-01 00:00 Berlin its next `0 0 1 * *` is May 1)."""
    ours = CronSchedule(expr)
    text = {"@monthly": "0 0 1 * *"}.get(expr, expr)
    theirs = CronTrigger.from_crontab(text, timezone="UTC")
    when = at("2026-01-01T00:00:00+00:00")
    for _ in range(40):
        expected = theirs.get_next_fire_time(None, when + timedelta(seconds=1))
        got = ours.next_after(when)
        assert got == expected.astimezone(UTC), (expr, when)
        when = got
