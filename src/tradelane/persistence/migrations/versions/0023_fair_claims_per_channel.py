"""fair claims per channel: index each (tenant, channel) group's queue

``ix_jobs_group_ready`` (tenant_id, coalesce(channel_id, 0), priority, run_at, id) over queued or
running jobs replaces ``ix_jobs_tenant_ready`` (tenant_id, priority, run_at, id): the fair claim takes
turns across (tenant, channel) groups, a job of no channel counting as group 0 (channel ids start at
1), and finds every group's next ready job by one probe. Still one index written per claimed or
acknowledged job; a tenant's queued or running jobs are read from its leading column as before.

An expression index: SQLAlchemy does not reflect those on SQLite, so a later migration that rebuilds
``jobs`` with ``batch_alter_table`` on SQLite must create it again (test_engine_channel_fairness.py
fails when the claim no longer reads it).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

IN_FLIGHT = "state IN ('queued', 'running')"


def upgrade() -> None:
    op.create_index(
        "ix_jobs_group_ready",
        "jobs",
        ["tenant_id", sa.text("coalesce(channel_id, 0)"), "priority", "run_at", "id"],
        unique=False,
        sqlite_where=sa.text(IN_FLIGHT),
        postgresql_where=sa.text(IN_FLIGHT),
    )
    op.drop_index("ix_jobs_tenant_ready", table_name="jobs")


def downgrade() -> None:
    op.create_index(
        "ix_jobs_tenant_ready",
        "jobs",
        ["tenant_id", "priority", "run_at", "id"],
        unique=False,
        sqlite_where=sa.text(IN_FLIGHT),
        postgresql_where=sa.text(IN_FLIGHT),
    )
    op.drop_index("ix_jobs_group_ready", table_name="jobs")
