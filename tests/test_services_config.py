"""The service catalogue file: YAML -> JSON Schema -> matchers and cross-checks -> Catalogue; every problem with
file and path; loaded with the rules by `itsmd check`, serve and reload."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from itsmd.config import load_config
from itsmd.config.document import load_validator
from itsmd.config.routing import load_routing
from itsmd.config.services import SCHEMA_NAME, compile_services, load_services
from itsmd.core.matcher import Matcher, MatchOp
from itsmd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

DESIGN_EXAMPLE = """
services:
  - {name: postgres-main, owner: dba-team, tier: 1, match: ['job="postgres"']}
  - {name: checkout, owner: payments-team, tier: 1, match: ['service="checkout"'], depends_on: [postgres-main]}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_services(path)
    return info.value.problems


def test_schema_is_valid() -> None:
    load_validator(SCHEMA_NAME)


def test_design_example_compiles(tmp_path: Path) -> None:
    catalogue = load_services(write(tmp_path / "services.yaml", DESIGN_EXAMPLE))
    postgres, checkout = list(catalogue)
    assert (postgres.name, postgres.owner, postgres.tier, postgres.depends_on) == ("postgres-main", "dba-team", 1, ())
    assert postgres.matchers == (Matcher("job", MatchOp.EQ, "postgres"),)
    assert checkout.depends_on == ("postgres-main",)
    assert catalogue.of({"service": "checkout", "job": "app"}) is checkout
    assert catalogue.dependencies("checkout") == ("postgres-main",)


@pytest.mark.parametrize("text", ["", "services: []\n", "# only a comment\n"])
def test_empty_catalogues(tmp_path: Path, text: str) -> None:
    assert len(load_services(write(tmp_path / "s.yaml", text))) == 0


def test_no_file_is_no_catalogue() -> None:
    assert len(load_services(None)) == 0


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        (
            "services:\n  - {name: a, match: ['x=\"1\"'], depends_on: [b]}\n",
            ["services[0].depends_on[0]: unknown service 'b' (known: a)"],
        ),
        (
            "services:\n  - {name: a, match: ['x=\"1\"']}\n  - {name: a, match: ['x=\"2\"']}\n",
            ["services[1].name: duplicate service name 'a' (also services[0])"],
        ),
        (
            "services:\n  - {name: a, match: ['x=\"1\"'], depends_on: [b]}\n"
            "  - {name: b, match: ['x=\"2\"'], depends_on: [c]}\n"
            "  - {name: c, match: ['x=\"3\"'], depends_on: [a]}\n",
            ["services[2].depends_on[0]: dependency cycle: a -> b -> c -> a"],
        ),
        (
            "services:\n  - {name: a, match: ['x=\"1\"'], depends_on: [a]}\n",
            ["services[0].depends_on[0]: dependency cycle: a -> a"],
        ),
        (
            "services:\n  - {name: a, match: ['x=~\"(\"', 'y=\"ok\"', 'z==1']}\n",
            ["services[0].match[0]: invalid regex '(': missing ), unterminated subpattern",
             "services[0].match[2]: invalid matcher 'z==1': expected value after z=, found '=' (column 3)"],
        ),
        (
            "services:\n  - {name: a, tier: 1, match: ['x=\"1\"']}\n",
            ["services[0]: a tier 1 service needs an owner"],
        ),
        (
            "services:\n  - {name: a, tier: 3, match: ['x=\"1\"']}\n  - {name: b, tier: 5, match: ['x=\"1\"']}\n",
            ["services[1].tier: must be 1, 2 or 3"],  # tier 3 needs no owner; a bad tier is one problem only
        ),
        (
            "services:\n  - {name: 'bad name', match: [], owner: '', team: x}\n",
            ["services[0]: unknown key 'team'", "services[0].match: must be a non-empty list of matchers",
             "services[0].name: must be a name of letters, digits and _ . @ - (starting with a letter or digit, "
             "at most 200)", "services[0].owner: must be a non-empty team name of at most 200 characters"],
        ),
        ("services:\n  - {name: a}\n", ["services[0]: 'match' is a required property"]),
        ("services: {a: 1}\n", ["services: expected array, got object"]),
        ("service: []\n", ["(root): unknown key 'service'", "(root): 'services' is a required property"]),
        ("[1, 2]\n", ["(root): expected object, got array"]),
    ],
)
def test_problems_with_file_and_path(tmp_path: Path, text: str, problems: list[str]) -> None:
    path = write(tmp_path / "services.yaml", text)
    assert problems_of(path) == [f"{path}: {p}" for p in problems]


def test_every_problem_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "services.yaml", """
        services:
          - {name: db, owner: dba, tier: 1, match: ['job="db"'], depends_on: [app, gone]}
          - {name: app, owner: dev, tier: 2, match: ['job="app"'], depends_on: [db]}
          - {name: app, match: ['job=~"["']}
          - {name: x, match: ['a="1"'], depends_on: [app]}
    """)
    assert problems_of(path) == [
        f"{path}: services[0].depends_on[1]: unknown service 'gone' (known: app, db, x)",
        f"{path}: services[1].depends_on[0]: dependency cycle: db -> app -> db",
        f"{path}: services[2].match[0]: invalid regex '[': unterminated character set",
        f"{path}: services[2].name: duplicate service name 'app' (also services[1])",
    ]


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert problems_of(missing)[0].startswith(f"{missing}: (root): cannot read")
    bad = write(tmp_path / "bad.yaml", "services: [\n")
    assert problems_of(bad)[0].startswith(f"{bad}: (root): invalid YAML at line")


def test_compile_from_a_document_in_memory() -> None:
    catalogue = compile_services({"services": [{"name": "a", "match": ['x="1"']}]}, "inline")
    assert [s.name for s in catalogue] == ["a"]
    with pytest.raises(ConfigError, match=r"inline: services\[0\]\.depends_on\[0\]: unknown service 'z'"):
        compile_services({"services": [{"name": "a", "match": ['x="1"'], "depends_on": ["z"]}]}, "inline")


def test_config_names_the_catalogue_relative_to_its_folder(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    write(etc / "itsmd.yaml", "services: catalogue/services.yaml\nrules: [rules/*.yaml]\n")
    (etc / "catalogue").mkdir()
    write(etc / "catalogue" / "services.yaml", DESIGN_EXAMPLE)
    routing = load_routing(load_config(Path("etc/itsmd.yaml"), {}, tmp_path))
    assert [s.name for s in routing.services] == ["postgres-main", "checkout"] and len(routing.rules) == 0


def test_rule_and_service_problems_are_reported_together(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    write(tmp_path / "rules" / "r.yaml", "rules: [{name: r, match: ['a=~\"(\"'], group_by: []}]\n")
    write(tmp_path / "services.yaml", "services: [{name: s, match: ['a=\"1\"'], depends_on: [t]}]\n")
    write(tmp_path / "itsmd.yaml", "services: services.yaml\n")
    with pytest.raises(ConfigError) as info:
        load_routing(load_config(tmp_path / "itsmd.yaml", {}, tmp_path))
    assert [p.split(": ")[1] for p in info.value.problems] == ["rules[0].match[0]", "services[0].depends_on[0]"]


def itsmd_check(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "itsmd", "check"], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_itsmd_check_covers_services(tmp_path: Path) -> None:
    write(tmp_path / "itsmd.yaml", "services: services.yaml\n")
    write(tmp_path / "services.yaml", "services: [{name: s, match: ['a=\"1\"'], depends_on: [t]}]\n")
    out = itsmd_check(tmp_path)
    assert out.returncode == 1
    assert out.stdout == f"{tmp_path / 'services.yaml'}: services[0].depends_on[0]: unknown service 't' (known: s)\n"
    write(tmp_path / "services.yaml", DESIGN_EXAMPLE)
    out = itsmd_check(tmp_path)
    assert (out.returncode, out.stdout) == (0, "ok (2 services)\n")


def test_shipped_examples_pass_itsmd_check(tmp_path: Path) -> None:
    write(tmp_path / "itsmd.yaml", f"rules: ['{REPO}/rules/*.yaml']\nservices: {REPO}/services.yaml\n"
                                   f"playbooks: ['{REPO}/playbooks/*.yaml']\n")
    out = itsmd_check(tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("ok (12 rules, "), out.stdout + out.stderr
    assert out.stdout.rstrip().endswith(" 5 playbooks)"), out.stdout


@pytest.mark.parametrize(
    ("labels", "service", "owner", "tier"),
    [
        ({"alertname": "NodeFilesystemAlmostOutOfSpace", "job": "node-exporter", "namespace": "monitoring"},
         "node", "infra-team", 2),
        ({"alertname": "KubeAPIErrorBudgetBurn", "job": "apiserver"}, "kube-control-plane", "platform-team", 1),
        ({"alertname": "CoreDNSDown", "job": "kube-dns"}, "kube-dns", "platform-team", 1),
        ({"alertname": "PostgresqlDown", "job": "postgres", "instance": "db-1:9187"}, "postgres-main", "dba-team", 1),
        ({"alertname": "KubePodCrashLooping", "job": "kube-state-metrics", "namespace": "checkout"},
         "checkout", "payments-team", 1),
        ({"alertname": "Watchdog", "severity": "none"}, None, None, None),
    ],
)
def test_shipped_services_map_typical_alerts(labels: dict[str, str], service: str | None, owner: str | None,
                                              tier: int | None) -> None:
    found = load_services(REPO / "services.yaml").of(labels)
    got = (found.name, found.owner, found.tier) if found else (None, None, None)
    assert got == (service, owner, tier)
