"""The catalog import's write path: on PostgreSQL each batch is streamed with COPY into a staging table
and diffed by one set-wise upsert; on both backends an unchanged product is never rewritten and the
counts stay exact."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tradelane.persistence.tables import offer_bindings, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import catalog_import
from tradelane.services.catalog_import import import_catalog
from tradelane.services.channels import create_channel
from tradelane.services.tenants import create_tenant

HEADER = "sku,parent_sku,title,price,currency,quantity\n"


@pytest.fixture
def tenant_id(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        tenant, _token = create_tenant(conn, "acme", now=now)
    return tenant.id


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _channel(engine: Engine, tenant_id: int, now: datetime) -> int:
    with engine.begin() as conn:
        channel = create_channel(
            conn,
            tenant_id=tenant_id,
            name="marketplace",
            connector="mirakl",
            settings={},
            credentials={"api_key": "k"},
            keyring=KeyRing([generate_key()]),
            now=now,
        )
    return channel.id


def _stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.sku: row for row in conn.execute(sa.select(products))}


def _change_seqs(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(products.c.sku, offer_bindings.c.change_seq).join(
                products, products.c.id == offer_bindings.c.product_id
            )
        )
        return {row.sku: row.change_seq for row in rows}


def _insert_product(engine: Engine, tenant_id: int, sku: str, title: str, now: datetime) -> None:
    """Another writer's product, committed on its own connection."""
    with engine.begin() as conn:
        conn.execute(
            sa.insert(products).values(
                tenant_id=tenant_id,
                sku=sku,
                title=title,
                quantity=1,
                labels=[],
                attributes={},
                content_hash="another writer",
                created_at=now,
                updated_at=now,
            )
        )


FIRST = (
    HEADER + "A,,Alpha,10,EUR,5\nB,,Beta,20,EUR,1\nC,,Gamma,30,EUR,1\nD,,Delta,40,EUR,1\nV,M,Vee,1,EUR,1\n"
)
SECOND = (
    HEADER
    + "A,,Alpha,10.00,EUR,5\n"  # unchanged (the same price written differently)
    + "B,,Beta,20,EUR,4\n"  # stock: updated, offers dirty
    + "C,,Gamma renamed,30,EUR,1\n"  # title only: updated, offers untouched
    + "D,,Delta,40,EUR,1\n"  # unchanged
    + "E,,Epsilon,5,EUR,1\n"  # new
    + "F,,Phi,5,EUR,-1\n"  # rejected
    + "V,M,Vee,1,EUR,1\n"  # unchanged variant
)


@pytest.mark.pg_only
def test_postgres_streams_each_batch_through_copy_into_one_set_wise_upsert(engine, tenant_id, now, tmp_path):
    _channel(engine, tenant_id, now)
    seen: list[tuple[str, bool]] = []

    def record(_conn, _cursor, statement, _parameters, _context, executemany) -> None:
        seen.append((statement, executemany))

    event.listen(engine, "before_cursor_execute", record)
    try:
        first = import_catalog(
            engine, tenant_id=tenant_id, path=_write(tmp_path, "1.csv", FIRST), now=now, batch_size=2
        )
        assert (first.created, first.updated, first.unchanged, first.rejected) == (5, 0, 0, 0)
        later = now + timedelta(hours=1)
        second = import_catalog(
            engine, tenant_id=tenant_id, path=_write(tmp_path, "2.csv", SECOND), now=later, batch_size=3
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert (second.created, second.updated, second.unchanged, second.rejected) == (1, 2, 3, 1)
    assert [(e.line, e.sku) for e in second.errors] == [(7, "F")]
    # No product is written row by row: per batch with new or changed rows one staging table (filled by
    # COPY, which the driver cursor runs outside SQLAlchemy) and one INSERT ... ON CONFLICT for the whole
    # batch; a batch of unchanged rows (the last one, V) writes nothing.
    writes = [
        (s, many)
        for s, many in seen
        if s.lstrip().upper().startswith(("INSERT INTO PRODUCTS", "UPDATE PRODUCTS"))
    ]
    assert writes == []
    upserts = [s for s, many in seen if "ON CONFLICT (tenant_id, sku) DO UPDATE" in s and not many]
    assert len(upserts) == 3 + 2  # 5 rows in batches of 2, then 7 rows in batches of 3
    assert all("IS DISTINCT FROM" in s for s in upserts)
    assert sum("CREATE TEMP TABLE" in s for s, _ in seen) == 5

    rows = _stored(engine)
    assert rows["B"].quantity == 4 and rows["C"].title == "Gamma renamed" and rows["E"].title == "Epsilon"
    assert {sku: rows[sku].updated_at for sku in "ABCDEV"} == {
        "A": now,
        "B": later,
        "C": later,
        "D": now,
        "E": later,
        "V": now,
    }
    assert rows["B"].created_at == now and rows["E"].created_at == later
    # Only the stock change dirtied offers (a title or a rewritten price does not); E got its binding.
    assert _change_seqs(engine) == {"A": 1, "B": 2, "C": 1, "D": 1, "E": 1, "V": 1}
    assert [r.sku for r in sorted(rows.values(), key=lambda r: r.id)] == ["A", "B", "C", "D", "V", "E"]


def test_an_unchanged_product_is_not_rewritten(engine, tenant_id, now, tmp_path):
    path = _write(tmp_path, "1.csv", FIRST)
    import_catalog(engine, tenant_id=tenant_id, path=path, now=now)
    before = _stored(engine)
    summary = import_catalog(engine, tenant_id=tenant_id, path=path, now=now + timedelta(days=1))
    assert (summary.created, summary.updated, summary.unchanged, summary.rejected) == (0, 0, 5, 0)
    assert _stored(engine) == before


@pytest.mark.pg_only
def test_a_sku_created_meanwhile_is_updated_in_place_without_retrying_the_batch(
    engine, tenant_id, now, tmp_path, monkeypatch
):
    """Another writer commits the same sku between the batch's diff SELECT and its upsert: ON CONFLICT
    takes it over (the file row wins, counted as updated), no unique violation, no second attempt."""
    real = catalog_import._upsert_postgres
    calls: list[int] = []

    def racing(*args, **kwargs):
        calls.append(1)
        _insert_product(engine, tenant_id, "B", "theirs", now)
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog_import, "_upsert_postgres", racing)
    summary = import_catalog(
        engine,
        tenant_id=tenant_id,
        path=_write(tmp_path, "1.csv", HEADER + "A,,Alpha,,,1\nB,,Beta,,,2\n"),
        now=now,
    )
    assert calls == [1]
    assert (summary.created, summary.updated, summary.unchanged, summary.rejected) == (1, 1, 0, 0)
    assert {sku: row.title for sku, row in _stored(engine).items()} == {"A": "Alpha", "B": "Beta"}


@pytest.mark.pg_only
def test_create_only_rejects_a_sku_created_meanwhile(engine, tenant_id, now, tmp_path, monkeypatch):
    real = catalog_import._upsert_postgres

    def racing(*args, **kwargs):
        _insert_product(engine, tenant_id, "B", "theirs", now)
        return real(*args, **kwargs)

    monkeypatch.setattr(catalog_import, "_upsert_postgres", racing)
    summary = import_catalog(
        engine,
        tenant_id=tenant_id,
        path=_write(tmp_path, "1.csv", HEADER + "A,,Alpha,,,1\nB,,Beta,,,2\nC,,Gamma,,,3\n"),
        now=now,
        create_only=True,
    )
    assert (summary.created, summary.updated, summary.unchanged, summary.rejected) == (2, 0, 0, 1)
    assert [(e.line, e.sku, e.error) for e in summary.errors] == [
        (3, "B", "SKU 'B' is already in the catalog")
    ]
    assert {sku: row.title for sku, row in _stored(engine).items()} == {
        "A": "Alpha",
        "B": "theirs",
        "C": "Gamma",
    }
