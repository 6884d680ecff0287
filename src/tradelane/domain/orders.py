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


class MarketplaceOrderState(StrEnum):
    """The marketplace-side lifecycle, normalised across connectors (Mirakl names them the same)."""

    STAGING = "STAGING"
    WAITING_ACCEPTANCE = "WAITING_ACCEPTANCE"
    WAITING_DEBIT = "WAITING_DEBIT"
    WAITING_DEBIT_PAYMENT = "WAITING_DEBIT_PAYMENT"
    SHIPPING = "SHIPPING"
    SHIPPED = "SHIPPED"
    TO_COLLECT = "TO_COLLECT"
    RECEIVED = "RECEIVED"
    CLOSED = "CLOSED"
    REFUSED = "REFUSED"
    CANCELED = "CANCELED"


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
    marketplace_order_id: str
    state: MarketplaceOrderState
    currency: str
    created_at: datetime
    updated_at: datetime
    lines: tuple[MarketplaceOrderLine, ...]
    acceptance_deadline: datetime | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None
    customer_message: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


class MerchantStatus(StrEnum):
    """Where an order stands on the merchant (system-of-record) side."""

    NOT_READY = "not_ready"  # marketplace has not released it yet (no address before SHIPPING)
    PENDING = "pending"  # ready to be created in the merchant system
    DELIVERED = "delivered"  # created in the merchant system
    QUARANTINED = "quarantined"  # could not be created; see Order Health
    RELEASED = "released"  # an operator released it from quarantine by hand
    THIRD_PARTY_MANAGED = "third_party_managed"  # fulfilled elsewhere; never pushed back


#: States in which the merchant system can take the order over (addresses are known).
HANDOVER_STATES = frozenset({MarketplaceOrderState.SHIPPING})

#: States in which nothing more will happen to an order on the marketplace side.
FINAL_STATES = frozenset(
    {MarketplaceOrderState.CLOSED, MarketplaceOrderState.REFUSED, MarketplaceOrderState.CANCELED}
)


def needs_acceptance(order: MarketplaceOrder) -> bool:
    return order.state is MarketplaceOrderState.WAITING_ACCEPTANCE


def deadline_missed(deadline: datetime | None, accepted: bool, now: datetime) -> bool:
    """An unaccepted order past its acceptance deadline: always an alert, never silent."""
    return deadline is not None and not accepted and now >= deadline
