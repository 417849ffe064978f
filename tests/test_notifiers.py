"""Each notifier against a real local server speaking its protocol (loopback only): webhook, Slack and PagerDuty
HTTP sinks, an SMTP server with STARTTLS. Secrets never appear in errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import MappingProxyType
from typing import Any

import aiohttp
import pytest

from itsmd.config.model import Notifier, SettingValue
from itsmd.config.secret import Secret
from itsmd.errors import NotifyError
from itsmd.notify import channel, pagerduty, slack
from itsmd.notify.email import Email
from itsmd.notify.message import Message
from tests.notify_sinks import HttpSink, SmtpSink

INCIDENT = {
    "id": "INC-7", "title": "db1 exporter down", "rule": "node-down", "key": "{}", "state": "open",
    "priority": "P1", "impact": "high", "urgency": "high", "service": "postgres-main", "owner": "dba",
    "assignee": None, "labels": {"instance": "db1"}, "alert_count": 2, "firing_count": 2, "resolution": None,
    "problem_id": None, "previous_incident_id": None, "reopen_count": 0, "flapping": False, "signal_lost": False,
    "detected_at": "2026-11-28T11:59:00Z", "opened_at": "2026-11-28T12:00:00Z", "acknowledged_at": None,
    "restored_at": None, "resolved_at": None, "closed_at": None,
}
ALERTS = [{"id": "1", "status": "firing", "labels": {"alertname": "NodeDown", "instance": "<!channel> db1"}},
          {"id": "2", "status": "firing", "labels": {"alertname": "NodeDown", "instance": "db2"}}]
LINK = "http://itsmd.test/api/v1/incidents/INC-7"


def message(event: str = "escalate") -> Message:
    return Message(event, "unacknowledged 120s after it opened", "itsmd/INC-7", INCIDENT, ALERTS, [], LINK)


@pytest.fixture
async def sink() -> AsyncIterator[HttpSink]:
    s = await HttpSink().start()
    yield s
    await s.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def notifier(name: str, kind: str, **settings: SettingValue) -> Notifier:
    return Notifier(name, kind, settings=MappingProxyType(settings))


async def test_webhook_posts_the_contract_json_with_its_headers(sink: HttpSink, http: aiohttp.ClientSession) -> None:
    n = notifier("hooks", "webhook", url=Secret(sink.url("/hook/s3cret")),
                 headers=MappingProxyType({"Authorization": Secret("Bearer hook-token")}))
    ch = channel.build(n, http, 5.0)
    assert ch is not None
    await ch.send(message())
    await ch.send(message("resolve"))
    first, second = sink.received
    assert first["path"] == "/hook/s3cret"
    assert first["headers"]["Authorization"] == "Bearer hook-token"
    assert first["headers"]["Content-Type"] == "application/json"
    body = first["json"]
    assert {k: body[k] for k in ("event", "reason", "incident", "alerts", "runs")} == {
        "event": "escalate", "reason": "unacknowledged 120s after it opened", "incident": INCIDENT,
        "alerts": ALERTS, "runs": []}
    assert second["json"]["event"] == "resolve"


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (408, True),
                                                    (400, False), (404, False), (410, False)])
async def test_http_failures_are_classified_and_hide_the_url(sink: HttpSink, http: aiohttp.ClientSession,
                                                             status: int, retryable: bool) -> None:
    sink.statuses = [status]
    ch = channel.build(notifier("hooks", "webhook", url=Secret(sink.url("/hook/s3cret-path"))), http, 5.0)
    assert ch is not None
    with pytest.raises(NotifyError) as e:
        await ch.send(message())
    assert e.value.retryable is retryable
    assert f"HTTP {status}" in str(e.value) and "s3cret" not in str(e.value)


async def test_unreachable_endpoint_is_retryable_and_hides_the_url(http: aiohttp.ClientSession) -> None:
    from tests.process import free_port
    url = f"http://127.0.0.1:{free_port()}/T000/B000/s3cret"
    ch = channel.build(notifier("chat", "slack", url=Secret(url)), http, 2.0)
    assert ch is not None
    with pytest.raises(NotifyError) as e:
        await ch.send(message())
    assert e.value.retryable and "s3cret" not in str(e.value) and "chat" in str(e.value)


async def test_slack_message_has_link_priority_alerts_reason_and_escapes_alert_values(
        sink: HttpSink, http: aiohttp.ClientSession) -> None:
    ch = channel.build(notifier("chat", "slack", url=Secret(sink.url("/services/T0/B0/X"))), http, 5.0)
    assert ch is not None
    await ch.send(message())
    text = sink.received[0]["json"]["text"]
    assert f"<{LINK}|open in itsmd>" in text
    assert "P1" in text and "INC-7" in text and "db1 exporter down" in text
    assert "unacknowledged 120s after it opened" in text
    assert "instance=&lt;!channel&gt; db1" in text and "<!channel>" not in text  # no forged mention
    assert "instance=db2" in text
    assert slack.escape("a&b<c>") == "a&amp;b&lt;c&gt;"


async def test_pagerduty_trigger_acknowledge_resolve_share_one_dedup_key(
        sink: HttpSink, http: aiohttp.ClientSession) -> None:
    n = notifier("oncall", "pagerduty", routing_key=Secret("R0UTINGKEY"), api_url=sink.url("/v2/enqueue"))
    ch = channel.build(n, http, 5.0)
    assert ch is not None
    for event in ("escalate", "acknowledge", "resolve"):
        await ch.send(message(event))
    trigger, ack, resolve = sink.bodies("/v2/enqueue")
    assert [b["event_action"] for b in (trigger, ack, resolve)] == ["trigger", "acknowledge", "resolve"]
    assert {b["dedup_key"] for b in (trigger, ack, resolve)} == {"itsmd/INC-7"}
    assert {b["routing_key"] for b in (trigger, ack, resolve)} == {"R0UTINGKEY"}
    payload = trigger["payload"]
    assert payload["severity"] == "critical" and payload["summary"].startswith("[P1] INC-7: db1 exporter down")
    assert payload["source"] == "postgres-main" and payload["custom_details"]["incident"]["id"] == "INC-7"
    assert trigger["links"] == [{"href": LINK, "text": "open in itsmd"}]
    assert "payload" not in ack and "payload" not in resolve


def test_pagerduty_summary_is_capped_and_severity_follows_priority() -> None:
    long = Message("escalate", "x" * 5000, "itsmd/INC-7", {**INCIDENT, "priority": "P4"}, [], [], None)
    body = pagerduty.event(long, "k")
    assert len(body["payload"]["summary"]) == pagerduty.MAX_SUMMARY and body["payload"]["severity"] == "info"


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    s = SmtpSink().start()
    yield s
    s.stop()


def email_settings(smtp: SmtpSink, **extra: Any) -> dict[str, SettingValue]:
    return {"smtp": f"127.0.0.1:{smtp.port}", "from": "itsmd@example.org",
            "to": ("ops@example.org", "dba@example.org"), **extra}


async def test_email_is_sent_over_starttls_with_a_verified_certificate(smtp: SmtpSink) -> None:
    mail = Email.from_settings("mail", email_settings(smtp, ca=Secret(smtp.ca_pem)), 5.0)
    evil = {**INCIDENT, "title": "db1\r\nBcc: victim@example.org"}
    await mail.send(Message("escalate", "a playbook run failed", "itsmd/INC-7", evil, ALERTS, [], LINK))
    assert smtp.mailbox.secure == [True]
    got = smtp.mailbox.messages[0]
    assert got["From"] == "itsmd@example.org" and got["To"] == "ops@example.org, dba@example.org"
    assert got["Subject"].startswith("[itsmd] ESCALATED [P1] INC-7: db1")
    assert got["Bcc"] is None  # the alert's line break could not add a header
    text = got.get_payload()
    assert "a playbook run failed" in text and LINK in text and "instance=db2" in text


async def test_email_refuses_a_certificate_it_cannot_verify(smtp: SmtpSink) -> None:
    mail = Email.from_settings("mail", email_settings(smtp), 5.0)  # the system CAs do not know the test CA
    with pytest.raises(NotifyError) as e:
        await mail.send(message())
    assert e.value.retryable and "mail" in str(e.value)
    assert smtp.mailbox.messages == []


async def test_email_requires_starttls_when_the_server_does(smtp: SmtpSink) -> None:
    mail = Email.from_settings("mail", email_settings(smtp, starttls=False), 5.0)
    with pytest.raises(NotifyError):
        await mail.send(message())
    assert smtp.mailbox.messages == []
