"""Shopify → tradelane catalog: product webhooks update price and stock, inventory webhooks re-read
stock through the Admin API.

Contracts:

* ``products/create`` and ``products/update`` (:func:`apply_product`): every variant with a SKU is matched
  to the catalog product of that SKU. An existing product gets Shopify's price (in the system's
  ``currency``, else the product's own) and stock (``inventory_quantity``, the sum over locations,
  negative stock counted as 0); nothing else of it changes. An unknown SKU becomes a new product (title,
  brand = vendor, GTIN = barcode when valid, price, stock), bound dirty to every channel, and orders
  quarantined for that SKU are re-tried. Products whose price, currency or stock changed have their
  offers marked dirty — all in the caller's transaction.
* ``inventory_levels/update`` carries an inventory item and one location's level, not the SKU nor the
  total; :func:`enqueue_inventory_sync` queues a ``shopify.inventory`` job (coalesced per item) whose
  handler reads the item's SKU and its levels at every location from Shopify (through the
  :class:`~tradelane.merchant.base.StockSource` the composition root supplies, see :func:`register`),
  then sets the product's stock and marks its offers dirty in the transaction that completes the job.
* Known limit: webhooks are applied in arrival order; an older ``products/update`` delivered after a newer
  one (Shopify does not guarantee order) sets the older values until the next update.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.catalog import Product
from tradelane.domain.errors import NotFoundError, PermanentError
from tradelane.merchant.base import MerchantSystem, StockSourceFactory
from tradelane.merchant.shopify.mapping import VariantFields, clamp_quantity, variants_of_product
from tradelane.merchant.shopify.settings import SHOPIFY_KIND
from tradelane.persistence.db import insert_ignore, is_postgres, read_only
from tradelane.persistence.merchant_systems import merchant_credentials
from tradelane.persistence.tables import merchant_systems, products
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services.offers import stored_product
from tradelane.services.order_health import retry_quarantined_for_skus
from tradelane.services.outbox import bind_new_products, mark_offers_dirty
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import EnqueueResult, JobSpec, enqueue
from tradelane.sync.registry import Handler, JobRegistry

INVENTORY_JOB = "shopify.inventory"
INVENTORY_MAX_ATTEMPTS = 10


@dataclass
class CatalogChange:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    orders_retried: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "orders_retried": self.orders_retried,
        }


def _stored(conn: Connection, tenant_id: int, skus: Sequence[str]) -> dict[str, Any]:
    stmt = sa.select(products).where(products.c.tenant_id == tenant_id, products.c.sku.in_(list(skus)))
    if is_postgres(conn):
        stmt = stmt.with_for_update()
    return {row.sku: row for row in conn.execute(stmt)}


def _values(product: Product) -> dict[str, Any]:
    return {
        "price": product.price,
        "currency": product.currency,
        "quantity": product.quantity,
        "content_hash": product.content_hash(),
    }


def _new_product(variant: VariantFields, currency: str | None) -> Product:
    priced = variant.price is not None and currency is not None
    return Product(
        sku=variant.sku,
        title=variant.title,
        brand=variant.brand,
        gtin=variant.gtin,
        price=variant.price if priced else None,
        currency=currency if priced else None,
        quantity=variant.quantity or 0,
    )


def _updated(current: Product, variant: VariantFields, currency: str | None) -> Product:
    result = current
    shop_currency = currency or current.currency
    if variant.price is not None and shop_currency is not None:
        result = replace(result, price=variant.price, currency=shop_currency)
    if variant.quantity is not None:
        result = replace(result, quantity=variant.quantity)
    return result


def apply_product(
    conn: Connection, *, tenant_id: int, currency: str | None, product: Mapping[str, Any], now: datetime
) -> CatalogChange:
    """Apply one Shopify product (a webhook payload) to the tenant's catalog (see module docstring)."""
    change = CatalogChange()
    variants = variants_of_product(product)
    if not variants:
        return change
    stored = _stored(conn, tenant_id, [v.sku for v in variants])
    created_ids: list[int] = []
    dirty_ids: list[int] = []
    for variant in variants:
        row = stored.get(variant.sku)
        if row is None:
            new = _new_product(variant, currency)
            product_id = conn.execute(
                insert_ignore(conn, products)
                .values(
                    tenant_id=tenant_id,
                    sku=new.sku,
                    title=new.title,
                    brand=new.brand,
                    gtin=new.gtin,
                    labels=[],
                    attributes={},
                    created_at=now,
                    updated_at=now,
                    **_values(new),
                )
                .returning(products.c.id)
            ).scalar()
            if product_id is not None:
                created_ids.append(int(product_id))
                change.created.append(variant.sku)
                continue
            row = _stored(conn, tenant_id, [variant.sku])[variant.sku]  # created concurrently: update it
        current = stored_product(row)
        updated = _updated(current, variant, currency)
        if updated.offer_fields_hash() == current.offer_fields_hash():
            change.unchanged.append(variant.sku)
            continue
        conn.execute(
            sa.update(products).where(products.c.id == row.id).values(updated_at=now, **_values(updated))
        )
        dirty_ids.append(int(row.id))
        change.updated.append(variant.sku)
    if created_ids:
        bind_new_products(conn, tenant_id, created_ids, now=now)
        change.orders_retried = retry_quarantined_for_skus(
            conn, tenant_id=tenant_id, skus=change.created, now=now
        )
    if dirty_ids:
        mark_offers_dirty(conn, tenant_id, dirty_ids, now=now)
    return change


def set_stock(conn: Connection, *, tenant_id: int, sku: str, quantity: int, now: datetime) -> bool | None:
    """Set one product's stock, marking its offers dirty when it changed. None: no such product."""
    row = _stored(conn, tenant_id, [sku]).get(sku)
    if row is None:
        return None
    current = stored_product(row)
    updated = replace(current, quantity=clamp_quantity(quantity))
    if updated.quantity == current.quantity:
        return False
    conn.execute(
        sa.update(products).where(products.c.id == row.id).values(updated_at=now, **_values(updated))
    )
    mark_offers_dirty(conn, tenant_id, [int(row.id)], now=now)
    return True


# --- inventory levels: a job per inventory item ----------------------------------------------------


def enqueue_inventory_sync(
    conn: Connection, *, system: MerchantSystem, inventory_item_id: int, now: datetime
) -> EnqueueResult:
    """Queue the re-read of one inventory item's stock (coalesced with an already queued one)."""
    key = f"{INVENTORY_JOB}:{system.id}:{inventory_item_id}"
    return enqueue(
        conn,
        JobSpec(
            tenant_id=system.tenant_id,
            kind=INVENTORY_JOB,
            payload={"merchant_system_id": system.id, "inventory_item_id": inventory_item_id},
            dedupe_key=key,
            max_attempts=INVENTORY_MAX_ATTEMPTS,
        ),
        now=now,
    )


def _load_system(conn: Connection, tenant_id: int, system_id: int) -> MerchantSystem:
    row = conn.execute(
        sa.select(merchant_systems).where(
            merchant_systems.c.id == system_id,
            merchant_systems.c.tenant_id == tenant_id,
            merchant_systems.c.kind == SHOPIFY_KIND,
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no Shopify merchant system {system_id}")
    return MerchantSystem(row.id, row.tenant_id, row.name, row.kind, dict(row.settings), bool(row.enabled))


def make_inventory_handler(stock_sources: StockSourceFactory) -> Handler:
    """The ``shopify.inventory`` handler: read the item's stock through the system's stock source, set
    it in the catalog. Incomplete settings or undecryptable credentials fail the job permanently."""

    def handle_inventory_job(ctx: JobContext) -> dict[str, Any] | None:
        payload = ctx.job.payload
        item_id = int(payload["inventory_item_id"])
        keyring: KeyRing = ctx.services["keyring"]
        with read_only(ctx.engine) as conn:
            try:
                system = _load_system(conn, ctx.job.tenant_id, int(payload["merchant_system_id"]))
            except NotFoundError:
                return {"skipped": "the merchant system no longer exists"}
            if not system.enabled:
                return {"skipped": f"merchant system {system.name} is disabled"}
            try:
                credentials = merchant_credentials(conn, system, keyring)
            except CredentialError as exc:
                raise PermanentError(f"{system.name}: {exc}") from None
        try:
            source = stock_sources(system, credentials)
        except ValueError as exc:
            raise PermanentError(f"{system.name}: {exc}") from None
        try:
            stock = source.read_stock(item_id)
        finally:
            source.close()
        if stock is None:
            return {"skipped": f"inventory item {item_id} no longer exists in Shopify"}
        sku, quantity = stock
        if sku is None:
            return {"skipped": f"inventory item {item_id} has no SKU"}
        result: dict[str, Any] = {"sku": sku, "quantity": quantity}
        with ctx.transaction() as conn:
            changed = set_stock(conn, tenant_id=ctx.job.tenant_id, sku=sku, quantity=quantity, now=ctx.now())
            result["status"] = "unknown_sku" if changed is None else "updated" if changed else "unchanged"
            ctx.complete_in(conn, result)
        return result

    return handle_inventory_job


def register(registry: JobRegistry, *, stock_sources: StockSourceFactory) -> None:
    """Register the ``shopify.inventory`` job handler, reading stock through ``stock_sources`` (the
    Shopify adapter factory, supplied by the composition root)."""
    registry.register(INVENTORY_JOB, make_inventory_handler(stock_sources))
