"""channel selection: products selected by label

``channel_selections`` holds a channel's selection rule (labels and attribute conditions); a channel
without a row offers every product, as before. ``offer_bindings.selection_state`` ("selected",
"delisting", "left") records where each bound product stands; existing bindings are "selected".

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tradelane.persistence.types

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_selections",
        sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "rule",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", tradelane.persistence.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name="fk_channel_selections_channel_id_channels",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_channel_selections_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("channel_id", name="pk_channel_selections"),
    )
    op.create_index("ix_channel_selections_tenant_id", "channel_selections", ["tenant_id"])
    with op.batch_alter_table("offer_bindings") as batch:
        batch.add_column(
            sa.Column("selection_state", sa.String(length=12), nullable=False, server_default="selected")
        )


def downgrade() -> None:
    with op.batch_alter_table("offer_bindings") as batch:
        batch.drop_column("selection_state")
    op.drop_index("ix_channel_selections_tenant_id", table_name="channel_selections")
    op.drop_table("channel_selections")
