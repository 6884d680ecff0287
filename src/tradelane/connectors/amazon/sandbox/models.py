"""The sandbox's world: applications, seller accounts, tokens, catalog, listings, orders, feeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Application:
    """An LWA client (a developer's SP-API application)."""

    client_id: str
    client_secret: str


@dataclass(frozen=True)
class SellerAccount:
    """A selling partner who authorised an application: its refresh token is bound to both."""

    seller_id: str
    name: str
    region: str
    marketplace_ids: tuple[str, ...]
    client_id: str
    refresh_token: str


@dataclass
class AccessToken:
    token: str
    seller_id: str
    expires_at: datetime
    revoked: bool = False


@dataclass(frozen=True)
class CatalogItem:
    """An ASIN of Amazon's catalog (sellers list offers on it)."""

    asin: str
    title: str
    product_type: str
    gtin: str
    marketplace_ids: tuple[str, ...]


class Catalog(dict[str, CatalogItem]):
    """Amazon's catalog: ASIN → item, with a GTIN index (feeds of 25,000 messages look GTINs up)."""

    def __init__(self, items: list[CatalogItem]) -> None:
        super().__init__((item.asin, item) for item in items)
        self.gtins: dict[str, str] = {item.gtin: item.asin for item in items}


@dataclass
class Listing:
    """One seller SKU; ``attributes`` as the Listings Items API stores them (attribute name → list of
    values, each value carrying its ``marketplace_id`` where it has one)."""

    seller_id: str
    sku: str
    product_type: str
    requirements: str
    attributes: dict[str, list[dict[str, Any]]]
    created: datetime
    updated: datetime
    issues: list[dict[str, Any]] = field(default_factory=list)


class FulfillmentStatus(StrEnum):
    """``FulfillmentStatus`` of the Orders API 2026-01-01 (the sandbox uses the merchant-fulfilled
    subset: PENDING → UNSHIPPED → PARTIALLY_SHIPPED → SHIPPED, CANCELLED)."""

    PENDING_AVAILABILITY = "PENDING_AVAILABILITY"
    PENDING = "PENDING"
    UNSHIPPED = "UNSHIPPED"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"
    UNFULFILLABLE = "UNFULFILLABLE"


@dataclass
class OrderItem:
    order_item_id: str
    asin: str
    sku: str
    title: str
    quantity: int
    unit_price: Decimal
    shipped: int = 0


@dataclass(frozen=True)
class Address:
    name: str
    line1: str
    city: str
    postal_code: str
    country_code: str
    line2: str = ""
    state_or_region: str = ""
    phone: str = ""


@dataclass
class Package:
    package_reference_id: str
    carrier_code: str
    carrier_name: str
    tracking_number: str
    ship_date: datetime
    shipping_method: str
    items: list[tuple[str, int]]
    created: datetime


@dataclass
class Order:
    order_id: str
    seller_id: str
    marketplace_id: str
    currency: str
    created: datetime
    updated: datetime
    status: FulfillmentStatus
    items: list[OrderItem]
    buyer_name: str
    buyer_email: str
    address: Address
    ship_by: datetime
    deliver_by: datetime
    packages: list[Package] = field(default_factory=list)
    cancel_reason: str | None = None


class FeedStatus(StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    FATAL = "FATAL"
    CANCELLED = "CANCELLED"


@dataclass
class Document:
    """A feed document of the local document store (input upload or result report)."""

    document_id: str
    seller_id: str
    content_type: str
    created: datetime
    content: bytes | None = None
    compression: str | None = None  # "GZIP" for a compressed result document


@dataclass
class Feed:
    feed_id: str
    seller_id: str
    feed_type: str
    marketplace_ids: tuple[str, ...]
    input_document_id: str
    created: datetime
    starts: datetime
    ends: datetime
    status: FeedStatus = FeedStatus.IN_QUEUE
    result_document_id: str | None = None
    report: dict[str, Any] | None = None
