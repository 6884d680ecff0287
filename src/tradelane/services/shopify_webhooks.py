"""Shopify webhooks: what each verified topic does to tradelane (verification itself is the adapter's,
:mod:`tradelane.merchant.shopify.webhook_protocol`).

Processing (:func:`process_event`, inside the caller's transaction, after the raw event was stored once
per ``X-Shopify-Webhook-Id`` by :func:`tradelane.services.inbound.store_inbound_event`):

* ``products/create``, ``products/update`` → catalog price/stock (:func:`.shopify_catalog.apply_product`);
* ``inventory_levels/update`` → a coalesced ``shopify.inventory`` job (:mod:`.shopify_catalog`);
* ``fulfillments/create`` → :func:`tradelane.services.order_updates.record_shipment` (external id
  ``shopify-fulfillment-<id>``); ``orders/fulfilled`` → the same for each successful fulfillment it lists
  (so whichever arrives first records the shipment, the other changes nothing);
* ``orders/cancelled`` → :func:`~tradelane.services.order_updates.record_cancellation` (external id
  ``shopify-cancel-<order id>``).

A Shopify order is mapped back to tradelane's by the delivery row holding its id
(``order_deliveries.external_ref`` of this merchant system), else by the ``tradelane_order_id`` note
attribute / ``tradelane-order-<id>`` tag set at creation. Orders tradelane did not create (the shop's own
web orders) and topics not listed above are *ignored*, not failures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.merchant.base import MerchantSystem
from tradelane.merchant.shopify.mapping import Shipment, shipment_from_fulfillment, tradelane_order_id
from tradelane.merchant.shopify.webhook_protocol import WebhookTopic
from tradelane.persistence.tables import order_deliveries, orders
from tradelane.services import order_updates
from tradelane.services.shopify_catalog import apply_product, enqueue_inventory_sync


class EventStatus(StrEnum):
    """Final ``inbound_events.status`` of a processed Shopify event."""

    PROCESSED = "processed"
    IGNORED = "ignored"  # nothing for tradelane (not our order, topic not handled...)
    FAILED = "failed"  # tradelane could not apply it; ``error`` says why


@dataclass(frozen=True, slots=True)
class ProcessResult:
    status: EventStatus
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


def _delivered_order(conn: Connection, system: MerchantSystem, shopify_order_id: int) -> int | None:
    value = conn.execute(
        sa.select(order_deliveries.c.order_id).where(
            order_deliveries.c.merchant_system_id == system.id,
            order_deliveries.c.external_ref == str(shopify_order_id),
        )
    ).scalar()
    return None if value is None else int(value)


def _tenant_order(conn: Connection, system: MerchantSystem, order_id: int) -> int | None:
    value = conn.execute(
        sa.select(orders.c.id).where(orders.c.id == order_id, orders.c.tenant_id == system.tenant_id)
    ).scalar()
    return None if value is None else int(value)


def resolve_order(
    conn: Connection,
    system: MerchantSystem,
    *,
    shopify_order_id: int | None,
    shopify_order: Mapping[str, Any] | None = None,
) -> int | None:
    """tradelane's order id for a Shopify order of this system, or None when it is not one of ours."""
    if shopify_order_id is not None:
        found = _delivered_order(conn, system, shopify_order_id)
        if found is not None:
            return found
    marked = tradelane_order_id(shopify_order) if shopify_order is not None else None
    return _tenant_order(conn, system, marked) if marked is not None else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _record_shipment(
    conn: Connection, system: MerchantSystem, order_id: int, shipment: Shipment, now: datetime
) -> order_updates.UpdateResult:
    lines = [
        order_updates.UpdateLine(
            quantity=line.quantity, line_id=line.line_id, sku=None if line.line_id else line.sku
        )
        for line in shipment.lines
        if line.line_id or line.sku
    ]
    return order_updates.record_shipment(
        conn,
        tenant_id=system.tenant_id,
        order_ref=str(order_id),
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_url=shipment.tracking_url,
        lines=lines or None,
        external_id=shipment.external_id,
        merchant_system_id=system.id,
        now=now,
    )


def _fulfillment(
    conn: Connection, system: MerchantSystem, payload: Mapping[str, Any], now: datetime
) -> ProcessResult:
    shipment = shipment_from_fulfillment(payload)
    if shipment is None:
        return ProcessResult(
            EventStatus.IGNORED, f"fulfillment status {payload.get('status')!r} is not a shipment"
        )
    order_id = resolve_order(conn, system, shopify_order_id=shipment.shopify_order_id)
    if order_id is None:
        return ProcessResult(
            EventStatus.IGNORED, f"Shopify order {shipment.shopify_order_id} is not from tradelane"
        )
    result = _record_shipment(conn, system, order_id, shipment, now)
    return ProcessResult(
        EventStatus.PROCESSED, f"shipment {result.status.value}", {"updates": [result.as_dict()]}
    )


def _orders_fulfilled(
    conn: Connection, system: MerchantSystem, payload: Mapping[str, Any], now: datetime
) -> ProcessResult:
    order_id = resolve_order(conn, system, shopify_order_id=_int(payload.get("id")), shopify_order=payload)
    if order_id is None:
        return ProcessResult(EventStatus.IGNORED, f"Shopify order {payload.get('id')} is not from tradelane")
    fulfillments = payload.get("fulfillments")
    if fulfillments is not None and not isinstance(fulfillments, list):
        return ProcessResult(
            EventStatus.FAILED, f"'fulfillments' must be a list, got {type(fulfillments).__name__}"
        )
    results = []
    for fulfillment in fulfillments or []:
        shipment = shipment_from_fulfillment(fulfillment) if isinstance(fulfillment, Mapping) else None
        if shipment is not None:
            results.append(_record_shipment(conn, system, order_id, shipment, now).as_dict())
    if not results:
        return ProcessResult(EventStatus.IGNORED, "the order lists no successful fulfillment")
    return ProcessResult(EventStatus.PROCESSED, f"{len(results)} shipment(s) recorded", {"updates": results})


def _orders_cancelled(
    conn: Connection, system: MerchantSystem, payload: Mapping[str, Any], now: datetime
) -> ProcessResult:
    shopify_id = _int(payload.get("id"))
    order_id = resolve_order(conn, system, shopify_order_id=shopify_id, shopify_order=payload)
    if order_id is None:
        return ProcessResult(EventStatus.IGNORED, f"Shopify order {payload.get('id')} is not from tradelane")
    reason = payload.get("cancel_reason")
    result = order_updates.record_cancellation(
        conn,
        tenant_id=system.tenant_id,
        order_ref=str(order_id),
        reason=f"cancelled in Shopify ({reason})" if reason else "cancelled in Shopify",
        external_id=f"shopify-cancel-{shopify_id}",
        merchant_system_id=system.id,
        now=now,
    )
    return ProcessResult(
        EventStatus.PROCESSED, f"cancellation {result.status.value}", {"updates": [result.as_dict()]}
    )


def process_event(
    conn: Connection,
    *,
    system: MerchantSystem,
    currency: str | None,
    topic: str,
    payload: Any,
    now: datetime,
) -> ProcessResult:
    """Apply one verified event of ``system`` (``currency``: the shop's, for catalog prices).

    Raises tradelane's errors (:class:`~tradelane.domain.errors.ValidationError`, ``ConflictError``,
    ``NotFoundError``) when the event cannot be applied; the caller rolls back and records the failure."""
    if not isinstance(payload, Mapping):
        return ProcessResult(EventStatus.FAILED, "the body is not a JSON object")
    match topic:
        case WebhookTopic.PRODUCTS_CREATE | WebhookTopic.PRODUCTS_UPDATE:
            change = apply_product(
                conn, tenant_id=system.tenant_id, currency=currency, product=payload, now=now
            )
            detail = (
                f"{len(change.created)} created, {len(change.updated)} updated, "
                f"{len(change.unchanged)} unchanged"
            )
            return ProcessResult(EventStatus.PROCESSED, detail, change.as_dict())
        case WebhookTopic.INVENTORY_LEVELS_UPDATE:
            item_id = _int(payload.get("inventory_item_id"))
            if item_id is None:
                return ProcessResult(EventStatus.FAILED, "inventory level without an inventory_item_id")
            job = enqueue_inventory_sync(conn, system=system, inventory_item_id=item_id, now=now)
            return ProcessResult(
                EventStatus.PROCESSED, f"stock re-read queued (job {job.job_id})", {"job_id": job.job_id}
            )
        case WebhookTopic.FULFILLMENTS_CREATE:
            return _fulfillment(conn, system, payload, now)
        case WebhookTopic.ORDERS_FULFILLED:
            return _orders_fulfilled(conn, system, payload, now)
        case WebhookTopic.ORDERS_CANCELLED:
            return _orders_cancelled(conn, system, payload, now)
    return ProcessResult(EventStatus.IGNORED, f"topic {topic!r} is not handled")
