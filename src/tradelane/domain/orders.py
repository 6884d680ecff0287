"""Orders as seen on a marketplace, normalised for tradelane (pure data, no I/O).

A :class:`MarketplaceOrder` is one *version* of a marketplace order: connectors map their payloads into
it (keeping the raw payload alongside), and services decide what to do from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class OrderState(StrEnum):
    """Where an order stands on its marketplace, in the hub's marketplace-neutral terms.

    Each connector maps its own states onto these with one table (``ORDER_STATES`` in
    ``connectors/<name>/mapping.py``) and keeps its own name in :attr:`MarketplaceOrder.raw_state`
    (stored as ``orders.marketplace_state``, shown beside the neutral state). Services decide from the
    neutral state only; a connector state that its table does not know is a permanent schema error of
    that connector, never a guess.

    * ``pending`` — placed but not actionable by the seller yet (Mirakl ``STAGING``: fraud check).
    * ``awaiting_acceptance`` — the seller must accept or refuse it (Mirakl ``WAITING_ACCEPTANCE``).
    * ``awaiting_payment`` — accepted/placed, the marketplace waits for the customer's payment; no
      address yet (Mirakl ``WAITING_DEBIT``, ``WAITING_DEBIT_PAYMENT``; Amazon ``PENDING``,
      ``PENDING_AVAILABILITY`` — these Amazon orders are withheld from services until paid).
    * ``to_ship`` — paid, address known, nothing shipped yet: the merchant system takes it over
      (Mirakl ``SHIPPING``; Amazon ``UNSHIPPED``).
    * ``partially_shipped`` — some lines or units shipped, others still to ship; still handed over
      (Amazon ``PARTIALLY_SHIPPED``; Mirakl has no such order state: a partly shipped Mirakl order
      stays ``SHIPPING``).
    * ``shipped`` — everything left the warehouse (Mirakl ``SHIPPED`` and ``TO_COLLECT`` — waiting
      in a pick-up point; Amazon ``SHIPPED``).
    * ``delivered`` — the customer received it (Mirakl ``RECEIVED``).
    * ``cancelled`` — cancelled by the customer, the operator or the marketplace (Mirakl
      ``CANCELED``; Amazon ``CANCELLED``, ``UNFULFILLABLE``). Final.
    * ``refused`` — the seller refused it at acceptance (Mirakl ``REFUSED``). Final.
    * ``closed`` — the marketplace closed it after delivery and its dispute window (Mirakl ``CLOSED``).
      Final.
    """

    PENDING = "pending"
    AWAITING_ACCEPTANCE = "awaiting_acceptance"
    AWAITING_PAYMENT = "awaiting_payment"
    TO_SHIP = "to_ship"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUSED = "refused"
    CLOSED = "closed"


class LineType(StrEnum):
    """How a line is handed to the merchant system. Marketplace lines are ``textual`` (described by
    sku/title, not bound to a merchant product id)."""

    TEXTUAL = "textual"
    PRODUCT = "product"


@dataclass(frozen=True, slots=True)
class Address:
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    street1: str | None = None
    street2: str | None = None
    zip_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    phone: str | None = None
    email: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class MarketplaceOrderLine:
    """One line of a marketplace order. ``state`` is the connector's own line state, as the
    marketplace names it (e.g. Mirakl ``CANCELED``, Amazon ``CANCELLED``): line states are not
    neutralised; readers compare them case-insensitively against both spellings."""

    line_id: str
    offer_sku: str
    quantity: int
    unit_price: Decimal
    currency: str
    state: str
    title: str | None = None
    product_sku: str | None = None


@dataclass(frozen=True, slots=True)
class MarketplaceOrder:
    """One version of a marketplace order: ``state`` is the neutral :class:`OrderState` the connector
    mapped ``raw_state`` (the marketplace's own name for it, kept verbatim) onto."""

    marketplace_order_id: str
    state: OrderState
    currency: str
    created_at: datetime
    updated_at: datetime
    lines: tuple[MarketplaceOrderLine, ...]
    raw_state: str
    acceptance_deadline: datetime | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None
    customer_message: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


class MerchantStatus(StrEnum):
    """Where an order stands on the merchant (system-of-record) side."""

    NOT_READY = "not_ready"  # marketplace has not released it yet (no address before to_ship)
    PENDING = "pending"  # ready to be created in the merchant system
    DELIVERED = "delivered"  # created in the merchant system
    QUARANTINED = "quarantined"  # could not be created; see Order Health
    RELEASED = "released"  # an operator released it from quarantine by hand
    THIRD_PARTY_MANAGED = "third_party_managed"  # fulfilled elsewhere; never pushed back


#: States in which the merchant system can take the order over (addresses are known).
HANDOVER_STATES = frozenset({OrderState.TO_SHIP, OrderState.PARTIALLY_SHIPPED})

#: States an order reaches only once the seller accepted it (or the marketplace needs no acceptance).
PAST_ACCEPTANCE_STATES = frozenset(
    {
        OrderState.AWAITING_PAYMENT,
        OrderState.TO_SHIP,
        OrderState.PARTIALLY_SHIPPED,
        OrderState.SHIPPED,
        OrderState.DELIVERED,
        OrderState.CLOSED,
    }
)

#: States of an order that will never be shipped (refused at acceptance, or cancelled).
DEAD_STATES = frozenset({OrderState.CANCELLED, OrderState.REFUSED})

#: States showing that the goods left the warehouse.
SHIPPED_STATES = frozenset({OrderState.SHIPPED, OrderState.DELIVERED, OrderState.CLOSED})

#: States in which nothing more will happen to an order on the marketplace side.
FINAL_STATES = frozenset({OrderState.CLOSED, OrderState.REFUSED, OrderState.CANCELLED})


def needs_acceptance(order: MarketplaceOrder) -> bool:
    return order.state is OrderState.AWAITING_ACCEPTANCE


def deadline_missed(deadline: datetime | None, accepted: bool, now: datetime) -> bool:
    """An unaccepted order past its acceptance deadline: always an alert, never silent."""
    return deadline is not None and not accepted and now >= deadline
