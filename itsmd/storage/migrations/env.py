"""Alembic environment: run migrations on the connection itsmd hands over (never a URL from a file)."""

from __future__ import annotations

from alembic import context

from itsmd.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("itsmd migrations run through itsmd.storage.database.migrate")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
