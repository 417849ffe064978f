"""Dedup stage: delivered alerts merge into episodes; repeats, HA copies and stale firings collapse."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache

from itsmd.core.alert import IncomingAlert
from itsmd.core.episode import Episode, History, Outcome, merge
from itsmd.core.fingerprint import fingerprint


@lru_cache(maxsize=65536)
def _cached_fingerprint(items: tuple[tuple[str, str], ...]) -> str:
    return fingerprint(dict(items))


def fingerprint_of(alert: IncomingAlert) -> str:
    return _cached_fingerprint(tuple(alert.labels.items()))


@dataclass
class DedupResult:
    changed: dict[int, Episode] = field(default_factory=dict)  # by id; new episodes have ids < 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    resolved: set[int] = field(default_factory=set)  # episodes that stopped firing in this batch


def dedup(
    items: Iterable[tuple[datetime, IncomingAlert, str]], histories: dict[str, History]
) -> DedupResult:
    """Merge each (received_at, alert, fingerprint) in order into `histories` (updated in place)."""
    result = DedupResult()
    provisional = 0
    for received_at, alert, fp in items:
        m = merge(histories.get(fp, History()), fp, alert, received_at)
        history, ep = m.history, m.changed
        if ep is not None and ep.id is None:
            provisional -= 1
            tagged = replace(ep, id=provisional)
            history = History(
                open=tagged if history.open is ep else history.open,
                closed=tagged if history.closed is ep else history.closed,
            )
            ep = tagged
        histories[fp] = history
        if ep is not None:
            assert ep.id is not None
            result.changed[ep.id] = ep
        result.outcomes[m.outcome] += 1
        if m.outcome == Outcome.RESOLVED and ep is not None and ep.id is not None:
            result.resolved.add(ep.id)
    return result
