"""order health: checked SKU mappings

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Text  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401
from alembic import op

import tradelane.persistence.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing mappings keep resolving only if their merchant SKU is in the catalog (see
    # tradelane.merchant.skus); a mapping to a SKU known only to the merchant system must be
    # re-confirmed with merchant_only.
    with op.batch_alter_table("sku_mappings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("merchant_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("sku_mappings", schema=None) as batch_op:
        batch_op.drop_column("merchant_only")
