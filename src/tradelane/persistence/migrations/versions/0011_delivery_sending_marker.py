"""a delivery in progress is marked on its order_deliveries row

``order_deliveries.sending_token`` / ``sending_since``: set (in the job's lease-fenced transaction)
right before a merchant system is sent an order, cleared when the answer is recorded. A second runner
of the same delivery job (the first one's lease was lost while its request was in flight) waits for
that answer instead of sending the order again, until the marker is older than any request can take.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tradelane.persistence.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sending_token", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("sending_since", tradelane.persistence.types.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("order_deliveries", schema=None) as batch_op:
        batch_op.drop_column("sending_since")
        batch_op.drop_column("sending_token")
