"""The read-only side of a cutover (:mod:`tradelane.services.cutover`): the live count of outstanding
orders (step 2) and the dry run (``cutover plan``) — offers listed now, outstanding orders, selected
SKUs to sync, the holiday mode and what each step will do. Nothing here writes, remotely or locally.

**Outstanding orders**: orders the marketplace shows — the connector's initial look-back read
(``fetch_orders`` without a cursor, every page) — as pending, awaiting acceptance, awaiting payment
(Amazon's withheld Pending orders counted through ``withheld``), to ship or partially shipped, plus the
hub's own orders of the channel in those states (Third Party Managed ones aside) or ready but not yet
delivered to the merchant system. Local test orders (``orders create-test``: never on the marketplace,
nobody ships them there) are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import (
    HolidayMode,
    ListedOffer,
    MarketplaceConnector,
    OpenOrdersReader,
    Operation,
)
from tradelane.domain.orders import MerchantStatus, OrderState
from tradelane.persistence.tables import offer_bindings, orders, products
from tradelane.services import offers as offer_service
from tradelane.services import selection
from tradelane.services.channels import Channel

if TYPE_CHECKING:
    from tradelane.services.cutover import Deps

#: Reads of the orders listing one count may make (a budget stop returns a continuation cursor).
MAX_ORDER_READS = 50


#: States of an order that still needs the merchant (the previous integrator) to act.
OUTSTANDING_STATES = frozenset(
    {
        OrderState.PENDING,
        OrderState.AWAITING_ACCEPTANCE,
        OrderState.AWAITING_PAYMENT,
        OrderState.TO_SHIP,
        OrderState.PARTIALLY_SHIPPED,
    }
)


@dataclass(frozen=True, slots=True)
class Outstanding:
    """The live count of orders still to be processed (see the module docstring, step 2)."""

    marketplace: dict[str, int]
    withheld: int
    local: int
    #: False when the marketplace read stopped early (page limit, budget): the counts are a lower bound.
    complete: bool = True
    #: What was read on the marketplace (states, date window).
    scope: str = ""

    @property
    def total(self) -> int:
        return sum(self.marketplace.values()) + self.withheld + self.local

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "marketplace": self.marketplace,
            "withheld": self.withheld,
            "local": self.local,
            "complete": self.complete,
            "scope": self.scope,
        }

    def text(self) -> str:
        parts = [f"{n} {state.replace('_', ' ')}" for state, n in sorted(self.marketplace.items()) if n]
        if self.withheld:
            parts.append(f"{self.withheld} awaiting payment (withheld)")
        if self.local:
            parts.append(f"{self.local} in tradelane not yet delivered to the merchant system")
        count = (
            f"{self.total} outstanding order(s)"
            if self.complete
            else f"at least {self.total} outstanding order(s)"
        )
        text = count + (f": {', '.join(parts)}" if parts else "")
        if not self.complete:
            text += f" (the marketplace's list was cut short after {MAX_ORDER_READS} reads or by its budget)"
        return text

    @property
    def settled(self) -> bool:
        """Nothing outstanding, and the count covered every open order."""
        return self.complete and self.total == 0


def count_outstanding(
    conn: Connection, channel: Channel, connector: MarketplaceConnector, *, now: datetime
) -> Outstanding:
    """Count the outstanding orders (see the module docstring), read-only on both sides.

    Where the connector declares :attr:`Operation.LIST_OPEN_ORDERS` it reads every open order whatever
    its date (Mirakl: OR11 by state codes; Amazon: searchOrders over its documented long window), at
    most :data:`MAX_ORDER_READS` pages; else its initial look-back (``fetch_orders`` without a cursor).
    A read cut short (page limit, budget) or limited to a window is never silent: ``complete`` is then
    False and :meth:`Outstanding.text` says "at least"; step 2 keeps waiting on an incomplete count."""
    latest: dict[str, OrderState] = {}
    withheld = 0
    complete = False
    if connector.capabilities.supports(Operation.LIST_OPEN_ORDERS) and isinstance(
        connector, OpenOrdersReader
    ):
        found = connector.open_orders(now=now, max_pages=MAX_ORDER_READS)
        latest = {o.marketplace_order_id: o.state for o in found.orders}
        withheld, complete, scope = found.withheld, found.complete, found.scope
    else:
        cursor: str | None = None
        for _ in range(MAX_ORDER_READS):
            changes = connector.fetch_orders(cursor, now=now)
            for order in changes.orders:
                latest[order.marketplace_order_id] = order.state
            withheld = max(withheld, changes.withheld)
            if not changes.more:
                break
            cursor = changes.cursor
        scope = "the orders of the connector's initial look-back only (it cannot list open orders by state)"
    counts: dict[str, int] = {}
    for state in latest.values():
        if state in OUTSTANDING_STATES:
            counts[state.value] = counts.get(state.value, 0) + 1
    local = int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(orders)
            .where(
                orders.c.channel_id == channel.id,
                orders.c.is_test.is_(False),
                sa.or_(
                    orders.c.state.in_([s.value for s in OUTSTANDING_STATES])
                    & (orders.c.merchant_status != MerchantStatus.THIRD_PARTY_MANAGED.value),
                    orders.c.merchant_status == MerchantStatus.PENDING.value,
                ),
            )
        ).scalar_one()
    )
    return Outstanding(counts, withheld, local, complete=complete, scope=scope)


# --- plan -----------------------------------------------------------------------------------------


def holiday_text(mode: HolidayMode, connector_name: str) -> str:
    if mode is HolidayMode.CLOSING_PERIOD:
        return f"{connector_name}: a closing period on the shop account (the marketplace's holiday mode)"
    return (
        f"{connector_name} has no holiday mode; the closest equivalent is zero stock on every offer, "
        "which step 3 sets (the listings stay visible, nothing can be bought); from step 5 the initial "
        "sync publishes the catalog's quantities, so the account takes orders again from then on — "
        "the cutoff (step 4) makes sure they are imported"
    )


def selected_count(conn: Connection, channel_id: int) -> int:
    """The offers a full sync of the channel sends (its selected bindings)."""
    return selection.selected_count(conn, channel_id)


def selected_skus(conn: Connection, channel_id: int) -> set[str]:
    """The SKUs tradelane manages on the channel: its selected bindings (what a full sync sends)."""
    return set(
        conn.execute(
            sa.select(products.c.sku)
            .select_from(offer_bindings.join(products, products.c.id == offer_bindings.c.product_id))
            .where(
                offer_bindings.c.channel_id == channel_id,
                offer_bindings.c.selection_state == offer_service.SELECTED,
            )
        ).scalars()
    )


def unmanaged_listings(listed: Iterable[ListedOffer], managed: set[str]) -> list[dict[str, Any]]:
    """Listings whose SKU tradelane does not manage on the channel (not selected), by SKU, with the
    quantity and price they have: step 3 sets them to 0 and nothing sets them back after a successful
    cutover (their stock is not kept in sync); revert restores them as they were."""
    seen: dict[str, ListedOffer] = {}
    for offer in listed:
        if offer.sku not in managed:
            seen.setdefault(offer.sku, offer)
    return [
        {
            "sku": sku,
            "quantity": offer.quantity,
            "price": None if offer.price is None else str(offer.price),
            "currency": offer.currency,
        }
        for sku, offer in sorted(seen.items())
    ]


def unmanaged_of_cutover(conn: Connection, channel_id: int, cutover_id: int) -> list[dict[str, Any]]:
    """:func:`unmanaged_listings` of a cutover's snapshot (the quantities and prices found at step 3):
    what step 3 set to 0 and a successful cutover leaves at 0, for step 6's completion and ``status``."""
    from tradelane.services.cutover import snapshot

    return unmanaged_listings(snapshot(conn, cutover_id), selected_skus(conn, channel_id))


def unmanaged_text(unmanaged: Sequence[Mapping[str, Any]]) -> str:
    """The operator's warning for :func:`unmanaged_listings` (empty when there is none)."""
    if not unmanaged:
        return ""
    sample = ", ".join(f"{u['sku']} (quantity {u['quantity']})" for u in unmanaged[:20])
    more = f" and {len(unmanaged) - 20} more" if len(unmanaged) > 20 else ""
    return (
        f"{len(unmanaged)} listings tradelane does not manage will be set to 0 and left at 0 (their stock "
        f"is not kept in sync: oversell risk otherwise): {sample}{more}"
    )


def plan(deps: Deps, channel: Channel) -> dict[str, Any]:
    """A dry run against the account: offers listed now, outstanding orders, selected SKUs, the holiday
    mode and what each step will do. Only reads (nothing is written, remotely or locally)."""
    from tradelane.services.cutover import STEPS, current

    now = deps.clock()
    with deps.open(channel) as connector:
        caps = connector.capabilities
        listed = connector.list_offers() if caps.supports(Operation.LIST_OFFERS) else None
        with deps.engine.connect() as conn:
            outstanding = count_outstanding(conn, channel, connector, now=now)
            selected = selected_count(conn, channel.id)
            existing = current(conn, channel.id)
    listed_skus = {o.sku for o in listed or ()}
    with deps.engine.connect() as conn:
        ours = selected_skus(conn, channel.id)
    created = len(ours - listed_skus)
    unmanaged = unmanaged_listings(listed or (), ours)
    delete = caps.delete_offers
    return {
        "channel": channel.name,
        "connector": channel.connector,
        "offers_listed": None if listed is None else len(listed),
        "outstanding_orders": outstanding.as_json(),
        "selected_skus": selected,
        "new_offers_on_sync": created,
        "unmanaged_listings": unmanaged,
        "unmanaged_warning": unmanaged_text(unmanaged) or None,
        "holiday_mode": caps.holiday_mode.value,
        "existing_cutover": None if existing is None else existing.as_json(),
        "steps": [
            {
                "step": 1,
                "name": STEPS[1],
                "does": "record the date and the previous integrator's confirmation; "
                "pause the channel's offers and orders flows",
            },
            {
                "step": 2,
                "name": STEPS[2],
                "does": holiday_text(caps.holiday_mode, channel.connector)
                + f"; then wait for {outstanding.text()} to be processed",
            },
            {
                "step": 3,
                "name": STEPS[3],
                "does": f"store the {len(listed or ())} offers listed now "
                "(price, quantity), then set every quantity to 0"
                + (f"; {unmanaged_text(unmanaged)}" if unmanaged else ""),
            },
            {
                "step": 4,
                "name": STEPS[4],
                "does": "set the order-import cutoff to now: orders created "
                "before it are never imported, the orders watermark precedes it",
            },
            {
                "step": 5,
                "name": STEPS[5],
                "does": f"initial full sync of {selected} selected offers "
                f"({created} not listed now); stop on the marketplace's errors, still on holiday",
            },
            {
                "step": 6,
                "name": STEPS[6],
                "does": "end the holiday, enable offers/orders/fulfillments, "
                "confirm a live test order and a status update",
            },
        ],
        "revert": (
            "restores every snapshot offer's price and quantity; offers created by the sync are "
            + ("deleted" if delete else "set to quantity 0 (this connector cannot delete offers)")
        ),
        "planned_at": now.isoformat(),
    }
