"""A covering index for MTBF in the reports (issue 9: the summary over 1,000,000 alerts and 100,000 incidents in
<= 1 s): `incidents_report_service` hands MTBF each service's intervals in start order (no sort, no row look-ups).

No index for the alerts' deliveries by startsAt: one holding `occurrences` would be rewritten by every repeated
delivery on the ingest path (measured: +50% per repeat UPDATE); the report scans the alerts instead. See
docs/benchmarks.md, "Reports (issue 9)".

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("incidents_report_service", "incidents",
                    ["service", "detected_at", "restored_at", "resolved_at", "state"])


def downgrade() -> None:
    op.drop_index("incidents_report_service", "incidents")
