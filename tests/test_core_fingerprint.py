"""Fingerprints equal Alertmanager's for every label set it sent (golden file of real captures)."""

import json

import pytest

from itsmd.core.fingerprint import fingerprint
from tests.conftest import FIXTURES

GOLDEN = json.loads((FIXTURES / "fingerprints.json").read_text())


@pytest.mark.parametrize("case", GOLDEN["label_sets"], ids=lambda c: c["fingerprint"])
def test_fingerprint_matches_alertmanager(case: dict) -> None:
    assert fingerprint(case["labels"]) == case["fingerprint"]


def test_empty_label_set() -> None:
    assert fingerprint({}) == GOLDEN["empty_label_set"]


def test_documented_example_and_order_independence() -> None:
    assert fingerprint({"alertname": "test1"}) == "5ae90ff6f82ebe6b"
    assert fingerprint({"b": "1", "a": "2"}) == fingerprint({"a": "2", "b": "1"})


def test_fingerprint_distinguishes_name_value_boundaries() -> None:
    assert fingerprint({"ab": "c"}) != fingerprint({"a": "bc"})


def test_every_fixture_alert_fingerprint() -> None:
    seen = 0
    for path in sorted(FIXTURES.glob("[0-9]*.json")):
        for alert in json.loads(path.read_bytes())["alerts"]:
            labels = {k: v for k, v in alert["labels"].items() if v}
            assert fingerprint(labels) == alert["fingerprint"], path.name
            seen += 1
    assert seen >= 48
