"""Normalize stage: parsing leniency of Alertmanager, per-alert checks, quarantine reasons, push semantics."""

from datetime import UTC, datetime, timedelta

import pytest

from itsmd.core.alert import Status
from itsmd.errors import BadRequest, PayloadTooLarge
from itsmd.pipeline import normalize
from itsmd.pipeline.delivery import Delivery

NOW = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


def test_duplicate_keys_take_the_last_value() -> None:
    assert normalize.parse_json(b'{"a": 1, "a": 2}') == {"a": 2}


def test_invalid_utf8_and_lone_surrogates_become_replacement_characters() -> None:
    doc = normalize.parse_json(b'{"x": "a\xff\xfeb", "y": "a\\ud800b", "\\udc00k": "v"}')
    assert doc == {"x": "a\ufffd\ufffdb", "y": "a\ufffdb", "\ufffdk": "v"}


def test_nul_and_controls_survive_parsing() -> None:
    assert normalize.parse_json(b'{"x": "a\\u0000b\\u001b[31m"}') == {"x": "a\x00b\x1b[31m"}


@pytest.mark.parametrize("body", [b"", b"not json", b"{", b"[1,"])
def test_not_json_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        normalize.parse_json(body)


@pytest.mark.parametrize("doc", [[], "x", {"alerts": "no"}, {"version": "3", "alerts": []}, {}])
def test_wrong_top_level_shape_is_bad_request(doc: object) -> None:
    with pytest.raises(BadRequest):
        normalize.webhook(doc, NOW, 100)


def test_too_many_alerts() -> None:
    with pytest.raises(PayloadTooLarge):
        normalize.webhook({"alerts": [{}] * 3}, NOW, 2)


def test_bad_alerts_are_quarantined_with_reasons_and_good_ones_kept() -> None:
    good = {"status": "firing", "labels": {"alertname": "A"}, "startsAt": "2026-11-25T21:00:00Z"}
    d = normalize.webhook({"version": "4", "alerts": [
        good,
        {"status": "firing", "labels": {}},
        {"status": "firing", "labels": {"a": 1}},
        {"status": "exploded", "labels": {"a": "b"}},
        {"status": "firing", "labels": {"a": "b"}, "startsAt": "yesterday"},
        "not an object",
    ]}, NOW, 100)
    assert len(d.alerts) == 1
    reasons = [r for r, _ in d.rejected]
    assert len(reasons) == 5
    assert reasons[0].startswith("alerts[1]: at least one label")
    assert "value must be a string" in reasons[1]
    assert "status" in reasons[2] and "startsAt" in reasons[3] and "object" in reasons[4]


def test_empty_and_null_label_values_are_dropped() -> None:
    d = normalize.webhook({"alerts": [{"status": "firing", "labels": {"a": "1", "b": "", "c": None}}]}, NOW, 10)
    assert dict(d.alerts[0].labels) == {"a": "1"}


def test_webhook_status_is_per_alert_and_top_level_ignored() -> None:
    d = normalize.webhook({"status": "resolved", "alerts": [
        {"status": "firing", "labels": {"a": "1"}, "startsAt": "2026-11-25T21:00:00Z",
         "endsAt": "0001-01-01T00:00:00Z"},
        {"status": "resolved", "labels": {"a": "2"}, "startsAt": "2026-11-25T21:00:00Z",
         "endsAt": "2026-11-25T22:05:00+01:00"},
    ]}, NOW, 10)
    assert [a.status for a in d.alerts] == [Status.FIRING, Status.RESOLVED]
    assert d.alerts[0].ends_at is None
    assert d.alerts[1].ends_at == datetime(2026, 11, 25, 21, 5, tzinfo=UTC)


def test_resolved_ending_before_it_started_is_quarantined() -> None:
    d = normalize.webhook({"alerts": [{"status": "resolved", "labels": {"a": "2"},
                                       "startsAt": "2026-11-25T21:00:00Z", "endsAt": "2026-11-25T20:00:00Z"}]},
                          NOW, 10)
    assert d.alerts == [] and "before" in d.rejected[0][0]


def test_push_semantics() -> None:
    past, future = (NOW - timedelta(minutes=1)).isoformat(), (NOW + timedelta(minutes=3)).isoformat()
    d = normalize.push([
        {"labels": {"a": "1"}, "startsAt": "2026-11-25T21:00:00Z", "endsAt": past},
        {"labels": {"a": "2"}, "endsAt": future},
        {"labels": {"a": "3"}},
        {"labels": {"a": "4"}, "startsAt": "2026-11-25T23:00:00Z", "endsAt": "2026-11-25T22:30:00Z"},
    ], NOW, 300, 10)
    resolved, expiring, defaulted = d.alerts
    assert resolved.status == Status.RESOLVED and resolved.ends_at == NOW - timedelta(minutes=1)
    assert expiring.status == Status.FIRING and expiring.expires_at == NOW + timedelta(minutes=3)
    assert expiring.starts_at == NOW
    assert defaulted.expires_at == NOW + timedelta(seconds=300)
    assert len(d.rejected) == 1 and "before end" in d.rejected[0][0]


def test_push_needs_a_list() -> None:
    with pytest.raises(BadRequest):
        normalize.push({"labels": {}}, NOW, 300, 10)


def test_delivery_round_trip_keeps_everything() -> None:
    d = normalize.webhook({"truncatedAlerts": 3, "groupKey": "{}:{a=\"1\"}", "alerts": [
        {"status": "resolved", "labels": {"a": "x\x00y"}, "annotations": {"s": "\u2028"},
         "startsAt": "2026-11-25T21:00:00.123456Z", "endsAt": "2026-11-25T21:01:00Z", "generatorURL": "u"},
    ]}, NOW, 10)
    back = Delivery.decode(d.encode())
    assert back.alerts == d.alerts and back.truncated == 3 and back.group_key == '{}:{a="1"}'
