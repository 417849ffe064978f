"""Reconciliation with `alertmanagers`: when it runs (at start, after truncated webhooks; debounced), the reads,
and applying the core's decision (adding through the inbox, flagging stale)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from sqlalchemy import Connection

from itsmd import alertmanager, incident_actions
from itsmd.alertmanager import RemoteAlert
from itsmd.clock import Clock
from itsmd.config import Config
from itsmd.config.model import AlertmanagerTarget
from itsmd.core.reconcile import Decision, Read, decide
from itsmd.errors import StorageError, UpstreamError
from itsmd.metrics import Metrics
from itsmd.pipeline.delivery import Delivery
from itsmd.storage import alerts, inbox
from itsmd.storage.store import SqlStore
from itsmd.task import cancel

log = logging.getLogger("itsmd.reconcile")

SOURCE = "reconcile"  # the inbox source of the alerts it adds
LOST = "absent from every Alertmanager"  # why their incidents lost the signal (timeline)
_DELIVERY = 1000  # alerts per inbox delivery: keeps one pipeline transaction small


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision
    flagged: int  # alerts actually flagged (a refresh between the read and the write spares one)


class Reconciler:
    """Runs reconciliations one at a time; a request while one runs queues at most one more, started no sooner
    than `ingest.reconcile_interval` after the previous one began."""

    def __init__(self, store: SqlStore, clock: Clock, metrics: Metrics, config: Callable[[], Config],
                 wake_pipeline: Callable[[], None], poll: float = 1.0) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._config = config  # read at every run: reload changes the targets and timers
        self._wake_pipeline = wake_pipeline
        self._poll = poll
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """Ask for a reconciliation (a truncated webhook was accepted); cheap, never blocks."""
        self._wanted.set()

    def start(self, session: aiohttp.ClientSession, inbox_up_to: int) -> None:
        """Begin: the first reconciliation runs once the pipeline has processed inbox rows up to `inbox_up_to`."""
        self._wanted.set()
        self._task = asyncio.get_running_loop().create_task(self._run(session, inbox_up_to), name="itsmd-reconcile")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self, session: aiohttp.ClientSession, inbox_up_to: int) -> None:
        while not await self._drained(inbox_up_to):
            await asyncio.sleep(self._poll)
        began: float | None = None
        while True:
            await self._wanted.wait()
            if began is not None:
                wait = began + self._config().ingest.reconcile_interval - self._clock.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._wanted.clear()  # requests from here on queue the next run
            began = self._clock.monotonic()
            try:
                await self.reconcile(session)
            except StorageError as e:
                self._metrics.reconciliations.labels("failed").inc()
                log.warning("reconciliation failed on the database; the next request retries: %s", e)
            except Exception:  # a bug must not end reconciliation for the rest of the run
                self._metrics.reconciliations.labels("failed").inc()
                log.exception("reconciliation failed; the next request retries")

    async def _drained(self, up_to: int) -> bool:
        try:
            return await self._store.read(lambda conn: inbox.drained(conn, up_to))
        except StorageError as e:
            log.warning("cannot tell whether the inbox is processed; waiting: %s", e)
            return False

    async def _read(self, session: aiohttp.ClientSession, target: AlertmanagerTarget, timeout: float,
                    now: datetime) -> list[RemoteAlert] | None:
        try:
            found = await alertmanager.firing(session, target, timeout, now)
        except UpstreamError as e:
            self._metrics.alertmanager_reads.labels("error").inc()
            log.warning("cannot read an Alertmanager; it decides nothing this round: %s", e)
            return None
        self._metrics.alertmanager_reads.labels("ok").inc()
        if found.rejected:
            log.warning("alerts of an Alertmanager that itsmd would reject were left out",
                        extra={"alertmanager": alertmanager.shown(target.url), "rejected": found.rejected})
        return found.alerts

    async def reconcile(self, session: aiohttp.ClientSession) -> Outcome | None:
        """One round: read every Alertmanager, compare with what fires here, add and flag. None when no
        Alertmanager is configured."""
        config = self._config()
        targets = config.alertmanagers
        if not targets:
            return None
        started = self._clock.now()
        found = await asyncio.gather(
            *(self._read(session, t, config.ingest.reconcile_timeout, started) for t in targets)
        )
        here = await self._store.read(alerts.reconcilable)
        remote: dict[str, RemoteAlert] = {}
        reads: list[Read] = []
        for one in found:
            if one is None:
                reads.append(None)
                continue
            reads.append({a.fingerprint: a.state for a in one})
            for a in one:
                remote.setdefault(a.fingerprint, a)
        decision = decide(reads, here, started)
        deliver = [remote[fp].alert for fp in decision.deliver]
        now = self._clock.now()

        def apply(conn: Connection) -> int:
            for i in range(0, len(deliver), _DELIVERY):
                inbox.add(now, SOURCE, Delivery(deliver[i : i + _DELIVERY]).encode())(conn)
            lost = alerts.flag_unheard(conn, decision.flag, started)
            if lost:
                incident_actions.signal(conn, now, {i for i in lost if i is not None}, LOST)
            return len(lost)

        flagged = await self._store.write(apply) if deliver or decision.flag else 0
        if deliver:
            self._wake_pipeline()
        self._count(decision, flagged)
        log.info("reconciled with alertmanagers", extra={
            "result": str(decision.result), "alertmanagers": len(targets), "added": len(decision.add),
            "revived": len(decision.revive), "flagged": flagged, "firing_here": len(here)})
        return Outcome(decision, flagged)

    def _count(self, decision: Decision, flagged: int) -> None:
        m = self._metrics
        m.reconciliations.labels(str(decision.result)).inc()
        for action, n in (("added", len(decision.add)), ("revived", len(decision.revive)), ("flagged", flagged)):
            if n:
                m.reconciled.labels(action).inc(n)
