"""Playbook runs and their steps, the persisted automation switch and circuit breakers.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from itsmd.storage.types import JsonText, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE = sa.text("state IN ('pending', 'awaiting_approval', 'running')")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("playbook", sa.String(200), nullable=False),
        sa.Column("incident_id", sa.BigInteger()),
        sa.Column("target", JsonText()),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", JsonText()),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),  # opened | reopened | manual | known_error
        sa.Column("cycle", sa.Integer(), nullable=False),  # the incident's reopen_count then
        sa.Column("requested_by", JsonText(), nullable=False),
        sa.Column("approved_by", JsonText()),
        sa.Column("context", JsonText(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", UtcDateTime()),
        sa.Column("deadline", UtcDateTime()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime()),
        sa.Column("finished_at", UtcDateTime()),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("runs_incident", "runs", ["incident_id", "id"])
    op.create_index("runs_playbook", "runs", ["playbook", "target", "created_at"])
    op.create_index("runs_state", "runs", ["state", "id"])
    op.create_index("runs_active", "runs", ["playbook", "target"], postgresql_where=ACTIVE, sqlite_where=ACTIVE)
    op.create_table(
        "run_steps",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("name", JsonText(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("idempotent", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("status", sa.Integer()),
        sa.Column("output", JsonText()),
        sa.Column("result", JsonText()),
        sa.Column("started_at", UtcDateTime()),
        sa.Column("finished_at", UtcDateTime()),
    )
    op.create_index("run_steps_run", "run_steps", ["run_id", "seq"], unique=True)
    op.create_table(
        "settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", JsonText(), nullable=False),
        sa.Column("updated_by", JsonText(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "breakers",
        sa.Column("playbook", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failures", JsonText(), nullable=False),
        sa.Column("opened_at", UtcDateTime()),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("breakers")
    op.drop_table("settings")
    op.drop_table("run_steps")
    op.drop_table("runs")
