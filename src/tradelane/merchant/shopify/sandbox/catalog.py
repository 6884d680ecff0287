"""The sandbox shop's catalog: products, variants (with SKUs), inventory items, locations and levels,
rendered as the REST Admin API renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


def iso(moment: datetime) -> str:
    return moment.isoformat()


def money(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("0.01")), "f")


@dataclass
class Variant:
    id: int
    product_id: int
    title: str
    sku: str
    price: Decimal
    inventory_item_id: int
    created_at: datetime
    updated_at: datetime
    inventory_policy: str = "deny"  # deny | continue (sell when out of stock)
    barcode: str | None = None
    position: int = 1

    def as_json(self, inventory_quantity: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "product_id": self.product_id,
            "title": self.title,
            "price": money(self.price),
            "sku": self.sku,
            "position": self.position,
            "inventory_policy": self.inventory_policy,
            "compare_at_price": None,
            "option1": self.title,
            "option2": None,
            "option3": None,
            "barcode": self.barcode,
            "taxable": True,
            "requires_shipping": True,
            "inventory_management": "shopify",
            "inventory_item_id": self.inventory_item_id,
            "inventory_quantity": inventory_quantity,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "admin_graphql_api_id": f"gid://shopify/ProductVariant/{self.id}",
        }


@dataclass
class Product:
    id: int
    title: str
    vendor: str
    created_at: datetime
    updated_at: datetime
    variants: list[Variant] = field(default_factory=list)
    status: str = "active"
    product_type: str = ""

    @property
    def handle(self) -> str:
        return "-".join("".join(c if c.isalnum() else " " for c in self.title.lower()).split())


@dataclass
class InventoryLevel:
    inventory_item_id: int
    location_id: int
    available: int
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "inventory_item_id": self.inventory_item_id,
            "location_id": self.location_id,
            "available": self.available,
            "updated_at": iso(self.updated_at),
            "admin_graphql_api_id": (
                f"gid://shopify/InventoryLevel/{self.location_id}?inventory_item_id={self.inventory_item_id}"
            ),
        }


@dataclass
class Catalog:
    """Products and stock. Not thread-safe on its own: the sandbox state holds the lock."""

    products: dict[int, Product] = field(default_factory=dict)
    locations: dict[int, str] = field(default_factory=dict)
    levels: dict[tuple[int, int], InventoryLevel] = field(default_factory=dict)

    def variants(self) -> list[Variant]:
        return [v for p in self.products.values() for v in p.variants]

    def variant(self, variant_id: int) -> Variant | None:
        return next((v for v in self.variants() if v.id == variant_id), None)

    def variants_with_sku(self, sku: str) -> list[Variant]:
        return [v for v in self.variants() if v.sku == sku]

    def variant_of_item(self, inventory_item_id: int) -> Variant | None:
        return next((v for v in self.variants() if v.inventory_item_id == inventory_item_id), None)

    def available(self, inventory_item_id: int) -> int:
        return sum(level.available for (item, _), level in self.levels.items() if item == inventory_item_id)

    def product_json(self, product: Product) -> dict[str, Any]:
        return {
            "id": product.id,
            "title": product.title,
            "body_html": "",
            "vendor": product.vendor,
            "product_type": product.product_type,
            "handle": product.handle,
            "status": product.status,
            "tags": "",
            "created_at": iso(product.created_at),
            "updated_at": iso(product.updated_at),
            "published_at": iso(product.created_at),
            "options": [{"name": "Title", "position": 1, "values": [v.title for v in product.variants]}],
            "variants": [v.as_json(self.available(v.inventory_item_id)) for v in product.variants],
            "images": [],
            "admin_graphql_api_id": f"gid://shopify/Product/{product.id}",
        }

    def inventory_item_json(self, variant: Variant) -> dict[str, Any]:
        return {
            "id": variant.inventory_item_id,
            "sku": variant.sku,
            "tracked": True,
            "requires_shipping": True,
            "cost": None,
            "country_code_of_origin": None,
            "created_at": iso(variant.created_at),
            "updated_at": iso(variant.updated_at),
            "admin_graphql_api_id": f"gid://shopify/InventoryItem/{variant.inventory_item_id}",
        }

    def set_available(
        self, inventory_item_id: int, location_id: int, available: int, now: datetime
    ) -> InventoryLevel:
        level = InventoryLevel(inventory_item_id, location_id, available, now)
        self.levels[(inventory_item_id, location_id)] = level
        return level

    def adjust(self, inventory_item_id: int, location_id: int, delta: int, now: datetime) -> InventoryLevel:
        current = self.levels.get((inventory_item_id, location_id))
        return self.set_available(
            inventory_item_id, location_id, (current.available if current else 0) + delta, now
        )
