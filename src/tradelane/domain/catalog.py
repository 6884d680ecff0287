"""Catalog products as tradelane holds them (the merchant's system of record is the source)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Product:
    """One sellable item. ``parent_sku`` groups variants (empty/None = standalone product).

    Invariants (enforced by :mod:`tradelane.domain.catalog_rows`): ``sku`` non-empty; ``quantity >= 0``;
    ``price`` and ``currency`` are both set or both unset; ``currency`` is ISO 4217.
    """

    sku: str
    parent_sku: str | None = None
    title: str | None = None
    description: str | None = None
    brand: str | None = None
    gtin: str | None = None
    price: Decimal | None = None
    currency: str | None = None
    quantity: int = 0
    labels: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)

    def content_hash(self) -> str:
        """A stable digest of every field; equal hashes mean an import line changes nothing."""
        doc = {
            "sku": self.sku,
            "parent_sku": self.parent_sku,
            "title": self.title,
            "description": self.description,
            "brand": self.brand,
            "gtin": self.gtin,
            "price": None if self.price is None else format(self.price.normalize(), "f"),
            "currency": self.currency,
            "quantity": self.quantity,
            "labels": list(self.labels),
            "attributes": dict(sorted(self.attributes.items())),
        }
        encoded = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()

    def offer_fields_hash(self) -> str:
        """Digest of what an offer delta carries (price, currency, quantity)."""
        price = None if self.price is None else format(self.price.normalize(), "f")
        return hashlib.sha256(f"{price}|{self.currency}|{self.quantity}".encode()).hexdigest()
