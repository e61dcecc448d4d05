"""The location index covers the first ``LOCATION_HEAD`` characters of a location, not all of it.

PostgreSQL refuses a B-tree entry over about 2,704 bytes: a result whose location was longer (an
Azure blob name of 1,024 CJK characters is 3,072 bytes) could not be stored at all and was left out
of the history. 600 characters are 2,400 bytes at most in UTF-8; prefix searches range over the head
and compare the rest of the location row by row (dsx_connect/results/history.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LOCATION_HEAD = 600  # dsx_connect.db.schema.LOCATION_HEAD, fixed here as this revision made it


def upgrade() -> None:
    op.drop_index("ix_scan_results_location", table_name="scan_results")
    op.create_index(
        "ix_scan_results_location_head", "scan_results", [sa.text(f"substr(location, 1, {LOCATION_HEAD})")]
    )


def downgrade() -> None:
    op.drop_index("ix_scan_results_location_head", table_name="scan_results")
    op.create_index("ix_scan_results_location", "scan_results", ["location"])
