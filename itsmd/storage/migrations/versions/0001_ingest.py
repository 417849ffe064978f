"""Ingest: inbox, alert episodes, quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from itsmd.storage.types import JsonText, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("labels", JsonText(), nullable=False),
        sa.Column("annotations", JsonText(), nullable=False),
        sa.Column("generator_url", JsonText(), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime()),
        sa.Column("expires_at", UtcDateTime()),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("incident_id", Id),
        sa.Column("symptom", sa.String(16)),
        sa.Column("muted_by", sa.String(64)),
        sa.Column("stale", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("flapping", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    firing = sa.text("status = 'firing'")
    op.create_index("alerts_one_firing", "alerts", ["fingerprint"], unique=True,
                    postgresql_where=firing, sqlite_where=firing)
    op.create_index("alerts_fingerprint", "alerts", ["fingerprint", "id"])
    op.create_index("alerts_status", "alerts", ["status", "id"])
    op.create_index("alerts_incident", "alerts", ["incident_id"])
    expiring = sa.text("expires_at IS NOT NULL")
    op.create_index("alerts_expiry", "alerts", ["expires_at"],
                    postgresql_where=expiring, sqlite_where=expiring)
    op.create_table(
        "quarantine",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("reason", JsonText(), nullable=False),
        sa.Column("alert", JsonText(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quarantine")
    op.drop_table("alerts")
    op.drop_table("inbox")
