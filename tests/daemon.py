"""Builders for tests that run the real daemon in-process (real store, real pipeline, HTTP via aiohttp's client)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from itsmd.app import Daemon, Timers
from itsmd.clock import Clock
from itsmd.config.model import Auth, Config, Limits, Token
from itsmd.core.access import Role
from tests.conftest import POSTGRES_URL, reset_postgres

TOKENS = {
    Role.INGEST: "ingest-token-0123456789",
    Role.VIEWER: "viewer-token-0123456789",
    Role.OPERATOR: "operator-token-0123456789",
    Role.ADMIN: "admin-token-0123456789",
}
# The credentials of the Alertmanager fixtures 08 (bearer) and 09 (basic).
FIXTURE_BEARER = "test-token-123"
FIXTURE_BASIC = ("itsmd-test", "test-password-123")


def auth() -> Auth:
    tokens = [Token(f"{role}-client", role, hashlib.sha256(t.encode()).digest()) for role, t in TOKENS.items()]
    tokens.append(Token("am-bearer", Role.INGEST, hashlib.sha256(FIXTURE_BEARER.encode()).digest()))
    tokens.append(Token(FIXTURE_BASIC[0], Role.INGEST, hashlib.sha256(FIXTURE_BASIC[1].encode()).digest()))
    return Auth(tuple(tokens))


def config(tmp: Path, *, with_auth: bool = True, database: str | None = None, **limits: int) -> Config:
    c = Config.default(tmp)
    return replace(
        c,
        auth=auth() if with_auth else None,
        database=database or c.database,
        limits=replace(Limits(), **limits),
        storage=replace(c.storage, busy_timeout=0.2),
    )


def bearer(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def daemon(cfg: Config, clock: Clock | None = None) -> Daemon:
    return Daemon(cfg, clock=clock, timers=Timers(expiry_tick=0.2, pipeline_poll=0.2, shutdown_grace=2.0))


def engine_database(engine: str) -> str | None:
    """The database of a flow test run on `engine`: "sqlite" gives None (the default file in its directory),
    "postgres" the ITSMD_TEST_POSTGRES database with its schema reset (the test is skipped without one)."""
    if engine != "postgres":
        return None
    if not POSTGRES_URL:
        pytest.skip("set ITSMD_TEST_POSTGRES to run the PostgreSQL flow")
    reset_postgres(POSTGRES_URL).engine.dispose()
    return POSTGRES_URL


async def send(client: TestClient, dm: Daemon, *alerts: dict[str, Any]) -> None:  # type: ignore[type-arg]
    """POST one Alertmanager webhook with these alerts (ingest token) and wait until the pipeline applied it."""
    resp = await client.post("/api/v1/webhooks/alertmanager", json={"version": "4", "alerts": list(alerts)},
                             headers=bearer(Role.INGEST))
    assert resp.status == 200, await resp.text()
    await dm.pipeline.drain()
