"""Silences: one-off and recurring windows (also across midnight and DST), their state and next change, and which
silence mutes which labels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from itsmd.core.cron import CronSchedule
from itsmd.core.matcher import parse_matcher
from itsmd.core.silence import ActiveSilences, Silence, SilenceState, muting


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC) if "+" not in text else datetime.fromisoformat(text)


def silence(*matchers: str, sid: str = "s", starts: str | None = None, ends: str | None = None,
            schedule: str | None = None, duration: float | None = None, zone: str = "UTC") -> Silence:
    return Silence(
        sid, tuple(parse_matcher(m) for m in matchers or ('job="db"',)), at(starts) if starts else None,
        at(ends) if ends else None, CronSchedule(schedule, zone) if schedule else None, duration,
    )


ONE_OFF = silence(starts="2026-11-25T10:00:00", ends="2026-11-25T12:00:00")


@pytest.mark.parametrize(
    ("now", "state", "next_change"),
    [
        ("2026-11-25T09:59:59", SilenceState.PENDING, "2026-11-25T10:00:00"),
        ("2026-11-25T10:00:00", SilenceState.ACTIVE, "2026-11-25T12:00:00"),  # the start is inside
        ("2026-11-25T11:59:59", SilenceState.ACTIVE, "2026-11-25T12:00:00"),
        ("2026-11-25T12:00:00", SilenceState.EXPIRED, None),  # the end is not
    ],
)
def test_one_off(now: str, state: SilenceState, next_change: str | None) -> None:
    assert ONE_OFF.state(at(now)) == state
    assert ONE_OFF.active_at(at(now)) == (state == SilenceState.ACTIVE)
    assert ONE_OFF.next_change(at(now)) == (at(next_change) if next_change else None)


NIGHTLY = silence(schedule="0 23 * * *", duration=3 * 3600)  # 23:00 until 02:00 the next day


@pytest.mark.parametrize(
    ("now", "active", "next_change"),
    [
        ("2026-11-25T22:59:59", False, "2026-11-25T23:00:00"),
        ("2026-11-25T23:00:00", True, "2026-11-26T02:00:00"),
        ("2026-11-26T00:00:00", True, "2026-11-26T02:00:00"),  # after midnight: yesterday's window
        ("2026-11-26T01:59:59", True, "2026-11-26T02:00:00"),
        ("2026-11-26T02:00:00", False, "2026-11-26T23:00:00"),
        ("2026-11-26T12:00:00", False, "2026-11-26T23:00:00"),
    ],
)
def test_recurring_window_crossing_midnight(now: str, active: bool, next_change: str) -> None:
    assert NIGHTLY.active_at(at(now)) is active
    assert NIGHTLY.state(at(now)) == (SilenceState.ACTIVE if active else SilenceState.PENDING)
    assert NIGHTLY.next_change(at(now)) == at(next_change)


def test_weekly_window_in_a_zone() -> None:
    sunday = silence(schedule="0 2 * * SUN", duration=7200, zone="Europe/Berlin")  # 02:00-04:00 Berlin
    assert sunday.active_at(at("2026-11-29T01:30:00"))  # 02:30 CET
    assert not sunday.active_at(at("2026-11-29T03:00:00"))  # 04:00 CET
    assert not sunday.active_at(at("2026-11-30T01:30:00"))  # a Monday
    assert sunday.next_change(at("2026-11-29T03:00:00")) == at("2026-12-06T01:00:00")
    summer = at("2026-07-05T00:30:00")  # 02:30 CEST
    assert sunday.active_at(summer) and sunday.next_change(summer) == at("2026-07-05T02:00:00")


def test_recurring_between_start_and_end() -> None:
    s = silence(starts="2026-11-25T23:30:00", ends="2026-11-27T00:30:00", schedule="0 23 * * *", duration=3 * 3600)
    assert not s.active_at(at("2026-11-25T23:15:00"))  # before its start, though inside a window
    assert s.active_at(at("2026-11-25T23:30:00"))  # a window already open when it starts counts
    assert s.next_change(at("2026-11-25T23:15:00")) == at("2026-11-25T23:30:00")
    assert s.next_change(at("2026-11-26T12:00:00")) == at("2026-11-26T23:00:00")
    assert s.next_change(at("2026-11-26T23:30:00")) == at("2026-11-27T00:30:00")  # the end cuts the window
    assert s.state(at("2026-11-27T00:30:00")) == SilenceState.EXPIRED
    late = silence(starts="2026-11-26T01:00:00", schedule="0 23 * * *", duration=3600)  # window over by then
    assert late.state(at("2026-11-26T00:00:00")) == SilenceState.PENDING
    assert late.next_change(at("2026-11-26T00:00:00")) == at("2026-11-26T23:00:00")


def test_overlapping_windows_run_on() -> None:
    s = silence(schedule="0 * * * *", duration=90 * 60, ends="2026-11-26T00:00:00")  # hourly, 90 minutes each
    assert s.active_at(at("2026-11-25T10:45:00"))
    assert s.active_until(at("2026-11-25T10:45:00")) == at("2026-11-26T00:00:00")  # until the silence ends
    endless = silence(schedule="*/5 * * * *", duration=600)
    assert endless.active_until(at("2026-11-25T10:45:00")) is None
    gappy = silence(schedule="0 0,1,5 * * *", duration=90 * 60)
    assert gappy.active_until(at("2026-11-25T00:10:00")) == at("2026-11-25T02:30:00")


def test_an_ended_recurring_silence_never_mutes_again() -> None:
    s = silence(starts="2026-11-01T00:00:00", ends="2026-11-25T23:30:00", schedule="0 23 * * *", duration=3600)
    assert s.active_at(at("2026-11-25T23:10:00")) and not s.active_at(at("2026-11-25T23:30:00"))
    assert s.state(at("2026-11-26T23:10:00")) == SilenceState.EXPIRED and s.next_change(at("2026-11-27")) is None


@pytest.mark.parametrize(
    ("matchers", "labels", "mutes"),
    [
        (['job="db"'], {"job": "db", "instance": "a"}, True),
        (['job="db"'], {"job": "dbx"}, False),
        (['job="db"', 'instance!="a"'], {"job": "db", "instance": "a"}, False),  # all must match
        (['job="db"', 'instance!="a"'], {"job": "db"}, True),  # a missing label is ""
        (['job=~"db|cache"'], {"job": "cache"}, True),
        (['job=~"db"'], {"job": "db-replica"}, False),  # regexes are anchored
        (['job!~"db.*"', 'team="ops"'], {"team": "ops"}, True),
        (['"my label"="x"'], {"my label": "x"}, True),
    ],
)
def test_matcher_semantics(matchers: list[str], labels: dict[str, str], mutes: bool) -> None:
    s = silence(*matchers, ends="2026-11-26T00:00:00")
    assert (muting([s], labels, at("2026-11-25T12:00:00")) is s) is mutes


def test_the_longest_muting_silence_is_named() -> None:
    now = at("2026-11-25T12:00:00")
    short = silence(sid="short", ends="2026-11-25T13:00:00")
    long = silence(sid="long", ends="2026-11-25T18:00:00")
    forever = silence('job=~"d.*"', sid="forever", schedule="*/1 * * * *", duration=3600)
    later = silence(sid="later", starts="2026-11-25T13:00:00", ends="2026-11-30T00:00:00")
    assert muting([short, long, later], {"job": "db"}, now) is long
    assert muting([short, long, forever], {"job": "db"}, now) is forever
    active = ActiveSilences([short, later, long], now)
    assert [s.id for s in active.silences] == ["long", "short"] and active.find({"job": "web"}) is None
    assert not ActiveSilences([later], now)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"matchers": ()}, "at least one matcher"),
        ({"matchers": ('job=~".*"', 'x=""')}, "must not match the empty string"),
        ({"ends_at": None}, "needs ends_at"),
        ({"duration": 60.0}, "schedule and duration go together"),
        ({"ends_at": at("2026-11-25T09:00:00")}, "ends_at is before starts_at"),
    ],
)
def test_invalid_silences(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"id": "x", "matchers": (parse_matcher('job="db"'),),
                                 "starts_at": at("2026-11-25T10:00:00"), "ends_at": at("2026-11-25T12:00:00")}
    fields.update(kwargs)
    if isinstance(fields["matchers"], tuple) and fields["matchers"] and isinstance(fields["matchers"][0], str):
        fields["matchers"] = tuple(parse_matcher(m) for m in fields["matchers"])  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=message):
        Silence(**fields)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duration must be more than 0"):
        silence(schedule="0 0 * * *", duration=0)
