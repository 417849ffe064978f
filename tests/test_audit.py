"""The audit log: the hash chain verified and an edited, removed or corrupted record named (storage and `itsmd
audit verify`, SQLite and PostgreSQL); `GET /api/v1/audit` (admin only, filters, hashes); reloads and
authentication failures recorded, a flood of bad tokens within a budget, never the token itself."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from itsmd import cli
from itsmd.app import Daemon, Timers
from itsmd.clock import FakeClock
from itsmd.core.access import Role
from itsmd.core.auth_audit import AuthAuditBudget
from itsmd.errors import ConfigError
from itsmd.storage import events
from itsmd.storage.database import Database
from itsmd.storage.events import Event
from tests import daemon as d
from tests.process import run_itsmd
from tests.silencing import running

Client = TestClient  # type: ignore[type-arg]
T0 = datetime(2026, 11, 25, 22, 0, tzinfo=UTC)
HOSTILE = "nul\x00 esc\x1b[31m \u202e é"


def seed(db: Database, n: int = 5) -> None:
    with db.engine.begin() as conn:
        events.append(conn, [Event(T0 + timedelta(seconds=i, microseconds=7), "incident", i + 1, "alice", "ack",
                                   f"{HOSTILE} {i}", {"n": i, "nested": {"x": [1.5, None, True]}, "t": HOSTILE})
                             for i in range(n)])


def check(db: Database) -> events.ChainCheck:
    with db.engine.connect() as conn:
        return events.verify(conn, batch=2)  # batches of 2: the chain continues across reads


def tamper(db: Database, sql: str, **params: Any) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


def test_an_intact_chain_verifies(database: Database) -> None:
    assert check(database) == events.ChainCheck(0, events.GENESIS)
    seed(database)
    seed(database, 2)  # a second append continues the chain
    result = check(database)
    assert (result.records, result.broken_id) == (7, None)
    with database.engine.connect() as conn:
        assert result.head == events.head(conn)


@pytest.mark.parametrize(("sql", "why"), [
    ("UPDATE events SET data = '{\"n\": 99}' WHERE id = 3", "hash does not match its content"),
    ("UPDATE events SET reason = '\"nothing happened\"' WHERE id = 3", "hash does not match its content"),
    ("UPDATE events SET actor = '\"mallory\"' WHERE id = 3", "hash does not match its content"),
    ("UPDATE events SET entity_id = 42 WHERE id = 3", "hash does not match its content"),
    ("UPDATE events SET data = 'not json' WHERE id = 3", "not valid JSON"),
    ("DELETE FROM events WHERE id = 3", "prev_hash does not match the hash of the record before it (id 2)"),
])
def test_a_changed_record_is_named(database: Database, sql: str, why: str) -> None:
    seed(database)
    tamper(database, sql)
    result = check(database)
    expected_id = 4 if sql.startswith("DELETE") else 3
    assert (result.broken_id, result.records) == (expected_id, 2) and why in result.why, result


def test_a_rehashed_record_breaks_the_link_to_the_next(database: Database) -> None:
    """Recomputing an edited record's own hash is not enough: the next record still names the old one."""
    seed(database)
    with database.engine.begin() as conn:
        row = conn.execute(text("SELECT prev_hash FROM events WHERE id = 2")).one()
        forged = events.chain(row.prev_hash, Event(T0 + timedelta(seconds=1, microseconds=7), "incident", 2, "alice",
                                                   "ack", "forged", {}))
        conn.execute(text("UPDATE events SET reason = '\"forged\"', data = '{}', hash = :h WHERE id = 2"),
                     {"h": forged})
    result = check(database)
    assert result.broken_id == 3 and "prev_hash" in result.why


def test_removing_the_first_records_is_named(database: Database) -> None:
    seed(database)
    tamper(database, "DELETE FROM events WHERE id <= 2")
    result = check(database)
    assert result.broken_id == 3 and "genesis" in result.why


# --- itsmd audit verify ----------------------------------------------------------------------------------------


@pytest.fixture
def config_file(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv("ITSMD_DATABASE", raising=False)
    path = tmp_path / "itsmd.yaml"
    path.write_text(yaml.safe_dump({"database": database.url}))
    yield path


def verify(config: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["audit", "verify", "-c", str(config)])
    return code, out.getvalue(), err.getvalue()


def test_audit_verify_command(database: Database, config_file: Path) -> None:
    seed(database)
    code, out, _ = verify(config_file)
    with database.engine.connect() as conn:
        assert (code, out) == (0, f"ok 5 records, head {events.head(conn)}\n")
    tamper(database, "UPDATE events SET data = :d WHERE id = 4", d='{"n": 3, "nested": {"x": [1.5]}, "t": "x"}')
    code, out, _ = verify(config_file)
    assert code == 1
    assert out == ("broken: record 4: hash does not match its content: the record was changed "
                   "(3 records before it are intact)\n")


def test_audit_verify_as_a_process_and_its_config_errors(tmp_path: Path) -> None:
    (tmp_path / "itsmd.yaml").write_text("database: sqlite:///itsmd.db\n")
    from itsmd.storage.database import migrate, open_database

    db = open_database(f"sqlite:///{tmp_path / 'itsmd.db'}")
    migrate(db)
    seed(db, 3)
    db.engine.dispose()
    done = run_itsmd("audit", "verify", cwd=tmp_path)  # finds ./itsmd.yaml like serve
    assert done.returncode == 0 and done.stdout.startswith("ok 3 records, head "), done.stderr
    (tmp_path / "bad.yaml").write_text("database: 42\n")
    done = run_itsmd("audit", "verify", "-c", "bad.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "database" in done.stdout + done.stderr


def test_audit_verify_of_a_database_without_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ITSMD_DATABASE", raising=False)
    (tmp_path / "itsmd.yaml").write_text("database: sqlite:///empty.db\n")
    code, _, err = verify(tmp_path / "itsmd.yaml")
    assert code == 2 and "cannot read the audit log" in err


# --- GET /api/v1/audit and what the daemon records ---------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def daemon(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeClock]]:
    async with running(tmp_path, request.param) as started:
        yield started


@pytest.fixture
async def client(daemon: tuple[Daemon, FakeClock], aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(daemon[0].app)


async def audit(client: Client, **params: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/audit", headers=d.bearer(Role.ADMIN), params=params)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_audit_endpoint_is_admin_only(client: Client) -> None:
    assert (await client.get("/api/v1/audit")).status == 401
    assert (await client.get("/api/v1/audit", headers={"Authorization": "Bearer nope"})).status == 401
    for role in (Role.INGEST, Role.VIEWER, Role.OPERATOR):
        resp = await client.get("/api/v1/audit", headers=d.bearer(role))
        assert resp.status == 403, role
        assert "error" in await resp.json()
    assert (await client.get("/api/v1/audit", headers=d.bearer(Role.ADMIN))).status == 200


async def test_records_filters_and_paging(client: Client, daemon: tuple[Daemon, FakeClock]) -> None:
    clock = daemon[1]
    for i in range(3):
        resp = await client.post("/api/v1/silences", headers=d.bearer(Role.OPERATOR), json={
            "matchers": [f'instance="i{i}"'], "ends_at": "2026-11-26T00:00:00Z", "created_by": "a",
            "comment": f"c{i}"})
        assert resp.status == 201
        clock.advance(60)
    created = await audit(client, entity="silence", action="created")
    assert [r["reason"] for r in created] == ["c2", "c1", "c0"]  # newest first
    r = created[0]
    assert set(r) == {"id", "at", "entity", "entity_id", "actor", "action", "reason", "data", "prev_hash", "hash"}
    assert (r["actor"], r["entity_id"], r["at"]) == ("operator-client", "3", "2026-11-25T22:02:00.000000Z")
    assert [x["reason"] for x in await audit(client, since="2026-11-25T22:01:00Z", action="created")] == ["c2", "c1"]
    assert await audit(client, entity_id="INC-1") == []
    first = await client.get("/api/v1/audit", headers=d.bearer(Role.ADMIN), params={"limit": "2"})
    page = await first.json()
    rest = await audit(client, cursor=page["next_cursor"], limit="2")
    assert [x["id"] for x in page["items"] + rest] == [str(n) for n in (3, 2, 1)]
    for bad in ({"entity_id": "INC-x"}, {"entity_id": "ABC-1"}, {"entity": "problem", "entity_id": "INC-1"},
                {"since": "yesterday"}, {"limit": "0"}):
        resp = await client.get("/api/v1/audit", headers=d.bearer(Role.ADMIN), params=bad)
        assert resp.status == 400, bad


async def test_auth_failures_are_recorded_within_a_budget(client: Client, daemon: tuple[Daemon, FakeClock]) -> None:
    dm, clock = daemon
    dm.web.auth_audit = AuthAuditBudget(limit=3, window=60)
    secret = "wrong-token-canary-5f1c"
    for _ in range(10):
        assert (await client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {secret}"})).status == 401
    for _ in range(3):  # no credentials at all: not an attempt, not recorded
        assert (await client.get("/api/v1/incidents")).status == 401
    failed = await audit(client, entity="auth")
    assert len(failed) == 3
    assert {(r["action"], r["actor"], r["reason"], r["data"]["path"], r["data"]["status"]) for r in failed} == {
        ("auth_failed", "unauthenticated", "invalid credentials", "/api/v1/incidents", 401)}
    clock.advance(61)
    resp = await client.post("/api/v1/silences", headers=d.bearer(Role.VIEWER), json={})
    assert resp.status == 403
    [forbidden, *_] = await audit(client, entity="auth")
    assert (forbidden["action"], forbidden["actor"], forbidden["data"]["suppressed"]) == ("forbidden",
                                                                                          "viewer-client", 7)
    everything = str(await audit(client, limit="1000"))
    assert secret not in everything and d.TOKENS[Role.VIEWER] not in everything


async def test_reloads_are_recorded(tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]) -> None:
    cfg = d.config(tmp_path)
    broken = False

    def load() -> Any:
        if broken:
            raise ConfigError(["itsmd.yaml: listen: nonsense"])
        return cfg

    dm = Daemon(cfg, clock=FakeClock(T0), timers=Timers(pipeline_poll=0.2), loader=load)
    await dm.start_core()
    try:
        client = await aiohttp_client(dm.app)
        admin = d.bearer(Role.ADMIN)
        assert (await client.post("/-/reload", headers=admin, json={})).status == 200
        broken = True
        assert (await client.post("/-/reload", headers=admin, json={})).status == 400
        await dm.reload("SIGHUP")
        records = await audit(client, entity="config")
        assert [(r["action"], r["actor"]) for r in records] == [
            ("reload_failed", "SIGHUP"), ("reload_failed", "admin-client"), ("reloaded", "admin-client")]
        assert records[0]["data"]["problems"] == ["itsmd.yaml: listen: nonsense"]
    finally:
        await dm.stop()

