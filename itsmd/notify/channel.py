"""A channel: one configured notifier ready to deliver messages, built from its config by type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import aiohttp

from itsmd.config.model import Notifier
from itsmd.config.secret import Secret
from itsmd.notify.message import Message


class Channel(Protocol):
    name: str

    async def send(self, message: Message) -> None:
        """Deliver or raise NotifyError (its `retryable` says whether to try again)."""
        ...


def build(notifier: Notifier, session: aiohttp.ClientSession, timeout: float) -> Channel | None:
    """The channel of `notifier`; None for messages its type does not take (see `takes`)."""
    from itsmd.notify import email, pagerduty, slack, webhook  # one module per type

    s = notifier.settings
    if notifier.type == "webhook":
        return webhook.Webhook(notifier.name, session, _secret(s["url"]), timeout, _headers(s.get("headers")))
    if notifier.type == "slack":
        return slack.Slack(notifier.name, session, _secret(s["url"]), timeout)
    if notifier.type == "pagerduty":
        api = s.get("api_url", pagerduty.EVENTS_API)
        assert isinstance(api, str)
        return pagerduty.PagerDuty(notifier.name, session, _secret(s["routing_key"]), api, timeout)
    if notifier.type == "email":
        return email.Email.from_settings(notifier.name, s, timeout)
    return None


def takes(notifier_type: str, event: str) -> bool:
    """Acknowledgements go to PagerDuty only (the others know escalate and resolve); reports and the messages of
    notify steps to all but PagerDuty."""
    if event in ("report", "notify"):
        return notifier_type != "pagerduty"
    return event != "acknowledge" or notifier_type == "pagerduty"


def _secret(value: object) -> Secret:
    assert isinstance(value, Secret)
    return value


def _headers(value: object) -> Mapping[str, Secret]:
    if value is None:
        return {}
    assert isinstance(value, Mapping)
    return value
