"""fair claims: read the claim order from indexes

Two partial indexes over queued or running jobs only (never anyone's finished history):
``ix_jobs_claim_order`` (priority, run_at, id) so a claim reads the first ready jobs in claim order
without sorting the whole backlog, and ``ix_jobs_tenant_ready`` (tenant_id, priority, run_at, id) so
it finds the head of every tenant's queue (round-robin across tenants) by one probe per tenant.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

IN_FLIGHT = "state IN ('queued', 'running')"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_claim_order",
            ["priority", "run_at", "id"],
            unique=False,
            sqlite_where=sa.text(IN_FLIGHT),
            postgresql_where=sa.text(IN_FLIGHT),
        )
        batch_op.create_index(
            "ix_jobs_tenant_ready",
            ["tenant_id", "priority", "run_at", "id"],
            unique=False,
            sqlite_where=sa.text(IN_FLIGHT),
            postgresql_where=sa.text(IN_FLIGHT),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_tenant_ready")
        batch_op.drop_index("ix_jobs_claim_order")
