"""A rehearsal: the daemon itself (pipeline, store, deadline ticks) on an in-memory SQLite database, without a
socket, scheduler or runner, its time moved by hand on a fake clock. `itsmd test` and `itsmd replay` run on it.
Its runs are dry (DESIGN §1.5): the pipeline creates them as the daemon would, and nothing executes them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import Any

from sqlalchemy import Connection

from itsmd.app import Daemon
from itsmd.clock import FakeClock
from itsmd.config import Config
from itsmd.pipeline.delivery import Delivery
from itsmd.storage import deadlines, inbox, incidents, problems, quarantine, runs
from itsmd.storage.writer import Rows
from itsmd.web.incidents import incident_json
from itsmd.web.problems import problem_json
from itsmd.web.runs import run_json

_MAX_DEADLINES = 100_000  # per advance: a guard against a deadline that never moves on


class Rehearsal:
    """`async with Rehearsal(config, start) as r:` — deliver, process, advance, then read what resulted."""

    def __init__(self, config: Config, start: datetime, batch: int | None = None) -> None:
        ingest = replace(config.ingest, pipeline_batch=batch) if batch else config.ingest
        # No webhook waits for the writer here: a step takes its whole batch (the bound on new episodes per step
        # only splits it, at a cost).
        ingest = replace(ingest, pipeline_batch_new=2**31)
        in_memory = replace(config, database="sqlite://", ingest=ingest,
                            storage=replace(config.storage, sqlite_synchronous="OFF"))
        self.clock = FakeClock(start)
        self.daemon = Daemon(in_memory, clock=self.clock)  # raises ConfigError for bad rules or services
        self.deliveries = 0
        self.alerts = 0
        self.quarantined = 0
        self._ticked = start
        self._start = start  # the clock never goes back: no alert is last seen before it
        self._accepted: list[Rows] = []

    async def __aenter__(self) -> Rehearsal:
        await self.daemon.open_store()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.daemon.stop()

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def deliver(self, delivery: Delivery, source: str = "webhook") -> None:
        """Accept one delivery, received now, as the webhook does (bad alerts quarantined); it is stored in the
        inbox with the others accepted since, in one transaction, when the pipeline next runs."""
        now = self.clock.now()
        if delivery.alerts:
            self._accepted.append(inbox.add(now, source, delivery.encode()))
        if delivery.rejected:
            self._accepted.append(quarantine.add(now, source, delivery.rejected))
        self.deliveries += 1
        self.alerts += len(delivery.alerts)
        self.quarantined += len(delivery.rejected)

    async def process(self) -> int:
        """Store what was accepted, then run the pipeline over every waiting delivery at the clock's now."""
        accepted, self._accepted = self._accepted, []
        if accepted:
            await self.daemon.store.write(partial(_store_all, accepted))
        return await self.daemon.pipeline.drain()

    def move(self, to: datetime) -> None:
        """Move the clock forward to `to` without ticking (deliveries between ticks); never backwards."""
        if to > self.clock.now():
            self.clock.set(to)

    async def advance(self, until: datetime) -> None:
        """Tick at every stored deadline since the last tick up to `until` (quiet resolutions, auto-close, stale
        alerts, expiries, silence ends; one already passed ticks now), then move to `until`. With nothing due, a
        tick would change nothing: it is skipped (replay calls this once per window)."""
        stale_after = self.daemon.config.incidents.stale_after
        for _ in range(_MAX_DEADLINES):
            due = await self.daemon.store.read(partial(deadlines.next_due, after=self._ticked,
                                                       stale_after=stale_after, horizon=until,
                                                       seen_since=self._start))
            if due is None or due > until:
                break
            self.move(due)
            await self._tick()
        self.move(until)

    async def _tick(self) -> None:
        await self.daemon.tick()
        self._ticked = self.clock.now()

    async def incidents(self) -> list[dict[str, Any]]:
        """Every incident as the API shows it, oldest first."""
        def read(conn: Connection) -> list[dict[str, Any]]:
            rows = incidents.page(conn, incidents.IncidentFilter(), limit=2**62, before_id=None)
            return [incident_json(r) for r in reversed(rows)]

        return await self.daemon.store.read(read)

    async def problems(self) -> list[dict[str, Any]]:
        """Every problem as the API shows it, oldest first."""
        def read(conn: Connection) -> list[dict[str, Any]]:
            rows = problems.page(conn, problems.ProblemFilter(), limit=2**62, before_id=None)
            return [problem_json(r) for r in reversed(rows)]

        return await self.daemon.store.read(read)

    async def runs(self) -> list[dict[str, Any]]:
        """Every run as the API shows it (with its steps), oldest first; none was executed."""
        def read(conn: Connection) -> list[dict[str, Any]]:
            rows = list(reversed(runs.page(conn, runs.RunFilter(), limit=2**62, before_id=None)))
            steps = runs.steps_of(conn, [r["id"] for r in rows])
            return [run_json(r, steps[r["id"]]) for r in rows]

        return await self.daemon.store.read(read)


def _store_all(writes: list[Rows], conn: Connection) -> None:
    """Inbox and quarantine rows, each table's adjacent rows in one statement."""
    for table in {id(w.table): w.table for w in writes}.values():
        Rows(table, [row for w in writes if w.table is table for row in w.rows])(conn)
