"""Test orders: a local order that runs the whole path to the merchant system and back, never sent to a
marketplace (issue 11, "before go-live").

Contracts:

* :func:`create_test_order` stores an order exactly as the orders poll would (``store_orders``: lines,
  version, history, the delivery job to the merchant system, Third Party Managed when the channel's
  Fulfillments flow is off), already in ``to_ship`` (no acceptance: nothing is asked of the
  marketplace), with ``orders.is_test`` set and a marketplace order id ``TEST-<channel>-<n>`` (n counts
  up per channel). The merchant system receives it marked (``"test": true`` in the OMS document, a
  ``tradelane-test`` tag on Shopify). The creation is an audited channel action
  (``orders.create_test``).
* Updates the merchant system sends back for it (shipment, cancellation, refund, label) are recorded and
  queued like any other and their ``fulfillments.*`` job runs the same validation and carrier conversion,
  then builds the request the connector would make and sends nothing (see
  :mod:`tradelane.services.fulfilment_push`): the update reads ``verified`` ("test: not sent — would
  send ..."). Any other marketplace job naming a test order is skipped by the dispatcher
  (:func:`never_sent`), so no replay ever reaches a marketplace.
* :func:`report` checks the round trip end to end: delivered to the merchant system (when, its
  reference), updates received, carrier converted from → to, what would have been sent, and OK or the
  precise problems.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.channels import LifecycleState
from tradelane.domain.errors import ConflictError, ValidationError
from tradelane.domain.orders import Address, MarketplaceOrder, MarketplaceOrderLine, OrderState
from tradelane.persistence.db import is_postgres
from tradelane.persistence.tables import (
    channels,
    jobs,
    merchant_systems,
    offer_bindings,
    order_deliveries,
    order_quarantine,
    orders,
    products,
)
from tradelane.services import audit
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.offers import SELECTED

#: The marketplace state and line state a test order is stored with (it never had a marketplace).
TEST_STATE = "TEST"
#: The job kinds that know test orders (they build the request and send nothing); every other
#: marketplace job naming a test order is skipped (:func:`never_sent`).
TEST_AWARE_KINDS = frozenset(
    {"fulfillments.ship", "fulfillments.cancel", "fulfillments.refund", "fulfillments.label"}
)
#: Where a test order "ships" to: obviously not a customer.
TEST_ADDRESS = Address(
    first_name="TEST ORDER",
    last_name="do not ship",
    company="tradelane test order",
    street1="1 Test Street",
    zip_code="00000",
    city="Testville",
    country="FR",
)


@dataclass(frozen=True, slots=True)
class LineSpec:
    """One line asked for: a catalog SKU offered on the channel, and a quantity (≥ 1)."""

    sku: str
    quantity: int = 1


def id_prefix(channel_name: str) -> str:
    return f"TEST-{channel_name}-"


def create_test_order(
    conn: Connection,
    channel: Channel,
    *,
    lines: Sequence[LineSpec] = (),
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Store a test order on ``channel`` and queue its delivery (see the module docstring), in the
    caller's transaction. ``lines`` empty: one unit of the first product (by SKU) the channel offers —
    bound and selected — with stock. Returns the order read model. Raises :class:`ValidationError` for an
    unknown SKU, a SKU not offered (or no longer selected) on the channel, a quantity below 1, lines in
    several currencies or a disabled channel."""
    from tradelane.services.order_intake import fulfillments_off, store_orders  # intake imports the engine

    if channel.lifecycle_state == LifecycleState.DISABLED.value:
        raise ValidationError(f"channel {channel.name} is disabled: enable it before creating a test order")
    chosen = _lines(conn, channel, lines)
    currencies = {row.currency for row, _ in chosen}
    if len(currencies) != 1:
        raise ValidationError(
            f"a test order has one currency; these lines are in {', '.join(sorted(currencies))}"
        )
    marketplace_id = _next_id(conn, channel)
    order = MarketplaceOrder(
        marketplace_order_id=marketplace_id,
        state=OrderState.TO_SHIP,
        currency=currencies.pop(),
        created_at=now,
        updated_at=now,
        lines=tuple(
            MarketplaceOrderLine(
                line_id=f"{marketplace_id}-{index}",
                offer_sku=row.sku,
                quantity=quantity,
                unit_price=Decimal(row.price),
                currency=row.currency,
                state=TEST_STATE,
                title=row.title,
                product_sku=row.sku,
            )
            for index, (row, quantity) in enumerate(chosen, start=1)
        ),
        raw_state=TEST_STATE,
        shipping_address=TEST_ADDRESS,
        billing_address=TEST_ADDRESS,
        raw={"test_order": True, "created_by": actor, "created_at": now.isoformat()},
    )
    store_orders(
        conn,
        channel,
        [order],
        now=now,
        third_party=fulfillments_off(conn, channel.id),
        acceptance_required=False,
    )
    order_id = int(
        conn.execute(
            sa.update(orders)
            .where(orders.c.channel_id == channel.id, orders.c.marketplace_order_id == marketplace_id)
            .values(is_test=True)
            .returning(orders.c.id)
        ).scalar_one()
    )
    order_service.add_history(
        conn,
        channel.tenant_id,
        order_id,
        "TEST_ORDER_CREATED",
        now=now,
        note=f"test order created by {actor}: delivered to the merchant system, never sent to {channel.name}",
    )
    audit.record(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        actor=actor,
        action="orders.create_test",
        now=now,
        details={
            "order_id": order_id,
            "marketplace_order_id": marketplace_id,
            "lines": [{"sku": row.sku, "quantity": quantity} for row, quantity in chosen],
        },
    )
    return order_service.get_order(conn, channel.tenant_id, order_id)


def _lines(conn: Connection, channel: Channel, wanted: Sequence[LineSpec]) -> list[tuple[Any, int]]:
    """The products of the lines (catalog SKUs the channel offers: bound and selected), with quantities."""
    offered = (
        sa.select(
            products.c.sku,
            products.c.title,
            products.c.price,
            products.c.currency,
            products.c.quantity,
            offer_bindings.c.selection_state,
        )
        .join(offer_bindings, offer_bindings.c.product_id == products.c.id)
        .where(offer_bindings.c.channel_id == channel.id, products.c.tenant_id == channel.tenant_id)
    )
    if not wanted:
        row = conn.execute(
            offered.where(products.c.quantity > 0, offer_bindings.c.selection_state == SELECTED)
            .order_by(products.c.sku)
            .limit(1)
        ).first()
        if row is None:
            raise ValidationError(
                f"channel {channel.name} offers no product with stock; name one with --sku (a catalog SKU "
                "offered on the channel)"
            )
        return [(row, 1)]
    chosen: list[tuple[Any, int]] = []
    for line in wanted:
        if line.quantity < 1:
            raise ValidationError(f"quantity of {line.sku!a} must be at least 1 (got {line.quantity})")
        row = conn.execute(offered.where(products.c.sku == line.sku)).first()
        if row is None:
            known = conn.execute(
                sa.select(products.c.id).where(
                    products.c.tenant_id == channel.tenant_id, products.c.sku == line.sku
                )
            ).first()
            where = f"is not offered on channel {channel.name}" if known else "is not in the catalog"
            raise ValidationError(f"SKU {line.sku!a} {where}")
        if row.selection_state != SELECTED:
            raise ValidationError(
                f"SKU {line.sku!a} is no longer selected on channel {channel.name} ({row.selection_state})"
            )
        chosen.append((row, line.quantity))
    return chosen


def _next_id(conn: Connection, channel: Channel) -> str:
    """``TEST-<channel>-<n>``, n one above the channel's highest so far (the channel row is locked on
    PostgreSQL so two creations cannot pick the same n; SQLite serialises writers)."""
    if is_postgres(conn):
        conn.execute(sa.select(channels.c.id).where(channels.c.id == channel.id).with_for_update())
    prefix = id_prefix(channel.name)
    taken = conn.execute(
        sa.select(orders.c.marketplace_order_id).where(
            orders.c.channel_id == channel.id,
            orders.c.marketplace_order_id.startswith(prefix, autoescape=True),
        )
    ).scalars()
    numbers = [int(ref[len(prefix) :]) for ref in taken if ref[len(prefix) :].isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1}"


def is_test_order(conn: Connection, order_id: int) -> bool:
    return bool(conn.execute(sa.select(orders.c.is_test).where(orders.c.id == order_id)).scalar())


def never_sent(conn: Connection, kind: str, payload: Mapping[str, Any]) -> str | None:
    """Why a marketplace job must not run (it names a test order and is not one of the
    :data:`TEST_AWARE_KINDS`), or None. The dispatcher completes such a job as skipped."""
    if kind in TEST_AWARE_KINDS or "order_id" not in payload:
        return None
    try:
        order_id = int(payload["order_id"])
    except (TypeError, ValueError):
        return None
    if not is_test_order(conn, order_id):
        return None
    return f"test order: {kind} is never sent to the marketplace"


# --- the report ------------------------------------------------------------------------------------


def report(conn: Connection, tenant_id: int, order_ref: str) -> dict[str, Any]:
    """The end-to-end check of a test order (``REF`` as everywhere): ``delivered`` (per merchant system:
    status, when, its reference), ``updates`` (each with its status, the carrier conversion, the
    requests that would have been sent, its problems), ``ok`` and ``problems`` (precise texts; empty when
    ok). Raises :class:`NotFoundError` for an unknown order, :class:`ConflictError` for a real one."""
    from tradelane.services.order_updates import order_detail  # order_updates imports the registry

    order_id = order_service.resolve_order_ref(conn, tenant_id, order_ref)
    order = order_detail(conn, tenant_id, order_id)
    if not order["is_test"]:
        raise ConflictError(f"order {order['channel']}:{order['marketplace_order_id']} is not a test order")
    deliveries = [
        {
            "merchant_system": r.name,
            "status": r.status,
            "at": r.delivered_at,
            "reference": r.external_ref,
            "attempts": r.attempts,
        }
        for r in conn.execute(
            sa.select(
                merchant_systems.c.name,
                order_deliveries.c.status,
                order_deliveries.c.delivered_at,
                order_deliveries.c.external_ref,
                order_deliveries.c.attempts,
            )
            .join(merchant_systems, merchant_systems.c.id == order_deliveries.c.merchant_system_id)
            .where(order_deliveries.c.order_id == order_id)
            .order_by(order_deliveries.c.id)
        )
    ]
    results = _job_results(conn, [u["job_id"] for u in order["updates"] if u["job_id"] is not None])
    updates = [_update_report(u, results.get(u["job_id"])) for u in order["updates"]]
    quarantine = conn.execute(
        sa.select(order_quarantine.c.reason_code, order_quarantine.c.reason).where(
            order_quarantine.c.order_id == order_id
        )
    ).first()
    problems = _delivery_problems(order, deliveries, quarantine)
    if not order["updates"] and not problems:
        problems.append(
            "no update received yet from the merchant system: ship (or cancel) the order there, then run "
            "the report again"
        )
    for update in updates:
        problems.extend(f"{update['kind']} {update['external_id']}: {p}" for p in update["problems"])
    return {
        "order": f"{order['channel']}:{order['marketplace_order_id']}",
        "id": order["id"],
        "channel": order["channel"],
        "created_at": order["created_at"],
        "merchant_status": order["merchant_status"],
        "delivered": deliveries,
        "updates": updates,
        "ok": not problems,
        "problems": problems,
    }


def _job_results(conn: Connection, job_ids: list[int]) -> dict[int, Any]:
    if not job_ids:
        return {}
    rows = conn.execute(sa.select(jobs.c.id, jobs.c.result).where(jobs.c.id.in_(job_ids)))
    return {r.id: r.result for r in rows}


def _delivery_problems(
    order: Mapping[str, Any], deliveries: list[dict[str, Any]], quarantine: Any
) -> list[str]:
    status = order["merchant_status"]
    if status == "third_party_managed":
        return [
            f"the Fulfillments flow of {order['channel']} is off: the order is Third Party Managed, so it "
            "is neither delivered to the merchant system nor updated back"
        ]
    if any(d["status"] == "delivered" for d in deliveries):
        return []
    if status == "quarantined":
        why = f" ({quarantine.reason_code}: {quarantine.reason})" if quarantine is not None else ""
        return [f"not delivered: the order is quarantined{why}; see `orders health`"]
    if not deliveries:
        return [
            "not delivered to a merchant system yet (is one configured to receive orders, and is a "
            "worker running?)"
        ]
    states = ", ".join(f"{d['merchant_system']} {d['status']}" for d in deliveries)
    return [f"not delivered yet: {states}"]


#: How the carrier travels when the connector lists no carrier codes to check it against (Amazon): the
#: connector converts the name itself, and the request it would send says what it made of it.
CARRIER_AS_GIVEN = "given: the connector converts it — see the carrier in the request"


def _carrier_as(carrier: Mapping[str, Any]) -> str:
    """``carrier code`` (one the marketplace lists), ``carrier name`` (a free name: no code it knows) or
    :data:`CARRIER_AS_GIVEN` (no list of codes: the connector converts it, so neither can be said)."""
    if carrier.get("code"):
        return "carrier code"
    return "carrier name" if carrier.get("codes_listed", True) else CARRIER_AS_GIVEN


def _update_report(update: Mapping[str, Any], result: Any) -> dict[str, Any]:
    """One update of a test order as the report shows it."""
    result = result if isinstance(result, Mapping) else {}
    status = update["status"]
    problems: list[str] = []
    if status == "verified":
        problems.extend(str(p) for p in result.get("problems") or ())
    elif status == "failed":
        problems.append(f"refused before any request: {update['detail']}")
    elif status == "queued":
        problems.append("not checked yet: its job has not run (is a worker running?)")
    elif status in ("skipped", "not_supported"):
        problems.append(f"not checked ({status}): {update['detail']}")
    elif status in ("sent", "confirmed"):  # cannot happen: the push job never sends a test order's
        problems.append(f"the update reads {status}: a test order's update must never be sent")
    carrier = result.get("carrier")
    return {
        "kind": update["kind"],
        "external_id": update["external_id"],
        "received_at": update["created_at"],
        "status": "verified (test order, not sent)" if status == "verified" else status,
        "detail": update["detail"],
        "carrier": (
            {
                "from": carrier.get("from"),
                "to": carrier.get("code") or carrier.get("name"),
                "as": _carrier_as(carrier),
            }
            if isinstance(carrier, Mapping) and carrier.get("from")
            else None
        ),
        "would_send": list(result.get("would_send") or ()),
        "problems": problems,
    }
