"""Incidents, their hash-chained timeline, and routing columns on alerts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from itsmd.storage.types import JsonText, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNRESOLVED = sa.text("state IN ('open', 'acknowledged')")


def upgrade() -> None:
    op.add_column("alerts", sa.Column("rule", sa.String(200)))
    op.add_column("alerts", sa.Column("key", JsonText()))
    op.add_column("alerts", sa.Column("key_hash", sa.String(64)))
    op.create_index("alerts_pending", "alerts", ["rule", "key_hash", "first_seen_at"])
    op.create_table(
        "incidents",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("key", JsonText(), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("title", JsonText(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("impact", sa.String(8), nullable=False),
        sa.Column("urgency", sa.String(8), nullable=False),
        sa.Column("service", sa.String(200)),
        sa.Column("owner", sa.String(200)),
        sa.Column("assignee", JsonText()),
        sa.Column("labels", JsonText(), nullable=False),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("firing_count", sa.Integer(), nullable=False),
        sa.Column("detected_at", UtcDateTime(), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("acknowledged_at", UtcDateTime()),
        sa.Column("restored_at", UtcDateTime()),
        sa.Column("resolved_at", UtcDateTime()),
        sa.Column("closed_at", UtcDateTime()),
        sa.Column("resolution", sa.String(20)),
        sa.Column("problem_id", sa.BigInteger()),
        sa.Column("previous_incident_id", sa.BigInteger()),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("signal_lost", sa.Boolean(), nullable=False),
        sa.Column("resolve_at", UtcDateTime()),
        sa.Column("close_at", UtcDateTime()),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("incidents_one_unresolved", "incidents", ["rule", "key_hash"], unique=True,
                    postgresql_where=UNRESOLVED, sqlite_where=UNRESOLVED)
    op.create_index("incidents_key", "incidents", ["rule", "key_hash", "id"])
    op.create_index("incidents_state", "incidents", ["state", "id"])
    for col in ("resolve_at", "close_at"):
        cond = sa.text(f"{col} IS NOT NULL")
        op.create_index(f"incidents_{col}", "incidents", [col], postgresql_where=cond, sqlite_where=cond)
    op.create_table(
        "events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.BigInteger()),
        sa.Column("actor", JsonText(), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("reason", JsonText(), nullable=False),
        sa.Column("data", JsonText(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("events_entity", "events", ["entity", "entity_id", "id"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("incidents")
    op.drop_index("alerts_pending", "alerts")
    with op.batch_alter_table("alerts") as batch:
        for col in ("key_hash", "key", "rule"):
            batch.drop_column(col)
