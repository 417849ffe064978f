"""Reconciliation: what the alerts firing in the Alertmanagers and here say to add and to flag stale.

The webhook carries a group's state, but a truncated webhook (`truncatedAlerts > 0`) or a restart leaves gaps.
Reading each Alertmanager's `GET /api/v2/alerts` closes them: alerts firing there that itsmd lacks are added;
alerts firing here that no Alertmanager has any more are flagged `stale` (the signal is lost), never resolved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RemoteState(StrEnum):
    """An alert's state in Alertmanager (`status.state` of the v2 API)."""

    ACTIVE = "active"  # notified: the webhook would carry it
    SUPPRESSED = "suppressed"  # silenced or inhibited there: firing, but never sent by webhook
    UNPROCESSED = "unprocessed"  # received, not yet through the silencer and inhibitor


class Result(StrEnum):
    OK = "ok"  # every Alertmanager was read: added and flagged
    PARTIAL = "partial"  # some could not be read: added what the others have, flagged nothing
    FAILED = "failed"  # none could be read: nothing decided


@dataclass(frozen=True, slots=True)
class Local:
    """An alert firing here that only a webhook can end (pushed alerts expire on their own and are left out)."""

    id: int
    fingerprint: str
    stale: bool
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    result: Result
    add: tuple[str, ...]  # fingerprints active there and not firing here: delivered as new alerts
    revive: tuple[str, ...]  # firing there and flagged stale here: delivered, which refreshes them
    flag: tuple[int, ...]  # ids of alerts firing here and in no Alertmanager: to flag stale

    @property
    def deliver(self) -> tuple[str, ...]:
        return self.add + self.revive


# One Alertmanager's firing alerts by fingerprint, or None when it could not be read.
Read = Mapping[str, RemoteState] | None


def decide(reads: Sequence[Read], here: Sequence[Local], started: datetime) -> Decision:
    """What to add, refresh and flag, given every configured Alertmanager's read and the alerts firing here.

    `started`: when the reads began. An alert heard from since then is never flagged: it may have begun firing
    after Alertmanager answered. An Alertmanager that could not be read decides nothing, so one failed read
    means no alert is flagged in this round (the others may lack what it has; flagging is for certain loss).
    Alerts suppressed there are not added (Alertmanager would not send them) but still count as firing.
    """
    ok = [r for r in reads if r is not None]
    if not ok:
        return Decision(Result.FAILED, (), (), ())
    there: dict[str, RemoteState] = {}
    for read in ok:
        for fp, state in read.items():
            if there.get(fp) != RemoteState.ACTIVE:
                there[fp] = state  # active in any Alertmanager wins: one of them notifies it
    firing_here = {a.fingerprint: a for a in here}
    add = tuple(fp for fp, state in there.items() if state == RemoteState.ACTIVE and fp not in firing_here)
    revive = tuple(a.fingerprint for a in here if a.stale and a.fingerprint in there)
    if len(ok) < len(reads):
        return Decision(Result.PARTIAL, add, revive, ())
    flag = tuple(a.id for a in here if not a.stale and a.fingerprint not in there and a.last_seen_at < started)
    return Decision(Result.OK, add, revive, flag)
