"""Fixing an unknown SKU from Order Health: map it, or add it to the catalog — then the orders
quarantined for it re-try by themselves.

Both paths reuse the regular services, so nothing here is a second implementation:

* :func:`map_sku` = :func:`tradelane.merchant.skus.put_sku_mapping` then
  :func:`tradelane.services.order_health.retry_quarantined_for_skus`, in the caller's transaction
  (the same two calls ``tradelane sku-map add`` makes);
* :func:`add_catalog_product` = a one-row catalog import
  (:func:`tradelane.services.catalog_import.import_catalog`, so the row rules, offer bindings and the
  listings outbox apply as for any import), then the re-try. It refuses a SKU that is already in the
  catalog: a catalog row fully describes its product, so "adding" it would overwrite the stored one.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tradelane.domain.errors import ConflictError, ValidationError
from tradelane.merchant.skus import SkuMapping, put_sku_mapping
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.tables import products
from tradelane.services.catalog_import import import_catalog
from tradelane.services.order_health import retry_quarantined_for_skus


@dataclass(frozen=True, slots=True)
class SkuFix:
    sku: str
    orders_retried: int
    mapping: SkuMapping | None = None


def map_sku(
    conn: Connection,
    *,
    tenant_id: int,
    channel_id: int | None,
    marketplace_sku: str,
    merchant_sku: str,
    now: datetime,
) -> SkuFix:
    """Map ``marketplace_sku`` (for one channel, or every channel) and re-try the orders it unblocks."""
    mapping = put_sku_mapping(
        conn,
        tenant_id=tenant_id,
        channel_id=channel_id,
        marketplace_sku=marketplace_sku,
        merchant_sku=merchant_sku,
        now=now,
    )
    retried = retry_quarantined_for_skus(conn, tenant_id=tenant_id, skus=[mapping.marketplace_sku], now=now)
    return SkuFix(mapping.marketplace_sku, retried, mapping)


def add_catalog_product(engine: Engine, *, tenant_id: int, row: dict[str, str], now: datetime) -> SkuFix:
    """Import one product row (canonical catalog columns: ``sku``, ``title``, ``price``, ``currency``,
    ``quantity``...) and re-try the orders quarantined for its SKU.

    Raises :class:`ConflictError` when the SKU is already in the catalog and :class:`ValidationError`
    with the import's reason when the row is rejected."""
    sku = (row.get("sku") or "").strip()
    if not sku:
        raise ValidationError("sku is required")
    with read_only(engine) as conn:
        exists = conn.execute(
            sa.select(products.c.id).where(products.c.tenant_id == tenant_id, products.c.sku == sku)
        ).first()
    if exists is not None:
        raise ConflictError(f"SKU {sku!r} is already in the catalog; map the marketplace SKU to it instead")
    cleaned = {k: v for k, v in row.items() if v is not None and str(v).strip() != ""}
    with tempfile.TemporaryDirectory(prefix="tradelane-product-") as tmp:
        path = Path(tmp) / "product.jsonl"
        path.write_text(json.dumps(cleaned, ensure_ascii=False) + "\n", encoding="utf-8")
        summary = import_catalog(
            engine, tenant_id=tenant_id, path=path, now=now, filename=f"order-health:{sku}"
        )
    if summary.rejected:
        raise ValidationError(summary.errors[0].error if summary.errors else f"SKU {sku!r} was rejected")
    with transaction(engine) as conn:
        retried = retry_quarantined_for_skus(conn, tenant_id=tenant_id, skus=[sku], now=now)
    return SkuFix(sku, retried)
