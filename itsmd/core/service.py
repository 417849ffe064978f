"""Services: the catalogue that says which service an alert belongs to, who owns it, how critical it is (tier)
and what it depends on."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from itsmd.core.matcher import FirstMatch, Matcher

TIERS = (1, 2, 3)  # 1 = most critical; the default impact follows it (priority.impact_of_tier)
CONTEXT_KEYS = ("name", "owner", "tier")  # what templates see of a service


@dataclass(frozen=True, slots=True)
class Service:
    """One service; an alert belongs to the first service of the catalogue whose matchers all match it."""

    name: str
    matchers: tuple[Matcher, ...]
    owner: str | None = None
    tier: int | None = None
    depends_on: tuple[str, ...] = ()  # names of services this one needs: their incidents absorb its alerts

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("service name must not be empty")
        if not self.matchers:
            raise ValueError(f"service {self.name!r} needs at least one matcher")
        if self.tier is not None and self.tier not in TIERS:
            raise ValueError(f"tier must be 1, 2 or 3, got {self.tier!r}")
        if len(set(self.depends_on)) != len(self.depends_on):
            raise ValueError(f"service {self.name!r} names a dependency twice")

    def context(self) -> Mapping[str, Any]:
        """What templates see as `service`."""
        return {"name": self.name, "owner": self.owner, "tier": self.tier}


class _Unmapped(Mapping[str, Any]):
    """`service` in templates when the alerts map to no service: false in a test, and name, owner and tier are
    all null, so `service.tier == 1` is simply false and `{% if service %}` tells the cases apart."""

    __slots__ = ()

    def __getitem__(self, key: str) -> None:
        if key in CONTEXT_KEYS:
            return None
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(CONTEXT_KEYS)

    def __len__(self) -> int:
        return len(CONTEXT_KEYS)

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNMAPPED"


UNMAPPED: Mapping[str, Any] = _Unmapped()


def service_context(service: Service | None) -> Mapping[str, Any]:
    """The template context `service` of `service`, or UNMAPPED."""
    return UNMAPPED if service is None else service.context()


def dependency_cycles(graph: Mapping[str, Sequence[str]]) -> list[tuple[str, ...]]:
    """The cycles of a `depends_on` graph, one for each dependency that closes one (depth first, in the graph's
    order): the names along it, the last depending on the first (`("a",)`: a depends on itself). Names that are
    not keys of `graph` are skipped."""
    state: dict[str, bool] = {}  # True: on the current path; False: done
    cycles: list[tuple[str, ...]] = []
    for root in graph:
        if root in state:
            continue
        path, todo = [root], [iter(graph[root])]
        state[root] = True
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = False
                todo.pop()
            elif nxt in graph and state.get(nxt):
                cycles.append(tuple(path[path.index(nxt) :]))
            elif nxt in graph and nxt not in state:
                state[nxt] = True
                path.append(nxt)
                todo.append(iter(graph[nxt]))
    return cycles


def format_cycle(cycle: Sequence[str]) -> str:
    """`a -> b -> a`."""
    return " -> ".join([*cycle, cycle[0]])


class Catalogue:
    """The services in file order: which one an alert belongs to (first match wins; the cost does not grow with
    their number, see `FirstMatch`) and what each depends on, transitively (nearest first).

    Raises ValueError for a duplicate name, an unknown dependency or a dependency cycle.
    """

    __slots__ = ("_by_name", "_dependencies", "_router", "_services")

    def __init__(self, services: Iterable[Service] = ()) -> None:
        self._services = tuple(services)
        self._by_name: dict[str, Service] = {}
        for service in self._services:
            if service.name in self._by_name:
                raise ValueError(f"duplicate service name {service.name!r}")
            self._by_name[service.name] = service
        for service in self._services:
            for name in service.depends_on:
                if name not in self._by_name:
                    raise ValueError(f"service {service.name!r} depends on unknown service {name!r}")
        cycles = dependency_cycles({s.name: s.depends_on for s in self._services})
        if cycles:
            raise ValueError(f"dependency cycle: {format_cycle(cycles[0])}")
        self._router = FirstMatch((s, s.matchers) for s in self._services)
        self._dependencies = {s.name: self._needs(s) for s in self._services}

    def _needs(self, service: Service) -> tuple[str, ...]:
        """Every service `service` depends on, directly or not: breadth first, so the nearest come first."""
        seen, order = {service.name}, []
        queue = deque(service.depends_on)
        while queue:
            name = queue.popleft()
            if name not in seen:
                seen.add(name)
                order.append(name)
                queue.extend(self._by_name[name].depends_on)
        return tuple(order)

    def __len__(self) -> int:
        return len(self._services)

    def __iter__(self) -> Iterator[Service]:
        return iter(self._services)

    def __repr__(self) -> str:
        return f"Catalogue({len(self._services)} services)"

    def of(self, labels: Mapping[str, str]) -> Service | None:
        """The service an alert with `labels` belongs to: the first whose matchers all match; None: unmapped."""
        return self._router.first(labels)

    def by_name(self, name: str | None) -> Service | None:
        return self._by_name.get(name) if name is not None else None

    def dependencies(self, name: str) -> tuple[str, ...]:
        """The services `name` depends on, transitively, nearest first (none for an unknown name)."""
        return self._dependencies.get(name, ())
