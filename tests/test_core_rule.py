"""Rules: defaults, correlation keys, signatures, inhibits, and first-match routing through the index."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping

import pytest

from itsmd.core.matcher import Matcher, MatchOp, parse_matcher
from itsmd.core.priority import Level
from itsmd.core.rule import (
    CONTEXT_NAMES,
    DEFAULT_IMPACT,
    DEFAULT_TITLE,
    DEFAULT_URGENCY,
    Escalation,
    Fixed,
    FlappingPolicy,
    Inhibit,
    ProblemPolicy,
    ResolveKind,
    ResolvePolicy,
    Rule,
    RuleSet,
)


def rule(name: str, *matchers: str, group_by: tuple[str, ...] = (), **kwargs: object) -> Rule:
    return Rule(name, tuple(parse_matcher(m) for m in matchers), group_by, **kwargs)  # type: ignore[arg-type]


def test_defaults() -> None:
    r = Rule("r", (), ("instance",))
    assert (r.min_alerts, r.window, r.hold, r.reopen_within) == (1, 300.0, 0.0, 1800.0)
    assert r.resolve == ResolvePolicy(ResolveKind.ALL, 0.0) and str(r.resolve) == "all"
    assert (r.inhibits, r.problem, r.flapping, r.playbooks, r.escalate) == ((), None, None, (), None)
    assert (r.title, r.impact, r.urgency) == (DEFAULT_TITLE, DEFAULT_IMPACT, DEFAULT_URGENCY)
    assert (r.source, r.position) == ("", 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("labels", "title", "impact", "urgency", "priority"),
    [
        ({"alertname": "NodeDown", "severity": "critical"}, "NodeDown", Level.MEDIUM, Level.HIGH, "P2"),
        ({"alertname": "DiskFull", "severity": "warning"}, "DiskFull", Level.MEDIUM, Level.MEDIUM, "P3"),
        ({"severity": "info"}, "my-rule", Level.MEDIUM, Level.LOW, "P4"),  # no common alertname: the rule's name
        ({}, "my-rule", Level.MEDIUM, Level.MEDIUM, "P3"),  # no severity: medium
    ],
)
def test_default_templates(labels: dict[str, str], title: str, impact: Level, urgency: Level, priority: str) -> None:
    r = Rule("my-rule", (), ())
    context = r.context(labels)
    assert r.title.render(context) == title
    assert (r.impact_level(context), r.urgency_level(context), r.priority(context)) == (impact, urgency, priority)


def test_context_has_every_template_name() -> None:
    r = Rule("r", (), ())
    alerts = [{"labels": {"a": "1"}}, {"labels": {"a": "2"}}]
    context = r.context({"a": "1"}, alerts=alerts, service={"tier": 1})
    assert set(context) == set(CONTEXT_NAMES)
    assert (context["rule"], context["alert_count"], context["annotations"], context["incident"]) == ("r", 2, {}, None)


def test_impact_must_render_a_level() -> None:
    r = Rule("r", (), (), impact=Fixed("huge"))
    with pytest.raises(ValueError, match="expected high, medium or low, got 'huge'"):
        r.priority(r.context({}))


@pytest.mark.parametrize(
    ("group_by", "labels", "key"),
    [
        (
            ("cluster", "instance"),
            {"instance": "a:9100", "cluster": "c1", "job": "x"},
            '{cluster="c1", instance="a:9100"}',
        ),
        (("instance", "cluster"), {"instance": "a:9100", "cluster": "c1"}, '{cluster="c1", instance="a:9100"}'),
        (("cluster", "instance"), {"instance": "a"}, '{cluster="", instance="a"}'),  # missing = empty
        ((), {"instance": "a"}, "{}"),  # one incident for the whole rule
        (("msg",), {"msg": 'say "hi", x="y"\n'}, '{msg="say \\"hi\\", x=\\"y\\"\\n"}'),  # escaped: no ambiguity
        (("app.kubernetes.io/name",), {"app.kubernetes.io/name": "web"}, '{"app.kubernetes.io/name"="web"}'),
    ],
)
def test_key(group_by: tuple[str, ...], labels: dict[str, str], key: str) -> None:
    assert Rule("r", (), group_by).key(labels) == key


def test_keys_are_unambiguous() -> None:
    r = Rule("r", (), ("a", "b"))
    assert r.key({"a": 'x", b="y'}) != r.key({"a": "x", "b": "y"})
    assert r.key({"a": ""}) == r.key({})  # Prometheus: an empty label is no label


@pytest.mark.parametrize(
    ("problem", "labels", "signature"),
    [
        (None, {"cluster": "c1", "instance": "a", "namespace": "n"}, 'r{cluster="c1", namespace="n"}'),
        (ProblemPolicy(3, 600.0), {"cluster": "c1", "instance": "a"}, 'r{cluster="c1", namespace=""}'),
        (ProblemPolicy(3, 600.0, by=("instance",)), {"cluster": "c1", "instance": "a"}, 'r{instance="a"}'),
        (ProblemPolicy(3, 600.0, by=()), {"cluster": "c1"}, "r{}"),
    ],
)
def test_signature(problem: ProblemPolicy | None, labels: dict[str, str], signature: str) -> None:
    r = Rule("r", (), ("namespace", "pod", "cluster", "instance"), problem=problem)
    assert r.signature(labels) == signature


def test_escalate_after_defaults_to_hold() -> None:
    assert Rule("r", (), (), hold=120.0).escalate_after == 120.0
    assert Rule("r", (), (), hold=120.0, escalate=Escalation(to=("oncall",))).escalate_after == 120.0
    assert Rule("r", (), (), hold=120.0, escalate=Escalation(after=900.0)).escalate_after == 900.0


def test_inhibit() -> None:
    inhibit = Inhibit((parse_matcher('alertname=~"Node(Cpu|Memory).*"'),), ("cluster", "instance"))
    cause = {"alertname": "NodeExporterDown", "cluster": "c1", "instance": "a"}
    assert inhibit.inhibits(cause, {"alertname": "NodeCpuHigh", "cluster": "c1", "instance": "a", "x": "y"})
    assert not inhibit.inhibits(cause, {"alertname": "NodeCpuHigh", "cluster": "c1", "instance": "b"})
    assert not inhibit.inhibits(cause, {"alertname": "DiskFull", "cluster": "c1", "instance": "a"})
    assert inhibit.inhibits({"instance": "a"}, {"alertname": "NodeMemoryLow", "instance": "a"})  # both lack cluster


@pytest.mark.parametrize(
    "build",
    [
        lambda: Rule("", (), ()),
        lambda: Rule("r", (), (), min_alerts=0),
        lambda: Rule("r", (), (), window=-1.0),
        lambda: Rule("r", (), (), hold=float("inf")),
        lambda: Rule("r", (), ("a", "a")),
        lambda: ResolvePolicy(ResolveKind.ALL, 5.0),
        lambda: ResolvePolicy("sometimes"),  # type: ignore[arg-type]
        lambda: ProblemPolicy(0, 60.0),
        lambda: ProblemPolicy(2, 0.0),
        lambda: FlappingPolicy(1, 60.0),
        lambda: Escalation(repeat=-5.0),
    ],
)
def test_invalid_values_are_refused(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_resolve_policy_text() -> None:
    assert str(ResolvePolicy(ResolveKind.QUIET, 300.0)) == "quiet:300s"
    assert ResolvePolicy("manual").kind is ResolveKind.MANUAL  # type: ignore[arg-type]


# --- routing ---------------------------------------------------------------------------------------------------


def test_first_matching_rule_wins() -> None:
    rules = RuleSet(
        [
            rule("scan-first", 'severity="page"'),
            rule("down-critical", 'alertname="NodeDown"', 'severity="critical"'),
            rule("down-any", 'alertname="NodeDown"'),
            rule("critical", 'severity=~"critical"'),
            rule("everything"),
        ]
    )
    assert rules.route({"alertname": "NodeDown", "severity": "critical"}).name == "down-critical"  # type: ignore[union-attr]
    assert rules.route({"alertname": "NodeDown", "severity": "warning"}).name == "down-any"  # type: ignore[union-attr]
    assert rules.route({"alertname": "NodeDown", "severity": "page"}).name == "scan-first"  # type: ignore[union-attr]
    assert rules.route({"alertname": "Other", "severity": "critical"}).name == "critical"  # type: ignore[union-attr]
    assert rules.route({"alertname": "Other"}).name == "everything"  # type: ignore[union-attr]


def test_unrouted_and_empty() -> None:
    assert RuleSet([rule("a", 'alertname="A"')]).route({"alertname": "B"}) is None
    assert RuleSet().route({"alertname": "B"}) is None
    assert len(RuleSet()) == 0


def test_index_handles_empty_values_and_absent_labels() -> None:
    rules = RuleSet([rule("no-team", 'team=""', 'alertname="X"'), rule("only-empty", 'team=""'), rule("x", 'job="x"')])
    assert rules.route({"alertname": "X"}).name == "no-team"  # type: ignore[union-attr]
    assert rules.route({"alertname": "Y"}).name == "only-empty"  # type: ignore[union-attr]
    assert rules.route({"alertname": "X", "team": "t", "job": "x"}).name == "x"  # type: ignore[union-attr]


def test_by_name_inhibitors_and_order() -> None:
    inhibit = Inhibit((parse_matcher('alertname="B"'),), ())
    a, b, c = rule("a", 'alertname="A"', inhibits=(inhibit,)), rule("b"), rule("c", inhibits=(inhibit,))
    rules = RuleSet([a, b, c])
    assert rules.by_name("b") is b and rules.by_name("zzz") is None
    assert rules.inhibitors() == (a, c)
    assert list(rules) == [a, b, c] == list(rules.rules)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate rule name 'a'"):
        RuleSet([rule("a"), rule("a")])


NAMES = ["alertname", "severity", "job", "cluster", "instance"]
VALUES = ["", "a", "b", "c", "ab", "NodeDown"]
PATTERNS = ["", ".*", ".+", "a|b", "a.*", "[bc]", "NodeDown|ab", "(a)?b?"]


def random_matcher(rng: random.Random) -> Matcher:
    op = rng.choice(list(MatchOp))
    value = rng.choice(PATTERNS if op in (MatchOp.RE, MatchOp.NRE) else VALUES)
    return Matcher(rng.choice(NAMES), op, value)


def random_rules(rng: random.Random, count: int) -> list[Rule]:
    return [
        Rule(f"r{i}", tuple(random_matcher(rng) for _ in range(rng.randint(0, 3))), (), position=i)
        for i in range(count)
    ]


def random_labels(rng: random.Random) -> dict[str, str]:
    return {name: rng.choice(VALUES[1:]) for name in NAMES if rng.random() < 0.7}


def linear_route(rules: list[Rule], labels: Mapping[str, str]) -> Rule | None:
    return next((r for r in rules if all(m.matches(labels) for m in r.matchers)), None)


@pytest.mark.parametrize("seed", range(20))
def test_index_answers_like_a_linear_scan(seed: int) -> None:
    rng = random.Random(seed)
    rules = random_rules(rng, rng.randint(1, 60))
    rule_set = RuleSet(rules)
    for _ in range(300):
        labels = random_labels(rng)
        assert rule_set.route(labels) is linear_route(rules, labels), labels


def test_thousand_rules_same_answers_and_few_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(1000)
    rules = [
        Rule(f"alert-{i}", (Matcher("alertname", MatchOp.EQ, f"Alert{i % 400}"), random_matcher(rng)), ("instance",))
        for i in range(990)
    ] + random_rules(rng, 10)
    rules = [dataclasses.replace(r, name=f"{r.name}-{i}", position=i) for i, r in enumerate(rules)]
    rule_set = RuleSet(rules)
    alerts = [{**random_labels(rng), "alertname": f"Alert{rng.randrange(450)}"} for _ in range(500)]
    for labels in alerts:
        assert rule_set.route(labels) is linear_route(rules, labels)

    checked = 0
    original = Matcher.matches

    def counting(self: Matcher, labels: Mapping[str, str]) -> bool:
        nonlocal checked
        checked += 1
        return original(self, labels)

    monkeypatch.setattr(Matcher, "matches", counting)
    for labels in alerts:
        rule_set.route(labels)
    # At most 3 rules (2 matchers each) share an alertname here, plus the 10 scanned rules (up to 3 matchers each).
    assert 0 < checked <= len(alerts) * (3 * 2 + 10 * 3)
