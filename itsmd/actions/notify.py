"""The `notify` step: a message through the durable outbox. The step succeeds once the message is queued (one
outbox row per notifier, committed with a timeline record); the outbox sender delivers it with its retries, so a
slow or down notifier never holds the run, and the message survives `kill -9`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from itsmd.actions.result import StepResult
from itsmd.clock import Clock
from itsmd.config.model import Notifier
from itsmd.storage import events, pages
from itsmd.storage.events import Event
from itsmd.storage.store import SqlStore


@dataclass(frozen=True, slots=True)
class Note:
    """One notify step's message: where it comes from and what it says (rendered)."""

    run_id: str  # RUN-n
    incident_id: int | None
    cycle: int
    step: str
    to: Sequence[str]  # empty: the notifiers marked `default`
    text: str


class StepNotifier:
    def __init__(self, store: SqlStore, clock: Clock, notifiers: Callable[[], Sequence[Notifier]],
                 wake: Callable[[], None]) -> None:
        self._store, self._clock, self._notifiers, self._wake = store, clock, notifiers, wake

    def targets(self, to: Sequence[str]) -> list[str]:
        """`to`, else the default notifiers; names a reload removed and PagerDuty (it takes pages, not messages)
        are left out."""
        from itsmd.notify import channel  # here: channel -> message -> web.runs -> runner -> this module

        configured = [n for n in self._notifiers() if channel.takes(n.type, pages.NOTIFY)]
        if to:
            known = {n.name for n in configured}
            return [n for n in to if n in known]
        return [n.name for n in configured if n.default]

    async def send(self, note: Note) -> StepResult:
        names = self.targets(note.to)
        now = self._clock.now()
        rows = [pages.new_row(pages.step_key(note.run_id, note.step, n), note.incident_id, note.cycle, pages.NOTIFY,
                              "step", note.text, n, now) for n in names]
        told = ", ".join(names) if names else "nobody (no notifiers: timeline only)"

        def work(conn: Connection) -> int:
            added = pages.enqueue(conn, rows)
            if note.incident_id is not None and (added or not rows):  # a retried step records nothing twice
                events.append(conn, [Event(now, "incident", note.incident_id, "system", "run_notified",
                                           f"step {note.step} of {note.run_id} told {told}: {note.text}",
                                           {"run_id": note.run_id, "step": note.step, "notifiers": names})])
            return added

        added = await self._store.write(work)
        if added:
            self._wake()
        queued = f"queued for {told}" if added or not names else f"already queued for {told}"
        return StepResult(True, output=queued, json={"notifiers": names, "text": note.text})
