"""The scan results history: one row per scan request, indexes for the newest-first searches.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LOCATION = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "scan_results",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("scan_request_id", sa.String(128), nullable=False),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("connector_uuid", sa.String(64), nullable=False),
        sa.Column("connector_name", sa.String(200), nullable=False),
        sa.Column("location", _LOCATION, nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("action_status", sa.String(16), nullable=False),
        sa.Column("failed", sa.Boolean, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.UniqueConstraint("scan_request_id", name="uq_scan_results_request"),
    )
    # newest first: every filter's index ends with (ts_us, id), the keyset order
    op.create_index("ix_scan_results_ts", "scan_results", ["ts_us", "id"])
    op.create_index("ix_scan_results_verdict", "scan_results", ["verdict", "ts_us", "id"])
    op.create_index("ix_scan_results_connector", "scan_results", ["connector_uuid", "ts_us", "id"])
    op.create_index("ix_scan_results_job", "scan_results", ["job_id", "ts_us", "id"])
    op.create_index("ix_scan_results_location", "scan_results", ["location"])


def downgrade() -> None:
    op.drop_table("scan_results")
