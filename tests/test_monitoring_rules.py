"""The shipped Prometheus rules for itsmd itself name only metrics itsmd exports; promtool checks them and runs their
unit tests (monitoring/tests/itsmd.rules.test.yaml) when it is installed (CI installs Debian's `prometheus`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from itsmd.metrics import Metrics

MONITORING = Path(__file__).parent.parent / "monitoring"
RULES = MONITORING / "itsmd.rules.yaml"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def test_every_itsmd_metric_in_the_rules_is_exported() -> None:
    doc = yaml.safe_load(RULES.read_text())
    used = {name for group in doc["groups"] for rule in group["rules"]
            for name in re.findall(r"\bitsmd_[a-z_]+", rule["expr"])}
    assert len(used) >= 7
    assert used - exported() == set()


def test_the_rules_cover_the_watchers_failures() -> None:
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert {"ItsmdDown", "ItsmdInboxLagging", "ItsmdWriterErrors", "ItsmdNotifierFailures", "ItsmdReloadFailed",
            "ItsmdStaleAlerts", "ItsmdCircuitBreakerOpen", "Watchdog"} <= alerts


def test_writer_errors_and_breakers_have_their_own_metrics() -> None:
    exprs = {rule["alert"]: rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"]
             for rule in group["rules"]}
    assert "itsmd_writer_errors_total" in exprs["ItsmdWriterErrors"] and "503" not in exprs["ItsmdWriterErrors"]
    assert "itsmd_circuit_breaker_open" in exprs["ItsmdCircuitBreakerOpen"]


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)")
@pytest.mark.parametrize("args", [["check", "rules", "itsmd.rules.yaml"],
                                  ["test", "rules", "tests/itsmd.rules.test.yaml"]], ids=["check", "unit-tests"])
def test_promtool(args: list[str]) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], cwd=MONITORING, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
