"""Paging: the durable outbox of pages, each incident's paging state and its paging deadline.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from itsmd.storage.types import JsonText, UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PAGE_AT = sa.text("page_at IS NOT NULL")
PENDING = sa.text("state = 'pending'")
OUTSTANDING = sa.text("outstanding IS NOT NULL")


def upgrade() -> None:
    op.add_column("incidents", sa.Column("page_at", UtcDateTime()))
    op.create_index("incidents_page_at", "incidents", ["page_at"], postgresql_where=PAGE_AT, sqlite_where=PAGE_AT)
    op.create_table(
        "pages",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(400), nullable=False, unique=True),
        sa.Column("incident_id", sa.BigInteger()),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("cause", sa.String(32), nullable=False),
        sa.Column("reason", JsonText(), nullable=False),
        sa.Column("notifier", sa.String(200)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime()),
        sa.Column("last_error", JsonText()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime()),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("pages_due", "pages", ["next_attempt_at"], postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_index("pages_incident", "pages", ["incident_id", "id"])
    op.create_index("pages_created", "pages", ["event", "created_at"])
    op.create_table(
        "paging",
        sa.Column("incident_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.Column("causes", JsonText(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("last_paged_at", UtcDateTime()),
        sa.Column("notifiers", JsonText(), nullable=False),
        sa.Column("outstanding", sa.String(16)),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("paging_outstanding", "paging", ["outstanding"], postgresql_where=OUTSTANDING,
                    sqlite_where=OUTSTANDING)


def downgrade() -> None:
    op.drop_table("paging")
    op.drop_table("pages")
    op.drop_index("incidents_page_at", "incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("page_at")
