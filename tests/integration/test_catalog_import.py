"""Catalog import service end to end against the real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradelane.domain.errors import NotFoundError
from tradelane.persistence.tables import catalog_imports, jobs, offer_bindings, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.catalog_import import CatalogFileError, ImportSummary, import_catalog
from tradelane.services.channels import create_channel
from tradelane.services.outbox import OFFERS_DELTA
from tradelane.services.tenants import create_tenant

HEADER = "sku,parent_sku,title,price,currency,quantity,labels,attr:color\n"


@pytest.fixture
def tenant_id(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        tenant, _token = create_tenant(conn, "acme", now=now)
    return tenant.id


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def run(engine: Engine, tenant_id: int, path: Path, now: datetime, **kwargs: Any) -> ImportSummary:
    return import_catalog(engine, tenant_id=tenant_id, path=path, now=now, **kwargs)


def stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.sku: r for r in conn.execute(sa.select(products))}


def errors_of(summary: ImportSummary) -> list[tuple[int, str | None, str]]:
    return [(e.line, e.sku, e.error) for e in summary.errors]


def counts(summary: ImportSummary) -> tuple[int, int, int, int]:
    return summary.created, summary.updated, summary.unchanged, summary.rejected


def table_count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --- the diff ---------------------------------------------------------------------------------------


def test_two_imports_diff_created_updated_unchanged_rejected(engine, tenant_id, now, tmp_path):
    first = write(
        tmp_path,
        "first.csv",
        HEADER
        + "A,,Alpha,10.00,EUR,5,new;promo,red\n"
        + "B,,Beta,20,EUR,1,,\n"
        + "C,,Gamma,,,0,,\n"
        + "D,,Delta,abc,EUR,1,,\n",
    )
    summary = run(engine, tenant_id, first, now)
    assert counts(summary) == (3, 0, 0, 1)
    assert errors_of(summary) == [(5, "D", "price is not a decimal number: 'abc'")]
    rows = stored(engine)
    assert set(rows) == {"A", "B", "C"}
    assert rows["A"].price == Decimal("10") and rows["A"].currency == "EUR" and rows["A"].quantity == 5
    assert rows["A"].labels == ["new", "promo"] and rows["A"].attributes == {"color": "red"}
    assert rows["C"].price is None and rows["C"].currency is None

    second = write(
        tmp_path,
        "second.csv",
        HEADER
        + "A,,Alpha,10.0,EUR,5,new;promo,red\n"  # same content (10.0 == 10.00): unchanged
        + "B,,Beta v2,20,EUR,1,,\n"  # title changed
        + "C,,Gamma,1.5,EUR,0,,\n"  # price added
        + "D,,Delta,4,EUR,1,,\n"  # fixed: now created
        + "E,,Epsilon,1,EUR,-1,,\n",
    )
    summary = run(engine, tenant_id, second, now)
    assert counts(summary) == (1, 2, 1, 1)
    assert errors_of(summary) == [(6, "E", "quantity must not be negative: -1")]
    rows = stored(engine)
    assert rows["B"].title == "Beta v2" and rows["C"].price == Decimal("1.5")
    assert rows["D"].created_at == now
    assert table_count(engine, products) == 4


def test_a_row_fully_describes_its_product(engine, tenant_id, now, tmp_path):
    run(engine, tenant_id, write(tmp_path, "a.csv", HEADER + "A,,Alpha,3,EUR,2,x,red\n"), now)
    summary = run(engine, tenant_id, write(tmp_path, "b.csv", "sku,quantity\nA,2\n"), now)
    assert counts(summary) == (0, 1, 0, 0)
    row = stored(engine)["A"]
    assert (row.title, row.price, row.currency, row.labels, row.attributes) == (None, None, None, [], {})


def test_the_run_is_recorded_with_counts_and_errors(engine, tenant_id, now, tmp_path):
    path = write(tmp_path, "upload-123.tmp", HEADER + "A,,,,,1,,\nB,,,,,x,,\n")
    summary = run(engine, tenant_id, path, now, fmt="csv", filename="catalog.csv")
    with engine.connect() as conn:
        record = conn.execute(sa.select(catalog_imports)).one()
    assert record.id == summary.import_id and record.tenant_id == tenant_id
    assert (record.filename, record.format) == ("catalog.csv", "csv")
    assert (record.created, record.updated, record.unchanged, record.rejected) == (1, 0, 0, 1)
    assert record.errors == [{"line": 3, "sku": "B", "error": "quantity is not an integer: 'x'"}]
    assert record.started_at == now and record.finished_at is not None and record.finished_at >= now
    assert summary.as_dict() == {
        "import_id": summary.import_id,
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 1,
        "errors": [{"line": 3, "sku": "B", "error": "quantity is not an integer: 'x'"}],
        "errors_truncated": False,
    }


def test_many_batches_keep_line_order_progress_and_error_caps(engine, tenant_id, now, tmp_path):
    lines = [HEADER]
    for i in range(1, 41):
        quantity = "-1" if i % 3 == 0 else str(i)
        lines.append(f"S{i:03d},,T{i},{i}.5,EUR,{quantity},,\n")
    path = write(tmp_path, "many.csv", "".join(lines))
    seen: list[tuple[int, int, int]] = []
    summary = run(
        engine, tenant_id, path, now, batch_size=7, max_errors=5, progress=lambda *a: seen.append(tuple(a))
    )
    assert counts(summary) == (27, 0, 0, 13)
    assert [e.line for e in summary.errors] == [4, 7, 10, 13, 16]
    assert summary.errors_truncated and summary.as_dict()["errors_truncated"] is True
    assert [s[0] for s in seen] == [7, 14, 21, 28, 35, 40]
    assert all(s[2] == path.stat().st_size for s in seen) and seen[-1][1] == path.stat().st_size
    with engine.connect() as conn:
        record = conn.execute(sa.select(catalog_imports)).one()
    assert record.rejected == 13 and len(record.errors) == 13  # the record keeps up to 1,000


# --- cross-row rules --------------------------------------------------------------------------------


def test_duplicate_skus_first_occurrence_wins(engine, tenant_id, now, tmp_path):
    path = write(
        tmp_path, "dup.csv", HEADER + "A,,first,,,1,,\nB,,,,,1,,\nA,,second,,,2,,\n A ,,third,,,3,,\n"
    )
    summary = run(engine, tenant_id, path, now)
    assert counts(summary) == (2, 0, 0, 2)
    assert errors_of(summary) == [
        (4, "A", "duplicate sku 'A' in the file (first on line 2)"),
        (5, "A", "duplicate sku 'A' in the file (first on line 2)"),
    ]
    assert stored(engine)["A"].title == "first"


@pytest.mark.parametrize("parent_first", [True, False])
def test_parent_that_is_itself_a_variant_in_the_file(engine, tenant_id, now, tmp_path, parent_first):
    variant = "V,P,variant,,,1,,\n"
    grandchild = "G,V,grandchild,,,1,,\n"
    body = variant + grandchild if parent_first else grandchild + variant
    summary = run(engine, tenant_id, write(tmp_path, "tree.csv", HEADER + "P,,parent,,,1,,\n" + body), now)
    assert counts(summary) == (2, 0, 0, 1)
    line = 4 if parent_first else 3
    assert errors_of(summary) == [(line, "G", "parent 'V' is itself a variant (of 'P')")]
    assert stored(engine)["V"].parent_sku == "P"


def test_parent_grouping_key_need_not_be_a_product(engine, tenant_id, now, tmp_path):
    summary = run(
        engine, tenant_id, write(tmp_path, "g.csv", HEADER + "A,MODEL,,,,1,,\nB,MODEL,,,,1,,\n"), now
    )
    assert counts(summary) == (2, 0, 0, 0)


def test_two_level_nesting_through_stored_products_is_refused(engine, tenant_id, now, tmp_path):
    run(
        engine,
        tenant_id,
        write(tmp_path, "1.csv", HEADER + "P,,,,,1,,\nV,P,,,,1,,\nX,,,,,1,,\nC,X,,,,1,,\n"),
        now,
    )
    # G names stored variant V (absent from the file) as parent; X would become a variant while stored C
    # (absent from the file) still names X as its parent.
    summary = run(engine, tenant_id, write(tmp_path, "2.csv", HEADER + "G,V,,,,1,,\nX,Q,,,,1,,\n"), now)
    assert counts(summary) == (0, 0, 0, 2)
    assert errors_of(summary) == [
        (2, "G", "parent 'V' is itself a variant (of 'P', stored)"),
        (3, "X", "stored variant 'C' has 'X' as parent, so it cannot become a variant itself"),
    ]
    # Moving C away in the same file makes the change legal; V made standalone lets G hang below it.
    summary = run(
        engine,
        tenant_id,
        write(tmp_path, "3.csv", HEADER + "X,Q,,,,1,,\nC,,,,,1,,\nV,,,,,1,,\nG,V,,,,1,,\n"),
        now,
    )
    assert counts(summary) == (1, 3, 0, 0)
    rows = stored(engine)
    assert (rows["X"].parent_sku, rows["C"].parent_sku, rows["G"].parent_sku) == ("Q", None, "V")


# --- offers outbox ----------------------------------------------------------------------------------


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


def _bindings(engine: Engine) -> dict[str, tuple[bool, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(products.c.sku, offer_bindings.c.dirty, offer_bindings.c.change_seq).join(
                products, products.c.id == offer_bindings.c.product_id
            )
        )
        return {r.sku: (r.dirty, r.change_seq) for r in rows}


def _queued_deltas(engine: Engine, channel_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.kind == OFFERS_DELTA, jobs.c.channel_id == channel_id, jobs.c.state == "queued")
            ).scalar_one()
        )


def _pretend_synced(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(offer_bindings).values(
                dirty=False, dirty_since=None, synced_seq=offer_bindings.c.change_seq
            )
        )
        conn.execute(sa.update(jobs).values(state="succeeded"))


def test_price_and_stock_changes_mark_offers_dirty_in_the_same_transaction(engine, tenant_id, now, tmp_path):
    channel_id = _channel(engine, tenant_id, now)
    first = HEADER + "A,,Alpha,10,EUR,5,,\nB,,Beta,20,EUR,1,,\nC,,Gamma,30,EUR,1,,\nD,,Delta,40,EUR,1,,\n"
    run(engine, tenant_id, write(tmp_path, "1.csv", first), now)
    assert _bindings(engine) == {sku: (True, 1) for sku in "ABCD"}
    assert _queued_deltas(engine, channel_id) == 1
    _pretend_synced(engine)
    assert _queued_deltas(engine, channel_id) == 0

    second = (
        HEADER
        + "A,,Alpha,10.00,EUR,5,,\n"  # unchanged
        + "B,,Beta,20,EUR,4,,\n"  # stock
        + "C,,Gamma,31,EUR,1,,\n"  # price
        + "D,,Delta renamed,40,EUR,1,,\n"  # title only: updated, offers untouched
        + "E,,Epsilon,5,EUR,1,,\n"  # new
    )
    summary = run(engine, tenant_id, write(tmp_path, "2.csv", second), now)
    assert counts(summary) == (1, 3, 1, 0)
    assert _bindings(engine) == {
        "A": (False, 1),
        "B": (True, 2),
        "C": (True, 2),
        "D": (False, 1),
        "E": (True, 1),
    }
    assert _queued_deltas(engine, channel_id) == 1


def test_title_only_change_queues_no_delta(engine, tenant_id, now, tmp_path):
    channel_id = _channel(engine, tenant_id, now)
    run(engine, tenant_id, write(tmp_path, "1.csv", HEADER + "A,,Alpha,10,EUR,5,,\n"), now)
    _pretend_synced(engine)
    summary = run(engine, tenant_id, write(tmp_path, "2.csv", HEADER + "A,,Renamed,10,EUR,5,,\n"), now)
    assert counts(summary) == (0, 1, 0, 0)
    assert _bindings(engine) == {"A": (False, 1)}
    assert _queued_deltas(engine, channel_id) == 0


# --- file formats, line numbers ---------------------------------------------------------------------


def test_csv_bom_crlf_and_multiline_fields_report_the_starting_line(engine, tenant_id, now, tmp_path):
    text = (
        "\ufeffSKU,Title,Price,Currency,Quantity\r\n"
        'A,"two\r\nlines",1,EUR,1\r\n'
        "\r\n"
        'B,"three\nline\ntitle",x,EUR,1\r\n'
        "C,,,,-2\r\n"
        ",,,,\r\n"
    )
    summary = run(engine, tenant_id, write(tmp_path, "crlf.csv", text), now)
    assert counts(summary) == (1, 0, 0, 2)
    assert errors_of(summary) == [
        (5, "B", "price is not a decimal number: 'x'"),
        (8, "C", "quantity must not be negative: -2"),
    ]
    assert stored(engine)["A"].title == "two\r\nlines"


def test_csv_wrong_field_count_is_a_rejected_line(engine, tenant_id, now, tmp_path):
    summary = run(
        engine, tenant_id, write(tmp_path, "f.csv", "sku,price,currency\nA,12,50,EUR\nB,1,EUR\n"), now
    )
    assert counts(summary) == (1, 0, 0, 1)
    assert errors_of(summary) == [(2, "A", "line has 4 fields, the header has 3")]


def test_jsonl_rows_and_malformed_lines(engine, tenant_id, now, tmp_path):
    lines = [
        json.dumps({"sku": "A", "price": 12.5, "currency": "EUR", "quantity": 2, "labels": ["x", "y"]}),
        "",
        '{"sku": "B", "price": 1,',
        "[1, 2]",
        json.dumps({"sku": "C", "colour": "red"}),
        json.dumps({"sku": "D", "attr:size": 42, "gtin": "4006381333931", "labels": "a;b"}),
        json.dumps({"sku": "E", "price": "9.99"}),
        '{"sku": "F", "price": NaN, "currency": "EUR"}',
    ]
    path = write(tmp_path, "feed.ndjson", "\n".join(lines) + "\n")
    summary = run(engine, tenant_id, path, now)
    assert counts(summary) == (2, 0, 0, 5)
    lines_and_skus = [(line, sku) for line, sku, _error in errors_of(summary)]
    assert lines_and_skus == [(3, None), (4, None), (5, "C"), (7, "E"), (8, None)]
    reasons = [error for _line, _sku, error in errors_of(summary)]
    assert reasons[0].startswith("malformed JSON: ")
    assert reasons[1] == "line is not a JSON object"
    assert reasons[2].startswith("unknown field 'colour'")
    assert reasons[3] == "price without currency"
    assert reasons[4] == "malformed JSON: NaN is not a valid number"
    rows = stored(engine)
    assert rows["A"].price == Decimal("12.5") and rows["A"].labels == ["x", "y"]
    assert rows["D"].attributes == {"size": "42"} and rows["D"].labels == ["a", "b"]


def test_format_option_overrides_the_extension(engine, tenant_id, now, tmp_path):
    path = write(tmp_path, "feed.txt", '{"sku": "A"}\n')
    with pytest.raises(CatalogFileError, match="cannot tell the format"):
        run(engine, tenant_id, path, now)
    assert counts(run(engine, tenant_id, path, now, fmt="jsonl")) == (1, 0, 0, 0)


# --- refused files change nothing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("bom-only.csv", b"\xef\xbb\xbf", "the file is empty"),
        ("blank.jsonl", b"\n \n", "the file is empty|no product rows"),
        ("header-only.csv", b"sku,title\n", "no product rows"),
        ("latin1.csv", "sku,title\nA,ok\nB,Caf\xe9\n".encode("latin-1"), "line 3: not valid UTF-8"),
        ("semicolons.csv", b"sku;title\nA;x\n", "no 'sku' column .*comma-separated"),
        ("unknown-column.csv", b"sku,pric\nA,1\n", "line 1: column 2: unknown column 'pric'"),
        ("quote.csv", b'sku,title\nA,"ok"\nB,"bad"x\n', "line 3: CSV syntax error"),
        ("no-sku.jsonl", b'{"SKU": "A"}\n{"title": "x"}\n', "no row has a sku"),
        ("not-json.jsonl", b"sku,title\nA,x\n", "no row has a sku"),
        ("latin1.jsonl", b'{"sku": "A"}\n{"sku": "\xe9"}\n', "line 2: not valid UTF-8"),
    ],
)
def test_malformed_files_are_refused_and_change_nothing(
    engine, tenant_id, now, tmp_path, name, content, message
):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CatalogFileError, match=message):
        run(engine, tenant_id, path, now)
    assert table_count(engine, products) == 0
    assert table_count(engine, catalog_imports) == 0


def test_unknown_tenant_is_refused(engine, now, tmp_path):
    with pytest.raises(NotFoundError):
        run(engine, 999_999, write(tmp_path, "a.csv", "sku\nA\n"), now)
    assert table_count(engine, catalog_imports) == 0


def test_an_overlong_line_refuses_the_file(engine, tenant_id, now, tmp_path, monkeypatch):
    from tradelane.services import catalog_files

    monkeypatch.setattr(catalog_files, "MAX_LINE_BYTES", 64)
    path = write(tmp_path, "long.csv", "sku,title\nA,short\nB," + "x" * 70 + "\n")
    with pytest.raises(CatalogFileError, match="line 3 is longer than 64 bytes"):
        run(engine, tenant_id, path, now)
    assert table_count(engine, products) == 0


def test_a_batch_hit_by_a_concurrent_insert_is_retried_once_and_counted_once(
    engine, tenant_id, now, tmp_path, monkeypatch
):
    from tradelane.services import catalog_import

    real = catalog_import._write_batch
    calls: list[int] = []

    def racing(conn, *args, **kwargs):
        calls.append(1)
        result = real(conn, *args, **kwargs)
        if len(calls) == 1:  # as if another import had inserted one of our skus meanwhile
            raise sa.exc.IntegrityError("INSERT INTO products ...", {}, Exception("unique violation"))
        return result

    monkeypatch.setattr(catalog_import, "_write_batch", racing)
    summary = run(engine, tenant_id, write(tmp_path, "a.csv", HEADER + "A,,,,,1,,\nB,,,,,x,,\n"), now)
    assert len(calls) == 2 and counts(summary) == (1, 0, 0, 1)
    with engine.connect() as conn:
        record = conn.execute(sa.select(catalog_imports)).one()
    assert (record.created, record.rejected, len(record.errors)) == (1, 1, 1)
    assert table_count(engine, products) == 1
