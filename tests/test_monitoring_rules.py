"""The shipped Prometheus rules for itsmd itself name only metrics itsmd exports (promtool checks the rest in CI)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from itsmd.metrics import Metrics

RULES = Path(__file__).parent.parent / "monitoring" / "itsmd.rules.yaml"
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
            "ItsmdStaleAlerts", "Watchdog"} <= alerts
