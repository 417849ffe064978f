"""Expectations of rule tests: does what a test expects (only the fields it gives) match what happened, and which
actual item does each expected one stand for (order does not matter)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Item = Mapping[str, Any]


def matches(expected: Any, actual: Any) -> bool:
    """`expected` is a subset of `actual`: mappings compare only the keys expected gives (recursively), numbers
    by value (times are seconds from the test's start), everything else by equality."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=0.0, abs_tol=1e-6)
    return bool(expected == actual)


def project(expected: Any, actual: Any) -> Any:
    """`actual` cut down to the keys `expected` gives (recursively), for showing the two side by side."""
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return {k: project(v, actual[k]) if k in actual else "<absent>" for k, v in expected.items()}
    return actual


def _likeness(expected: Item, actual: Item) -> int:
    return sum(1 for k, v in expected.items() if k in actual and matches(v, actual[k]))


@dataclass(frozen=True, slots=True)
class Pairing:
    pairs: tuple[tuple[int, int], ...]  # (expected index, actual index) that match
    near: tuple[tuple[int, int], ...]  # (expected, actual) that do not match but resemble each other most
    missing: tuple[int, ...]  # expected items with no actual item left
    unexpected: tuple[int, ...]  # actual items no expected item stands for

    @property
    def ok(self) -> bool:
        return not (self.near or self.missing or self.unexpected)


def pair(expected: Sequence[Item], actual: Sequence[Item]) -> Pairing:
    """As many matching (expected, actual) pairs as possible (a maximum bipartite matching, so a loose expected
    item never takes the only actual item a stricter one could match); then the unmatched expected items are paired
    with the unmatched actual items they resemble most."""
    fits = [[j for j, a in enumerate(actual) if matches(e, a)] for e in expected]
    owner: dict[int, int] = {}  # actual index -> expected index

    def augment(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(expected)):
        augment(i, set())
    pairs = sorted((i, j) for j, i in owner.items())
    left_e = [i for i in range(len(expected)) if i not in owner.values()]
    left_a = [j for j in range(len(actual)) if j not in owner]
    near: list[tuple[int, int]] = []
    for i in left_e:
        if not left_a:
            break
        j = max(left_a, key=lambda k: (_likeness(expected[i], actual[k]), -k))
        left_a.remove(j)
        near.append((i, j))
    missing = tuple(i for i in left_e if all(i != n for n, _ in near))
    return Pairing(tuple(pairs), tuple(near), missing, tuple(left_a))
