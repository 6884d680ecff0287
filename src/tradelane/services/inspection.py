"""Read models for inspecting one offer or one order down to the raw traffic, tenant-scoped.

* :func:`get_offer` — one offer binding (the listings outbox row) with its product, its marketplace
  errors, the last raw request/response kept on the binding, and the recorded ``exchanges`` of the
  marketplace import that last carried it (subject ``import:<import_ref>``).
* :func:`order_inspection` — what the order read model (:func:`tradelane.services.orders.get_order`)
  does not carry: its Order Health quarantine, its hand-overs to merchant systems with their raw
  request/response, the updates pushed back (shipments, cancellations...) and the marketplace
  exchanges recorded for it (subject ``order:<id>``).

Another tenant's ids answer :class:`~tradelane.domain.errors.NotFoundError`, like unknown ids.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import NotFoundError
from tradelane.persistence.tables import (
    channels,
    exchanges,
    merchant_systems,
    offer_bindings,
    order_deliveries,
    order_quarantine,
    orders,
    products,
)
from tradelane.services.order_updates import list_updates

#: Exchanges shown per subject, newest first.
EXCHANGES_SHOWN = 20


def exchanges_for(
    conn: Connection, tenant_id: int, channel_id: int, subject: str, *, limit: int = EXCHANGES_SHOWN
) -> list[dict[str, Any]]:
    """Recorded raw calls about ``subject`` on the channel, newest first."""
    rows = conn.execute(
        sa.select(
            exchanges.c.id,
            exchanges.c.operation,
            exchanges.c.method,
            exchanges.c.url,
            exchanges.c.status,
            exchanges.c.request,
            exchanges.c.response,
            exchanges.c.at,
        )
        .where(
            exchanges.c.tenant_id == tenant_id,
            exchanges.c.channel_id == channel_id,
            exchanges.c.subject == subject,
        )
        .order_by(exchanges.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def get_offer(conn: Connection, tenant_id: int, offer_id: int) -> dict[str, Any]:
    """One offer with its product, errors, raw traffic and the import's exchanges."""
    row = conn.execute(
        sa.select(
            offer_bindings,
            channels.c.name.label("channel"),
            products.c.sku,
            products.c.title,
            products.c.gtin,
            products.c.price,
            products.c.currency,
            products.c.quantity,
        )
        .join(products, products.c.id == offer_bindings.c.product_id)
        .join(channels, channels.c.id == offer_bindings.c.channel_id)
        .where(offer_bindings.c.tenant_id == tenant_id, offer_bindings.c.id == offer_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no offer {offer_id}")
    offer = dict(row._mapping)
    offer["exchanges"] = (
        exchanges_for(conn, tenant_id, row.channel_id, f"import:{row.import_ref}") if row.import_ref else []
    )
    return offer


def order_inspection(conn: Connection, tenant_id: int, order_id: int) -> dict[str, Any]:
    """Quarantine, deliveries, updates and exchanges of one of the tenant's orders."""
    channel_id = conn.execute(
        sa.select(orders.c.channel_id).where(orders.c.tenant_id == tenant_id, orders.c.id == order_id)
    ).scalar()
    if channel_id is None:
        raise NotFoundError(f"no order {order_id}")
    quarantine = conn.execute(
        sa.select(order_quarantine).where(order_quarantine.c.order_id == order_id)
    ).first()
    deliveries = conn.execute(
        sa.select(order_deliveries, merchant_systems.c.name.label("merchant_system"))
        .join(merchant_systems, merchant_systems.c.id == order_deliveries.c.merchant_system_id)
        .where(order_deliveries.c.order_id == order_id)
        .order_by(order_deliveries.c.id)
    )
    return {
        "quarantine": dict(quarantine._mapping) if quarantine is not None else None,
        "deliveries": [dict(r._mapping) for r in deliveries],
        # Effective statuses (job outcome, marketplace confirmation), never the row's "queued" as stored.
        "updates": list_updates(conn, tenant_id, order_id),
        "exchanges": exchanges_for(conn, tenant_id, int(channel_id), f"order:{order_id}"),
    }
