"""The SQL store: one writer for all writes (group commit), a thread pool of readers, SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from itsmd.storage.database import Database
from itsmd.storage.writer import Writer, storage_error

T = TypeVar("T")


class SqlStore:
    """Async access to the database; the event loop never waits on a query."""

    def __init__(self, db: Database, readers: int = 4, max_batch: int = 1024) -> None:
        self.db = db
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="itsmd-writer")
        # An in-memory SQLite database is one connection: its reads queue behind the writes.
        self._read_pool = (
            self._write_pool if db.in_memory else ThreadPoolExecutor(readers, thread_name_prefix="itsmd-reader")
        )
        self.writer = Writer(db.engine, self._write_pool, max_batch=max_batch)

    async def start(self) -> None:
        self.writer.start()

    async def stop(self) -> None:
        await self.writer.stop()
        self._write_pool.shutdown(wait=True)
        if self._read_pool is not self._write_pool:
            self._read_pool.shutdown(wait=True)

    async def write(self, work: Callable[[Connection], T], urgent: bool = False) -> T:
        """`urgent`: a short write a client waits for (ingest), committed before the queued long ones."""
        return await self.writer.submit(work, urgent)

    async def read(self, query: Callable[[Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._read_pool, self._read, query)

    def _read(self, query: Callable[[Connection], T]) -> T:
        try:
            with self.db.engine.connect() as conn:
                return query(conn)
        except DBAPIError as e:
            raise storage_error(e) from e
