"""The database: engine with durable SQLite settings, the single-daemon lock, and migrations on start."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from itsmd.core.leadership import LOCK_CLASS, MIGRATE_KEY
from itsmd.errors import StartupError, StorageUnavailable

_MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Database:
    engine: Engine
    url: str
    in_memory: bool

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"


def _sqlite_pragmas(synchronous: str, busy_ms: int) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return on_connect


def open_database(
    url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 4, busy_timeout: float = 5.0
) -> Database:
    """An engine for `url` (sqlite:///path, sqlite:// in memory, postgresql://...)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        if in_memory:
            engine = create_engine(
                "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            engine = create_engine(
                parsed, pool_size=pool_size + 1, connect_args={"check_same_thread": False}
            )
        if sqlite_synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"bad sqlite_synchronous {sqlite_synchronous!r}")
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous, int(busy_timeout * 1000)))
        return Database(engine, url, in_memory)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, pool_size=pool_size + 1, pool_pre_ping=True)
    return Database(engine, url, False)


def migrate(db: Database) -> None:
    """Bring the schema to the newest revision (idempotent; on PostgreSQL one replica at a time)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with db.engine.begin() as conn:
            if not db.is_sqlite:  # replicas starting at once: one migrates, the others then find the head
                conn.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": LOCK_CLASS, "b": MIGRATE_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as e:
        raise StorageUnavailable(f"cannot migrate the database: {e.__class__.__name__}: {e}") from e


class DaemonLock:
    """An exclusive lock beside a SQLite file: a second daemon on the same file refuses to start."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StartupError(
                f"another itsmd is already serving {self.path.with_suffix('')} "
                f"(lock {self.path} is held); stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def sqlite_file(db: Database) -> Path | None:
    """The database file of an on-disk SQLite database, else None."""
    if not db.is_sqlite or db.in_memory:
        return None
    name = make_url(db.url).database
    return Path(name).resolve() if name else None
