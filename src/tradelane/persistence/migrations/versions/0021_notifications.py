"""notifications: email and signed webhook outbox

``notification_settings`` says where a tenant's notifications go (a tenant-wide row, optionally one per
channel: recipients and a webhook whose secret is Fernet-encrypted); ``notifications`` is the outbox
written in the caller's transaction; ``notification_deliveries`` holds each destination's latest outcome.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tradelane.persistence.types

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "notification_settings",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("channel_id", _id(), nullable=True),
        sa.Column("emails", _json(), nullable=False),
        sa.Column("webhook_url", sa.String(length=1000), nullable=True),
        sa.Column("webhook_secret", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", tradelane.persistence.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tradelane.persistence.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name="fk_notification_settings_channel_id_channels",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_notification_settings_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notification_settings"),
    )
    op.create_index(
        "uq_notification_settings_tenant",
        "notification_settings",
        ["tenant_id"],
        unique=True,
        sqlite_where=sa.text("channel_id IS NULL"),
        postgresql_where=sa.text("channel_id IS NULL"),
    )
    op.create_index(
        "uq_notification_settings_channel",
        "notification_settings",
        ["tenant_id", "channel_id"],
        unique=True,
        sqlite_where=sa.text("channel_id IS NOT NULL"),
        postgresql_where=sa.text("channel_id IS NOT NULL"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("channel_id", _id(), nullable=True),
        sa.Column("event", sa.String(length=60), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("details", _json(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("job_id", _id(), nullable=True),
        sa.Column("created_at", tradelane.persistence.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tradelane.persistence.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name="fk_notifications_channel_id_channels", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_notifications_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
    )
    op.create_index("ix_notifications_tenant_id", "notifications", ["tenant_id", "id"])
    op.create_table(
        "notification_deliveries",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id(), nullable=False),
        sa.Column("notification_id", _id(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("destination", sa.String(length=1000), nullable=False),
        sa.Column("settings_id", _id(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", tradelane.persistence.types.UTCDateTime(), nullable=True),
        sa.Column("updated_at", tradelane.persistence.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name="fk_notification_deliveries_notification_id_notifications",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["settings_id"],
            ["notification_settings.id"],
            name="fk_notification_deliveries_settings_id_notification_settings",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_notification_deliveries_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
        sa.UniqueConstraint(
            "notification_id",
            "kind",
            "destination",
            name="uq_notification_deliveries_notification_id_kind_destination",
        ),
    )


def downgrade() -> None:
    op.drop_table("notification_deliveries")
    op.drop_index("ix_notifications_tenant_id", table_name="notifications")
    op.drop_table("notifications")
    op.drop_index("uq_notification_settings_channel", table_name="notification_settings")
    op.drop_index("uq_notification_settings_tenant", table_name="notification_settings")
    op.drop_table("notification_settings")
