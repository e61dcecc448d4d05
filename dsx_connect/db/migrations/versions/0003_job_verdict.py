"""A job's results of one verdict (its report's malicious files and failures, a filtered search):
one index instead of reading the whole job.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_scan_results_job_verdict", "scan_results", ["job_id", "verdict", "ts_us", "id"])


def downgrade() -> None:
    op.drop_index("ix_scan_results_job_verdict", "scan_results")
