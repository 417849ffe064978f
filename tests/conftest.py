"""Shared fixtures: the real store on SQLite (file) and, when ITSMD_TEST_POSTGRES is set, on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

# Subprocesses (`python -m itsmd`) import the package from THIS checkout, whichever one is installed editable.
_ROOT = str(Path(__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)

import pytest  # noqa: E402
from sqlalchemy import text  # noqa: E402

from itsmd.storage.database import Database, migrate, open_database  # noqa: E402
from itsmd.storage.store import SqlStore  # noqa: E402

# The project is cloned beside ../shared (developers and CI alike).
SHARED = Path(os.environ.get("ITSMD_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FIXTURES = SHARED / "fixtures" / "alertmanager"

POSTGRES_URL = os.environ.get("ITSMD_TEST_POSTGRES")


def reset_postgres(url: str) -> Database:
    db = open_database(url)
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    return db


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database of each engine."""
    if request.param == "sqlite":
        db = open_database(f"sqlite:///{tmp_path / 'itsmd.db'}")
    else:
        if not POSTGRES_URL:
            pytest.skip("set ITSMD_TEST_POSTGRES=postgresql://... to run the PostgreSQL store tests")
        db = reset_postgres(POSTGRES_URL)
    migrate(db)
    yield db
    db.engine.dispose()


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SqlStore]:
    s = SqlStore(database, readers=2)
    await s.start()
    yield s
    await s.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ITSMD_TEST_POSTGRES set (as in CI), a PostgreSQL test that skips is a failure."""
    if not POSTGRES_URL:
        return
    for item in items:
        if "[postgres" in item.nodeid:
            item.add_marker(pytest.mark.postgres)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if POSTGRES_URL and report.skipped and "[postgres" in item.nodeid:
        report.outcome = "failed"
        report.longrepr = f"PostgreSQL test skipped although ITSMD_TEST_POSTGRES is set: {report.longrepr}"
