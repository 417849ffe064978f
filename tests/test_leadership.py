"""The leadership adapter on the real PostgreSQL (itsmd.leadership): one holder of the lock at a time, takeover
when the holder stops, and a leader whose session is killed steps down and another one leads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from itsmd.core.leadership import Role
from itsmd.leadership import Leadership, LeadershipTimers, conninfo
from itsmd.metrics import Metrics
from tests.conftest import POSTGRES_URL

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not POSTGRES_URL, reason="set ITSMD_TEST_POSTGRES to run the leadership tests")]
FAST = LeadershipTimers(retry=0.1, heartbeat=0.1, timeout=1.0)
WAIT = 10.0


class Replica:
    """A Leadership with duties that record what happened when."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log
        self.leadership = Leadership(POSTGRES_URL or "", self.lead, self.follow, Metrics(), FAST)

    async def lead(self) -> None:
        self.log.append(f"{self.name} leads")

    async def follow(self) -> None:
        self.log.append(f"{self.name} follows")


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[Replica, Replica, list[str]]]:
    log: list[str] = []
    a, b = Replica("a", log), Replica("b", log)
    yield a, b, log
    await a.leadership.stop()
    await b.leadership.stop()


async def until(what: str, check: object) -> None:
    deadline = time.monotonic() + WAIT
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_one_leads_and_the_other_takes_over_when_it_stops(replicas: tuple[Replica, Replica, list[str]]) -> None:
    a, b, log = replicas
    a.leadership.start()
    await until("a leads", lambda: a.leadership.role is Role.LEADER)
    b.leadership.start()
    await asyncio.sleep(0.5)  # b tried a few times
    assert b.leadership.role is Role.FOLLOWER and log == ["a leads"]
    await a.leadership.stop()
    await until("b leads", lambda: b.leadership.role is Role.LEADER)
    assert log == ["a leads", "a follows", "b leads"]


async def test_a_leader_whose_session_is_killed_steps_down_and_another_leads(
        replicas: tuple[Replica, Replica, list[str]]) -> None:
    a, b, log = replicas
    a.leadership.start()
    await until("a leads", lambda: a.leadership.role is Role.LEADER)
    b.leadership.start()
    async with await psycopg.AsyncConnection.connect(conninfo(POSTGRES_URL or ""), autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = 'itsmd-leadership' AND datname = current_database() AND pid IN "
                            "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)")
    await until("b leads", lambda: b.leadership.role is Role.LEADER)
    assert a.leadership.role is Role.FOLLOWER
    await until("a follows", lambda: "a follows" in log)
    assert a.leadership._metrics.leader._value.get() == 0  # type: ignore[attr-defined]
    assert b.leadership._metrics.leader._value.get() == 1  # type: ignore[attr-defined]
