"""id match acceptances: the operator's "accept ours" for a unique-ID match conflict

``id_match_acceptances`` holds, per channel and SKU, the conflict (our group vs theirs) an operator
accepted, with who, when and why: such a conflict no longer holds the SKU's offer back nor blocks
go-live (services.id_match_conflicts).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tradelane.persistence.types

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "id_match_acceptances",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("channel_id", _id(), nullable=False),
        sa.Column("sku", sa.String(length=200), nullable=False),
        sa.Column("our_group", sa.String(length=200), nullable=True),
        sa.Column("their_group", sa.String(length=200), nullable=True),
        sa.Column("run_id", _id(), nullable=False),
        sa.Column("accepted_at", tradelane.persistence.types.UTCDateTime(), nullable=False),
        sa.Column("accepted_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name="fk_id_match_acceptances_channel_id_channels",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_id_match_acceptances_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_id_match_acceptances"),
        sa.UniqueConstraint("channel_id", "sku", name="uq_id_match_acceptances_channel_id_sku"),
    )


def downgrade() -> None:
    op.drop_table("id_match_acceptances")
