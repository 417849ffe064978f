"""The `pagerduty` notifier: Events API v2 trigger, acknowledge and resolve with one stable `dedup_key` per
incident, so PagerDuty folds every page of an incident into one of its alerts."""

from __future__ import annotations

from typing import Any

import aiohttp

from itsmd.config.secret import Secret
from itsmd.notify.message import Message
from itsmd.notify.transport import post_json

EVENTS_API = "https://events.pagerduty.com/v2/enqueue"
SEVERITY = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info", "P5": "info"}
MAX_SUMMARY = 1024  # PagerDuty truncates longer summaries
MAX_DETAILS_ALERTS = 20


def event(message: Message, routing_key: str) -> dict[str, Any]:
    action = {"resolve": "resolve", "acknowledge": "acknowledge"}.get(message.event, "trigger")
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": message.dedup_key}
    if action != "trigger":
        return body
    inc = message.incident
    summary = f"{message.title} - {message.reason}"
    body["payload"] = {
        "summary": summary[:MAX_SUMMARY],
        "source": "itsmd" if inc is None else (inc["service"] or inc["rule"]),
        "severity": "warning" if inc is None else SEVERITY.get(inc["priority"], "error"),
        "timestamp": None if inc is None else inc["opened_at"],
        "component": None if inc is None else inc["service"],
        "group": None if inc is None else inc["rule"],
        "class": "itsmd.summary" if inc is None else "itsmd.incident",
        "custom_details": {"reason": message.reason, "incident": inc,
                           "alerts": message.alerts[:MAX_DETAILS_ALERTS], "runs": message.runs,
                           **({"held_back": message.held_back, "incidents": message.held_back_incidents}
                              if inc is None else {})},
    }
    body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
    body["client"] = "itsmd"
    if message.link:
        body["client_url"] = message.link
        body["links"] = [{"href": message.link, "text": "open in itsmd"}]
    return body


class PagerDuty:
    def __init__(self, name: str, session: aiohttp.ClientSession, routing_key: Secret, api_url: str,
                 timeout: float) -> None:
        self.name, self._session, self._key, self._timeout = name, session, routing_key, timeout
        self._url = Secret(api_url)

    async def send(self, message: Message) -> None:
        await post_json(self._session, self.name, self._url, event(message, self._key.reveal()), self._timeout)
