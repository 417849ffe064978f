"""A page as notifiers see it: the event, the reason and the incident with its alerts and runs, read from storage
when it is sent (so a retried page is current); the summary page lists the pages the hourly budget held back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from itsmd.core.incident import display_id
from itsmd.storage import incidents, pages, runs
from itsmd.web.alerts import alert_json
from itsmd.web.incidents import incident_json
from itsmd.web.runs import run_json

MAX_ALERTS = 100  # alerts carried by one page; `alert_count` tells the rest
MAX_LISTED = 50  # incidents named by a summary page
MAX_RUNS = 20  # runs carried by one page (the latest)


@dataclass(frozen=True)
class Message:
    event: str  # escalate | resolve | acknowledge | summary | notify (a playbook's notify step; reason = its text)
    reason: str
    dedup_key: str  # stable per incident (PagerDuty's de-duplication key)
    incident: dict[str, Any] | None = None  # the API's incident JSON; None for a summary
    alerts: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    link: str | None = None
    held_back: int = 0  # summary: pages the budget held back
    held_back_incidents: list[str] = field(default_factory=list)
    report: str | None = None  # event `report`: the weekly report, Markdown
    run: str | None = None  # event `notify`: the run (RUN-n) whose step sent it

    @property
    def title(self) -> str:
        if self.event == "report":
            return "itsmd weekly report"
        if self.incident is None:
            return f"itsmd: message from {self.run}" if self.event == "notify" else "itsmd: page limit reached"
        inc = self.incident
        return f"[{inc['priority']}] {inc['id']}: {inc['title']}"

    def webhook_body(self) -> dict[str, Any]:
        """The `webhook` notifier's JSON (DESIGN §1.6 item 12); a summary is an `escalate` without incident; the
        weekly report is `{"event": "report", "reason", "report"}`."""
        if self.event == "report":
            return {"event": "report", "reason": self.reason, "report": self.report}
        if self.event == "notify":
            return {"event": "notify", "reason": self.reason, "text": self.reason, "run": self.run,
                    "incident": self.incident, "alerts": self.alerts, "runs": self.runs,
                    **({"link": self.link} if self.link else {})}
        body: dict[str, Any] = {"event": "resolve" if self.event == "resolve" else "escalate",
                                "reason": self.reason, "incident": self.incident, "alerts": self.alerts,
                                "runs": self.runs}
        if self.event == "summary":
            body["summary"] = {"held_back": self.held_back, "incidents": self.held_back_incidents}
        if self.link:
            body["link"] = self.link
        return body


def dedup_key(incident_id: int | None, page_id: int) -> str:
    return f"itsmd/{display_id(incident_id)}" if incident_id is not None else f"itsmd/summary/{page_id}"


def build(conn: Connection, page: dict[str, Any], external_url: str) -> Message:
    """The message of one outbox row, from the current state of its incident."""
    key = dedup_key(page["incident_id"], page["id"])
    run = pages.run_of_key(page["key"]) if page["event"] == pages.NOTIFY else None
    if page["event"] == pages.NOTIFY and page["incident_id"] is None:
        return Message(page["event"], page["reason"], key, run=run)
    if page["incident_id"] is None:
        start = page["created_at"]
        n, ids = pages.suppressed_between(conn, start, start + timedelta(hours=1), MAX_LISTED)
        reason = f"{page['reason']}: {n} page(s) held back so far"
        return Message(page["event"], reason, key, held_back=n, held_back_incidents=[display_id(i) for i in ids],
                       link=f"{external_url}/api/v1/incidents?state=open")
    row = incidents.get(conn, page["incident_id"])
    if row is None:  # pruned meanwhile: tell what is known
        return Message(page["event"], page["reason"], key, run=run)
    link = f"{external_url}/api/v1/incidents/{display_id(row['id'])}"
    alerts = [alert_json(a) for a in incidents.alerts_of(conn, row["id"], limit=MAX_ALERTS)]
    return Message(page["event"], page["reason"], key, incident_json(row), alerts, runs_of(conn, row["id"]), link,
                   run=run)


def runs_of(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    """The incident's latest MAX_RUNS playbook runs, oldest first, as the API shows them without their steps (`id`,
    `playbook`, `state`, `reason`, `target`, times ...): what automation tried before the page."""
    return [run_json(r) for r in runs.of_incident(conn, incident_id)[-MAX_RUNS:]]
