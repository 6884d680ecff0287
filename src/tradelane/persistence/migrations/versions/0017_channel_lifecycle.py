"""lifecycle Setup -> Testing -> Live and flow toggles

Channels gain their testing period and go-live stamps:

* ``testing_days`` (default 30): how long the Testing period lasts, per channel;
* ``testing_started_at`` / ``testing_ends_at``: set by ``activate`` (Setup -> Testing); the engine's
  periodic check promotes a Testing channel once ``testing_ends_at`` has passed;
* ``promotion_check_at``: when a blocked automatic promotion is tried again (NULL: as soon as due);
* ``live_at``: when the channel went Live.

From this revision on a channel in Setup sends nothing (no flow is scheduled, no marketplace job runs).
Before it, every channel ran its flows whatever its state, so the channels that exist at upgrade and are
in Setup have been operating: they are moved to Live (``live_at`` = the upgrade), with a ``system`` audit
event ``lifecycle.migrated`` each. Channels in Testing start a 30-day period at the upgrade.

The reconciler removes listings, so it is switched on only through its dry run: new channels start with
it off, and so does every existing channel (no reconciler ever ran before this revision).

Downgrade drops the columns; the states written stay (before this revision Setup and Live behaved the
same), and audit events are never deleted.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tradelane.persistence.types

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_DEFAULT_TESTING_DAYS = 30


def upgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("testing_days", sa.Integer(), nullable=False, server_default=str(_DEFAULT_TESTING_DAYS))
        )
        batch_op.add_column(
            sa.Column("testing_started_at", tradelane.persistence.types.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("testing_ends_at", tradelane.persistence.types.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("promotion_check_at", tradelane.persistence.types.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("live_at", tradelane.persistence.types.UTCDateTime(), nullable=True))
    op.create_index("ix_channels_testing_ends_at", "channels", ["lifecycle_state", "testing_ends_at"])
    _move_operating_channels(datetime.now(UTC))


def _move_operating_channels(now: datetime) -> None:
    channels = sa.table(
        "channels",
        sa.column("id", _ID),
        sa.column("tenant_id", _ID),
        sa.column("lifecycle_state", sa.String()),
        sa.column("removed_at", tradelane.persistence.types.UTCDateTime()),
        sa.column("testing_started_at", tradelane.persistence.types.UTCDateTime()),
        sa.column("testing_ends_at", tradelane.persistence.types.UTCDateTime()),
        sa.column("live_at", tradelane.persistence.types.UTCDateTime()),
    )
    events = sa.table(
        "channel_events",
        sa.column("tenant_id", _ID),
        sa.column("channel_id", _ID),
        sa.column("at", tradelane.persistence.types.UTCDateTime()),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("reason", sa.Text()),
        sa.column("details", _JSON),
    )
    bind = op.get_bind()
    operating = bind.execute(
        sa.select(channels.c.id, channels.c.tenant_id).where(
            channels.c.lifecycle_state == "setup", channels.c.removed_at.is_(None)
        )
    ).all()
    for row in operating:
        bind.execute(
            sa.update(channels).where(channels.c.id == row.id).values(lifecycle_state="live", live_at=now)
        )
        bind.execute(
            sa.insert(events).values(
                tenant_id=row.tenant_id,
                channel_id=row.id,
                at=now,
                actor="system",
                action="lifecycle.migrated",
                reason="the channel was operating before lifecycle states took effect (migration 0017)",
                details={"from": "setup", "to": "live"},
            )
        )
    flows = sa.table("channel_flows", sa.column("flow", sa.String()), sa.column("enabled", sa.Boolean()))
    bind.execute(sa.update(flows).where(flows.c.flow == "reconciler").values(enabled=False))
    bind.execute(
        sa.update(channels)
        .where(channels.c.lifecycle_state == "testing", channels.c.testing_ends_at.is_(None))
        .values(testing_started_at=now, testing_ends_at=now + timedelta(days=_DEFAULT_TESTING_DAYS))
    )


def downgrade() -> None:
    op.drop_index("ix_channels_testing_ends_at", table_name="channels")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("live_at")
        batch_op.drop_column("promotion_check_at")
        batch_op.drop_column("testing_ends_at")
        batch_op.drop_column("testing_started_at")
        batch_op.drop_column("testing_days")
