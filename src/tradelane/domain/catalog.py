"""Catalog products as tradelane holds them (the merchant's system of record is the source)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeAlias

# ASCII JSON (a NUL is escaped), for the digests of values that contain a NUL.
_DIGEST_JSON = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


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
        """A stable digest of every field; equal hashes mean an import line changes nothing.

        Canonical form: the price normalised (``10.0`` and ``10.00`` agree), attributes sorted by name, an
        empty text the same as no text. The digest is sha256 of the fields joined by NUL, with the count
        of labels before them (so the fields can be told apart again); when a value itself contains a NUL
        (the import refuses it, other sources may not) or is not text, of an ASCII JSON array instead,
        which never contains a NUL, so both forms stay distinct. Stored digests are compared with freshly
        computed ones, so a change of this encoding makes the next import rewrite (not re-dirty) every
        product once."""
        price = self.price
        labels = self.labels
        parts = [
            self.sku,
            self.parent_sku or "",
            self.title or "",
            self.description or "",
            self.brand or "",
            self.gtin or "",
            "" if price is None else format(price.normalize(), "f"),
            self.currency or "",
            str(self.quantity),
            str(len(labels)),
            *labels,
        ]
        for name, value in sorted(self.attributes.items()):
            parts += (name, value)
        try:
            canonical = "\x00".join(parts)
        except TypeError:  # a value that is not text (the type says it is; the digest need not fail)
            canonical = ""
        if canonical.count("\x00") != len(parts) - 1:
            canonical = _DIGEST_JSON([part or None for part in parts])
        # surrogatepass: a lone surrogate (refused by the import, possible elsewhere) still hashes.
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()

    def offer_fields_hash(self) -> str:
        """Digest of what an offer delta carries (price, currency, quantity)."""
        price = None if self.price is None else format(self.price.normalize(), "f")
        return hashlib.sha256(f"{price}|{self.currency}|{self.quantity}".encode()).hexdigest()


#: A product as the catalog import carries it, cheaper than a :class:`Product` on a hot path: its fields
#: in :class:`Product`'s order, then its :meth:`Product.content_hash` (``CatalogRow[11]``). Build one with
#: :func:`catalog_row` or :meth:`tradelane.domain.catalog_rows.CsvRowParser.row`; equal products give equal
#: rows.
CatalogRow: TypeAlias = tuple[
    str,  # 0 sku
    str | None,  # 1 parent_sku
    str | None,  # 2 title
    str | None,  # 3 description
    str | None,  # 4 brand
    str | None,  # 5 gtin
    Decimal | None,  # 6 price
    str | None,  # 7 currency
    int,  # 8 quantity
    tuple[str, ...],  # 9 labels
    dict[str, str],  # 10 attributes
    str,  # 11 content hash
]


def catalog_row(product: Product) -> CatalogRow:
    """The :data:`CatalogRow` of a product (its content hash computed here)."""
    return (
        product.sku,
        product.parent_sku,
        product.title,
        product.description,
        product.brand,
        product.gtin,
        product.price,
        product.currency,
        product.quantity,
        product.labels,
        product.attributes,
        product.content_hash(),
    )


def row_product(row: CatalogRow) -> Product:
    """The :class:`Product` a :data:`CatalogRow` describes (the inverse of :func:`catalog_row`)."""
    return Product(*row[:11])
