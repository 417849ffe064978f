"""Problems (recurring incidents of one signature, known errors) and the signature of each incident.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from itsmd.storage.types import JsonText, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNRESOLVED = sa.text("state IN ('open', 'investigating', 'known_error')")
LINKED = sa.text("problem_id IS NOT NULL")


def upgrade() -> None:
    op.add_column("incidents", sa.Column("signature", JsonText()))
    op.add_column("incidents", sa.Column("signature_hash", sa.String(64)))
    op.create_index("incidents_signature", "incidents", ["signature_hash", "opened_at"])
    op.create_index("incidents_problem", "incidents", ["problem_id"], postgresql_where=LINKED, sqlite_where=LINKED)
    op.create_table(
        "problems",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("signature", JsonText(), nullable=False),
        sa.Column("signature_hash", sa.String(64), nullable=False),
        sa.Column("title", JsonText(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner", JsonText()),
        sa.Column("incident_count", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.Column("known_error", JsonText()),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("resolved_at", UtcDateTime()),
        sa.Column("closed_at", UtcDateTime()),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("problems_one_unresolved", "problems", ["signature_hash"], unique=True,
                    postgresql_where=UNRESOLVED, sqlite_where=UNRESOLVED)
    op.create_index("problems_signature", "problems", ["signature_hash", "id"])
    op.create_index("problems_state", "problems", ["state", "id"])


def downgrade() -> None:
    op.drop_table("problems")
    op.drop_index("incidents_problem", "incidents")
    op.drop_index("incidents_signature", "incidents")
    with op.batch_alter_table("incidents") as batch:
        for col in ("signature_hash", "signature"):
            batch.drop_column(col)
