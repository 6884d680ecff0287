"""order states are marketplace-neutral; each order keeps its marketplace's own state beside

``orders.state`` and ``order_history.state`` held Mirakl's names (Amazon orders were mapped onto them);
they now hold the hub's neutral values (:class:`tradelane.domain.orders.OrderState`). The marketplace's
own name is ``orders.marketplace_state`` (already there, holding the old value: Mirakl's raw state; an
Amazon order's is set back to its raw ``fulfillmentStatus`` from ``attributes.amazon_status``) and
``order_versions.marketplace_state`` (an Amazon version's raw status is read from its payload).
History rows that are events (``ACCEPTANCE_SENT``, ``DELIVERED``, ...) are untouched: neutral values
are lower case, events upper case.

Downgrade restores the old values: a Mirakl order's state from its raw state (exact), an Amazon order's
(and version's) through the mapping the hub used before (exact), history rows through the inverse table
(``shipped`` → ``SHIPPED``: a history row of a TO_COLLECT order reads SHIPPED afterwards).

Data only: no schema change.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 07:00:00
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from alembic import op

from tradelane.persistence.types import JSONDoc

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: Mirakl's order states (the old stored values) → the neutral ones (as connectors/mirakl/mapping.py,
#: frozen here: a migration must not change when the code does).
MIRAKL_TO_NEUTRAL: Mapping[str, str] = {
    "STAGING": "pending",
    "WAITING_ACCEPTANCE": "awaiting_acceptance",
    "WAITING_DEBIT": "awaiting_payment",
    "WAITING_DEBIT_PAYMENT": "awaiting_payment",
    "SHIPPING": "to_ship",
    "SHIPPED": "shipped",
    "TO_COLLECT": "shipped",
    "RECEIVED": "delivered",
    "CLOSED": "closed",
    "REFUSED": "refused",
    "CANCELED": "cancelled",
}

#: Neutral → the old (Mirakl-named) value, for rows whose raw state does not say more.
NEUTRAL_TO_OLD: Mapping[str, str] = {
    "pending": "STAGING",
    "awaiting_acceptance": "WAITING_ACCEPTANCE",
    "awaiting_payment": "WAITING_DEBIT_PAYMENT",
    "to_ship": "SHIPPING",
    "partially_shipped": "SHIPPING",
    "shipped": "SHIPPED",
    "delivered": "RECEIVED",
    "closed": "CLOSED",
    "refused": "REFUSED",
    "cancelled": "CANCELED",
}

#: Amazon's raw ``fulfillmentStatus`` → the old stored value (the hub's table before neutral states).
AMAZON_TO_OLD: Mapping[str, str] = {
    "PENDING_AVAILABILITY": "WAITING_DEBIT",
    "PENDING": "WAITING_DEBIT_PAYMENT",
    "UNSHIPPED": "SHIPPING",
    "PARTIALLY_SHIPPED": "SHIPPING",
    "SHIPPED": "SHIPPED",
    "CANCELLED": "CANCELED",
    "UNFULFILLABLE": "CANCELED",
}

channels = sa.table("channels", sa.column("id", sa.Integer()), sa.column("connector", sa.String()))
orders = sa.table(
    "orders",
    sa.column("id", sa.Integer()),
    sa.column("channel_id", sa.Integer()),
    sa.column("state", sa.String()),
    sa.column("marketplace_state", sa.String()),
    sa.column("attributes", JSONDoc),
)
order_history = sa.table("order_history", sa.column("state", sa.String()))
order_versions = sa.table(
    "order_versions",
    sa.column("id", sa.Integer()),
    sa.column("order_id", sa.Integer()),
    sa.column("marketplace_state", sa.String()),
    sa.column("payload", JSONDoc),
)


def _translate(column: sa.ColumnClause[Any], table: Mapping[str, str]) -> sa.ColumnElement[Any]:
    """``CASE column WHEN key THEN value ... END`` (callers restrict rows to ``table``'s keys)."""
    return sa.case(dict(table), value=column)


def _on_amazon() -> sa.ColumnElement[bool]:
    """The orders of Amazon channels."""
    return orders.c.channel_id.in_(sa.select(channels.c.id).where(channels.c.connector == "amazon"))


def _amazon_order_ids() -> sa.Select[tuple[int]]:
    return sa.select(orders.c.id).where(_on_amazon())


def _amazon_status(document: Any, *path: str) -> str | None:
    for key in path:
        document = document.get(key) if isinstance(document, dict) else None
    return document if isinstance(document, str) and document in AMAZON_TO_OLD else None


def upgrade() -> None:
    conn = op.get_bind()
    for table in (orders, order_history):
        conn.execute(
            sa.update(table)
            .where(table.c.state.in_(sorted(MIRAKL_TO_NEUTRAL)))
            .values(state=_translate(table.c.state, MIRAKL_TO_NEUTRAL))
        )
    # Amazon orders kept a Mirakl name as their marketplace state: their raw status is in the order's
    # attributes and each version's payload.
    amazon = conn.execute(sa.select(orders.c.id, orders.c.attributes).where(_on_amazon())).all()
    for row in amazon:
        status = _amazon_status(row.attributes, "amazon_status")
        if status is not None:
            conn.execute(sa.update(orders).where(orders.c.id == row.id).values(marketplace_state=status))
    versions = conn.execute(
        sa.select(order_versions.c.id, order_versions.c.payload).where(
            order_versions.c.order_id.in_(_amazon_order_ids())
        )
    ).all()
    for version in versions:
        status = _amazon_status(version.payload, "fulfillment", "fulfillmentStatus")
        if status is not None:
            conn.execute(
                sa.update(order_versions)
                .where(order_versions.c.id == version.id)
                .values(marketplace_state=status)
            )


def downgrade() -> None:
    conn = op.get_bind()
    for table in (orders, order_history):
        conn.execute(
            sa.update(table)
            .where(table.c.state.in_(sorted(NEUTRAL_TO_OLD)))
            .values(state=_translate(table.c.state, NEUTRAL_TO_OLD))
        )
    # A Mirakl order's raw state is exactly the old value.
    conn.execute(
        sa.update(orders)
        .where(
            sa.not_(_on_amazon()),
            orders.c.marketplace_state.in_(sorted(MIRAKL_TO_NEUTRAL)),
        )
        .values(state=orders.c.marketplace_state)
    )
    # An Amazon order (and version) stored the old mapping of its raw status in both columns.
    conn.execute(
        sa.update(orders)
        .where(_on_amazon(), orders.c.marketplace_state.in_(sorted(AMAZON_TO_OLD)))
        .values(state=_translate(orders.c.marketplace_state, AMAZON_TO_OLD))
    )
    conn.execute(sa.update(orders).where(_on_amazon()).values(marketplace_state=orders.c.state))
    conn.execute(
        sa.update(order_versions)
        .where(
            order_versions.c.order_id.in_(_amazon_order_ids()),
            order_versions.c.marketplace_state.in_(sorted(AMAZON_TO_OLD)),
        )
        .values(marketplace_state=_translate(order_versions.c.marketplace_state, AMAZON_TO_OLD))
    )
