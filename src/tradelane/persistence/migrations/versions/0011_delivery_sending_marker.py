"""a delivery in progress is marked on its order_deliveries row; the jobs' indexes hold only their rows

``order_deliveries.sending_token`` / ``sending_since``: set (in the job's lease-fenced transaction)
right before a merchant system is sent an order, cleared when the answer is recorded. A second runner
of the same delivery job (the first one's lease was lost while its request was in flight) waits for
that answer instead of sending the order again, until the marker is older than any request can take.

The jobs table: every claim and every acknowledgement writes the job's new row version into each index
whose predicate it matches. ``ix_jobs_ready`` (state, run_at, priority) is dropped (the claim reads
``ix_jobs_claim_order`` since 0010); ``ix_jobs_lease`` becomes (lease_expires_at) over running jobs
only; the dedupe and exclusive unique indexes leave out jobs without a key; ``ix_jobs_dead`` keeps the
dead letters of a tenant indexed. A job without keys is now written into 5 indexes when claimed (was 7)
and 2 when acknowledged (was 4).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 06:10:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

import tradelane.persistence.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


RUNNING = "state = 'running'"
DEAD = "state = 'dead'"
DEDUPE_OLD = "state = 'queued'"
DEDUPE = "state = 'queued' AND dedupe_key IS NOT NULL"
EXCLUSIVE_OLD = "state IN ('queued', 'running')"
EXCLUSIVE = "state IN ('queued', 'running') AND exclusive_key IS NOT NULL"


def _partial(batch_op: Any, name: str, columns: list[str], where: str, unique: bool = False) -> None:
    batch_op.create_index(
        name, columns, unique=unique, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
    )


def upgrade() -> None:
    with op.batch_alter_table("order_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sending_token", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("sending_since", tradelane.persistence.types.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_ready")
        batch_op.drop_index("ix_jobs_lease")
        batch_op.drop_index("uq_jobs_pending_dedupe")
        batch_op.drop_index("uq_jobs_in_flight_exclusive")
        _partial(batch_op, "ix_jobs_lease", ["lease_expires_at"], RUNNING)
        _partial(batch_op, "ix_jobs_dead", ["tenant_id", "finished_at"], DEAD)
        _partial(batch_op, "uq_jobs_pending_dedupe", ["dedupe_key"], DEDUPE, unique=True)
        _partial(batch_op, "uq_jobs_in_flight_exclusive", ["exclusive_key"], EXCLUSIVE, unique=True)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("uq_jobs_in_flight_exclusive")
        batch_op.drop_index("uq_jobs_pending_dedupe")
        batch_op.drop_index("ix_jobs_dead")
        batch_op.drop_index("ix_jobs_lease")
        _partial(batch_op, "uq_jobs_in_flight_exclusive", ["exclusive_key"], EXCLUSIVE_OLD, unique=True)
        _partial(batch_op, "uq_jobs_pending_dedupe", ["dedupe_key"], DEDUPE_OLD, unique=True)
        batch_op.create_index("ix_jobs_lease", ["state", "lease_expires_at"], unique=False)
        batch_op.create_index("ix_jobs_ready", ["state", "run_at", "priority"], unique=False)
    with op.batch_alter_table("order_deliveries", schema=None) as batch_op:
        batch_op.drop_column("sending_since")
        batch_op.drop_column("sending_token")
