"""at most one delivery of an order in flight

``jobs.exclusive_key``: at most one *queued or running* job per key (a unique partial index), so a
second trigger for work that is already running (e.g. a re-poll seeing an order whose delivery is in
progress) cannot start a parallel copy of it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

IN_FLIGHT = "state IN ('queued', 'running')"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exclusive_key", sa.String(length=300), nullable=True))
        batch_op.create_index(
            "uq_jobs_in_flight_exclusive",
            ["exclusive_key"],
            unique=True,
            sqlite_where=sa.text(IN_FLIGHT),
            postgresql_where=sa.text(IN_FLIGHT),
        )
    # Deliveries queued before this revision: at most one queued per order already (dedupe_key), but a
    # running one may sit beside it; only the oldest in-flight job of an order takes the key.
    op.execute(
        """
        UPDATE jobs SET exclusive_key = dedupe_key
        WHERE kind = 'orders.deliver' AND dedupe_key IS NOT NULL AND state IN ('queued', 'running')
          AND id = (SELECT MIN(j2.id) FROM jobs j2
                    WHERE j2.dedupe_key = jobs.dedupe_key AND j2.kind = 'orders.deliver'
                      AND j2.state IN ('queued', 'running'))
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("uq_jobs_in_flight_exclusive")
        batch_op.drop_column("exclusive_key")
