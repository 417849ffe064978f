"""The reconciliation decision: what to add, revive and flag stale from the Alertmanagers' reads and here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itsmd.core.reconcile import Local, RemoteState, Result, decide

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
BEFORE = T0 - timedelta(minutes=5)
ACTIVE, SUPPRESSED, UNPROCESSED = RemoteState.ACTIVE, RemoteState.SUPPRESSED, RemoteState.UNPROCESSED


def here(id_: int, fp: str, stale: bool = False, seen: datetime = BEFORE) -> Local:
    return Local(id_, fp, stale, seen)


def test_active_there_and_missing_here_is_added() -> None:
    d = decide([{"a": ACTIVE, "b": ACTIVE}], [here(1, "a")], T0)
    assert d.result == Result.OK and d.add == ("b",) and d.revive == () and d.flag == ()


def test_firing_here_and_absent_everywhere_is_flagged() -> None:
    d = decide([{"a": ACTIVE}, {"a": ACTIVE}], [here(1, "a"), here(2, "gone")], T0)
    assert d.result == Result.OK and d.add == () and d.flag == (2,)


def test_present_in_one_of_several_alertmanagers_is_not_flagged() -> None:
    d = decide([{"a": ACTIVE}, {}], [here(1, "a")], T0)
    assert d.flag == ()


def test_suppressed_there_is_neither_added_nor_flagged() -> None:
    d = decide([{"silenced": SUPPRESSED, "new": UNPROCESSED}], [here(1, "silenced")], T0)
    assert d.add == () and d.flag == ()


def test_active_in_any_alertmanager_is_added() -> None:
    d = decide([{"x": SUPPRESSED}, {"x": ACTIVE}], [], T0)
    assert d.add == ("x",)
    d = decide([{"x": ACTIVE}, {"x": SUPPRESSED}], [], T0)
    assert d.add == ("x",)


def test_stale_here_and_firing_there_is_revived_even_when_suppressed() -> None:
    d = decide([{"a": SUPPRESSED, "b": ACTIVE}], [here(1, "a", stale=True), here(2, "b", stale=True)], T0)
    assert d.revive == ("a", "b") and d.add == () and d.flag == ()


def test_already_stale_is_not_flagged_again() -> None:
    d = decide([{}], [here(1, "gone", stale=True)], T0)
    assert d.flag == () and d.revive == ()


def test_heard_from_after_the_reads_began_is_not_flagged() -> None:
    d = decide([{}], [here(1, "late", seen=T0), here(2, "later", seen=T0 + timedelta(seconds=1)),
                      here(3, "old")], T0)
    assert d.flag == (3,)


def test_a_failed_read_flags_nothing_but_still_adds() -> None:
    d = decide([{"b": ACTIVE}, None], [here(1, "gone"), here(2, "c", stale=True)], T0)
    assert d.result == Result.PARTIAL and d.add == ("b",) and d.flag == ()
    assert d.revive == ()  # "c" is not firing in the one that answered


def test_no_read_decides_nothing() -> None:
    d = decide([None, None], [here(1, "gone")], T0)
    assert d.result == Result.FAILED and d.deliver == () and d.flag == ()


def test_empty_alertmanager_flags_everything_firing_here() -> None:
    d = decide([{}], [here(1, "a"), here(2, "b")], T0)
    assert d.result == Result.OK and d.flag == (1, 2)


def test_deliver_is_added_then_revived() -> None:
    d = decide([{"new": ACTIVE, "old": ACTIVE}], [here(7, "old", stale=True)], T0)
    assert d.deliver == ("new", "old")
