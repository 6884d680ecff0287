"""The tenant's catalog (``products`` table), read only. Prices are exact decimal strings."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from tradelane.domain.errors import NotFoundError
from tradelane.persistence.db import read_only
from tradelane.persistence.tables import products
from tradelane.web.api.common import (
    API_PREFIX,
    DEFAULT_PAGE_SIZE,
    PRINTABLE,
    Limit,
    Offset,
    Page,
    next_offset,
)
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/products", tags=["products"])

Sku = Annotated[
    str, Path(min_length=1, max_length=200, pattern=PRINTABLE, description="SKU (may contain '/').")
]


class ProductOut(BaseModel):
    sku: str
    parent_sku: str | None
    title: str | None
    description: str | None
    brand: str | None
    gtin: str | None
    price: str | None = Field(description='Exact decimal as a string, e.g. "19.90".')
    currency: str | None = Field(description="ISO 4217 code.")
    quantity: int
    labels: list[Any]
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


_COLUMNS = (
    products.c.sku,
    products.c.parent_sku,
    products.c.title,
    products.c.description,
    products.c.brand,
    products.c.gtin,
    products.c.price,
    products.c.currency,
    products.c.quantity,
    products.c.labels,
    products.c.attributes,
    products.c.created_at,
    products.c.updated_at,
)


def _price(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _out(row: Any) -> ProductOut:
    return ProductOut(
        sku=row.sku,
        parent_sku=row.parent_sku,
        title=row.title,
        description=row.description,
        brand=row.brand,
        gtin=row.gtin,
        price=_price(row.price),
        currency=row.currency,
        quantity=row.quantity,
        labels=list(row.labels or []),
        attributes=dict(row.attributes or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("", summary="List products by SKU")
def list_products(
    tenant: TenantDep,
    container: ContainerDep,
    sku: Annotated[
        str | None, Query(min_length=1, max_length=200, pattern=PRINTABLE, description="SKU prefix.")
    ] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> Page[ProductOut]:
    stmt = sa.select(*_COLUMNS).where(products.c.tenant_id == tenant.id)
    if sku:
        # substr, not LIKE: LIKE is case-insensitive on SQLite and case-sensitive on PostgreSQL.
        stmt = stmt.where(sa.func.substr(products.c.sku, 1, len(sku)) == sku)
    stmt = stmt.order_by(products.c.sku).limit(limit).offset(offset)
    with read_only(container.engine) as conn:
        items = [_out(r) for r in conn.execute(stmt)]
    return Page[ProductOut](
        items=items, limit=limit, offset=offset, next_offset=next_offset(len(items), limit, offset)
    )


@router.get("/{sku:path}", summary="One product", responses=problem_responses(404))
def get_product(sku: Sku, tenant: TenantDep, container: ContainerDep) -> ProductOut:
    with read_only(container.engine) as conn:
        row = conn.execute(
            sa.select(*_COLUMNS).where(products.c.tenant_id == tenant.id, products.c.sku == sku)
        ).first()
    if row is None:
        raise NotFoundError(f"no product with SKU {sku!r}")
    return _out(row)
