"""The pipeline's in-memory firing episodes: what is kept, what is forgotten, the size bound."""

from __future__ import annotations

from datetime import UTC, datetime

from itsmd.core.alert import Status
from itsmd.core.episode import Episode
from itsmd.pipeline.firing import FiringEpisodes

T = datetime(2026, 11, 26, tzinfo=UTC)


def ep(fp: str, id_: int | None, status: Status = Status.FIRING) -> Episode:
    return Episode(id_, fp, None, None, status, T, None if status == Status.FIRING else T, None, None, T, T, 1)


def test_keeps_stored_firing_episodes_only() -> None:
    f = FiringEpisodes()
    f.record([ep("a", 1), ep("b", None), ep("c", -1), ep("d", 4, Status.RESOLVED)])
    assert [fp for fp in "abcd" if f.get(fp)] == ["a"]


def test_a_resolve_or_forget_drops_the_entry() -> None:
    f = FiringEpisodes()
    f.record([ep("a", 1), ep("b", 2)])
    f.record([ep("a", 1, Status.RESOLVED)])
    f.forget(["b"])
    assert f.get("a") is None and f.get("b") is None and len(f) == 0


def test_past_capacity_it_empties() -> None:
    f = FiringEpisodes(capacity=3)
    f.record([ep(str(i), i + 1) for i in range(3)])
    assert len(f) == 3
    f.record([ep("x", 9)])
    assert len(f) == 0
