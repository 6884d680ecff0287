"""What a merchant-system adapter is, and the classified result of handing it one order.

An adapter talks to one merchant system (an HTTP OMS, a commerce platform...). It classifies every
answer at the edge into a :class:`DeliveryOutcome`; the delivery service turns outcomes into Order
Health quarantines or engine retries. Adapters never touch the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from tradelane.merchant.schema import OmsOrder


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"  # the merchant system created (or already had) the order
    REJECTED = "rejected"  # it refused the order; retrying the same document cannot help
    RETRY = "retry"  # a transient failure (5xx, timeout, 408, 429): try again later


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """One attempt's result, with the raw exchange kept for inspection.

    ``request``/``response`` are the raw texts (the response prefixed with its status line when there
    was one); ``status_code`` is None when no response arrived; ``retry_after`` (seconds) is set when
    the merchant system asked for it."""

    kind: OutcomeKind
    reason: str
    request: str
    response: str | None = None
    status_code: int | None = None
    external_ref: str | None = None
    retry_after: float | None = None
    response_body: Any = None


class MerchantAdapter(Protocol):
    """Hands orders, and the marketplace's cancellations of them, to one merchant system."""

    def deliver_order(self, document: OmsOrder, *, idempotency_key: str, now: datetime) -> DeliveryOutcome:
        """Create the order in the merchant system (idempotent on ``idempotency_key``)."""
        ...

    def notify_cancellation(
        self, document: OmsOrder, *, lines: list[str] | None, idempotency_key: str, now: datetime
    ) -> DeliveryOutcome:
        """Tell the merchant system that the marketplace cancelled the order (``lines`` None) or the
        given marketplace line ids of it (idempotent on ``idempotency_key``). ``document`` is the order
        as the merchant system received it, cancelled lines included. DELIVERED means the merchant
        system took the cancellation; REJECTED that it refused it or cannot take one (no retry helps)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class MerchantSystem:
    id: int
    tenant_id: int
    name: str
    kind: str
    settings: dict[str, Any]
    enabled: bool


#: Builds an adapter from a system and its decrypted credentials.
AdapterFactory = Callable[[MerchantSystem, dict[str, Any]], MerchantAdapter]


class Capability(StrEnum):
    """One thing a merchant system does for tradelane."""

    RECEIVE_ORDERS = "receive_orders"  # marketplace orders are delivered to it
    SEND_CATALOG = "send_catalog"  # it is a source of products (and prices)
    SEND_STOCK = "send_stock"  # it is a source of stock quantities
    SEND_SHIPMENTS = "send_shipments"  # it sends shipments (and other order updates) back


@dataclass(frozen=True, slots=True)
class MerchantCapabilities:
    """What one merchant system declares it does. Orders are delivered only to systems that
    ``receive_orders``; a system declaring nothing takes part in nothing."""

    receive_orders: bool = False
    send_catalog: bool = False
    send_stock: bool = False
    send_shipments: bool = False

    @classmethod
    def of(cls, *capabilities: Capability) -> MerchantCapabilities:
        return cls(**{c.value: True for c in capabilities})

    def __contains__(self, capability: object) -> bool:
        return isinstance(capability, Capability) and bool(getattr(self, capability.value))

    def names(self) -> list[str]:
        """The declared capabilities, in :class:`Capability` order."""
        return [c.value for c in Capability if c in self]


#: Declares the capabilities of a system of one kind from its settings (pure; no I/O). Raises
#: :class:`ValueError` for settings that declare something invalid.
CapabilitiesOf = Callable[[dict[str, Any]], MerchantCapabilities]
