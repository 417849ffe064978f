"""Leadership on PostgreSQL: a session advisory lock held on a connection of its own.

Every `retry` seconds a follower tries `pg_try_advisory_lock`; the replica that gets it leads until its session
ends. The leader checks every `heartbeat` seconds, on that same connection, that its session still holds the
lock; when the check fails or takes longer than `timeout`, the replica steps down at once — it ends its leader
duties first and only then closes the connection, so the lock passes on only after the duties stopped. A
leader killed outright loses its session (and the lock) as soon as PostgreSQL sees the socket close; one cut
off by the network loses it when the server's TCP keepalives give up (set short on this session), while the
replica itself has stepped down after its first failed heartbeat.

Advisory locks belong to one database: replicas of different databases on one cluster never meet. SQLite has
no replicas (the daemon lock keeps a second daemon away), so there the one daemon simply leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from itsmd.core.leadership import LEADER_KEY, LOCK_CLASS, Decision, Probe, Role, decide
from itsmd.errors import StorageError
from itsmd.metrics import Metrics
from itsmd.task import cancel

log = logging.getLogger("itsmd.leadership")


Duty = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LeadershipTimers:
    retry: float = 2.0  # seconds between a follower's tries of the lock
    heartbeat: float = 1.0  # seconds between a leader's checks of its lock
    timeout: float = 3.0  # a connect, try or check taking longer fails (a leader steps down)
    keepalive: int = 3  # server-side TCP keepalive of the lock's session: idle seconds (probes 2 s apart, 2 of them)


def conninfo(database_url: str) -> str:
    """A libpq connection string for the database of an SQLAlchemy URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Leadership:
    """Holds the leader lock when it can; runs `lead` on becoming leader and `follow` on stepping down."""

    def __init__(self, database_url: str, lead: Duty, follow: Duty, metrics: Metrics,
                 timers: LeadershipTimers | None = None) -> None:
        self._conninfo = conninfo(database_url)
        self._lead, self._follow = lead, follow
        self._metrics = metrics
        self.timers = timers or LeadershipTimers()
        self.role = Role.FOLLOWER
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        metrics.leader.set(0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="itsmd-leadership")

    async def stop(self) -> None:
        """Step down (duties first) and release the lock."""
        await cancel(self._task)
        self._task = None
        if self.role is Role.LEADER:
            await self._step_down("stopping")
        await self._drop()

    async def _loop(self) -> None:
        while True:
            try:
                await self._apply(decide(self.role, await self._probe()))
            except Exception:  # a bug must not end leadership for good: step down, try again later
                log.exception("leadership: unexpected error")
                if self.role is Role.LEADER:
                    await self._step_down("unexpected error")
                await self._drop()
            await asyncio.sleep(self.timers.heartbeat if self.role is Role.LEADER else self.timers.retry)

    async def _apply(self, d: Decision) -> None:
        if d.stop:
            self._set(Role.FOLLOWER, d.reason)
            try:
                await self._follow()
            except Exception:
                log.exception("leadership: ending the leader duties failed")
            finally:
                await self._drop()  # only now may another replica take the lock
        if d.start:
            self._set(Role.LEADER, d.reason)
            try:
                await self._lead()
            except Exception as e:  # StorageError above all: the database went away meanwhile
                if not isinstance(e, StorageError | OSError):
                    log.exception("leadership: starting the leader duties failed")
                log.warning("could not start the leader duties, stepping down: %s", e)
                await self._step_down("the leader duties did not start")

    async def _step_down(self, reason: str) -> None:
        await self._apply(Decision(Role.FOLLOWER, False, True, reason))

    def _set(self, role: Role, reason: str) -> None:
        self.role = role
        self._metrics.leader.set(1 if role is Role.LEADER else 0)
        self._metrics.leadership_changes.labels(role.value).inc()
        log.warning("this replica is now %s: %s", role.value, reason)

    async def _probe(self) -> Probe:
        if self.role is Role.LEADER:
            held = await self._query(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                " AND classid = %s AND objid = %s AND objsubid = 2 AND granted)")
            return Probe.HELD if held else Probe.LOST
        if self._conn is None:
            try:
                self._conn = await asyncio.wait_for(self._connect(), self.timers.timeout)
            except (OSError, psycopg.Error, TimeoutError) as e:
                log.debug("leader lock: cannot connect: %s", e)
                return Probe.UNREACHABLE
        taken = await self._query("SELECT pg_try_advisory_lock(%s, %s)")
        if taken is None:
            return Probe.UNREACHABLE
        return Probe.TAKEN if taken else Probe.BUSY

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        k = self.timers.keepalive
        return await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=max(1, int(self.timers.timeout)),
            application_name="itsmd-leadership", keepalives=1, keepalives_idle=k, keepalives_interval=2,
            keepalives_count=2, tcp_user_timeout=int(self.timers.timeout * 1000),
            # the server's side: a leader host gone silent loses its session (and the lock) after k + 2 * 2 s
            options=f"-c tcp_keepalives_idle={k} -c tcp_keepalives_interval=2 -c tcp_keepalives_count=2",
        )

    async def _query(self, sql: str) -> bool | None:
        """The boolean `sql` (with the two lock keys) answers; None when the connection failed or was too slow
        (the connection is then dropped: a try that did take the lock gives it back that way)."""
        conn = self._conn
        if conn is None:
            return None

        async def ask() -> bool:
            cur = await conn.execute(sql, (LOCK_CLASS, LEADER_KEY))
            row = await cur.fetchone()
            return bool(row and row[0])

        task = asyncio.get_running_loop().create_task(ask())
        done, _ = await asyncio.wait({task}, timeout=self.timers.timeout)
        if task in done and task.exception() is None:
            return task.result()
        if task in done:
            log.warning("leader lock: query failed: %s", task.exception())
        else:
            task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # nobody awaits it
            log.warning("leader lock: no answer within %g s", self.timers.timeout)
        if self.role is Role.FOLLOWER:  # a leader drops it after its duties stopped (_apply)
            await self._drop()
        return None

    async def _drop(self) -> None:
        """Close the lock's connection without waiting on a dead peer."""
        conn, self._conn = self._conn, None
        if conn is not None:
            task = asyncio.get_running_loop().create_task(conn.close())
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), self.timers.timeout)
