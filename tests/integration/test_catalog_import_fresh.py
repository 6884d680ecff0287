"""A first import into an empty tenant skips reading stored rows on SQLite (see ``_Freshness`` in the
import service). Writers acting between its batches must still be seen: the counts and the cross-row
rules against stored products stay exact. Run on both backends (PostgreSQL always reads stored rows, so
it must give the same answers)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradelane.domain.catalog import Product
from tradelane.persistence.tables import products
from tradelane.services.catalog_import import ImportSummary, import_catalog
from tradelane.services.tenants import create_tenant

HEADER = "sku,parent_sku,title,price,currency,quantity\n"


def new_tenant(engine: Engine, name: str, now: datetime) -> int:
    with engine.begin() as conn:
        tenant, _token = create_tenant(conn, name, now=now)
    return tenant.id


@pytest.fixture
def tenant_id(engine: Engine, now: datetime) -> int:
    return new_tenant(engine, "acme", now)


def store(engine: Engine, tenant_id: int, now: datetime, product: Product) -> None:
    """Another writer's product, committed on its own."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(products).values(
                tenant_id=tenant_id,
                sku=product.sku,
                parent_sku=product.parent_sku,
                title=product.title,
                quantity=product.quantity,
                labels=[],
                attributes={},
                content_hash=product.content_hash(),
                created_at=now,
                updated_at=now,
            )
        )


def run_with(
    engine: Engine, tenant_id: int, path: Path, now: datetime, after_first_batch: Any
) -> ImportSummary:
    """Import ``path`` in batches of 2 rows, calling ``after_first_batch()`` once, between batches."""
    calls: list[int] = []

    def progress(rows_done: int, _bytes: int, _total: int) -> None:
        calls.append(rows_done)
        if len(calls) == 1:
            after_first_batch()

    summary = import_catalog(engine, tenant_id=tenant_id, path=path, now=now, batch_size=2, progress=progress)
    assert len(calls) > 1
    return summary


def counts(summary: ImportSummary) -> tuple[int, int, int, int]:
    return summary.created, summary.updated, summary.unchanged, summary.rejected


def errors_of(summary: ImportSummary) -> list[tuple[int, str | None, str]]:
    return [(e.line, e.sku, e.error) for e in summary.errors]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_sku_stored_between_batches_of_a_first_import_is_updated_or_unchanged(
    engine, tenant_id, now, tmp_path
):
    path = write(tmp_path, HEADER + "A,,Alpha,,,1\nB,,Beta,,,1\nC,,Gamma,,,1\nD,,Delta,,,1\nE,,Eps,,,1\n")

    def other_writer() -> None:
        store(engine, tenant_id, now, Product("C", title="Gamma", quantity=1))  # the file's content
        store(engine, tenant_id, now, Product("E", title="old", quantity=1))  # different content

    summary = run_with(engine, tenant_id, path, now, other_writer)
    assert counts(summary) == (3, 1, 1, 0)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(products.c.sku, products.c.title)).tuples().all())
    assert rows == {"A": "Alpha", "B": "Beta", "C": "Gamma", "D": "Delta", "E": "Eps"}


def test_stored_variants_written_between_batches_still_refuse_a_second_level(
    engine, tenant_id, now, tmp_path
):
    path = write(tmp_path, HEADER + "A,,Alpha,,,1\nB,,Beta,,,1\nX,V,Ex,,,1\nY,Z,Why,,,1\n")

    def other_writer() -> None:
        store(engine, tenant_id, now, Product("V", parent_sku="W"))  # X's parent is a stored variant
        store(engine, tenant_id, now, Product("K", parent_sku="Y"))  # Y has a stored variant

    summary = run_with(engine, tenant_id, path, now, other_writer)
    assert counts(summary) == (2, 0, 0, 2)
    assert errors_of(summary) == [
        (4, "X", "parent 'V' is itself a variant (of 'W', stored)"),
        (5, "Y", "stored variant 'K' has 'Y' as parent, so it cannot become a variant itself"),
    ]


def test_another_tenants_products_between_batches_change_nothing(engine, tenant_id, now, tmp_path):
    other = new_tenant(engine, "other", now)
    path = write(tmp_path, HEADER + "A,,Alpha,,,1\nB,,Beta,,,1\nC,,Gamma,,,1\n")
    summary = run_with(engine, tenant_id, path, now, lambda: store(engine, other, now, Product("C")))
    assert counts(summary) == (3, 0, 0, 0)


def test_a_first_import_reads_no_stored_rows_on_sqlite_and_a_second_one_does(
    engine, tenant_id, now, tmp_path
):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL always reads the stored hashes")
    path = write(tmp_path, HEADER + "A,,Alpha,,,1\nB,A,Beta,,,1\nC,,Gamma,,,1\nD,C,Delta,,,1\nE,,Eps,,,1\n")
    lookups: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "json_each" in statement:
            lookups.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        first = import_catalog(engine, tenant_id=tenant_id, path=path, now=now, batch_size=2)
        assert counts(first) == (5, 0, 0, 0) and lookups == []
        again = import_catalog(engine, tenant_id=tenant_id, path=path, now=now, batch_size=2)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert counts(again) == (0, 0, 5, 0)
    assert len(lookups) >= 3  # one stored-row read per batch
