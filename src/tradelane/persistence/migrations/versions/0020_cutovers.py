"""cutover of a live marketplace account

``cutovers``: one row per cutover of a channel (status, current step, each step's state, the date,
the holiday window, the order-import cutoff, working data, the revert report); at most one cutover per
channel that is not reverted (partial unique index). ``cutover_offers``: the marketplace's offers as
the cutover found them (quantities and prices), taken once, restored by ``revert``.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tradelane.persistence.types

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    when = tradelane.persistence.types.UTCDateTime
    op.create_table(
        "cutovers",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("channel_id", _id(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("steps", _json(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("scheduled_at", when(), nullable=False),
        sa.Column("previous_integrator_confirmed_at", when(), nullable=True),
        sa.Column("previous_integrator_confirmed_by", sa.String(length=200), nullable=True),
        sa.Column("holiday_mode", sa.String(length=20), nullable=False),
        sa.Column("holiday_from", when(), nullable=True),
        sa.Column("holiday_to", when(), nullable=True),
        sa.Column("snapshot_taken_at", when(), nullable=True),
        sa.Column("orders_cutoff", when(), nullable=True),
        sa.Column("revert_report", _json(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", when(), nullable=False),
        sa.Column("updated_at", when(), nullable=False),
        sa.Column("finished_at", when(), nullable=True),
        sa.Column("reverted_at", when(), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name="fk_cutovers_channel_id_channels", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_cutovers_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_cutovers"),
    )
    op.create_index(
        "ix_cutovers_channel_open",
        "cutovers",
        ["channel_id"],
        unique=True,
        sqlite_where=sa.text("status <> 'reverted'"),
        postgresql_where=sa.text("status <> 'reverted'"),
    )
    op.create_table(
        "cutover_offers",
        sa.Column("cutover_id", _id(), nullable=False),
        sa.Column("sku", sa.String(length=200), nullable=False),
        sa.Column("price", tradelane.persistence.types.DecimalText(precision=20, scale=6), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.String(length=100), nullable=True),
        sa.Column("raw", _json(), nullable=False),
        sa.Column("zeroed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cutover_id"], ["cutovers.id"], name="fk_cutover_offers_cutover_id_cutovers", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("cutover_id", "sku", name="pk_cutover_offers"),
    )


def downgrade() -> None:
    op.drop_table("cutover_offers")
    op.drop_index("ix_cutovers_channel_open", table_name="cutovers")
    op.drop_table("cutovers")
