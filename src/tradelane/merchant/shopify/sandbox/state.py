"""The sandbox shop: catalog, orders, the API call bucket, injected faults and webhook subscriptions.

Thread-safe (one lock; the app serves requests from a thread pool). Webhooks are sent *outside* the
lock, so tradelane may call the sandbox back while it handles one.

Webhooks are signed as Shopify signs them: ``X-Shopify-Hmac-SHA256`` = base64 of the HMAC-SHA256 of the
raw body with the webhook secret, next to ``X-Shopify-Topic``, ``X-Shopify-Shop-Domain``,
``X-Shopify-Webhook-Id`` (a new UUID per delivery, kept by :meth:`redeliver`), ``X-Shopify-Event-Id``,
``X-Shopify-API-Version`` and ``X-Shopify-Triggered-At``. The sandbox computes the signature itself
(it shares no code with tradelane's verification).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from tradelane.merchant.shopify.sandbox.catalog import Catalog, InventoryLevel, Product, Variant
from tradelane.merchant.shopify.sandbox.orders import OrderRefused, build_order, fulfillment_json

DEFAULT_SHOP_DOMAIN = "tradelane-sandbox.myshopify.com"
DEFAULT_API_VERSION = "2025-10"
BUCKET_SIZE = 40
LEAK_PER_SECOND = 2.0
WEBHOOK_TIMEOUT_SECONDS = 10.0
FIRST_ID = 7_100_000_000_001


def sign_webhook(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


@dataclass(frozen=True, slots=True)
class Fault:
    status: int
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class ApiCall:
    method: str
    path: str
    status: int


@dataclass
class WebhookDelivery:
    topic: str
    url: str
    body: bytes
    headers: dict[str, str]
    status: int | None = None
    response: str | None = None

    @property
    def webhook_id(self) -> str:
        return self.headers["X-Shopify-Webhook-Id"]

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Subscription:
    url: str
    topics: frozenset[str] | None = None  # None: every topic

    def wants(self, topic: str) -> bool:
        return self.topics is None or topic in self.topics


@dataclass
class _Bucket:
    size: int = BUCKET_SIZE
    rate: float = LEAK_PER_SECOND
    level: float = 0.0
    at: datetime | None = None

    def take(self, now: datetime) -> float | None:
        """Count one call; None when it fits, else the seconds until it would."""
        if self.at is not None:
            self.level = max(0.0, self.level - self.rate * max(0.0, (now - self.at).total_seconds()))
        self.at = now
        if self.level + 1 > self.size:
            return (self.level + 1 - self.size) / self.rate
        self.level += 1
        return None

    def header(self) -> str:
        return f"{math.ceil(self.level)}/{self.size}"


@dataclass
class ShopifySandboxState:
    """One shop. ``clock`` drives timestamps and the call bucket's leak (tests pass a fake clock)."""

    access_token: str
    webhook_secret: str
    shop_domain: str = DEFAULT_SHOP_DOMAIN
    currency: str = "EUR"
    api_version: str = DEFAULT_API_VERSION
    app_id: int = 4_242_001
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    bucket_size: int = BUCKET_SIZE
    catalog: Catalog = field(default_factory=Catalog)
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[ApiCall] = field(default_factory=list)
    deliveries: list[WebhookDelivery] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._next_id = FIRST_ID
        self._next_number = 1001
        self._faults: list[Fault] = []
        self._slow: list[tuple[str | None, float]] = []
        self._bucket = _Bucket(size=self.bucket_size, rate=self.bucket_size / 20)
        self.location_id = self.new_id()
        self.catalog.locations[self.location_id] = "Main warehouse"

    def new_id(self) -> int:
        with self.lock:
            value = self._next_id
            self._next_id += 1
            return value

    # --- API gate: token, bucket, faults -----------------------------------------------------------

    def authenticate(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.access_token.encode())

    def take_call(self) -> float | None:
        """Count one API call; None when it fits in the bucket, else Retry-After seconds."""
        with self.lock:
            return self._bucket.take(self.clock())

    def call_limit_header(self) -> str:
        with self.lock:
            return self._bucket.header()

    def inject_faults(self, count: int, status: int = 500, retry_after: float | None = None) -> None:
        """Fail the next ``count`` authenticated API calls with ``status`` (429 carries ``Retry-After``)."""
        with self.lock:
            self._faults.extend(Fault(status, retry_after) for _ in range(count))

    def take_fault(self) -> Fault | None:
        with self.lock:
            return self._faults.pop(0) if self._faults else None

    def slow_down(self, count: int, delay: float, *, method: str | None = None) -> None:
        """Serve the next ``count`` API calls (of ``method``, or any) normally, then hold each answer
        ``delay`` seconds: a client with a shorter timeout loses an answer whose work was done."""
        with self.lock:
            self._slow.extend((method, delay) for _ in range(count))

    def take_slowdown(self, method: str) -> float | None:
        with self.lock:
            for index, (wanted, delay) in enumerate(self._slow):
                if wanted is None or wanted == method:
                    del self._slow[index]
                    return delay
            return None

    def record_call(self, method: str, path: str, status: int) -> None:
        with self.lock:
            self.calls.append(ApiCall(method, path, status))

    # --- catalog -----------------------------------------------------------------------------------

    def add_product(
        self,
        title: str,
        variants: Iterable[Mapping[str, Any]],
        *,
        vendor: str = "Sandbox Vendor",
        emit: bool = False,
        client: httpx.Client | None = None,
    ) -> dict[str, Any]:
        """A product with ``variants`` (``sku``, ``price``, ``quantity``, optional ``title``,
        ``inventory_policy``, ``barcode``); with ``emit``, a ``products/create`` webhook is sent."""
        with self.lock:
            now = self.clock()
            product = Product(self.new_id(), title, vendor, now, now)
            for position, spec in enumerate(variants, start=1):
                variant = Variant(
                    id=self.new_id(),
                    product_id=product.id,
                    title=str(spec.get("title") or "Default Title"),
                    sku=str(spec["sku"]),
                    price=Decimal(str(spec.get("price", "0"))),
                    inventory_item_id=self.new_id(),
                    created_at=now,
                    updated_at=now,
                    inventory_policy=str(spec.get("inventory_policy") or "deny"),
                    barcode=spec.get("barcode"),
                    position=position,
                )
                product.variants.append(variant)
                self.catalog.set_available(
                    variant.inventory_item_id, self.location_id, int(spec.get("quantity", 0)), now
                )
            self.catalog.products[product.id] = product
            rendered = self.catalog.product_json(product)
        if emit:
            self.emit("products/create", rendered, client=client)
        return rendered

    def variant(self, sku: str) -> Variant:
        with self.lock:
            found = self.catalog.variants_with_sku(sku)
            if not found:
                raise KeyError(f"no variant with SKU {sku!r}")
            return found[0]

    def product_json(self, sku: str) -> dict[str, Any]:
        """The product holding the variant ``sku``, as the API renders it."""
        with self.lock:
            return self.catalog.product_json(self.catalog.products[self.variant(sku).product_id])

    def update_variant(
        self,
        sku: str,
        *,
        price: Decimal | str | None = None,
        available: int | None = None,
        emit: bool = True,
        client: httpx.Client | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Change a variant's price and/or its stock at the main location, as a merchant would in the
        Shopify admin; sends ``products/update`` and (for stock) ``inventory_levels/update``."""
        with self.lock:
            variant = self.variant(sku)
            now = self.clock()
            if price is not None:
                variant.price = Decimal(str(price))
                variant.updated_at = now
            level: InventoryLevel | None = None
            if available is not None:
                level = self.catalog.set_available(
                    variant.inventory_item_id, self.location_id, available, now
                )
            product = self.catalog.products[variant.product_id]
            product.updated_at = now
            rendered = self.catalog.product_json(product)
            level_json = level.as_json() if level else None
        if emit:
            self.emit("products/update", rendered, client=client)
            if level_json is not None:
                self.emit("inventory_levels/update", level_json, client=client)
        return rendered, level_json

    # --- orders ------------------------------------------------------------------------------------

    def create_order(self, body: Any, *, via_app: bool = True) -> dict[str, Any]:
        """Create an order from a ``POST orders.json`` body (``via_app``: attributed to the API app,
        else it looks like a web-shop order). Raises :class:`OrderRefused`."""
        with self.lock:
            now = self.clock()
            order, claims = build_order(
                body,
                self.catalog,
                new_id=self.new_id,
                number=self._next_number,
                now=now,
                app_id=self.app_id if via_app else None,
                location_id=self.location_id,
                shop_currency=self.currency,
            )
            self._next_number += 1
            for claim in claims:
                self.catalog.adjust(claim.inventory_item_id, claim.location_id, -claim.quantity, now)
            self.orders[order["id"]] = order
            return json.loads(json.dumps(order))

    def order(self, order_id: int) -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps(self.orders[order_id]))

    def orders_tagged(self, tag: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                json.loads(json.dumps(o))
                for o in self.orders.values()
                if tag in [t.strip() for t in o["tags"].split(",")]
            ]

    def fulfill(
        self,
        order_id: int,
        *,
        tracking_company: str | None = None,
        tracking_number: str | None = None,
        tracking_url: str | None = None,
        lines: Mapping[str, int] | None = None,
        emit: bool = True,
        client: httpx.Client | None = None,
    ) -> dict[str, Any]:
        """Fulfil the order (``lines``: SKU → quantity; default everything still unfulfilled). Sends
        ``fulfillments/create``, and ``orders/fulfilled`` once nothing is left to fulfil."""
        with self.lock:
            order = self.orders[order_id]
            if order["cancelled_at"] is not None:
                raise OrderRefused(422, {"errors": {"base": ["The order has been canceled"]}})
            chosen: list[tuple[dict[str, Any], int]] = []
            for item in order["line_items"]:
                wanted = item["fulfillable_quantity"] if lines is None else lines.get(item["sku"], 0)
                quantity = min(wanted, item["fulfillable_quantity"])
                if quantity > 0:
                    chosen.append((item, quantity))
            if not chosen:
                raise OrderRefused(422, {"errors": {"line_items": ["nothing left to fulfill"]}})
            now = self.clock()
            fulfillment = fulfillment_json(
                order,
                fulfillment_id=self.new_id(),
                lines=[(dict(item), q) for item, q in chosen],
                tracking_company=tracking_company,
                tracking_number=tracking_number,
                tracking_url=tracking_url,
                location_id=self.location_id,
                now=now,
            )
            for item, quantity in chosen:
                item["fulfillable_quantity"] -= quantity
                item["fulfillment_status"] = "fulfilled" if item["fulfillable_quantity"] == 0 else "partial"
            done = all(i["fulfillable_quantity"] == 0 for i in order["line_items"])
            order["fulfillment_status"] = "fulfilled" if done else "partial"
            order["fulfillments"].append(fulfillment)
            order["updated_at"] = now.isoformat()
            rendered_order = json.loads(json.dumps(order))
        if emit:
            self.emit("fulfillments/create", fulfillment, client=client)
            if done:
                self.emit("orders/fulfilled", rendered_order, client=client)
        return fulfillment

    def cancel(
        self,
        order_id: int,
        *,
        reason: str = "customer",
        emit: bool = True,
        client: httpx.Client | None = None,
    ) -> dict[str, Any]:
        """Cancel the order as a merchant would; sends ``orders/cancelled``."""
        with self.lock:
            order = self.orders[order_id]
            if order["cancelled_at"] is None:
                now = self.clock()
                order["cancelled_at"] = now.isoformat()
                order["cancel_reason"] = reason
                order["updated_at"] = now.isoformat()
            rendered = json.loads(json.dumps(order))
        if emit:
            self.emit("orders/cancelled", rendered, client=client)
        return rendered

    # --- webhooks ----------------------------------------------------------------------------------

    def subscribe(self, url: str, topics: Iterable[str] | None = None) -> None:
        with self.lock:
            self.subscriptions.append(Subscription(url, frozenset(topics) if topics is not None else None))

    def emit(self, topic: str, payload: Any, *, client: httpx.Client | None = None) -> list[WebhookDelivery]:
        """Send ``payload`` to every subscription wanting ``topic`` (each delivery has its own id)."""
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        with self.lock:
            targets = [s.url for s in self.subscriptions if s.wants(topic)]
            now = self.clock()
        deliveries = []
        for url in targets:
            headers = {
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": sign_webhook(self.webhook_secret, body),
                "X-Shopify-Shop-Domain": self.shop_domain,
                "X-Shopify-API-Version": self.api_version,
                "X-Shopify-Webhook-Id": str(uuid.uuid4()),
                "X-Shopify-Event-Id": str(uuid.uuid4()),
                "X-Shopify-Triggered-At": now.isoformat(),
            }
            deliveries.append(self._send(WebhookDelivery(topic, url, body, headers), client))
        return deliveries

    def redeliver(self, delivery: WebhookDelivery, *, client: httpx.Client | None = None) -> WebhookDelivery:
        """Send the same delivery again (same body, signature and webhook id), as a retry or a replay."""
        again = WebhookDelivery(delivery.topic, delivery.url, delivery.body, dict(delivery.headers))
        return self._send(again, client)

    def _send(self, delivery: WebhookDelivery, client: httpx.Client | None) -> WebhookDelivery:
        own = client is None
        http = client or httpx.Client(timeout=WEBHOOK_TIMEOUT_SECONDS)
        try:
            response = http.post(delivery.url, content=delivery.body, headers=delivery.headers)
            delivery.status = response.status_code
            delivery.response = response.text[:2000]
        except httpx.HTTPError as exc:
            delivery.response = f"{type(exc).__name__}: {exc}"
        finally:
            if own:
                http.close()
        with self.lock:
            self.deliveries.append(delivery)
        return delivery


__all__ = [
    "ApiCall",
    "Fault",
    "OrderRefused",
    "ShopifySandboxState",
    "Subscription",
    "WebhookDelivery",
    "sign_webhook",
]
