"""Search by threat name and by SHA-256: a ``threat_name`` column (filled in for existing rows from
their events) and two indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("scan_results") as batch:
        batch.add_column(sa.Column("threat_name", sa.String(256)))
    _backfill_threat_names()
    op.create_index("ix_scan_results_sha256", "scan_results", ["sha256", "ts_us", "id"])
    op.create_index("ix_scan_results_threat", "scan_results", ["threat_name", "ts_us", "id"])


def downgrade() -> None:
    op.drop_index("ix_scan_results_threat", "scan_results")
    op.drop_index("ix_scan_results_sha256", "scan_results")
    with op.batch_alter_table("scan_results") as batch:
        batch.drop_column("threat_name")


def _backfill_threat_names() -> None:
    """Threat names of the results stored before this revision, read from their events."""
    from dsx_connect.results.rows import threat_name

    bind = op.get_bind()
    table = sa.table(
        "scan_results", sa.column("id"), sa.column("verdict"), sa.column("event"), sa.column("threat_name")
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c.event)
            .where(table.c.id > last, table.c.verdict == "Malicious")
            .order_by(table.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        updates = [{"row_id": row.id, "name": threat_name(json.loads(row.event))} for row in rows]
        bind.execute(
            table.update()
            .where(table.c.id == sa.bindparam("row_id"))
            .values(threat_name=sa.bindparam("name")),
            updates,
        )
        last = rows[-1].id
