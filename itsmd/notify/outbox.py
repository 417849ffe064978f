"""The outbox sender: delivers pending pages with retries and exponential backoff, in a task of its own.

Pages are rows written with the decision, so nothing is lost by a crash: after a restart the sender finds them
still pending and sends them (a page whose delivery was cut short by the crash may arrive twice; PagerDuty folds
that by its dedup key). With replicas sharing a PostgreSQL (`shared`), a sender claims the pages it sends under a
lease (their next attempt moved to the lease's end, renewed while the delivery lasts; `FOR UPDATE SKIP LOCKED`),
so two replicas never send the same page; one that dies leaves its pages due again when the lease ends.
Each notifier is served on its own, so a slow one delays nobody else, and the pipeline never waits on a notifier:
it only wrote a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import aiohttp
from sqlalchemy import Connection

from itsmd.clock import Clock
from itsmd.config.model import Config
from itsmd.errors import NotifyError, StorageError
from itsmd.metrics import Metrics
from itsmd.notify import channel, message
from itsmd.storage import events, pages
from itsmd.storage.events import Event
from itsmd.storage.store import SqlStore
from itsmd.task import cancel

log = logging.getLogger("itsmd.notify")


@dataclass(frozen=True)
class Retry:
    """Backoff between attempts: `base` * 2^(attempt-1), at most `cap`; give up after `attempts` in all."""

    base: float = 5.0
    cap: float = 300.0
    attempts: int = 12
    timeout: float = 10.0  # one delivery attempt
    poll: float = 1.0  # the sender also looks for due pages this often
    batch: int = 100
    lease: float = 60.0  # a claimed page is this sender's for so long (renewed every third of it while sent)

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, attempt - 1)))


class Outbox:
    def __init__(self, store: SqlStore, clock: Clock, metrics: Metrics, config: Callable[[], Config],
                 retry: Retry | None = None) -> None:
        self._store, self._clock, self._metrics, self._config = store, clock, metrics, config
        self.retry = retry or Retry()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._flushing = asyncio.Lock()  # one flush at a time: a page is never sent twice by two of them
        self._leases: dict[int, datetime] = {}  # pages claimed and not finished: id -> the lease's end
        self._renewer: asyncio.Task[None] | None = None
        self.shared = False  # other replicas send from the same database: claim pages under a lease

    def start(self, http: aiohttp.ClientSession) -> None:
        self._http = http
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="itsmd-outbox")
        if self.shared:  # only claimed pages have leases to renew
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop(), name="itsmd-outbox-leases")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        await cancel(self._renewer)
        await cancel(self._task)
        self._task = self._renewer = None
        await self._release(list(self._leases))

    async def _loop(self) -> None:
        while True:
            try:
                await self.flush()
            except StorageError as e:
                log.warning("outbox: storage failed, will try again: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.retry.poll)
            self._wake.clear()

    async def flush(self) -> int:
        """Attempt every due page once (notifiers concurrently, each one's pages in order); the number sent."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        assert self._http is not None, "start() first"
        now = self._clock.now()
        if not self.shared:  # the only sender of this database (SQLite's daemon lock)
            return await self._send(await self._store.read(partial(pages.due, now=now, limit=self.retry.batch)))
        if not await self._store.read(partial(pages.due, now=now, limit=1)):
            return 0  # the common case: no write transaction to find nothing
        until = now + timedelta(seconds=self.retry.lease)
        rows = await self._store.write(partial(pages.claim, now=now, lease_until=until, limit=self.retry.batch))
        self._leases.update((row["id"], until) for row in rows)
        try:
            return await self._send(rows)
        finally:
            await self._release([row["id"] for row in rows])  # those not attempted

    async def _send(self, rows: list[dict[str, Any]]) -> int:
        by_notifier: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_notifier.setdefault(row["notifier"], []).append(row)
        sent = await asyncio.gather(*(self._deliver(name, todo) for name, todo in by_notifier.items()))
        return sum(sent)

    async def _deliver(self, name: str, rows: list[dict[str, Any]]) -> int:
        config = self._config()
        notifier = next((n for n in config.notifiers if n.name == name), None)
        assert self._http is not None
        ch = channel.build(notifier, self._http, self.retry.timeout) if notifier else None
        base = config.base_url
        sent = 0
        for row in rows:
            if notifier is None or ch is None:
                await self._finish(row, NotifyError(f"notifier {name} is not configured", retryable=False))
                continue
            if not channel.takes(notifier.type, row["event"]):
                await self._store.write(partial(pages.change, page_id=row["id"], values={
                    "state": pages.SENT, "next_attempt_at": None, "updated_at": self._clock.now()}))
                self._leases.pop(row["id"], None)
                continue
            msg = await self._store.read(partial(message.build, page=row, external_url=base))
            try:
                await ch.send(msg)
            except NotifyError as e:
                await self._finish(row, e)
                if e.retryable:
                    break  # keep this notifier's order: its later pages wait for this one
                continue
            await self._finish(row, None)
            sent += 1
        return sent

    async def _release(self, ids: list[int]) -> None:
        """Give back claimed pages that were not attempted (due again at once for any sender)."""
        leases = {i: self._leases.pop(i) for i in ids if i in self._leases}
        if leases:
            now = self._clock.now()
            with contextlib.suppress(StorageError):  # else they are due again when the lease ends
                await self._store.write(partial(pages.renew, leases=leases, lease_until=now))

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry.lease / 3)
            if not self._leases:
                continue
            until = self._clock.now() + timedelta(seconds=self.retry.lease)
            leases = dict(self._leases)
            try:
                await self._store.write(partial(pages.renew, leases=leases, lease_until=until))
            except StorageError as e:
                log.warning("outbox: cannot renew the leases of pages being sent: %s", e)
                continue
            for i in leases:
                if i in self._leases:
                    self._leases[i] = until

    async def _finish(self, row: dict[str, Any], error: NotifyError | None) -> None:
        now, attempts = self._clock.now(), row["attempts"] + 1
        outcome = "sent"
        values: dict[str, Any] = {"attempts": attempts, "updated_at": now}
        note: Event | None = None
        if error is None:
            values.update(state=pages.SENT, sent_at=now, next_attempt_at=None, last_error=None)
        elif error.retryable and attempts < self.retry.attempts:
            outcome = "retry"
            delay = self.retry.delay(attempts)
            values.update(next_attempt_at=now + timedelta(seconds=delay), last_error=str(error))
            log.warning("page not delivered, retrying in %gs: %s", delay, error,
                        extra={"page": row["id"], "attempt": attempts})
        else:
            outcome = "failed"
            values.update(state=pages.FAILED, next_attempt_at=None, last_error=str(error))
            log.error("page given up after %d attempt(s): %s", attempts, error, extra={"page": row["id"]})
            if row["incident_id"] is not None:
                note = Event(now, "incident", row["incident_id"], "system", "page_failed",
                             f"{row['event']} to {row['notifier']} given up after {attempts} attempt(s): {error}",
                             {"notifier": row["notifier"], "event": row["event"]})

        def work(conn: Connection) -> None:
            pages.change(conn, row["id"], values)
            if note is not None:
                events.append(conn, [note])

        await self._store.write(work)
        self._leases.pop(row["id"], None)
        self._metrics.pages.labels(row["event"], outcome).inc()
