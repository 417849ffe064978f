"""The `slack` notifier: an incoming-webhook message with the incident link, priority, alerts and reason.

Alert values are escaped for Slack's mrkdwn (`&`, `<`, `>`), so an alert cannot forge a link or a mention."""

from __future__ import annotations

from typing import Any

import aiohttp

from itsmd.config.secret import Secret
from itsmd.notify.message import Message
from itsmd.notify.transport import post_json

MAX_LISTED = 10  # alerts listed in one message
_ICON = {"escalate": ":rotating_light:", "resolve": ":white_check_mark:", "summary": ":warning:",
         "notify": ":speech_balloon:"}
MAX_RUNS = 5  # runs listed in one message (the latest)


def escape(text: object) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _alert_line(alert: dict[str, Any]) -> str:
    labels = ", ".join(f"{escape(k)}={escape(v)}" for k, v in sorted(alert["labels"].items()))
    return f"• {escape(alert['status'])}: {labels}"


def _run_text(run: dict[str, Any]) -> str:
    reason = f" ({escape(run['reason'])})" if run.get("reason") else ""
    return f"{escape(run['id'])} {escape(run['playbook'])} {escape(run['state'])}{reason}"


def text(message: Message) -> str:
    icon = _ICON.get(message.event, ":bell:")
    if message.report is not None:  # Markdown tables stay aligned in a code block
        return f":bar_chart: *{escape(message.title)}*: {escape(message.reason)}\n```\n{escape(message.report)}```"
    if message.incident is None:
        lines = [f"{icon} *{escape(message.title)}*", escape(message.reason)]
        lines += [escape(", ".join(message.held_back_incidents))] if message.held_back_incidents else []
        return "\n".join(lines)
    inc = message.incident
    if message.event == "notify":  # a playbook's notify step: its text, about its incident
        head = f"{icon} *{escape(inc['id'])}* ({escape(message.run or 'run')}): {escape(message.reason)}"
        return head + (f" (<{message.link}|open in itsmd>)" if message.link else "")
    verb = "Resolved" if message.event == "resolve" else "Escalated"
    head = f"{icon} *{verb} {escape(inc['priority'])} {escape(inc['id'])}*: {escape(inc['title'])}"
    if message.link:
        head += f" (<{message.link}|open in itsmd>)"
    lines = [head, f"*Reason:* {escape(message.reason)}",
             f"*Service:* {escape(inc['service'] or '-')}  *State:* {escape(inc['state'])}  "
             f"*Alerts:* {inc['firing_count']} firing of {inc['alert_count']}"]
    if message.runs:
        lines.append("*Runs:* " + "; ".join(_run_text(r) for r in message.runs[-MAX_RUNS:]))
    lines += [_alert_line(a) for a in message.alerts[:MAX_LISTED]]
    if inc["alert_count"] > MAX_LISTED:
        lines.append(f"… and {inc['alert_count'] - MAX_LISTED} more")
    return "\n".join(lines)


class Slack:
    def __init__(self, name: str, session: aiohttp.ClientSession, url: Secret, timeout: float) -> None:
        self.name, self._session, self._url, self._timeout = name, session, url, timeout

    async def send(self, message: Message) -> None:
        body = {"text": text(message), "unfurl_links": False}
        await post_json(self._session, self.name, self._url, body, self._timeout)
