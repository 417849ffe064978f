"""Reading an Alertmanager's `GET /api/v2/alerts` answer: states, own fingerprints, rejects, secrets kept out."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from itsmd.alertmanager import parse, shown
from itsmd.core.alert import Status
from itsmd.core.reconcile import RemoteState
from itsmd.errors import UpstreamError

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def listed(labels: dict[str, str], state: object = "active") -> dict[str, object]:
    return {"labels": labels, "annotations": {"summary": "s"}, "startsAt": "2026-05-01T11:00:00.123456789Z",
            "endsAt": "2026-05-01T12:05:00Z", "generatorURL": "http://prom/g", "fingerprint": "ffffffffffffffff",
            "status": {"state": state, "silencedBy": ["x"] if state == "suppressed" else [], "inhibitedBy": []}}


def test_an_answer_becomes_firing_alerts_with_itsmds_fingerprints() -> None:
    body = orjson.dumps([listed({"alertname": "test1"}), listed({"alertname": "b"}, "suppressed"),
                         listed({"alertname": "c"}, "new-state"), listed({}), "junk"])
    found = parse(body, NOW)
    assert [a.state for a in found.alerts] == [RemoteState.ACTIVE, RemoteState.SUPPRESSED, RemoteState.UNPROCESSED]
    first = found.alerts[0]
    assert first.fingerprint == "5ae90ff6f82ebe6b"  # from the labels (reference/alertmanager.md), not the field
    assert first.alert.status == Status.FIRING and first.alert.ends_at is None and first.alert.expires_at is None
    assert first.alert.starts_at == datetime(2026, 5, 1, 11, 0, 0, 123456, tzinfo=UTC)
    assert dict(first.alert.annotations) == {"summary": "s"} and first.alert.generator_url == "http://prom/g"
    assert found.rejected == 2


@pytest.mark.parametrize("body", [b"{}", b"not json", b'{"alerts": []}'])
def test_an_answer_that_is_not_an_alert_list_is_an_upstream_error(body: bytes) -> None:
    with pytest.raises(UpstreamError):
        parse(body, NOW)


def test_urls_are_shown_without_credentials() -> None:
    assert shown("https://user:pw@am.example:9093/prefix?token=t#f") == "https://am.example:9093/prefix"
