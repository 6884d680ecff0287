"""The import writes products through the DB-API cursor with values it converts itself: what it stores
must be exactly what SQLAlchemy Core would store for the same products (compared on the raw values the
driver returns), and must read back exactly through the normal SQLAlchemy read path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradelane.domain.catalog import Product
from tradelane.domain.catalog_rows import parse_row
from tradelane.persistence.tables import products
from tradelane.services.catalog_files import CatalogFormat, CatalogReader
from tradelane.services.catalog_import import import_catalog
from tradelane.services.tenants import create_tenant

COLUMNS = (
    "sku, parent_sku, title, description, brand, gtin, price, currency, quantity, labels, attributes, "
    "content_hash, created_at, updated_at"
)
FIRST = (
    "sku,parent_sku,title,description,brand,gtin,price,currency,quantity,labels,attr:color,attr:Größe\n"
    "A,,Alpha,,Acme,4006381333931,10.50,EUR,5,new;promo,red,M\n"
    'B,A,"Bêta ☕","two\nlines",,,0.000001,usd,0,,,\n'
    "C,,,,,,,,,a;b;a,,\n"
    "D,,Delta,,,,99999999999999.999999,JPY,2147483647,x,blue,\n"
    "E,,Epsilon,,,,7,EUR,1,,,\n"
)
SECOND = (
    "sku,parent_sku,title,description,brand,gtin,price,currency,quantity,labels,attr:color,attr:Größe\n"
    "A,,Alpha,,Acme,4006381333931,10.5,EUR,5,new;promo,red,M\n"  # unchanged (same price)
    'B,A,"Bêta ☕","two\nlines",,,12,usd,3,z,green,\n'  # updated: everything but the identity
    "C,,Gamma,,,,,,,,,\n"  # updated: labels gone
    "D,,Delta,,,,1,JPY,0,x,blue,XL\n"  # updated
    "E,,Epsilon,,,,7,EUR,1,,,\n"  # unchanged
)


def tenant(engine: Engine, name: str, now: datetime) -> int:
    with engine.begin() as conn:
        created, _token = create_tenant(conn, name, now=now)
    return created.id


def parsed(path: Path, fmt: CatalogFormat = CatalogFormat.CSV) -> list[Product]:
    rows = list(CatalogReader(path, fmt).records())
    return [parse_row(row) for _line, row, _problem in rows if row is not None]


def core_values(product: Product, **extra: Any) -> dict[str, Any]:
    """The row as the import used to write it, through SQLAlchemy Core."""
    return {
        "sku": product.sku,
        "parent_sku": product.parent_sku,
        "title": product.title,
        "description": product.description,
        "brand": product.brand,
        "gtin": product.gtin,
        "price": product.price,
        "currency": product.currency,
        "quantity": product.quantity,
        "labels": list(product.labels),
        "attributes": product.attributes,
        "content_hash": product.content_hash(),
        **extra,
    }


def raw_rows(engine: Engine, tenant_id: int) -> list[tuple[Any, ...]]:
    """The stored values as the driver returns them (no SQLAlchemy type processing)."""
    with engine.connect() as conn:
        result = conn.execute(
            sa.text(f"SELECT {COLUMNS} FROM products WHERE tenant_id = :tenant ORDER BY sku"),
            {"tenant": tenant_id},
        )
        return [tuple(row) for row in result]


def test_imported_rows_are_stored_exactly_as_core_would_store_them(engine, tmp_path):
    # A whole-second UTC-naive-looking instant, then one in another zone with microseconds: the
    # conversions of both must match SQLAlchemy's.
    first_now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    second_now = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    imported = tenant(engine, "imported", first_now)
    reference = tenant(engine, "reference", first_now)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text(FIRST, encoding="utf-8")
    second.write_text(SECOND, encoding="utf-8")

    summary = import_catalog(engine, tenant_id=imported, path=first, now=first_now)
    assert (summary.created, summary.rejected) == (5, 0)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(products),
            [
                core_values(p, tenant_id=reference, created_at=first_now, updated_at=first_now)
                for p in parsed(first)
            ],
        )
    assert raw_rows(engine, imported) == raw_rows(engine, reference)

    summary = import_catalog(engine, tenant_id=imported, path=second, now=second_now)
    assert (summary.created, summary.updated, summary.unchanged) == (0, 3, 2)
    with engine.begin() as conn:
        ids = dict(
            conn.execute(
                sa.select(products.c.sku, products.c.id).where(products.c.tenant_id == reference)
            ).all()
        )
        changed = [p for p in parsed(second) if p.sku in ("B", "C", "D")]
        conn.execute(
            sa.update(products).where(products.c.id == sa.bindparam("b_id")),
            [core_values(p, b_id=ids[p.sku], updated_at=second_now) for p in changed],
        )
    assert raw_rows(engine, imported) == raw_rows(engine, reference)


def test_imported_rows_read_back_exactly(engine, tmp_path):
    now = datetime(2026, 11, 25, 12, 0, 0, 1, tzinfo=UTC)
    tenant_id = tenant(engine, "acme", now)
    path = tmp_path / "first.csv"
    path.write_text(FIRST, encoding="utf-8")
    import_catalog(engine, tenant_id=tenant_id, path=path, now=now)
    with engine.connect() as conn:
        rows = {row.sku: row for row in conn.execute(sa.select(products))}
    a, b, c, d = rows["A"], rows["B"], rows["C"], rows["D"]
    assert a.price == Decimal("10.5") and str(a.price) == "10.5" and a.currency == "EUR"
    assert str(b.price) == "0.000001" and b.currency == "USD" and b.title == "Bêta ☕"
    assert b.description == "two\nlines" and b.parent_sku == "A"
    assert str(d.price) == "99999999999999.999999" and d.quantity == 2**31 - 1
    assert c.price is None and c.currency is None and c.quantity == 0
    assert a.labels == ["new", "promo"] and c.labels == ["a", "b"] and b.labels == []
    assert a.attributes == {"color": "red", "Größe": "M"} and b.attributes == {}
    assert a.created_at == now and a.updated_at == now and a.created_at.tzinfo is not None
    assert a.content_hash == parsed(path)[0].content_hash()


def test_json_lines_values_are_stored_exactly_as_core_would_store_them(engine, tmp_path):
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    imported = tenant(engine, "imported", now)
    reference = tenant(engine, "reference", now)
    path = tmp_path / "catalog.jsonl"
    path.write_text(
        '{"sku": "A", "price": 1e3, "currency": "EUR", "quantity": 2, "labels": ["x", " y "]}\n'
        '{"sku": "B", "price": 2.50E+2, "currency": "EUR", "attr:weight": 0.250, "attr:pieces": 4}\n'
        '{"sku": "C", "price": "0.10", "currency": "EUR", "title": "\\u00e9t\\u00e9"}\n',
        encoding="utf-8",
    )
    summary = import_catalog(engine, tenant_id=imported, path=path, now=now)
    assert (summary.created, summary.rejected) == (3, 0)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(products),
            [
                core_values(p, tenant_id=reference, created_at=now, updated_at=now)
                for p in parsed(path, CatalogFormat.JSONL)
            ],
        )
    assert raw_rows(engine, imported) == raw_rows(engine, reference)
