"""The service catalogue: first-match mapping through the index, dependencies, cycles, the template context."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from itsmd.core.matcher import parse_matcher
from itsmd.core.priority import Level, impact_of_tier
from itsmd.core.rule import DEFAULT_IMPACT, Rule
from itsmd.core.service import UNMAPPED, Catalogue, Service, dependency_cycles, format_cycle, service_context
from itsmd.template import compile_template
from tests.test_core_rule import random_labels, random_matcher


def service(name: str, *matchers: str, depends_on: tuple[str, ...] = (), **kwargs: object) -> Service:
    return Service(name, tuple(parse_matcher(m) for m in matchers) or (parse_matcher(f'service="{name}"'),),
                   depends_on=depends_on, **kwargs)  # type: ignore[arg-type]


CATALOGUE = Catalogue([
    service("node", 'job="node-exporter"', owner="infra", tier=2),
    service("postgres-main", 'job="postgres"', 'cluster="main"', owner="dba", tier=1, depends_on=("node",)),
    service("postgres-any", 'job="postgres"', owner="dba", tier=2, depends_on=("node",)),
    service("checkout", 'namespace="checkout"', owner="payments", tier=1, depends_on=("postgres-main", "dns")),
    service("dns", 'job=~"coredns|kube-dns"', owner="platform", tier=1),
    service("reports", 'namespace=~"reports|reports-.*"', owner="analytics", tier=3, depends_on=("checkout",)),
])


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"job": "node-exporter", "instance": "a"}, "node"),
        ({"job": "postgres", "cluster": "main"}, "postgres-main"),  # the first of two that match
        ({"job": "postgres", "cluster": "eu"}, "postgres-any"),
        ({"job": "node-exporter", "namespace": "checkout"}, "node"),  # file order decides, not specificity
        ({"namespace": "checkout", "job": "kube-state-metrics"}, "checkout"),
        ({"job": "kube-dns"}, "dns"),  # a regex-only service is scanned
        ({"namespace": "reports-eu"}, "reports"),
        ({"job": "coredns-x"}, None),  # regexes are anchored
        ({"alertname": "Watchdog"}, None),
        ({}, None),
    ],
)
def test_first_matching_service_wins(labels: dict[str, str], expected: str | None) -> None:
    found = CATALOGUE.of(labels)
    assert (found.name if found else None) == expected


@pytest.mark.parametrize(
    ("name", "dependencies"),
    [
        ("node", ()),
        ("postgres-main", ("node",)),
        ("checkout", ("postgres-main", "dns", "node")),  # nearest first
        ("reports", ("checkout", "postgres-main", "dns", "node")),
        ("unknown", ()),
    ],
)
def test_dependencies_are_transitive_nearest_first(name: str, dependencies: tuple[str, ...]) -> None:
    assert CATALOGUE.dependencies(name) == dependencies


def test_diamond_dependencies_are_listed_once() -> None:
    catalogue = Catalogue([service("db"), service("a", depends_on=("db",)), service("b", depends_on=("db",)),
                           service("app", depends_on=("a", "b"))])
    assert catalogue.dependencies("app") == ("a", "b", "db")


def test_lookup_by_name_and_iteration() -> None:
    assert CATALOGUE.by_name("dns") is list(CATALOGUE)[4] and CATALOGUE.by_name("x") is None
    assert CATALOGUE.by_name(None) is None and len(CATALOGUE) == 6 and len(Catalogue()) == 0
    assert Catalogue().of({"job": "x"}) is None and Catalogue().dependencies("x") == ()


@pytest.mark.parametrize(
    ("graph", "cycles"),
    [
        ({}, []),
        ({"a": ["b"], "b": []}, []),
        ({"a": ["a"]}, [("a",)]),
        ({"a": ["b"], "b": ["a"]}, [("a", "b")]),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, [("a", "b", "c")]),
        ({"x": ["a"], "a": ["b"], "b": ["a"]}, [("a", "b")]),  # a path into a cycle is not part of it
        ({"a": ["b", "c"], "b": ["a"], "c": ["a"]}, [("a", "b"), ("a", "c")]),  # one per closing dependency
        ({"a": ["b"], "b": ["gone"]}, []),  # unknown names are skipped (reported elsewhere)
        ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}, []),  # a diamond is no cycle
    ],
)
def test_dependency_cycles(graph: dict[str, list[str]], cycles: list[tuple[str, ...]]) -> None:
    assert dependency_cycles(graph) == cycles


def test_long_chain_needs_no_recursion() -> None:
    graph = {f"s{i}": [f"s{i + 1}"] for i in range(5000)}
    graph["s5000"] = ["s0"]
    [cycle] = dependency_cycles(graph)
    assert len(cycle) == 5001 and format_cycle(("a", "b")) == "a -> b -> a"


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ([service("a"), service("a")], "duplicate service name 'a'"),
        ([service("a", depends_on=("b",))], "service 'a' depends on unknown service 'b'"),
        ([service("a", depends_on=("b",)), service("b", depends_on=("a",))], r"dependency cycle: a -> b -> a"),
        ([service("a", depends_on=("a",))], r"dependency cycle: a -> a"),
    ],
)
def test_catalogue_refuses_inconsistent_services(services: list[Service], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Catalogue(services)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Service("", (parse_matcher('a="1"'),)), "must not be empty"),
        (lambda: Service("a", ()), "at least one matcher"),
        (lambda: service("a", tier=0), "tier must be 1, 2 or 3"),
        (lambda: service("a", tier=4), "tier must be 1, 2 or 3"),
        (lambda: service("a", depends_on=("b", "b")), "names a dependency twice"),
    ],
)
def test_invalid_services_are_refused(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("tier", "impact"), [(1, Level.HIGH), (2, Level.MEDIUM), (3, Level.LOW), (None, Level.MEDIUM)]
)
def test_default_impact_follows_the_tier(tier: int | None, impact: Level) -> None:
    assert impact_of_tier(tier) is impact
    mapped = service_context(service("s", tier=tier)) if tier else UNMAPPED
    rule = Rule("r", (), ())
    assert rule.impact is DEFAULT_IMPACT and rule.impact_level(rule.context({}, service=mapped)) is impact


@pytest.mark.parametrize(
    ("source", "mapped", "unmapped"),
    [
        ("{{ 'high' if service.tier == 1 else 'low' }}", "high", "low"),
        ("{{ 'high' if service and service.tier == 1 else 'low' }}", "high", "low"),
        ("{% if service %}{{ service.name }}/{{ service.owner }}{% else %}none{% endif %}", "checkout/payments",
         "none"),
        ("{{ service.name }} {{ service.tier }}", "checkout 1", "None None"),
        ("{{ (service.tier or 3) <= 2 }}", "True", "False"),
    ],
)
def test_templates_see_the_service_or_a_neutral_unmapped_value(source: str, mapped: str, unmapped: str) -> None:
    template = compile_template(source, names=("service",))
    checkout = CATALOGUE.by_name("checkout")
    assert template.render({"service": service_context(checkout)}) == mapped
    assert template.render({"service": service_context(None)}) == unmapped
    assert Rule("r", (), ()).context({})["service"] is UNMAPPED  # no service given: unmapped


def test_unmapped_is_an_empty_looking_read_only_mapping() -> None:
    assert dict(UNMAPPED) == {"name": None, "owner": None, "tier": None} and not UNMAPPED
    with pytest.raises(KeyError):
        UNMAPPED["other"]
    assert service_context(service("s", owner="o", tier=3)) == {"name": "s", "owner": "o", "tier": 3}


def linear(services: list[Service], labels: Mapping[str, str]) -> Service | None:
    return next((s for s in services if all(m.matches(labels) for m in s.matchers)), None)


@pytest.mark.parametrize("seed", range(10))
def test_index_answers_like_a_linear_scan(seed: int) -> None:
    rng = random.Random(seed)
    services = [Service(f"s{i}", tuple(random_matcher(rng) for _ in range(rng.randint(1, 3))))
                for i in range(rng.randint(1, 60))]
    catalogue = Catalogue(services)
    for _ in range(300):
        labels = random_labels(rng)
        assert catalogue.of(labels) is linear(services, labels), labels
