"""The pipeline worker: consumes the inbox in order, one transaction per batch, idempotent under replay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from sqlalchemy import Connection

from itsmd.clock import Clock
from itsmd.config.routing import Routing
from itsmd.core.alert import IncomingAlert, Status
from itsmd.core.episode import History, Outcome, expire
from itsmd.errors import StorageError
from itsmd.metrics import Metrics
from itsmd.pipeline import remediate
from itsmd.pipeline.correlate import place_new, route, settle
from itsmd.pipeline.dedup import dedup, fingerprint_of
from itsmd.pipeline.delivery import Delivery
from itsmd.pipeline.firing import FiringEpisodes
from itsmd.pipeline.mute import Released, mute, release
from itsmd.pipeline.problem import recur_opened
from itsmd.pipeline.remediate import Switches
from itsmd.storage import alerts, events, inbox, quarantine
from itsmd.storage.events import Event
from itsmd.storage.store import SqlStore
from itsmd.task import cancel

log = logging.getLogger("itsmd.pipeline")


@dataclass(frozen=True)
class Step:
    deliveries: int
    alerts: int
    more: bool = False  # deliveries are waiting after this batch
    runs: int = 0  # runs created to execute


def deliveries_within(per_delivery: list[list[tuple[datetime, IncomingAlert, str]]], histories: Mapping[str, History],
                      new_limit: int) -> int:
    """How many of the oldest deliveries one step takes so that at most `new_limit` firing alerts begin an episode
    (no open one: the costly kind, each may open an incident), the first delivery whatever it holds."""
    seen: set[str] = set()
    for taken, delivery in enumerate(per_delivery):
        for _, alert, fp in delivery:
            history = histories.get(fp)
            if alert.status == Status.FIRING and (history is None or history.open is None):
                seen.add(fp)
        if taken and len(seen) > new_limit:
            return taken
    return len(per_delivery)


class PipelineWorker:
    def __init__(
        self, store: SqlStore, clock: Clock, metrics: Metrics, batch: int = 500, idle_poll: float = 1.0,
        routing: Routing | None = None, close_after: float = 86400.0, batch_bytes: int = 4 * 1024 * 1024,
        batch_new: int | None = None,
    ) -> None:
        self.routing = routing or Routing()  # rules and services, swapped whole on reload; each batch reads it once
        self.close_after = close_after
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._batch = batch
        self._batch_bytes = batch_bytes
        self._batch_new = batch_new  # at most this many alerts that begin an episode per step (None: no bound)
        self._idle_poll = idle_poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._single = 0  # after a batch failed on its data: deliveries left to take one at a time
        self.firing = FiringEpisodes()  # changed in the writer thread only (see pipeline.firing)
        # Remediation (issue 6): `automation:` switches, swapped on reload; `runs_created` wakes the runner once
        # the batch that created runs committed.
        self.switches = Switches()
        self.runs_created: Callable[[], None] = lambda: None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="itsmd-pipeline")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def drain(self) -> int:
        """Process every waiting delivery; returns how many were processed."""
        total = 0
        while True:
            limit = 1 if self._single else self._batch
            try:
                step = await self._store.write(partial(self._step, limit=limit))
            except BaseException:
                self.firing.clear()  # the step's entries may not have committed
                raise
            total += step.deliveries
            if step.runs:
                self.runs_created()
            self._single = max(0, self._single - step.deliveries)
            if not step.more:
                return total

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.drain()
            except StorageError as e:
                self._metrics.pipeline_errors.inc()
                log.warning("pipeline batch failed, will retry: %s", e)
                await asyncio.sleep(self._idle_poll)
            except Exception:
                self._metrics.pipeline_errors.inc()
                if self._single:
                    log.exception("a delivery cannot be processed; it is quarantined")
                    await self._store.write(self._quarantine_oldest)
                    self._single = 0
                else:
                    log.exception("a pipeline batch failed on its data; retrying one delivery at a time")
                    self._single = self._batch
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._idle_poll)

    def _step(self, conn: Connection, limit: int) -> Step:
        clock, stage = time.perf_counter, self._metrics.stage_seconds
        t0 = clock()
        rows, more = inbox.next_batch(conn, limit, self._batch_bytes)
        if not rows:
            return Step(0, 0)
        per_row = [
            [(row.received_at, a, fingerprint_of(a)) for a in Delivery.decode(row.payload).alerts] for row in rows
        ]
        items = [item for row_items in per_row for item in row_items]
        t1 = clock()
        resolves = {fp for _, a, fp in items if a.status == Status.RESOLVED}
        known = self.firing
        histories: dict[str, History] = {}
        unknown = set()
        for _, _, fp in items:
            cached = known.get(fp) if fp not in resolves else None
            if cached is None:
                unknown.add(fp)
            else:
                histories[fp] = History(open=cached)
        histories.update(alerts.histories(conn, unknown, closed_too=resolves))
        if self._batch_new is not None:
            kept = deliveries_within(per_row, histories, self._batch_new)
            if kept < len(rows):  # the rest stays in the inbox, first in line for the next step
                rows, more = rows[:kept], True
                items = [item for row_items in per_row[:kept] for item in row_items]
        before = {fp: h.open for fp, h in histories.items() if h.open is not None}  # stored state: dedup replaces
        result = dedup(items, histories)
        t2 = clock()
        routing, now = self.routing, self._clock.now()
        muted = mute(conn, result.changed, now)
        route(routing.rules, result.changed)
        found = place_new(conn, routing, result.changed, now)
        recurred = recur_opened(conn, routing.rules, found.opened, now)
        found.events += recurred.events
        t3 = clock()
        episodes = list(result.changed.values())
        new_ids = iter(alerts.save(conn, episodes, before))
        stored = [ep if ep.id is not None and ep.id > 0 else replace(ep, id=next(new_ids)) for ep in episodes]
        inbox.remove(conn, [r.id for r in rows])
        stopped = (result.changed[i] for i in result.resolved)
        cleared = [ep for ep in stopped if ep.incident_id and ep.status == Status.RESOLVED]
        events.append(conn, found.events + [
            Event(now, "incident", ep.incident_id, "system", "alert_resolved", "an alert resolved",
                  {"fingerprint": ep.fingerprint})
            for ep in cleared if ep.id is not None and ep.id > 0
        ])
        found.events.clear()
        settle(conn, routing, found.touched | {ep.incident_id for ep in cleared if ep.incident_id}, self.close_after,
               now, found)
        triggered = remediate.on_incidents(conn, routing, self.switches,
                                           [i["id"] for i in found.opened], found.reopened, now,
                                           known_errors=recurred.known_playbooks)
        events.append(conn, found.events + triggered.events)
        known.record(stored)
        t4 = clock()
        stage.labels("normalize").observe(t1 - t0)
        stage.labels("dedup").observe(t2 - t1)
        stage.labels("correlate").observe(t3 - t2)
        stage.labels("store").observe(t4 - t3)
        for outcome, n in result.outcomes.items():
            self._metrics.episodes.labels(str(outcome)).inc(n)
        if muted:
            self._metrics.muted.inc(muted)
        for rule, n in found.unmapped.items():
            self._metrics.alerts_unmapped.labels(rule).inc(n)
        for decision, n in recurred.decisions.items():
            self._metrics.problem_decisions.labels(str(decision)).inc(n)
        for (playbook, what), n in triggered.decisions.items():
            self._metrics.run_decisions.labels(playbook, what).inc(n)
        return Step(len(rows), len(items), more, triggered.created)

    def release(self, conn: Connection, limit: int = 1000) -> Released:
        """Inside a write: correlate the firing alerts whose silence ended (see pipeline.mute.release)."""
        released = release(conn, self.routing, self._clock.now(), self.close_after, limit)
        if released.correlated:
            self._metrics.unmuted.inc(released.correlated)
        return released

    async def release_due(self, limit: int = 1000) -> int:
        """The silence tick: release every firing alert whose silence ended; returns how many were looked at."""
        total = 0
        while True:
            released = await self._store.write(partial(self.release, limit=limit))
            total += released.seen
            if released.seen < limit:
                return total

    def _quarantine_oldest(self, conn: Connection) -> None:
        rows = inbox.oldest(conn, 1)
        if rows:
            row = rows[0]
            reason = "pipeline could not process this delivery"
            quarantine.add(row.received_at, row.source, [(reason, row.payload.decode("utf-8", "replace"))])(conn)
            inbox.remove(conn, [row.id])

    async def expire_due(self, limit: int = 1000) -> int:
        """Resolve pushed alerts whose endsAt passed without a refresh."""
        now = self._clock.now()

        def work(conn: Connection) -> int:
            changed = [e for e in (expire(ep, now) for ep in alerts.expiring(conn, now, limit)) if e]
            self.firing.forget(ep.fingerprint for ep in changed)
            alerts.save(conn, changed)
            return len(changed)

        n = await self._store.write(work)
        if n:
            self._metrics.episodes.labels(str(Outcome.EXPIRED)).inc(n)
        return n

