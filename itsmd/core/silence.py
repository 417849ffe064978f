"""Silences and maintenance windows: which alerts they mute, and when.

A silence mutes alerts whose labels all its matchers match (Prometheus semantics: a missing label is the empty
string). It is one-off (`starts_at` .. `ends_at`) or recurring: every firing of a cron `schedule` opens a window
of `duration` seconds, between `starts_at` (if any) and `ends_at` (if any; expiring a silence sets it). A
window already open when the silence starts counts: created at 02:30, a nightly 02:00-04:00 window mutes at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from itsmd.core.cron import CronSchedule
from itsmd.core.matcher import Matcher

_MAX_CHAINED_WINDOWS = 1000  # windows that overlap the next one, followed to find where activity ends


class SilenceState(StrEnum):
    ACTIVE = "active"  # mutes now
    PENDING = "pending"  # will mute later (before its start, or between recurring windows)
    EXPIRED = "expired"  # ended: mutes nothing ever again


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime | None  # None: in force from the beginning of time (config silences without a start)
    ends_at: datetime | None  # a one-off silence's end; for a recurring one, when its recurrence stops
    schedule: CronSchedule | None = None  # recurring: a window opens at each firing...
    duration: float | None = None  # ...and lasts this many seconds
    created_by: str = ""
    comment: str = ""

    def __post_init__(self) -> None:
        if not self.matchers:
            raise ValueError("a silence needs at least one matcher")
        if all(m.matches({}) for m in self.matchers):
            raise ValueError("at least one matcher must not match the empty string (else the silence mutes every "
                             "alert)")
        if (self.schedule is None) != (self.duration is None):
            raise ValueError("schedule and duration go together: a window opens at each firing and lasts duration")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be more than 0")
        if self.schedule is None and self.ends_at is None:
            raise ValueError("a silence needs ends_at, or a schedule and duration for recurring windows")
        if self.starts_at is not None and self.ends_at is not None and self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")

    @property
    def recurring(self) -> bool:
        return self.schedule is not None

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def _in_force(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)

    def _window(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The schedule window [start, end) containing `now`, the earliest-opened if several overlap."""
        assert self.schedule is not None and self.duration is not None
        length = timedelta(seconds=self.duration)
        opened = self.schedule.next_after(now - length)
        if opened is None or opened > now:
            return None
        return opened, opened + length

    def active_at(self, now: datetime) -> bool:
        if not self._in_force(now):
            return False
        return self.schedule is None or self._window(now) is not None

    def state(self, now: datetime) -> SilenceState:
        if self.ends_at is not None and now >= self.ends_at:
            return SilenceState.EXPIRED
        return SilenceState.ACTIVE if self.active_at(now) else SilenceState.PENDING

    def active_until(self, now: datetime) -> datetime | None:
        """While active: when it stops muting (overlapping windows run on); None if never. Undefined otherwise."""
        if self.schedule is None:
            return self.ends_at
        window = self._window(now)
        if window is None:
            return now
        assert self.duration is not None
        opened, end = window
        for _ in range(_MAX_CHAINED_WINDOWS):
            following = self.schedule.next_after(opened)
            if following is None or following > end:
                break
            opened, end = following, max(end, following + timedelta(seconds=self.duration))
        else:
            return self.ends_at  # windows overlap without end: it mutes until the silence ends
        return end if self.ends_at is None else min(end, self.ends_at)

    def next_change(self, now: datetime) -> datetime | None:
        """The next time its state (active, pending, expired) changes after `now`; None if it never does."""
        state = self.state(now)
        if state == SilenceState.EXPIRED:
            return None
        if state == SilenceState.ACTIVE:
            return self.active_until(now)
        start = self._next_start(now)
        if self.ends_at is None:
            return start
        return self.ends_at if start is None else min(start, self.ends_at)

    def _next_start(self, now: datetime) -> datetime | None:
        """When a pending silence next starts to mute (ignoring ends_at)."""
        if self.starts_at is not None and now < self.starts_at and (
            self.schedule is None or self._window(self.starts_at) is not None
        ):
            return self.starts_at
        assert self.schedule is not None
        after = now if self.starts_at is None else max(now, self.starts_at)
        return self.schedule.next_after(after)


class ActiveSilences:
    """The silences active at one moment, longest-muting first, and which of them mutes given labels."""

    def __init__(self, silences: Iterable[Silence], now: datetime) -> None:
        active = [(s, s.active_until(now)) for s in silences if s.active_at(now)]
        # muting until further notice (None) first, then the latest end; ties keep the given order
        active.sort(key=lambda pair: (pair[1] is not None, -pair[1].timestamp() if pair[1] else 0.0))
        self.silences = tuple(s for s, _ in active)

    def __bool__(self) -> bool:
        return bool(self.silences)

    def find(self, labels: Mapping[str, str]) -> Silence | None:
        """The silence that mutes an alert with `labels`: of several, the one muting the longest."""
        return next((s for s in self.silences if s.matches(labels)), None)


def muting(silences: Iterable[Silence], labels: Mapping[str, str], now: datetime) -> Silence | None:
    """The silence that mutes an alert with `labels` at `now`, if any (see ActiveSilences)."""
    return ActiveSilences(silences, now).find(labels)
