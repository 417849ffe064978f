"""Alert episodes: one record per firing of a label set, merged across repeats, HA copies and startsAt drift.

An episode is identified by fingerprint and its (earliest) startsAt. At most one episode of a fingerprint is
open (firing). `merge` decides what one delivered alert does to the fingerprint's open and latest closed episode
and says why; the caller stores the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from itsmd.core.alert import IncomingAlert, Status


class Outcome(StrEnum):
    NEW = "new"  # a new firing episode
    REFRESHED = "refreshed"  # a repeat of the open episode (repeat_interval, HA copy, retry)
    RESOLVED = "resolved"  # the open episode ended
    DUPLICATE_RESOLVE = "duplicate_resolve"  # a resolve of an episode already resolved
    RESOLVED_UNSEEN = "resolved_unseen"  # a resolve of an episode never seen firing: recorded as resolved
    STALE = "stale"  # a firing (or resolve) older than what is known: counted, ignored
    EXPIRED = "expired"  # a pushed alert not refreshed before its endsAt


# Not frozen, on purpose: a frozen dataclass sets each field through object.__setattr__, and building these
# values was 17% of ingest CPU (bench/ingest A). They are values all the same: never assigned after
# construction (dataclasses.replace makes a changed copy).
@dataclass(slots=True)
class Episode:
    id: int | None  # None until stored
    fingerprint: str
    labels: Mapping[str, str] | None  # None: not loaded (stored episodes are loaded without their content)
    annotations: Mapping[str, str] | None  # None: unchanged since loaded
    status: Status
    starts_at: datetime
    ends_at: datetime | None
    expires_at: datetime | None
    generator_url: str | None  # None: unchanged since loaded
    first_seen_at: datetime
    last_seen_at: datetime
    occurrences: int
    rule: str | None = None  # the rule that routed it (set when the episode begins)
    key: str | None = None  # its correlation key under that rule
    key_hash: str | None = None
    incident_id: int | None = None
    symptom: str | None = None  # inhibited | dependency: joined a cause's incident
    muted_by: str | None = None  # the silence that muted it when it began firing (not correlated meanwhile)


@dataclass(slots=True)  # not frozen: see Episode
class History:
    """What is known of one fingerprint: its open episode and its most recent closed one."""

    open: Episode | None = None
    closed: Episode | None = None


@dataclass(slots=True)  # not frozen: see Episode
class Merge:
    outcome: Outcome
    history: History
    changed: Episode | None  # the episode to store (None when nothing changes)


def _new(fp: str, alert: IncomingAlert, now: datetime) -> Episode:
    return Episode(
        id=None,
        fingerprint=fp,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        status=alert.status,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        expires_at=alert.expires_at,
        generator_url=alert.generator_url,
        first_seen_at=now,
        last_seen_at=now,
        occurrences=1,
    )


def _counted(ep: Episode) -> Episode:
    return replace(ep, occurrences=ep.occurrences + 1)


def merge(history: History, fp: str, alert: IncomingAlert, now: datetime) -> Merge:
    """Apply one delivered alert (received at `now`) to a fingerprint's history."""
    open_, closed = history.open, history.closed
    if alert.status == Status.FIRING:
        if open_ is not None:
            ep = Episode(  # the hot path (every repeat): built directly, dataclasses.replace is slow
                open_.id, fp, open_.labels, alert.annotations, Status.FIRING,
                min(open_.starts_at, alert.starts_at), None, alert.expires_at, alert.generator_url,
                open_.first_seen_at, max(open_.last_seen_at, now), open_.occurrences + 1,
                open_.rule, open_.key, open_.key_hash, open_.incident_id, open_.symptom, open_.muted_by,
            )
            return Merge(Outcome.REFRESHED, History(ep, closed), ep)
        if closed is not None and closed.ends_at is not None and alert.starts_at <= closed.ends_at:
            ep = _counted(closed)
            return Merge(Outcome.STALE, History(None, ep), ep)
        ep = _new(fp, alert, now)
        return Merge(Outcome.NEW, History(ep, closed), ep)

    assert alert.ends_at is not None
    if open_ is not None:
        if alert.ends_at < open_.starts_at:  # a late resolve of an earlier episode
            if closed is not None:
                ep = _counted(closed)
                return Merge(Outcome.STALE, History(open_, ep), ep)
            return Merge(Outcome.STALE, history, None)
        ep = replace(
            open_,
            status=Status.RESOLVED,
            starts_at=min(open_.starts_at, alert.starts_at),
            ends_at=alert.ends_at,
            expires_at=None,
            annotations=dict(alert.annotations),
            generator_url=alert.generator_url,
            last_seen_at=max(open_.last_seen_at, now),
            occurrences=open_.occurrences + 1,
        )
        return Merge(Outcome.RESOLVED, History(None, ep), ep)
    if closed is not None and closed.ends_at is not None and alert.starts_at <= closed.ends_at:
        ep = replace(_counted(closed), last_seen_at=max(closed.last_seen_at, now))
        return Merge(Outcome.DUPLICATE_RESOLVE, History(None, ep), ep)
    ep = _new(fp, alert, now)
    return Merge(Outcome.RESOLVED_UNSEEN, History(None, ep), ep)


def expire(ep: Episode, now: datetime) -> Episode | None:
    """The open episode resolved at its expiry, if that has passed; else None."""
    if ep.status != Status.FIRING or ep.expires_at is None or ep.expires_at > now:
        return None
    return replace(ep, status=Status.RESOLVED, ends_at=ep.expires_at, expires_at=None)
