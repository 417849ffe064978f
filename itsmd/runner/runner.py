"""The runner: claims runs from the store under a lease, executes at most `max_concurrent_runs` at once (the
rest stay queued as rows), renews the leases of the runs it executes, and is woken directly when runs are
created. A run whose lease expired (its runner died) is claimed again and recovered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Connection

from itsmd.clock import Clock
from itsmd.core.playbook import PlaybookSet
from itsmd.core.run import ACTIVE, Reason, RunState, StepState, display_id
from itsmd.errors import StorageError
from itsmd.metrics import Metrics
from itsmd.runner.execution import Claimed, Execution
from itsmd.runner.kinds import Actions, Kinds
from itsmd.storage import events, runs
from itsmd.storage.events import Event
from itsmd.storage.store import SqlStore
from itsmd.task import cancel

log = logging.getLogger("itsmd.runner")


@dataclass(frozen=True, slots=True)
class RunnerTimers:
    lease: float = 30.0  # seconds a claim holds without renewal; another runner takes the run after it
    renew: float = 10.0  # seconds between lease renewals
    poll: float = 5.0  # seconds between claims when nobody wakes the runner (leases expiring, other replicas)
    wait_poll: float = 0.5  # seconds between looks at the incident in a wait_resolved step


class Runner:
    def __init__(self, store: SqlStore, clock: Clock, metrics: Metrics, playbooks: Callable[[], PlaybookSet],
                 max_concurrent: Callable[[], int], timers: RunnerTimers | None = None,
                 actions: Actions | None = None) -> None:
        self.store, self.clock, self.metrics = store, clock, metrics
        self.playbooks = playbooks
        self.max_concurrent = max_concurrent
        self.timers = timers or RunnerTimers()
        self.actions = actions or Actions()
        self.owner = f"runner-{secrets.token_hex(8)}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._active: dict[int, tuple[asyncio.Task[str], Execution]] = {}
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    @property
    def executing(self) -> int:
        return len(self._active)

    async def start(self, orphans_now: bool) -> None:
        """Start claiming. `orphans_now`: no other runner can be alive (SQLite, whose daemon lock is held), so
        runs left `running` by a crash are taken at once instead of after their lease."""
        if orphans_now:
            now = self.clock.now()
            n = await self.store.write(lambda conn: runs.expire_leases(conn, now))
            if n:
                log.warning("runs left running by a previous daemon are recovered", extra={"runs": n})
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._loop(), name="itsmd-runner")
        self._renewer = loop.create_task(self._renew_loop(), name="itsmd-runner-leases")
        self.wake()

    async def stop(self) -> None:
        """Stop claiming; interrupt the runs in flight, leaving them `running` with their lease released, so the
        next start (or another replica) recovers them: idempotent steps repeat, others end `unknown`."""
        self._stopping = True
        for task in (self._task, self._renewer):
            await cancel(task)
        tasks = [t for t, _ in self._active.values()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        ids = list(self._active)
        self._active.clear()
        if ids:
            now = self.clock.now()
            with contextlib.suppress(StorageError):
                await self.store.write(lambda conn: runs.renew(conn, self.owner, ids, now))

    async def cancel(self, run_id: int) -> bool:
        """Cancel a run executing here (its step's process is stopped by the executor); False if not here."""
        found = self._active.get(run_id)
        if found is None:
            return False
        task, execution = found
        execution.cancel_requested = True
        task.cancel()
        return True

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._claim()
            except StorageError as e:
                log.warning("claiming runs failed, will retry: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.timers.poll)

    async def _claim(self) -> None:
        free = self.max_concurrent() - len(self._active)
        if free <= 0:
            return
        now = self.clock.now()
        until = now + timedelta(seconds=self.timers.lease)
        rows = await self.store.write(partial(runs.claim, owner=self.owner, now=now, lease_until=until, limit=free))
        playbooks = self.playbooks()
        for row in rows:
            claimed = Claimed(row, playbooks.by_name(row["playbook"]))
            execution = Execution(self.store, self.clock, claimed, self._kinds_for(row), self.owner)
            task = asyncio.get_running_loop().create_task(self._execute(execution), name=f"run-{row['id']}")
            self._active[row["id"]] = (task, execution)
        self.metrics.runs_executing.set(len(self._active))
        if len(rows) == free:
            self.wake()  # there may be more queued once a slot frees; the done callback wakes us then

    def _kinds_for(self, row: dict[str, Any]) -> Kinds:
        env = {"ITSMD_RUN_ID": display_id(row["id"]), "ITSMD_IDEMPOTENCY_KEY": row["idempotency_key"]}
        return Kinds(self.store, row["incident_id"], self.actions, poll=self.timers.wait_poll, env=env,
                     run_id=display_id(row["id"]), cycle=row["cycle"])

    async def _execute(self, execution: Execution) -> str:
        try:
            state = await self._guarded(execution)
            self.metrics.runs_finished.labels(execution.row["playbook"], state).inc()
            return state
        finally:
            if not self._stopping:
                self._active.pop(execution.id, None)
                self.metrics.runs_executing.set(len(self._active))
                self.wake()

    async def _guarded(self, execution: Execution) -> str:
        try:
            return await execution.run()
        except asyncio.CancelledError:
            if self._stopping or not execution.cancel_requested:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return await execution.cancelled()
        except StorageError as e:
            # The store is down: the run stays `running`; its lease runs out and a claim recovers it.
            log.warning("run %s interrupted by a storage error; it is recovered later: %s",
                        display_id(execution.id), e)
            return "interrupted"
        except Exception:
            log.exception("run %s failed unexpectedly", display_id(execution.id))
            return await execution.end_error()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.timers.renew)
            ids = list(self._active)
            if not ids:
                continue
            until = self.clock.now() + timedelta(seconds=self.timers.lease)
            try:
                await self.store.write(partial(runs.renew, owner=self.owner, run_ids=ids, lease_until=until))
            except StorageError as e:
                log.warning("renewing run leases failed: %s", e)


def cancel_stored(conn: Connection, run_id: int, actor: str, now: datetime) -> dict[str, Any] | None:
    """Cancel a run in the store (a running one is also stopped by its runner: `Runner.cancel`); the row after,
    None if there is no such run."""
    row = runs.get(conn, run_id)
    if row is None:
        return None
    if row["state"] in ACTIVE:
        values = {"state": RunState.CANCELLED, "reason": str(Reason.CANCELLED), "updated_at": now,
                  "finished_at": now}
        if row["state"] != RunState.RUNNING:
            runs.finish_steps(conn, run_id, StepState.CANCELLED, now)
        runs.change(conn, run_id, values)
        if row["incident_id"] is not None:
            events.append(conn, [Event(now, "incident", row["incident_id"], actor, "run_cancelled",
                                       f"run of {row['playbook']} cancelled by {actor}",
                                       {"run_id": display_id(run_id), "playbook": row["playbook"]})])
        row = {**row, **values}
    return row
