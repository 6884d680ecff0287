"""reconciler reports and the unique-ID match

``reconciler_reports``: every reconciler dry run and run — the marketplace's listings against what the
hub manages for the channel (selected but not listed, listed but not selected, listed but unknown to
the catalog), what a run removes and removed, and the operator's confirmation of a dry run.
``id_match_runs`` / ``id_match_rows``: every unique-ID match of the marketplace's listings with the
catalog (matched, only ours, only theirs, same ID with conflicting grouping).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tradelane.persistence.types

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def _id_type() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _owner_columns(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("id", _id_type(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", _id_type(), nullable=False),
        sa.Column("channel_id", _id_type(), nullable=False),
        sa.Column("created_at", tradelane.persistence.types.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=f"fk_{table}_channel_id_channels", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    ]


def upgrade() -> None:
    op.create_table(
        "reconciler_reports",
        *_owner_columns("reconciler_reports"),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("can_delete", sa.Boolean(), nullable=False),
        sa.Column("include_unmanaged", sa.Boolean(), nullable=False),
        sa.Column("listed_count", sa.Integer(), nullable=False),
        sa.Column("selected_count", sa.Integer(), nullable=False),
        sa.Column("not_listed", _json(), nullable=False),
        sa.Column("not_selected", _json(), nullable=False),
        sa.Column("unmanaged", _json(), nullable=False),
        sa.Column("to_remove", _json(), nullable=False),
        sa.Column("removals", _json(), nullable=False),
        sa.Column("warning", sa.Text(), nullable=True),
        sa.Column("hint", sa.Text(), nullable=True),
        sa.Column("confirmed_at", tradelane.persistence.types.UTCDateTime(), nullable=True),
        sa.Column("confirmed_by", sa.String(length=200), nullable=True),
    )
    op.create_index("ix_reconciler_reports_channel_id", "reconciler_reports", ["channel_id", "id"])
    op.create_table(
        "id_match_runs",
        *_owner_columns("id_match_runs"),
        sa.Column("listed_count", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("only_ours", sa.Integer(), nullable=False),
        sa.Column("only_theirs", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
    )
    op.create_index("ix_id_match_runs_channel_id", "id_match_runs", ["channel_id", "id"])
    op.create_table(
        "id_match_rows",
        sa.Column("id", _id_type(), autoincrement=True, nullable=False),
        sa.Column("run_id", _id_type(), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("sku", sa.String(length=200), nullable=True),
        sa.Column("their_sku", sa.String(length=200), nullable=True),
        sa.Column("matched_by", sa.String(length=20), nullable=True),
        sa.Column("gtin", sa.String(length=20), nullable=True),
        sa.Column("their_product_id", sa.String(length=200), nullable=True),
        sa.Column("our_group", sa.String(length=200), nullable=True),
        sa.Column("their_group", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["id_match_runs.id"], name="fk_id_match_rows_run_id_id_match_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_id_match_rows"),
    )
    op.create_index("ix_id_match_rows_run_id", "id_match_rows", ["run_id", "category"])


def downgrade() -> None:
    op.drop_index("ix_id_match_rows_run_id", table_name="id_match_rows")
    op.drop_table("id_match_rows")
    op.drop_index("ix_id_match_runs_channel_id", table_name="id_match_runs")
    op.drop_table("id_match_runs")
    op.drop_index("ix_reconciler_reports_channel_id", table_name="reconciler_reports")
    op.drop_table("reconciler_reports")
