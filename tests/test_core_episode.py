"""Episode merging: repeats, HA copies, startsAt drift, stale firings, re-fires, late resolves, expiry."""

from datetime import UTC, datetime, timedelta

from itsmd.core.alert import IncomingAlert, Status
from itsmd.core.episode import History, Outcome, expire, merge

T0 = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
FP = "0123456789abcdef"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def firing(starts: float, expires: float | None = None, note: str = "") -> IncomingAlert:
    return IncomingAlert({"alertname": "A"}, {"note": note}, Status.FIRING, at(starts), None,
                         at(expires) if expires is not None else None, "")


def resolved(starts: float, ends: float) -> IncomingAlert:
    return IncomingAlert({"alertname": "A"}, {}, Status.RESOLVED, at(starts), at(ends), None, "")


def run(*steps: tuple[IncomingAlert, float]) -> tuple[History, list[Outcome]]:
    h, outcomes = History(), []
    for alert, received in steps:
        m = merge(h, FP, alert, at(received))
        h = m.history
        outcomes.append(m.outcome)
    return h, outcomes


def test_first_firing_opens_an_episode() -> None:
    h, outcomes = run((firing(0), 1))
    assert outcomes == [Outcome.NEW]
    assert h.open is not None and h.open.occurrences == 1 and h.open.first_seen_at == at(1)


def test_repeats_collapse_and_count_every_delivery() -> None:
    h, outcomes = run((firing(0), 1), (firing(0, note="x"), 5), (firing(0), 9))
    assert outcomes == [Outcome.NEW, Outcome.REFRESHED, Outcome.REFRESHED]
    assert h.open is not None
    assert h.open.occurrences == 3 and h.open.last_seen_at == at(9) and h.open.first_seen_at == at(1)


def test_starts_at_drift_keeps_the_earliest_and_resolve_matches() -> None:
    h, outcomes = run((firing(0.9), 1), (firing(0.5), 2), (resolved(0.7, 10), 11))
    assert outcomes == [Outcome.NEW, Outcome.REFRESHED, Outcome.RESOLVED]
    assert h.open is None and h.closed is not None
    assert h.closed.starts_at == at(0.5) and h.closed.ends_at == at(10) and h.closed.occurrences == 3


def test_ha_stale_firing_after_resolve_is_ignored_but_counted() -> None:
    h, outcomes = run((firing(0), 1), (resolved(0, 5), 6), (firing(0), 13), (resolved(0, 5.001), 28))
    assert outcomes == [Outcome.NEW, Outcome.RESOLVED, Outcome.STALE, Outcome.DUPLICATE_RESOLVE]
    assert h.open is None and h.closed is not None and h.closed.occurrences == 4
    assert h.closed.status == Status.RESOLVED


def test_refire_with_new_starts_at_is_a_new_episode() -> None:
    h, outcomes = run((firing(0), 1), (resolved(0, 5), 6), (firing(9), 9.5))
    assert outcomes == [Outcome.NEW, Outcome.RESOLVED, Outcome.NEW]
    assert h.open is not None and h.open.starts_at == at(9) and h.open.id is None
    assert h.closed is not None and h.closed.ends_at == at(5)


def test_resolve_never_seen_firing_is_recorded() -> None:
    h, outcomes = run((resolved(0, 5), 6))
    assert outcomes == [Outcome.RESOLVED_UNSEEN]
    assert h.closed is not None and h.closed.status == Status.RESOLVED and h.open is None


def test_late_resolve_of_an_earlier_episode_does_not_close_the_new_one() -> None:
    h, outcomes = run((firing(0), 1), (resolved(0, 5), 6), (firing(9), 10), (resolved(0, 5), 12))
    assert outcomes[-1] == Outcome.STALE
    assert h.open is not None and h.open.starts_at == at(9)


def test_pushed_alert_expires_unless_refreshed() -> None:
    h, _ = run((firing(0, expires=60), 1))
    assert h.open is not None
    assert expire(h.open, at(59)) is None
    h, _ = run((firing(0, expires=60), 1), (firing(0, expires=120), 50))
    assert h.open is not None and expire(h.open, at(60)) is None
    done = expire(h.open, at(121))
    assert done is not None and done.status == Status.RESOLVED and done.ends_at == at(120)


def test_webhook_firing_never_expires() -> None:
    h, _ = run((firing(0), 1))
    assert h.open is not None and expire(h.open, at(10**6)) is None
