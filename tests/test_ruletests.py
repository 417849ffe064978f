"""`itsmd test`: rule test files run on the real pipeline with a fake clock; PASS/FAIL, diffs, exit codes,
schema problems, deadlines between steps, config discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from itsmd.cli import main
from itsmd.core.expectation import matches, pair

RULES = """\
rules:
  - name: exporter-down
    match: ['alertname="ExporterDown"']
    group_by: [instance]
    inhibits: [{match: ['alertname="CpuHigh"'], equal: [instance]}]
  - name: quiet
    match: ['alertname="Flaky"']
    group_by: [instance]
    resolve: quiet:5m
"""

PASSING = """\
rules: [rules/*.yaml]
tests:
  - name: exporter down takes its symptom and resolves
    alerts:
      - {at: 0s, labels: {alertname: ExporterDown, instance: a}}
      - {at: 30s, labels: {alertname: CpuHigh, instance: a}}
      - {at: 4m, labels: {alertname: ExporterDown, instance: a}, status: resolved}
    expect:
      - {at: 1m, incidents: [{rule: exporter-down, state: open, alert_count: 2, opened_at: 0s}]}
      - {at: 5m, incidents: [{rule: exporter-down, state: resolved, resolved_at: 4m, resolution: self_healed}]}
  - name: order does not matter
    alerts:
      - {at: 0s, labels: {alertname: ExporterDown, instance: a}}
      - {at: 0s, labels: {alertname: ExporterDown, instance: b}}
    expect:
      - at: 10s
        incidents:
          - {labels: {instance: b}}
          - {labels: {instance: a}, state: open}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write(tmp_path, "rules/rules.yaml", RULES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_passing_file_exits_0(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "t.yaml", PASSING)
    assert main(["test", "t.yaml"]) == 0
    out = capsys.readouterr().out
    assert "PASS  exporter down takes its symptom and resolves" in out
    assert "PASS  order does not matter" in out
    assert "2 passed, 0 failed" in out


def test_failing_expectation_exits_1_with_a_diff(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "t.yaml", PASSING.replace("alert_count: 2", "alert_count: 3"))
    assert main(["test", "t.yaml"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  exporter down takes its symptom and resolves" in out
    assert "at 1m: incidents differ (0 of 1 expected matched, 1 present)" in out
    assert "-  alert_count: 3" in out and "+  alert_count: 2" in out
    assert "   state: open" in out  # unchanged context
    assert "PASS  order does not matter" in out and "1 passed, 1 failed" in out


def test_an_extra_incident_fails_and_is_shown(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "t.yaml", """\
rules: [rules/*.yaml]
tests:
  - name: two, one expected
    alerts:
      - {at: 0s, labels: {alertname: ExporterDown, instance: a}}
      - {at: 0s, labels: {alertname: ExporterDown, instance: b}}
    expect:
      - {at: 1m, incidents: [{labels: {instance: b}}]}
""")
    assert main(["test", "t.yaml"]) == 1
    out = capsys.readouterr().out
    assert "+- id: INC-1" in out
    assert "1 of 1 expected matched, 2 present" in out


def test_quiet_resolution_happens_when_due_between_steps(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "t.yaml", """\
rules: [rules/*.yaml]
tests:
  - name: quiet
    alerts:
      - {at: 0s, labels: {alertname: Flaky, instance: a}}
      - {at: 1m, labels: {alertname: Flaky, instance: a}, status: resolved}
    expect:
      - {at: 5m, incidents: [{state: open, restored_at: 1m}]}
      - {at: 2h, incidents: [{state: resolved, resolved_at: 6m, restored_at: 1m}]}
""")
    assert main(["test", "t.yaml"]) == 0, capsys.readouterr().out


RUN_RULES = """\
rules:
  - {name: exporter-down, match: ['alertname="ExporterDown"'], group_by: [instance], playbooks: [restart]}
"""
RESTART = """\
name: restart
params: {host: {from: "{{ labels.instance }}", pattern: '[a-z]+'}}
concurrency: {key: "{{ params.host }}", limit: 1}
steps:
  - {name: touch, exec: [/usr/bin/touch, "{{ marker }}"]}
"""


def test_runs_the_pipeline_created_are_seen_and_not_executed(project: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "executed"
    write(project, "rules/rules.yaml", RUN_RULES)
    write(project, "playbooks/restart.yaml", RESTART.replace("{{ marker }}", str(marker)))
    write(project, "t.yaml", """\
rules: [rules/*.yaml]
playbooks: [playbooks/*.yaml]
tests:
  - name: one dry run per opened incident, cancelled once it resolves
    alerts:
      - {at: 0s, labels: {alertname: ExporterDown, instance: a}}
      - {at: 2m, labels: {alertname: ExporterDown, instance: a}, status: resolved}
    expect:
      - {at: 1m, runs: [{playbook: restart, state: pending, target: a, incident_id: INC-1, created_at: 0s}]}
      - {at: 3m, runs: [{playbook: restart, state: cancelled, reason: resolved, finished_at: 2m}]}
  - name: a wrong expectation fails with a diff
    alerts: [{at: 0s, labels: {alertname: ExporterDown, instance: b}}]
    expect: [{at: 1m, runs: [{playbook: restart, target: a}]}]
""")
    code = main(["test", "t.yaml"])
    out = capsys.readouterr().out
    assert code == 1
    assert "PASS  one dry run per opened incident" in out
    assert "FAIL  a wrong expectation fails" in out and "at 1m: runs differ" in out and "+  target: b" in out
    assert not marker.exists()  # dry: nothing executed


def test_schema_problems_are_file_path_message(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "t.yaml", """\
tests:
  - name: typo
    alerts: [{at: soon, labels: {alertname: X}}]
    expect: [{at: 1m, incidents: [{alerts_count: 1}]}, {at: 2m}]
""")
    assert main(["test", "t.yaml"]) == 1
    out = capsys.readouterr().out
    assert "t.yaml: tests[0].alerts[0].at: must be a duration like 30s" in out
    assert "t.yaml: tests[0].expect[0].incidents[0]: unknown key 'alerts_count'" in out
    assert "t.yaml: tests[0].expect[1]: an expectation needs `at` and at least one of incidents" in out


def test_bad_rules_are_reported_and_fail(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "bad/r.yaml", "rules:\n  - {name: x, match: ['alertname=~\"(\"'], group_by: []}\n")
    write(project, "t.yaml", "rules: [bad/*.yaml]\n" + PASSING.split("\n", 1)[1])
    assert main(["test", "t.yaml"]) == 1
    assert "bad/r.yaml: rules[0].match[0]" in capsys.readouterr().out


def test_rules_come_from_the_config_when_the_file_names_none(project: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    other = write(project, "elsewhere/r.yaml", RULES.replace("exporter-down", "from-config"))
    suite = PASSING.split("\n", 1)[1].replace("exporter-down", "from-config")
    write(project, "tests/t.yaml", suite)
    # no itsmd.yaml: the defaults, ./rules/*.yaml, whose rule is named exporter-down
    assert main(["test", "tests/t.yaml"]) == 1
    # ./itsmd.yaml is found without -c
    write(project, "itsmd.yaml", f"rules: ['{other.parent.name}/*.yaml']\n")
    assert main(["test", "tests/t.yaml"]) == 0
    # -c wins over ./itsmd.yaml
    write(project, "c2.yaml", "rules: [rules/*.yaml]\n")
    assert main(["test", "-c", "c2.yaml", "tests/t.yaml"]) == 1
    capsys.readouterr()


def test_expectation_subset_and_pairing() -> None:
    assert matches({"labels": {"a": "1"}}, {"labels": {"a": "1", "b": "2"}, "state": "open"})
    assert not matches({"labels": {"a": "1"}}, {"labels": {"b": "2"}})
    assert not matches({"flapping": False}, {"flapping": 0})
    assert matches({"opened_at": 60}, {"opened_at": 60.0000001})
    # the loose expectation must not take the only item the strict one fits
    p = pair([{"state": "open"}, {"state": "open", "rule": "r"}],
             [{"state": "open", "rule": "r"}, {"state": "open", "rule": "s"}])
    assert p.ok and sorted(p.pairs) == [(0, 1), (1, 0)]
    p = pair([{"rule": "x"}], [{"rule": "y"}, {"rule": "z"}])
    assert not p.ok and p.near == ((0, 0),) and p.unexpected == (1,)


def test_shipped_rule_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[1]
    files = sorted(str(p) for p in (root / "rules" / "tests").glob("*.yaml"))
    assert len(files) >= 4
    assert main(["test", "-c", str(root / "itsmd.example.yaml"), *files]) == 0, capsys.readouterr().out
