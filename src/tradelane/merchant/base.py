"""The merchant port: what a merchant-system adapter is, what it declares, and the classified result
of handing it one order.

An adapter talks to one merchant system (an HTTP OMS, a commerce platform, a drop folder...). Each kind
declares what it does (:class:`MerchantCapabilities`, see :mod:`tradelane.merchant.capabilities`) and is
built by a factory the composition root (:mod:`tradelane.bootstrap`) hands to the services:

* :class:`MerchantAdapter` (:data:`AdapterFactory`) — systems that *receive orders*: it classifies every
  answer at the edge into a :class:`DeliveryOutcome`; the delivery service turns outcomes into Order
  Health quarantines or engine retries;
* :class:`StockSource` (:data:`StockSourceFactory`) — systems whose stock tradelane reads on demand
  (Shopify inventory items); the catalog service applies what it returns.

Adapters never touch the database: the services read and write the tables, adapters only speak to the
merchant system (over the shared HTTP edge, :mod:`tradelane.http_edge`, or the file system).
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
    the merchant system asked for it. ``already_held`` (DELIVERED only): the merchant system already
    had the order (a repeated idempotency key, or an earlier creation found) and created nothing new;
    ``external_ref`` is then its existing reference."""

    kind: OutcomeKind
    reason: str
    request: str
    response: str | None = None
    status_code: int | None = None
    external_ref: str | None = None
    retry_after: float | None = None
    response_body: Any = None
    already_held: bool = False


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
        system took the cancellation; REJECTED that it refused it or cannot take one (no retry helps):
        a system that does not declare ``receive_cancellations`` is not contacted at all."""
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


#: Builds an adapter from a system and its decrypted credentials. Raises ``ValueError`` when the
#: system's settings or credentials are incomplete.
AdapterFactory = Callable[[MerchantSystem, dict[str, Any]], MerchantAdapter]


class StockSource(Protocol):
    """Reads stock from one merchant system on demand."""

    def read_stock(self, inventory_item_id: int) -> tuple[str | None, int] | None:
        """The item's SKU (None when it has none) and its available stock summed over every location;
        None when the system no longer has the item. Errors are classified (retryable/permanent)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


#: Builds a stock source from a system and its decrypted credentials (``ValueError`` as for
#: :data:`AdapterFactory`).
StockSourceFactory = Callable[[MerchantSystem, dict[str, Any]], StockSource]


class Capability(StrEnum):
    """One thing a merchant system does for tradelane."""

    RECEIVE_ORDERS = "receive_orders"  # marketplace orders are delivered to it
    # the marketplace's cancellations of orders it holds are handed to it (notify_cancellation)
    RECEIVE_CANCELLATIONS = "receive_cancellations"
    SEND_CATALOG = "send_catalog"  # it is a source of products (and prices)
    SEND_STOCK = "send_stock"  # it is a source of stock quantities
    SEND_SHIPMENTS = "send_shipments"  # it sends shipments (and other order updates) back


@dataclass(frozen=True, slots=True)
class MerchantCapabilities:
    """What one merchant system declares it does. Orders are delivered only to systems that
    ``receive_orders``; an adapter whose system does not declare ``receive_cancellations`` answers
    :meth:`MerchantAdapter.notify_cancellation` REJECTED without contacting it (never a 404 found
    out); a system declaring nothing takes part in nothing."""

    receive_orders: bool = False
    receive_cancellations: bool = False
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
