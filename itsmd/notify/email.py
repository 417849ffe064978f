"""The `email` notifier: a plain-text mail through SMTP with STARTTLS (aiosmtplib), certificate verified."""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from itsmd.config.model import SettingValue
from itsmd.config.secret import Secret
from itsmd.errors import NotifyError
from itsmd.notify.message import Message

MAX_LISTED = 50  # alerts listed in one mail
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def subject(message: Message) -> str:
    verb = {"resolve": "RESOLVED", "summary": "PAGE LIMIT", "report": "REPORT", "notify": "NOTE"}.get(
        message.event, "ESCALATED")
    # Alert values reach the title: no line break may end the header early.
    return _CONTROL.sub(" ", f"[itsmd] {verb} {message.title}")[:250]


def body(message: Message) -> str:
    if message.report is not None:
        return message.report
    lines = [message.title, "", f"Reason: {message.reason}"]
    if message.link:
        lines.append(f"Link: {message.link}")
    inc = message.incident
    if message.event == "notify":
        return "\n".join([message.reason, "", *([f"From {message.run}"] if message.run else []),
                          *([f"Link: {message.link}"] if message.link else [])]) + "\n"
    if inc is None:
        lines += ["", "Held back:", *message.held_back_incidents]
        return "\n".join(lines) + "\n"
    lines += [f"State: {inc['state']}   Priority: {inc['priority']}   Service: {inc['service'] or '-'}",
              f"Opened: {inc['opened_at']}   Alerts: {inc['firing_count']} firing of {inc['alert_count']}", ""]
    lines += [f"Run {r['id']} {r['playbook']}: {r['state']}" + (f" ({r['reason']})" if r.get("reason") else "")
              for r in message.runs]
    for alert in message.alerts[:MAX_LISTED]:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
        lines.append(f"- {alert['status']}: {labels}")
    return "\n".join(lines) + "\n"


class Email:
    def __init__(self, name: str, host: str, port: int, sender: str, to: tuple[str, ...], timeout: float, *,
                 starttls: bool = True, username: str | None = None, password: Secret | None = None,
                 ca: Secret | None = None) -> None:
        self.name, self._host, self._port, self._from, self._to = name, host, port, sender, to
        self._timeout, self._starttls, self._username, self._password = timeout, starttls, username, password
        self._tls = ssl.create_default_context()
        if ca is not None:  # a private CA (the `ca_file` key): trust it instead of the system's
            self._tls = ssl.create_default_context(cadata=ca.reveal())

    @classmethod
    def from_settings(cls, name: str, s: Mapping[str, SettingValue], timeout: float) -> Email:
        smtp, to, sender = s["smtp"], s["to"], s["from"]
        assert isinstance(smtp, str) and isinstance(sender, str) and isinstance(to, tuple)
        host, _, port = smtp.rpartition(":")
        username, password, ca = s.get("username"), s.get("password"), s.get("ca")
        return cls(name, host.strip("[]"), int(port), sender, to, timeout, starttls=s.get("starttls", True) is True,
                   username=username if isinstance(username, str) else None,
                   password=password if isinstance(password, Secret) else None,
                   ca=ca if isinstance(ca, Secret) else None)

    def compose(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = self._from, ", ".join(self._to), subject(message)
        mail["Date"], mail["Message-ID"] = formatdate(usegmt=True), make_msgid(domain="itsmd")
        mail.set_content(body(message))
        return mail

    async def send(self, message: Message) -> None:
        try:
            await aiosmtplib.send(
                self.compose(message), hostname=self._host, port=self._port, start_tls=self._starttls,
                use_tls=False, tls_context=self._tls, username=self._username,
                password=self._password.reveal() if self._password else None, timeout=self._timeout)
        except aiosmtplib.SMTPResponseException as e:
            raise NotifyError(f"notifier {self.name}: SMTP {e.code}", retryable=e.code < 500) from e
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            raise NotifyError(f"notifier {self.name}: SMTP failed ({type(e).__name__})") from e
