"""Silences and maintenance windows; an index on the firing alerts they muted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from itsmd.storage.types import JsonText, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MUTED_FIRING = sa.text("muted_by IS NOT NULL AND status = 'firing'")


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("seq", Id, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("matchers", JsonText(), nullable=False),
        sa.Column("starts_at", UtcDateTime()),
        sa.Column("ends_at", UtcDateTime()),
        sa.Column("schedule", JsonText()),
        sa.Column("timezone", sa.String(64)),
        sa.Column("duration", sa.Float()),
        sa.Column("created_by", JsonText(), nullable=False),
        sa.Column("comment", JsonText(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("expired_at", UtcDateTime()),
    )
    op.create_index("alerts_muted", "alerts", ["muted_by"], postgresql_where=MUTED_FIRING, sqlite_where=MUTED_FIRING)


def downgrade() -> None:
    op.drop_index("alerts_muted", "alerts")
    op.drop_table("silences")
