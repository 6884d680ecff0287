"""Fixing an unknown SKU from Order Health: map it, or add it to the catalog — then the orders
quarantined for it re-try by themselves.

Both paths reuse the regular services, so nothing here is a second implementation:

* :func:`map_sku` = :func:`tradelane.persistence.sku_mappings.put_sku_mapping` then
  :func:`tradelane.services.order_health.retry_quarantined_for_skus`, in the caller's transaction
  (the same two calls ``tradelane sku-map add`` makes). The merchant SKU must be a catalog SKU of the
  tenant, unless ``merchant_only`` (the operator confirmed it exists only in the merchant system);
* :func:`add_catalog_product` = a one-row catalog import
  (:func:`tradelane.services.catalog_import.import_catalog`, so the row rules and the listings outbox
  apply as for any import), then the re-try. A product created to release an order is published on
  **no** channel unless the operator names the channels (``publish_to``): it gets offer bindings only
  there. It refuses a SKU that is already in the catalog: a catalog row fully describes its product, so
  "adding" it would overwrite the stored one.

Both check every field before writing anything and raise :class:`FormErrors` with *all* the problems
found (field name → reason), so a form can show them next to its fields at once.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Connection, Engine

from tradelane.domain.catalog_rows import (
    RowError,
    parse_currency,
    parse_gtin,
    parse_price,
    parse_quantity,
    parse_row,
)
from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.sku_mappings import (
    SkuMapping,
    check_sku,
    not_in_catalog_reason,
    put_sku_mapping,
    sku_in_catalog,
)
from tradelane.services.catalog_import import import_catalog
from tradelane.services.channels import Channel, get_channel
from tradelane.services.order_health import retry_quarantined_for_skus

#: The fields of the "add product" form, in display order.
PRODUCT_FIELDS = ("sku", "title", "price", "currency", "quantity", "gtin")


class FormErrors(ValidationError):
    """Every problem of one form at once: ``errors`` maps a field name to its reason, in field order.
    ``str()`` lists them all (``field: reason; ...``) for callers without fields (CLI, API)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in self.errors.items()))


@dataclass(frozen=True, slots=True)
class SkuFix:
    sku: str
    orders_retried: int
    mapping: SkuMapping | None = None
    published_to: list[str] = field(default_factory=list)


def _channel(conn: Connection, tenant_id: int, name: str, errors: dict[str, str], key: str) -> Channel | None:
    try:
        return get_channel(conn, tenant_id, name)
    except NotFoundError as exc:
        errors[key] = str(exc)
        return None


def map_sku(
    conn: Connection,
    *,
    tenant_id: int,
    channel: str | None,
    marketplace_sku: str,
    merchant_sku: str,
    now: datetime,
    merchant_only: bool = False,
) -> SkuFix:
    """Map ``marketplace_sku`` (for the channel named ``channel``, or every channel when None) and
    re-try the orders it unblocks.

    ``merchant_sku`` must be a catalog SKU of the tenant unless ``merchant_only`` is True, which the
    caller sets only after the operator confirmed it. Raises :class:`FormErrors` (fields
    ``marketplace_sku``, ``merchant_sku``, ``channel``) with every problem found."""
    errors: dict[str, str] = {}
    try:
        marketplace_sku = check_sku(marketplace_sku, "marketplace SKU")
    except ValidationError as exc:
        errors["marketplace_sku"] = str(exc)
    try:
        merchant_sku = check_sku(merchant_sku, "merchant SKU")
    except ValidationError as exc:
        errors["merchant_sku"] = str(exc)
    else:
        if not merchant_only and not sku_in_catalog(conn, tenant_id, merchant_sku):
            errors["merchant_sku"] = not_in_catalog_reason(conn, tenant_id, merchant_sku)
    channel_id = None
    if channel is not None:
        found = _channel(conn, tenant_id, channel, errors, "channel")
        channel_id = found.id if found is not None else None
    if errors:
        raise FormErrors(errors)
    mapping = put_sku_mapping(
        conn,
        tenant_id=tenant_id,
        channel_id=channel_id,
        marketplace_sku=marketplace_sku,
        merchant_sku=merchant_sku,
        merchant_only=merchant_only,
        now=now,
    )
    retried = retry_quarantined_for_skus(conn, tenant_id=tenant_id, skus=[mapping.marketplace_sku], now=now)
    return SkuFix(mapping.marketplace_sku, retried, mapping)


def product_form_errors(row: Mapping[str, str]) -> dict[str, str]:
    """Every problem of a product row of :data:`PRODUCT_FIELDS` (pure): field name → reason, checked
    by the catalog row rules one field at a time, so that all of them are reported at once."""
    errors: dict[str, str] = {}
    sku = (row.get("sku") or "").strip()

    def check(name: str, parse: Callable[[], object]) -> object:
        try:
            return parse()
        except RowError as exc:
            errors[name] = exc.reason
            return None

    if not sku:
        errors["sku"] = "sku is required"
    else:
        check("sku", lambda: parse_row({"sku": sku}))
    check("title", lambda: parse_row({"sku": "x", "title": row.get("title")}))
    price = check("price", lambda: parse_price(row.get("price") or None))
    currency = check("currency", lambda: parse_currency(row.get("currency") or None))
    check("quantity", lambda: parse_quantity(row.get("quantity") or None))
    check("gtin", lambda: parse_gtin(row.get("gtin") or None))
    if price is not None and currency is None and "currency" not in errors:
        errors["currency"] = "a currency is required with a price (ISO 4217, e.g. EUR)"
    if currency is not None and price is None and "price" not in errors:
        errors["price"] = f"a price is required with currency {currency}"
    return {name: errors[name] for name in PRODUCT_FIELDS if name in errors}


def add_catalog_product(
    engine: Engine,
    *,
    tenant_id: int,
    row: Mapping[str, str],
    now: datetime,
    publish_to: Sequence[str] = (),
) -> SkuFix:
    """Import one product row (:data:`PRODUCT_FIELDS`) and re-try the orders quarantined for its SKU.

    The product gets offer bindings (and so is published) only on the channels named in
    ``publish_to``; by default on none. Raises :class:`FormErrors` with every problem found (the row's
    fields, ``sku`` already in the catalog, ``publish_to`` naming an unknown channel) before writing
    anything, and :class:`FormErrors` (``sku``) with the import's reason if the import still rejects
    the row — e.g. the SKU was added meanwhile: the import only creates, so it is never overwritten."""
    errors = product_form_errors(row)
    sku = (row.get("sku") or "").strip()
    channel_ids: list[int] = []
    names: list[str] = []
    with read_only(engine) as conn:
        if "sku" not in errors and sku_in_catalog(conn, tenant_id, sku):
            errors["sku"] = f"SKU {sku!r} is already in the catalog; map the marketplace SKU to it instead"
        for name in dict.fromkeys(publish_to):
            found = _channel(conn, tenant_id, name, errors, "publish_to")
            if found is not None:
                channel_ids.append(found.id)
                names.append(found.name)
    if errors:
        raise FormErrors(errors)
    cleaned = {k: v.strip() for k, v in row.items() if k in PRODUCT_FIELDS and v is not None and v.strip()}
    with tempfile.TemporaryDirectory(prefix="tradelane-product-") as tmp:
        path = Path(tmp) / "product.jsonl"
        path.write_text(json.dumps(cleaned, ensure_ascii=False) + "\n", encoding="utf-8")
        summary = import_catalog(
            engine,
            tenant_id=tenant_id,
            path=path,
            now=now,
            filename=f"order-health:{sku}",
            publish_to=channel_ids,
            create_only=True,  # a product added meanwhile is refused, never overwritten
        )
    if summary.rejected:
        reason = summary.errors[0].error if summary.errors else f"SKU {sku!r} was rejected"
        raise FormErrors({"sku": reason})
    with transaction(engine) as conn:
        retried = retry_quarantined_for_skus(conn, tenant_id=tenant_id, skus=[sku], now=now)
    return SkuFix(sku, retried, published_to=names)
