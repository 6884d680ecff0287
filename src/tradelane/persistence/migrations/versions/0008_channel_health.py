"""channel health: credentials alerts, data directory checks

Adds what the channel hardening needs:

* ``channel_flows.pause_reason`` — why a flow is paused (``auth``: the marketplace rejected the
  credentials; ``channel update`` resumes only those), NULL for an operator's pause;
* ``channels.full_synced_at`` — when the last full offer sync of the channel read the catalog (NULL:
  never; the first delta then defers to one full sync). Back-filled from the offers already sent;
* ``channels.removed_at`` — ``channel remove`` keeps the row (orders stay for audit) and stamps it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Text  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401
from alembic import op

import tradelane.persistence.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channel_flows", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pause_reason", sa.String(length=30), nullable=True))
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("full_synced_at", tradelane.persistence.types.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("removed_at", tradelane.persistence.types.UTCDateTime(), nullable=True))
    # Channels that already sent offers had their first sync: their deltas stay deltas.
    op.execute(
        "UPDATE channels SET full_synced_at = (SELECT max(b.last_synced_at) FROM offer_bindings b "
        "WHERE b.channel_id = channels.id) "
        "WHERE EXISTS (SELECT 1 FROM offer_bindings b WHERE b.channel_id = channels.id "
        "AND b.last_synced_at IS NOT NULL)"
    )


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("removed_at")
        batch_op.drop_column("full_synced_at")
    with op.batch_alter_table("channel_flows", schema=None) as batch_op:
        batch_op.drop_column("pause_reason")
