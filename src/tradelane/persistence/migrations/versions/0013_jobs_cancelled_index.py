"""a tenant's cancelled jobs are indexed

``ix_jobs_cancelled`` (tenant_id, id) over cancelled jobs only. The jobs page, the API and ``jobs
list --state cancelled`` list a tenant's cancelled jobs; since ``ix_jobs_ready`` was dropped (0011)
nothing indexed them and the list read every job of the tenant (a sequential scan of the table on
PostgreSQL at 200,000 jobs). Jobs are cancelled rarely (a channel's removal, a replay superseded by a
newer job in flight): no claim or acknowledgement of the engine writes into this index.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 07:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

CANCELLED = "state = 'cancelled'"


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_cancelled",
            ["tenant_id", "id"],
            unique=False,
            sqlite_where=sa.text(CANCELLED),
            postgresql_where=sa.text(CANCELLED),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_cancelled")
