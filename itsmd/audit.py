"""`itsmd audit verify`: recompute the hash chain of the audit log (the `events` table) of the configured database."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from itsmd.config import Config
from itsmd.errors import ConfigError
from itsmd.storage import events
from itsmd.storage.database import open_database

EXIT_BROKEN, EXIT_CONFIG = 1, 2


def verify(load: Callable[[], Config], out: TextIO, err: TextIO) -> int:
    """Exit 0 with `ok N records` and the newest hash (write it down: a removed tail shows only against it);
    1 naming the first broken record; 2 when the config or the database cannot be read."""
    try:
        config = load()
    except ConfigError as e:
        for problem in e.problems:
            err.write(f"{problem}\n")
        return EXIT_CONFIG
    db = open_database(config.database, busy_timeout=config.storage.busy_timeout)
    try:
        with db.engine.connect() as conn:
            check = events.verify(conn)
    except (SQLAlchemyError, ValueError) as e:
        err.write(f"itsmd: cannot read the audit log of {_where(config.database)}: {e.__class__.__name__}: "
                  f"{str(e).splitlines()[0] if str(e) else ''}\n")
        return EXIT_CONFIG
    finally:
        db.engine.dispose()
    if check.broken_id is not None:
        out.write(f"broken: record {check.broken_id}: {check.why} ({check.records} records before it are intact)\n")
        return EXIT_BROKEN
    out.write(f"ok {check.records} records, head {check.head}\n")
    return 0


def _where(url: str) -> str:
    """The database named without a password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
