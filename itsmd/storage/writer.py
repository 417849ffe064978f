"""The one writer: every write of the process runs here, and concurrent writes share one commit (group commit)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, insert
from sqlalchemy.exc import DBAPIError, OperationalError

from itsmd.errors import StorageError, StorageUnavailable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rows:
    """Rows to insert into one table: adjacent Rows of a batch for the same table become one executemany."""

    table: Table | None
    rows: list[dict[str, Any]]

    def __call__(self, conn: Connection) -> None:
        if self.rows and self.table is not None:
            conn.execute(insert(self.table), self.rows)


Work = Callable[[Connection], Any]
log = logging.getLogger("itsmd.storage")


def storage_error(e: Exception) -> StorageError:
    """The itsmd error for a database exception: unavailable (retryable) or not."""
    if isinstance(e, OperationalError) or (isinstance(e, DBAPIError) and e.connection_invalidated):
        return StorageUnavailable(f"database unavailable: {e.__class__.__name__}: {str(e).splitlines()[0]}")
    return StorageError(f"{e.__class__.__name__}: {str(e).splitlines()[0]}")


Queued = tuple[Work, "asyncio.Future[Any]"]


class Writer:
    """Runs write functions in one thread on one connection; all that queue up meanwhile commit together.

    Urgent writes (ingest's inbox appends, whose HTTP answers wait for the commit) have a queue of their own:
    they commit together in a transaction of their own, before the other writes queued, and a batch of other
    writes ends early (commits what ran) when an urgent write is waiting, so an urgent write waits for at most
    the one long write in progress (a pipeline step, a paging chunk), never for a whole batch of them. After an
    urgent batch the other queue is served at least one write, so neither queue starves. Order is kept within
    each queue; writes of different queues are concurrent by definition (nobody awaited the other)."""

    def __init__(self, engine: Engine, executor: ThreadPoolExecutor, max_batch: int = 1024) -> None:
        self._engine = engine
        self._executor = executor
        self._max_batch = max_batch
        self._urgent: deque[Queued] = deque()
        self._normal: deque[Queued] = deque()
        self._ready: asyncio.Event | None = None  # set when something was queued
        self._idle: asyncio.Event | None = None  # set when nothing is queued or running
        self._pending = 0
        self._task: asyncio.Task[None] | None = None
        self._loop_ref: asyncio.AbstractEventLoop | None = None
        self._conn: Connection | None = None
        self._stopping = False
        self.batches = 0
        self.on_batch: Callable[[int, float], None] | None = None  # (size, seconds) for metrics
        # (error, writes) for metrics, on the event loop: writes not committed because the database failed
        # (unavailable | failed) or the writer is not running (stopped).
        self.on_error: Callable[[str, int], None] | None = None

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stopping

    def start(self) -> None:
        self._loop_ref = asyncio.get_running_loop()  # looked up once: get_running_loop costs a syscall on 3.11
        self._ready, self._idle = asyncio.Event(), asyncio.Event()
        if self._pending == 0:
            self._idle.set()
        self._task = self._loop_ref.create_task(self._loop(), name="itsmd-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        assert self._idle is not None
        await self._idle.wait()
        self._stopping = True  # from here on, nothing new is queued that would never run
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._stopping = False
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)

    async def submit(self, work: Callable[[Connection], T], urgent: bool = False) -> T:
        """Run `work(conn)` inside a transaction; returns once it is committed. `urgent`: a short write that
        someone waits for (see the class)."""
        if self._task is None or self._stopping or self._loop_ref is None or self._ready is None:
            if self.on_error is not None:
                self.on_error("stopped", 1)
            raise StorageUnavailable("the writer is not running")
        fut: asyncio.Future[T] = self._loop_ref.create_future()
        (self._urgent if urgent else self._normal).append((work, fut))
        self._pending += 1
        assert self._idle is not None
        self._idle.clear()
        self._ready.set()
        return await fut

    def _next_batch(self, urgent_last: bool) -> tuple[list[Queued], deque[Queued]]:
        """The writes of the next transaction and the queue they came from: the urgent ones first, unless the
        last batch was urgent and others are waiting."""
        source = self._urgent if self._urgent and not (urgent_last and self._normal) else self._normal
        return [source.popleft() for _ in range(min(len(source), self._max_batch))], source

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._ready is not None and self._idle is not None
        urgent_last = False
        while True:
            while not (self._urgent or self._normal):
                self._ready.clear()
                await self._ready.wait()
            batch, source = self._next_batch(urgent_last)
            urgent_last = source is self._urgent
            yield_to = None if urgent_last else self._urgent
            started = loop.time()
            running = loop.run_in_executor(self._executor, self._run, [w for w, _ in batch], yield_to)
            try:
                results = await asyncio.shield(running)
            except asyncio.CancelledError:
                results = await running  # the batch commits or not: tell its callers which
                self._settle(batch[:len(results)], results)
                left = batch[len(results):]
                self._settle(left, [StorageUnavailable("the writer stopped")] * len(left))
                raise
            done, rest = batch[:len(results)], batch[len(results):]
            source.extendleft(reversed(rest))  # ended early for an urgent write: the rest goes next, in order
            self._settle(done, results)
            self.batches += 1
            if self.on_batch is not None:
                self.on_batch(len(done), loop.time() - started)

    def _settle(self, batch: list[Queued], results: list[Any]) -> None:
        if self.on_error is not None:
            unavailable = sum(isinstance(r, StorageUnavailable) for r in results)
            failed = sum(isinstance(r, StorageError) for r in results) - unavailable
            if unavailable:
                self.on_error("unavailable", unavailable)
            if failed:
                self.on_error("failed", failed)
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        self._pending -= len(batch)
        if self._pending == 0 and self._idle is not None:
            self._idle.set()

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = self._engine.connect()
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _transaction(self, works: list[Work], yield_to: deque[Queued] | None = None) -> list[Any]:
        conn = self._connection()
        try:
            with conn.begin():
                return self._apply(conn, works, yield_to)
        except DBAPIError as e:
            if isinstance(e, OperationalError) or e.connection_invalidated:
                self._close_quietly()
            raise

    @staticmethod
    def _apply(conn: Connection, works: list[Work], yield_to: deque[Queued] | None = None) -> list[Any]:
        """Run the works in order; runs of Rows for one table are inserted with one executemany. With `yield_to`:
        stop after a write (not Rows) when that queue is no longer empty; the results say how many ran."""
        results: list[Any] = []
        pending = Rows(None, [])
        for work in works:
            if yield_to and results and not isinstance(work, Rows):  # len() of a deque is safe across threads
                break
            if isinstance(work, Rows):
                if work.table is not pending.table:
                    pending(conn)
                    pending = Rows(work.table, [])
                pending.rows.extend(work.rows)
                results.append(None)
            else:
                pending(conn)
                pending = Rows(None, [])
                results.append(work(conn))
        pending(conn)
        return results

    def _close_quietly(self) -> None:
        try:
            self._close()
        except DBAPIError:
            self._conn = None

    def _run(self, works: list[Work], yield_to: deque[Queued] | None = None) -> list[Any]:
        """One transaction for the batch (or the part of it that ran before an urgent write came, see `_apply`);
        if it fails for one item's sake, each item alone."""
        try:
            return self._transaction(works, yield_to)
        except OperationalError as e:
            err = storage_error(e)
            log.warning("write batch failed: %s", err)
            return [err] * len(works)
        except Exception as e:
            if len(works) == 1:
                return [storage_error(e) if isinstance(e, DBAPIError) else e]
        results: list[Any] = []
        for work in works:
            try:
                results.extend(self._transaction([work]))
            except DBAPIError as e:
                results.append(storage_error(e))
            except Exception as e:
                results.append(e)
        return results
