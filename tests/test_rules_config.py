"""Rule files: YAML -> JSON Schema -> matchers, templates, cross-checks -> RuleSet; every problem with file and path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from itsmd.config.document import load_validator
from itsmd.config.rules import (
    SCHEMA_NAME,
    RuleDocument,
    compile_rules,
    load_rule_documents,
    load_rules,
    rule_files,
)
from itsmd.core.matcher import Matcher, MatchOp
from itsmd.core.priority import Level
from itsmd.core.rule import DEFAULT_TITLE, Escalation, FlappingPolicy, ProblemPolicy, ResolveKind, ResolvePolicy
from itsmd.errors import ConfigError
from itsmd.template import Template

EXAMPLES = Path(__file__).resolve().parents[1] / "rules"

DESIGN_EXAMPLE = """
rules:
  - name: node-exporter-down
    match: ['alertname="NodeExporterDown"', 'severity=~"critical|warning"']
    group_by: [cluster, instance]
    min_alerts: 1
    window: 5m
    hold: 2m
    title: "{{ labels.instance }} exporter down ({{ alert_count }} alerts)"
    impact: "{{ 'high' if service.tier == 1 else 'medium' }}"
    urgency: "{{ 'high' if labels.severity == 'critical' else 'medium' }}"
    resolve: all
    reopen_within: 30m
    inhibits: [{match: ['alertname=~"Node(Cpu|Memory|Disk).*"'], equal: [instance]}]
    problem: {after: 3, within: 7d}
    flapping: {changes: 6, within: 30m}
    playbooks: [restart-node-exporter]
    escalate: {after: 15m, to: oncall, repeat: 30m}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(globs: list[str], **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_rules(globs, **kwargs)  # type: ignore[arg-type]
    return info.value.problems


def test_schema_is_valid() -> None:
    load_validator(SCHEMA_NAME)


def test_design_example_compiles(tmp_path: Path) -> None:
    write(tmp_path, "node.yaml", DESIGN_EXAMPLE)
    rules = load_rules([str(tmp_path / "*.yaml")], notifiers=["oncall"], playbooks=["restart-node-exporter"])
    rule = rules.by_name("node-exporter-down")
    assert rule is not None and len(rules) == 1
    assert rule.matchers == (
        Matcher("alertname", MatchOp.EQ, "NodeExporterDown"),
        Matcher("severity", MatchOp.RE, "critical|warning"),
    )
    assert (rule.group_by, rule.min_alerts, rule.window, rule.hold) == (("cluster", "instance"), 1, 300.0, 120.0)
    assert isinstance(rule.title, Template) and rule.title.source.startswith("{{ labels.instance }}")
    assert rule.resolve == ResolvePolicy(ResolveKind.ALL) and rule.reopen_within == 1800.0
    assert rule.inhibits[0].matchers == (Matcher("alertname", MatchOp.RE, "Node(Cpu|Memory|Disk).*"),)
    assert rule.inhibits[0].equal == ("instance",)
    assert rule.problem == ProblemPolicy(3, 7 * 86400.0, None)
    assert rule.flapping == FlappingPolicy(6, 1800.0)
    assert rule.playbooks == ("restart-node-exporter",)
    assert rule.escalate == Escalation(after=900.0, to=("oncall",), repeat=1800.0)
    assert (rule.source, rule.position) == (str(tmp_path / "node.yaml"), 0)
    context = rule.context({"instance": "a", "severity": "critical"}, alerts=[{}], service={"tier": 1})
    assert rule.title.render(context) == "a exporter down (1 alerts)"
    assert rule.priority(context) == "P1"


def test_minimal_rule_takes_the_defaults(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules: [{name: all, match: [], group_by: []}]")
    rule = load_rules([str(tmp_path / "*.yaml")]).rules[0]
    assert (rule.matchers, rule.group_by, rule.min_alerts, rule.window, rule.hold) == ((), (), 1, 300.0, 0.0)
    assert rule.title is DEFAULT_TITLE and rule.escalate is None and rule.problem is None
    assert rule.urgency_level(rule.context({"severity": "critical"})) is Level.HIGH
    assert rule.impact_level(rule.context({})) is Level.MEDIUM


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("all", ResolvePolicy(ResolveKind.ALL)),
        ("any", ResolvePolicy(ResolveKind.ANY)),
        ("manual", ResolvePolicy(ResolveKind.MANUAL)),
        ("quiet:5m", ResolvePolicy(ResolveKind.QUIET, 300.0)),
        ("quiet:1h30m", ResolvePolicy(ResolveKind.QUIET, 5400.0)),
    ],
)
def test_resolve(tmp_path: Path, text: str, policy: ResolvePolicy) -> None:
    write(tmp_path, "a.yaml", f"rules: [{{name: r, match: [], group_by: [], resolve: '{text}'}}]")
    assert load_rules([str(tmp_path / "a.yaml")]).rules[0].resolve == policy


def test_escalate_to_takes_a_name_or_a_list(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        rules:
          - {name: one, match: [], group_by: [], escalate: {to: oncall}}
          - {name: two, match: [], group_by: [], escalate: {to: [oncall, chat], after: 90}}
          - {name: default, match: [], group_by: [], escalate: {repeat: 1h}}
        """,
    )
    one, two, default = load_rules([str(tmp_path / "a.yaml")], notifiers=["oncall", "chat"])
    assert one.escalate == Escalation(to=("oncall",))
    assert two.escalate == Escalation(after=90.0, to=("oncall", "chat"))
    assert default.escalate == Escalation(repeat=3600.0) and default.escalate_after == 0.0


def test_every_problem_with_file_and_path(tmp_path: Path) -> None:
    write(
        tmp_path,
        "bad.yaml",
        """
        rules:
          - name: first
            match: ['alertname="A"', 'severity=~"(critical"', 'junk']
            group_by: [instance, instance]
            min_alerts: 0
            window: 5 minutes
            title: "{{ labels.instance }"
            impact: huge
            urgency: "{{ label.severity }}"
            resolve: quiet:soon
            inhibits: [{match: ['alertname=~"x"'], equal: [instance]}, {match: []}, {equal: [x]}]
            problem: {after: 0, within: 7d}
            flapping: {changes: 6}
            playbooks: [restart, missing]
            escalate: {to: [pager], repeat: 0}
            colour: blue
          - name: "bad name!"
            group_by: []
          - just a string
        extra: 1
        """,
    )
    problems = problems_of([str(tmp_path / "*.yaml")], notifiers=["oncall"], playbooks=["restart"])
    file = str(tmp_path / "bad.yaml")
    expected = [
        "(root): unknown key 'extra'",
        "rules[0]: unknown key 'colour'",
        "rules[0].escalate.repeat: repeat must be more than 0; leave it out to page once",
        "rules[0].escalate.to[0]: unknown notifier 'pager' (known: oncall)",
        "rules[0].flapping: 'within' is a required property",
        "rules[0].group_by: ['instance', 'instance'] has non-unique elements",
        "rules[0].impact: expected high, medium or low, got 'huge'",
        "rules[0].inhibits[1].match: [] should be non-empty",
        "rules[0].inhibits[2]: 'match' is a required property",
        "rules[0].match[1]: invalid regex '(critical': missing ), unterminated subpattern",
        "rules[0].match[2]: invalid matcher 'junk': expected an operator (=, !=, =~ or !~) after junk, "
        "found the end (column 5)",
        "rules[0].min_alerts: must be a whole number >= 1",
        "rules[0].playbooks[1]: unknown playbook 'missing' (known: restart)",
        "rules[0].problem.after: must be a whole number >= 1",
        "rules[0].resolve: must be all, any, manual or quiet:<duration> like quiet:5m",
        "rules[0].title: template syntax error on line 1: unexpected '}'",
        "rules[0].urgency: unknown name label; known: alert_count, alerts, annotations, incident, labels, rule, "
        "service",
        "rules[0].window: must be a duration like 30s, 5m, 1h30m, 7d (units w d h m s ms, largest first) or a "
        "number of seconds >= 0",
        "rules[1]: 'match' is a required property",
        "rules[1].name: must be a name of letters, digits and _ . @ - (starting with a letter or digit)",
        "rules[2]: expected object, got string",
    ]
    assert problems == [f"{file}: {p}" for p in expected]


def test_duplicate_names_across_files_name_the_other_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules: [{name: x, match: [], group_by: []}, {name: y, match: [], group_by: []}]")
    write(tmp_path, "b.yaml", "rules: [{name: y, match: [], group_by: []}, {name: x, match: [], group_by: []}]")
    write(tmp_path, "c.yaml", "rules: [{name: z, match: [], group_by: []}, {name: z, match: [], group_by: []}]")
    a, b, c = (str(tmp_path / f"{n}.yaml") for n in "abc")
    assert problems_of([str(tmp_path / "*.yaml")]) == [
        f"{b}: rules[0].name: duplicate rule name 'y' (also {a}: rules[1])",
        f"{b}: rules[1].name: duplicate rule name 'x' (also {a}: rules[0])",
        f"{c}: rules[1].name: duplicate rule name 'z' (also rules[0])",
    ]


def test_duplicate_name_of_a_broken_rule_is_still_reported(tmp_path: Path) -> None:
    write(
        tmp_path, "a.yaml", "rules: [{name: x, match: ['a=~\"(\"'], group_by: []}, {name: x, match: [], group_by: []}]"
    )
    problems = problems_of([str(tmp_path / "a.yaml")])
    assert [p.split(": ", 1)[1] for p in problems] == [
        "rules[0].match[0]: invalid regex '(': missing ), unterminated subpattern",
        "rules[1].name: duplicate rule name 'x' (also rules[0])",
    ]


@pytest.mark.parametrize(
    ("notifiers", "message"),
    [
        ((), "unknown notifier 'oncall'; no notifiers configured"),
        (("chat", "mail"), "unknown notifier 'oncall' (known: chat, mail)"),
    ],
)
def test_unknown_notifier(tmp_path: Path, notifiers: tuple[str, ...], message: str) -> None:
    path = write(tmp_path, "a.yaml", "rules: [{name: r, match: [], group_by: [], escalate: {to: oncall}}]")
    assert problems_of([str(path)], notifiers=notifiers) == [f"{path}: rules[0].escalate.to: {message}"]


def test_playbooks_are_checked_only_when_known(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "rules: [{name: r, match: [], group_by: [], playbooks: [fix-it]}]")
    assert load_rules([str(path)]).rules[0].playbooks == ("fix-it",)
    assert problems_of([str(path)], playbooks=[]) == [f"{path}: rules[0].playbooks[0]: unknown playbook 'fix-it'"]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("rules: [{name: r, match: [], group_by: [], title: {a: b}}]", "quote one that starts with {{"),
        ("rules: [{name: r, match: [], group_by: [], impact: '{{ x }}'}]", "unknown name x"),
        ("rules: [{name: r, match: [], group_by: [], title: '{{ x | nosuch }}'}]", "nosuch"),
        ("rules: [{name: r, match: [], group_by: [], problem: {after: 2, within: 0}}]", "within must be more than 0"),
        ("rules: [{name: r, match: [], group_by: [], flapping: {changes: 1, within: 1h}}]", "whole number >= 2"),
        ("rules: [{name: r, match: [], group_by: [], escalate: {to: []}}]", "non-empty list"),
        ("rules: [{name: r, match: [], group_by: [], window: -5}]", "must be a duration"),
        ("rules: [{name: r, match: [''], group_by: []}]", "must be a matcher like"),
        ("rules: [{name: r, match: [], group_by: [''], hold: 1s}]", "non-empty label name"),
        ("rules: [{name: r, group_by: []}]", "'match' is a required property"),
        ("rules: [{name: r, match: []}]", "'group_by' is a required property"),
        ("{}", "'rules' is a required property"),
        ("[1, 2]", "expected object, got array"),
        ("rules: [a: b", "invalid YAML at line 1"),
    ],
)
def test_single_problems(tmp_path: Path, yaml_text: str, message: str) -> None:
    path = write(tmp_path, "a.yaml", yaml_text)
    problems = problems_of([str(path)])
    assert len(problems) == 1 and problems[0].startswith(f"{path}: ") and message in problems[0], problems


def test_invalid_yaml_is_reported_with_the_problems_of_other_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules: [\n")
    write(tmp_path, "b.yaml", "rules: [{name: r, match: ['x'], group_by: []}]")
    problems = problems_of([str(tmp_path / "*.yaml")])
    assert problems[0].startswith(f"{tmp_path / 'a.yaml'}: (root): invalid YAML")
    assert problems[1].startswith(f"{tmp_path / 'b.yaml'}: rules[0].match[0]: invalid matcher 'x'")
    assert len(problems) == 2
    with pytest.raises(ConfigError) as info:
        load_rule_documents([str(tmp_path / "*.yaml")])
    assert len(info.value.problems) == 1


def test_globs_matching_nothing_and_empty_files_are_fine(tmp_path: Path) -> None:
    assert len(load_rules([str(tmp_path / "nothing" / "*.yaml")])) == 0
    write(tmp_path, "empty.yaml", "# no rules yet\n")
    write(tmp_path, "none.yaml", "rules: []\n")
    assert len(load_rules([str(tmp_path / "*.yaml")])) == 0


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()  # a directory that a glob matches is skipped, not read
    path = write(tmp_path, "a.yaml", "rules: []")
    assert len(load_rules([str(tmp_path / "*.yaml")])) == 0
    path.chmod(0o000)
    try:
        if path.read_bytes() is not None:  # running as root: permissions do not apply
            pytest.skip("file permissions are not enforced for this user")
    except PermissionError:
        assert problems_of([str(tmp_path / "*.yaml")]) == [f"{path}: (root): cannot read {path}: Permission denied"]
    finally:
        path.chmod(0o644)


def test_files_in_sorted_order_per_glob_each_once_positions_global(tmp_path: Path) -> None:
    (tmp_path / "extra").mkdir()
    write(tmp_path, "b.yaml", "rules: [{name: b1, match: [], group_by: []}, {name: b2, match: [], group_by: []}]")
    write(tmp_path, "a.yaml", "rules: [{name: a1, match: ['x=\"1\"'], group_by: []}]")
    write(tmp_path / "extra", "z.yaml", "rules: [{name: z1, match: [], group_by: []}]")
    globs = [str(tmp_path / "extra" / "*.yaml"), str(tmp_path / "*.yaml"), str(tmp_path / "a.yaml")]
    assert rule_files(globs) == [tmp_path / "extra" / "z.yaml", tmp_path / "a.yaml", tmp_path / "b.yaml"]
    rules = load_rules(globs)
    assert [(r.name, r.position, Path(r.source).name) for r in rules] == [
        ("z1", 0, "z.yaml"),
        ("a1", 1, "a.yaml"),
        ("b1", 2, "b.yaml"),
        ("b2", 3, "b.yaml"),
    ]
    assert rules.route({"x": "1"}).name == "z1"  # type: ignore[union-attr]


def test_compile_rules_from_documents_in_memory() -> None:
    documents = [RuleDocument("inline", {"rules": [{"name": "r", "match": ['a="1"'], "group_by": ["b"]}]})]
    rules = compile_rules(documents)
    assert rules.route({"a": "1"}).key({"b": "2"}) == '{b="2"}'  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"inline: rules\[0\]\.match\[0\]: invalid regex"):
        compile_rules([RuleDocument("inline", {"rules": [{"name": "r", "match": ['a=~"["'], "group_by": []}]})])


def test_shipped_example_rules_load() -> None:
    files = rule_files([str(EXAMPLES / "*.yaml")])
    assert files, "rules/*.yaml ships examples"
    shipped = [p.stem for p in (EXAMPLES.parent / "playbooks").glob("*.yaml")]  # each file is named as its playbook
    rules = load_rules([str(EXAMPLES / "*.yaml")], playbooks=shipped)
    names = [r.name for r in rules]
    assert names[-1] == "critical-catch-all"  # rules/zz-catch-all.yaml: read last, so it takes only the rest
    assert {"node-exporter-down", "disk-space-low", "kube-pod-crash-looping", "endpoint-down",
            "database-down"} <= set(names)
    down = {"alertname": "NodeExporterDown", "severity": "critical", "cluster": "c1", "instance": "n1:9100"}
    rule = rules.route(down)
    assert rule is not None and rule.name == "node-exporter-down"
    assert rule.key(down) == '{cluster="c1", instance="n1:9100"}'
    symptom = {"alertname": "NodeMemoryHigh", "severity": "warning", "cluster": "c1", "instance": "n1:9100"}
    assert rule in rules.inhibitors() and rule.inhibits[0].inhibits(down, symptom)
    context = rule.context(down, alerts=[{}, {}], service=None)
    assert rule.title.render(context) == "n1:9100 exporter down (2 alerts)"
    assert rule.priority(context) == "P2"
    crash = {
        "alertname": "KubePodCrashLooping",
        "severity": "warning",
        "cluster": "c1",
        "namespace": "shop",
        "pod": "p",
    }
    crash_rule = rules.route(crash)
    assert crash_rule is not None and crash_rule.flapping is not None
    assert crash_rule.signature(crash) == 'kube-pod-crash-looping{cluster="c1", namespace="shop"}'
    assert rules.route({**crash, "namespace": "dev-1"}) is None  # dev namespaces are left unrouted
    catch_all = rules.route({"alertname": "Other", "severity": "critical"})
    assert catch_all is not None and catch_all.title.render(catch_all.context({"alertname": "Other"})) == "Other"
    assert catch_all.priority(catch_all.context({})) == "P2"


def test_itsmd_check_reports_rule_problems(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "rules").mkdir()
    bad = "rules:\n  - name: x\n    match: ['alertname=~\"(\"']\n    group_by: []\n"
    (tmp_path / "rules" / "bad.yaml").write_text(bad)
    out = subprocess.run([sys.executable, "-m", "itsmd", "check"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert "bad.yaml: rules[0].match[0]:" in out.stdout, out.stdout


def test_problem_policy_with_and_without_by(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", """
        rules:
          - {name: by, match: [], group_by: [cluster, pod], problem: {after: 2, within: 1d, by: [cluster, job]}}
          - {name: default, match: [], group_by: [cluster, pod], problem: {after: 3, within: 7d}}
          - {name: a0, match: [], group_by: [], problem: {after: 0, within: 1h}}
          - {name: w0, match: [], group_by: [], problem: {after: 2, within: 0s}}
          - {name: nb, match: [], group_by: [], problem: {after: 2, within: 1h, by: cluster}}
          - {name: nw, match: [], group_by: [], problem: {after: 2}}
        """)
    path = tmp_path / "a.yaml"
    assert problems_of([str(path)]) == [
        f"{path}: rules[2].problem.after: must be a whole number >= 1",
        f"{path}: rules[3].problem: within must be more than 0",
        f"{path}: rules[4].problem.by: expected array, got string",
        f"{path}: rules[5].problem: 'within' is a required property",
    ]
    write(tmp_path, "a.yaml", "\n".join(path.read_text().splitlines()[:4]))
    rules = load_rules([str(path)])
    by, default = rules.by_name("by"), rules.by_name("default")
    assert by is not None and by.problem == ProblemPolicy(2, 86400.0, ("cluster", "job"))
    assert by.signature_labels == ("cluster", "job")
    assert default is not None and default.signature_labels == ("cluster",)  # pod is volatile
