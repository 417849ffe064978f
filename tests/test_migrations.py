"""Migrations build exactly the schema the code declares, and run both ways, on each engine."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from itsmd.storage.database import Database, migrate
from itsmd.storage.tables import metadata


def test_migrated_schema_matches_the_tables(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_downgrade_to_base_and_up_again(database: Database) -> None:
    from alembic import command
    from alembic.config import Config

    from itsmd.storage import database as dbmod

    cfg = Config()
    cfg.set_main_option("script_location", str(dbmod._MIGRATIONS))
    with database.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
    migrate(database)
    assert {"alerts", "inbox", "incidents", "events"} <= set(inspect(database.engine).get_table_names())
