"""The guards' counts of one playbook on one target (`runs.target_history`), on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from itsmd.core.run import RunState
from itsmd.storage import runs
from itsmd.storage.store import SqlStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def run(conn: Connection, n: int, state: RunState, created: datetime, target: str = "a", playbook: str = "p",
        started: datetime | None = None, finished: datetime | None = None) -> None:
    values: dict[str, Any] = {
        "playbook": playbook, "incident_id": None, "target": target, "state": state, "reason": None,
        "dry_run": False, "trigger": "opened", "cycle": 0, "requested_by": "system", "approved_by": None,
        "context": {}, "idempotency_key": f"k{n}", "created_at": created, "updated_at": created,
        "started_at": started, "finished_at": finished,
    }
    runs.create(conn, values, [], RunState.PENDING)  # type: ignore[arg-type]


async def test_history_counts_active_recent_and_the_last_executed_end(store: SqlStore) -> None:
    def setup(conn: Connection) -> None:
        run(conn, 1, RunState.SUCCEEDED, T0 - timedelta(hours=3), started=T0 - timedelta(hours=3),
            finished=T0 - timedelta(hours=2))  # old: not recent, but the last executed end so far
        run(conn, 2, RunState.PENDING, T0 - timedelta(minutes=5))  # active and recent
        run(conn, 3, RunState.RUNNING, T0 - timedelta(minutes=4), started=T0 - timedelta(minutes=4))
        run(conn, 4, RunState.SKIPPED, T0 - timedelta(minutes=3), finished=T0 - timedelta(minutes=3))  # a guard's
        run(conn, 5, RunState.CANCELLED, T0 - timedelta(minutes=2), finished=T0 - timedelta(minutes=1))  # never ran
        run(conn, 6, RunState.FAILED, T0 - timedelta(minutes=50), started=T0 - timedelta(minutes=50),
            finished=T0 - timedelta(minutes=40))
        run(conn, 7, RunState.PENDING, T0, target="b")  # another target
        run(conn, 8, RunState.PENDING, T0, playbook="q")  # another playbook
    await store.write(setup)
    got = await store.read(lambda c: runs.target_history(c, "p", "a", T0 - timedelta(hours=1)))
    assert got == runs.TargetHistory(active=2, recent=4, last_finished=T0 - timedelta(minutes=40))
    none = await store.read(lambda c: runs.target_history(c, "p", "zzz", T0))
    assert none == runs.TargetHistory(0, 0, None)
