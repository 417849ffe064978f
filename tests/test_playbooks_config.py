"""Playbook files: schema, templates, cross-checks and the refusal of shell steps; the shipped examples load."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from itsmd.config.document import load_validator
from itsmd.config.model import Config
from itsmd.config.playbooks import SCHEMA_NAME, load_playbooks, read_playbooks, shell_problem
from itsmd.config.routing import load_routing
from itsmd.core.binding import Bound, ParamInvalid, bind, context, render_argv
from itsmd.core.playbook import (
    ExecSpec,
    ForEach,
    HttpSpec,
    NotifySpec,
    OnTimeout,
    SleepSpec,
    StepKind,
    WaitResolvedSpec,
)
from itsmd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

DESIGN_EXAMPLE = """
name: restart-node-exporter
for_each: incident
params:
  instance: {from: "{{ labels.instance }}", pattern: '[a-z0-9.-]+(:[0-9]+)?'}
concurrency: {key: "{{ params.instance }}", limit: 1}
cooldown: 10m
rate_limit: {max: 3, per: 1h}
circuit_breaker: {failures: 3, within: 1h, reset_after: 30m}
blast_radius: {max_fraction: 0.4}
approval: {required: false, timeout: 15m, on_timeout: escalate}
timeout: 15m
steps:
  - name: restart
    exec: [/usr/local/libexec/itsmd/restart-exporter, "{{ params.instance }}"]
    timeout: 30s
    retries: {attempts: 2, backoff: 5s}
    idempotent: true
  - name: tell-chat
    when: "{{ steps.restart.exit_code == 0 }}"
    notify: {to: ops-chat, text: "restarted exporter on {{ params.instance }}"}
  - name: verify
    wait_resolved: 10m
on_failure:
  - {name: open-ticket, http: {method: POST, url: "https://tickets.example.org/api",
     json: {host: "{{ params.instance }}"}, headers_file: secrets/tickets.headers, expect: [200, 201], timeout: 10s}}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(directory: Path, text: str, notifiers: tuple[str, ...] = ()) -> list[str]:
    path = write(directory, "p.yaml", text)
    return [p.removeprefix(f"{path}: ") for p in read_playbooks([str(path)], directory, notifiers).problems]


def test_schema_is_valid() -> None:
    assert load_validator(SCHEMA_NAME) is not None


def test_design_example_compiles(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", DESIGN_EXAMPLE)
    (p,) = load_playbooks([str(tmp_path / "*.yaml")], tmp_path, notifiers=["ops-chat"])
    assert (p.name, p.for_each, p.cooldown, p.timeout) == ("restart-node-exporter", ForEach.INCIDENT, 600.0, 900.0)
    assert (p.rate_limit.max, p.rate_limit.per) == (3, 3600.0)
    assert (p.circuit_breaker and p.circuit_breaker.reset_after) == 1800.0
    assert p.blast_radius is not None and p.blast_radius.max_fraction == 0.4
    assert (p.approval.required, p.approval.timeout, p.approval.on_timeout) == (False, 900.0, OnTimeout.ESCALATE)
    assert [s.kind for s in p.steps] == [StepKind.EXEC, StepKind.NOTIFY, StepKind.WAIT_RESOLVED]
    restart, tell, verify = p.steps
    assert isinstance(restart.spec, ExecSpec) and len(restart.spec.argv) == 2
    assert (restart.timeout, restart.retries.attempts, restart.retries.backoff, restart.idempotent) == (
        30.0, 2, 5.0, True)
    assert isinstance(tell.spec, NotifySpec) and tell.spec.to == ("ops-chat",) and tell.when is not None
    assert tell.idempotent  # the default of notify and silence: an outbox key / a silence marker make repeats safe
    assert isinstance(verify.spec, WaitResolvedSpec) and verify.effective_timeout == 600.0
    (ticket,) = p.on_failure
    assert isinstance(ticket.spec, HttpSpec) and ticket.timeout == 10.0 and ticket.spec.expect == (200, 201)
    assert ticket.spec.headers_file == str(tmp_path / "secrets/tickets.headers")
    param = p.params[0]
    assert param.pattern is not None and param.pattern.fullmatch("a.b:9100")
    assert p.step("open-ticket") is ticket


@pytest.mark.parametrize(("step", "message"), [
    ("{name: s, shell: 'systemctl restart {{ params.x }}'}", "steps[0].shell: shell steps do not exist"),
    ("{name: s, exec: 'systemctl restart foo'}", "steps[0].exec: must be an argv list"),
    ("{name: s, exec: [sh, -c, 'echo {{ params.x }}']}", "steps[0].exec: sh -c runs a shell command string"),
    ("{name: s, exec: [/bin/bash, -lc, 'true']}", "steps[0].exec: bash -lc runs a shell command string"),
    ("{name: s, exec: [/usr/bin/env, FOO=1, sh, -c, 'true']}", "steps[0].exec: sh -c runs a shell command"),
    ("{name: s, exec: [busybox, sh, -c, 'true']}", "steps[0].exec: sh -c runs a shell command"),
    ("{name: s, exec: ['{{ labels.prog }}', x]}", "steps[0].exec[0]: the program (argument 0) must be written"),
])
def test_shell_steps_are_refused(tmp_path: Path, step: str, message: str) -> None:
    found = problems(tmp_path, f"name: p\nparams: {{x: {{from: x}}}}\nsteps: [{step}]\n")
    assert any(p.startswith(message) for p in found), found


def test_shell_problem_leaves_scripts_and_other_programs_alone() -> None:
    assert shell_problem(["/bin/sh", "/usr/local/libexec/fix.sh", "-c"]) is None  # -c is the script's argument
    assert shell_problem(["/usr/bin/kubectl", "-c", "x"]) is None
    assert shell_problem(["bash", "--command", "id"]) is not None


def test_every_problem_with_path(tmp_path: Path) -> None:
    found = problems(tmp_path, """
        name: p
        params:
          host: {from: "{{ labels.instance }}", pattern: "[a-z"}
          other: {from: "{{ nope }}"}
        concurrency: {key: "{{ params.missing }}"}
        steps:
          - {name: a, exec: [/bin/true, "{{ steps.b.exit_code }}"]}
          - {name: b, when: "{{ steps.a.bogus }}", sleep: 1s}
          - {name: b, sleep: 2s}
          - {name: c, notify: {to: pager, text: hi}}
          - {name: d, exec: [/bin/true], http: {url: "http://x"}}
          - {name: e, http: {url: "http://x", timeout: 1s}, timeout: 2s}
          - {name: f, exec: [/bin/true, "{% if %}"]}
        """)
    assert found == [
        "concurrency.key: unknown param 'missing' (known: host, other)",
        "params.host.pattern: invalid regular expression: unterminated character set at position 0",
        "params.other.from: unknown name nope; known: alert_count, alerts, annotations, incident, labels, service",
        "steps[0].exec[1]: steps.b is not an earlier step",
        "steps[1].when: steps.a.bogus: a step result has exit_code, status, output, json",
        "steps[2].name: duplicate step name 'b' (also steps[1])",
        "steps[3].notify.to: unknown notifier 'pager'; no notifiers configured",
        "steps[4]: give only one of exec, http, wait_resolved, sleep, notify or silence, not exec and http",
        "steps[5].http.timeout: give timeout on the step or in http, not both",
        "steps[6].exec[1]: template syntax error on line 1: Expected an expression, got 'end of statement block'",
    ], found


def test_duplicate_playbook_names_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: p\nsteps: [{name: s, sleep: 1}]\n")
    write(tmp_path, "b.yaml", "name: p\nsteps: [{name: s, sleep: 1}]\n")
    loaded = read_playbooks([str(tmp_path / "*.yaml")], tmp_path)
    assert loaded.problems == [f"{tmp_path}/b.yaml: name: duplicate playbook name 'p' (also {tmp_path}/a.yaml)"]
    assert [p.name for p in loaded.playbooks] == ["p"] and loaded.declared == {"p"}


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "name: !!python/object/apply:os.system ['id']\nsteps: [{name: s, sleep: 1}]\n")
    assert len(found) == 1 and "invalid YAML" in found[0]


def test_defaults(tmp_path: Path) -> None:
    write(tmp_path, "p.yaml", "name: p\nsteps: [{name: s, exec: [/bin/true]}, {name: t, sleep: 5s}]\n")
    (p,) = load_playbooks([str(tmp_path / "p.yaml")], tmp_path)
    assert (p.for_each, p.cooldown, p.rate_limit.max, p.rate_limit.per, p.circuit_breaker, p.blast_radius) == (
        ForEach.INCIDENT, 0.0, 3, 3600.0, None, None)
    assert (p.concurrency.key, p.concurrency.limit, p.approval.required, p.timeout) == (None, 1, False, 3600.0)
    assert p.steps[0].effective_timeout == 300.0 and isinstance(p.steps[1].spec, SleepSpec)
    assert p.steps[1].effective_timeout == 5.0


def test_routing_checks_rule_playbook_names_and_loads_all_three(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "playbooks").mkdir()
    write(tmp_path / "rules", "r.yaml", "rules: [{name: r, match: [], group_by: [], playbooks: [fix, gone, bad]}]")
    write(tmp_path / "playbooks", "fix.yaml", "name: fix\nsteps: [{name: s, sleep: 1}]\n")
    write(tmp_path / "playbooks", "bad.yaml", "name: bad\nsteps: [{name: s, shell: id}]\n")
    with pytest.raises(ConfigError) as e:
        load_routing(Config.default(tmp_path))
    text = "\n".join(e.value.problems)
    assert "r.yaml: rules[0].playbooks[1]: unknown playbook 'gone'" in text
    assert "bad.yaml: steps[0].shell: shell steps do not exist" in text
    assert "unknown playbook 'bad'" not in text  # declared, only invalid: one problem, not two
    write(tmp_path / "rules", "r.yaml", "rules: [{name: r, match: [], group_by: [], playbooks: [fix]}]")
    (tmp_path / "playbooks" / "bad.yaml").unlink()
    routing = load_routing(Config.default(tmp_path))
    assert routing.playbooks.names() == {"fix"} and len(routing.rules) == 1


def test_shipped_playbooks_and_rules_load_together() -> None:
    config = Config.default(ROOT)
    routing = load_routing(config)
    assert {"restart-node-exporter", "free-disk-space", "restart-k8s-deployment", "scale-k8s-deployment",
            "call-runbook"} <= routing.playbooks.names()


@pytest.mark.parametrize(("argv", "code"), [
    ([], 2), (["a"], 2), (["-oProxyCommand=id", "x.service"], 2), (["host", "--now"], 2),
    (["host", "a;b.service"], 2), (["host", "x.mount"], 2), (["host$(id)", "x.service"], 2),
    (["host", "not-allowlisted.service"], 3),
])
def test_restart_unit_helper_refuses_bad_argv(argv: list[str], code: int) -> None:
    out = subprocess.run([str(ROOT / "libexec" / "itsmd-restart-unit"), *argv], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=10)
    assert out.returncode == code, out.stderr


@pytest.mark.parametrize("instance", ["x; touch /tmp/pwned:9100", "$(id):9100", "-oProxyCommand=id:9100",
                                      "a\nb:9100", "{{7*7}}:9100", "host.:9100"])
def test_shipped_restart_playbook_refuses_hostile_instances(instance: str) -> None:
    playbook = load_routing(Config.default(ROOT)).playbooks.by_name("restart-node-exporter")
    assert playbook is not None
    assert isinstance(bind(playbook, context({"instance": instance}), "INC-1"), ParamInvalid)
    bound = bind(playbook, context({"instance": "node-1.example.org:9100"}), "INC-1")
    assert isinstance(bound, Bound) and bound.target == "node-1.example.org"
    restart = playbook.steps[0].spec
    assert isinstance(restart, ExecSpec)
    assert render_argv(restart, bound.context) == (
        "/usr/local/libexec/itsmd/restart-unit", "node-1.example.org", "prometheus-node-exporter.service")
