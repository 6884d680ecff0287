"""Catalog import use case: a CSV / JSON Lines file diffed into the tenant's ``products``.

Contract of :func:`import_catalog`:

* A row fully describes its product (see :mod:`tradelane.domain.catalog_rows`): a column that is absent
  from the file, or empty on a line, stores an empty value; it never keeps the previously stored one.
  Products absent from the file are left alone (an import never deletes).
* Each row is *created* (new sku), *updated* (its content hash differs from the stored one), *unchanged*
  or *rejected* with its physical line number, sku and reason. A rejected row never blocks the others.
  Cross-row rejections: a sku repeated in the file (the first occurrence wins, later ones are rejected),
  a parent that is itself a variant (in the file, or stored and not in the file), and a row that would make
  a product a variant while stored variants (absent from the file) still name it as their parent.
* A malformed file (:class:`~tradelane.services.catalog_files.CatalogFileError`) and an unknown tenant
  (:class:`~tradelane.domain.errors.NotFoundError`) are refused before anything is written.
* Rows are written in batches (``batch_size`` file rows), one transaction each: one SELECT of the stored
  rows (the batch's skus and the parents they name), one executemany INSERT (then one SELECT of the new
  ids), one executemany UPDATE, and, only when rows become variants, one SELECT of stored variants naming
  them as parent. In the same transaction, created products get dirty bindings to every channel
  (:func:`~tradelane.services.outbox.bind_new_products`) and updated products whose price, currency or
  quantity changed are marked dirty (:func:`~tradelane.services.outbox.mark_offers_dirty`); a change of
  other fields only (title...) does not dirty offers. Counts are added to the run's ``catalog_imports``
  row in the same transaction, so the record always matches what was committed (the first
  :data:`STORED_ERRORS` rejections are kept there); ``finished_at`` is set at the end (``now`` plus the
  elapsed time), so a run that failed half-way keeps its committed batches and a NULL ``finished_at``.
* Memory is bounded by the batch size, plus what the pre-pass keeps (8 bytes per row, 8 more per variant
  row, a set entry per distinct parent) and the first ``max_errors`` rejections kept in the summary.
* The file must not change during the import.
* Known limits of the two-level rule against stored rows: a parent stored as a variant is accepted when
  the file has a row for it (that row decides), even if that row is then rejected; "has a row in the file"
  is a 64-bit hash lookup (see :class:`~tradelane.services.catalog_files.FileScan`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from tradelane.domain.catalog import Product
from tradelane.domain.catalog_rows import RowError, parse_row
from tradelane.domain.errors import NotFoundError
from tradelane.persistence.db import is_postgres, read_only, transaction
from tradelane.persistence.tables import catalog_imports, products, tenants
from tradelane.services.catalog_files import (
    CatalogFileError,
    CatalogFormat,
    CatalogReader,
    FileScan,
    detect_format,
    prescan,
    row_sku,
)
from tradelane.services.outbox import bind_new_products, mark_offers_dirty

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "CatalogFileError",
    "CatalogFormat",
    "ImportSummary",
    "ProgressCallback",
    "RowRejection",
    "import_catalog",
]

DEFAULT_BATCH_SIZE = 2_000
#: Rejections kept in the returned summary (the count is always exact).
SUMMARY_ERRORS = 10_000
#: Rejections kept in ``catalog_imports.errors``.
STORED_ERRORS = 1_000
_WRITE_ATTEMPTS = 3

log = structlog.get_logger(__name__)

#: ``progress(rows_done, bytes_done, total_bytes)``, called after each batch.
ProgressCallback = Callable[[int, int, int], None]


@dataclass(frozen=True, slots=True)
class RowRejection:
    line: int
    sku: str | None
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "sku": self.sku, "error": self.error}


@dataclass(slots=True)
class ImportSummary:
    """Outcome of one import. ``errors`` holds the first rejections (in line order, at most the
    ``max_errors`` given to :func:`import_catalog`); ``rejected`` counts all of them."""

    import_id: int
    filename: str
    format: CatalogFormat
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[RowRejection] = field(default_factory=list)

    @property
    def errors_truncated(self) -> bool:
        return self.rejected > len(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "errors": [e.as_dict() for e in self.errors],
            "errors_truncated": self.errors_truncated,
        }


@dataclass(slots=True)
class _Batch:
    """One transaction's worth of file rows: candidates to write and rows already rejected."""

    candidates: list[tuple[int, Product]] = field(default_factory=list)
    rejections: list[RowRejection] = field(default_factory=list)
    records: int = 0


@dataclass(slots=True)
class _BatchResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejections: list[RowRejection] = field(default_factory=list)


def import_catalog(
    engine: Engine,
    *,
    tenant_id: int,
    path: Path | str,
    fmt: CatalogFormat | str | None = None,
    now: datetime,
    progress: ProgressCallback | None = None,
    filename: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_errors: int = SUMMARY_ERRORS,
) -> ImportSummary:
    """Import the file at ``path`` for ``tenant_id`` (see the module docstring for the contract).

    ``fmt`` overrides the extension; ``filename`` is the name recorded for the run (defaults to the file's
    name, useful when ``path`` is a temporary upload). Raises :class:`CatalogFileError` or
    :class:`NotFoundError` before writing anything."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    started = time.monotonic()
    path = Path(path)
    file_format = detect_format(path, fmt)
    with read_only(engine) as conn:
        if conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_id)).first() is None:
            raise NotFoundError(f"no tenant with id {tenant_id}")
    scan = prescan(path, file_format)
    name = filename if filename is not None else path.name
    with transaction(engine) as conn:
        import_id = conn.execute(
            sa.insert(catalog_imports)
            .values(tenant_id=tenant_id, filename=name, format=file_format.value, started_at=now, errors=[])
            .returning(catalog_imports.c.id)
        ).scalar_one()
    summary = ImportSummary(import_id=import_id, filename=name, format=file_format)
    stored_errors: list[dict[str, Any]] = []
    reader = CatalogReader(path, file_format)
    rows_done = 0
    for batch in _batches(reader.records(), scan, batch_size):
        result = _write_with_retry(engine, tenant_id, import_id, batch, scan, stored_errors, now)
        rows_done += batch.records
        summary.created += result.created
        summary.updated += result.updated
        summary.unchanged += result.unchanged
        summary.rejected += len(result.rejections)
        room = max_errors - len(summary.errors)
        if room > 0:
            summary.errors.extend(result.rejections[:room])
        if progress is not None:
            progress(rows_done, reader.bytes_read, scan.total_bytes)
    finished = now + timedelta(seconds=time.monotonic() - started)
    with transaction(engine) as conn:
        conn.execute(
            sa.update(catalog_imports).where(catalog_imports.c.id == import_id).values(finished_at=finished)
        )
    log.info(
        "catalog import finished",
        import_id=import_id,
        tenant_id=tenant_id,
        rows=rows_done,
        created=summary.created,
        updated=summary.updated,
        unchanged=summary.unchanged,
        rejected=summary.rejected,
        seconds=round(time.monotonic() - started, 3),
    )
    return summary


def _batches(
    records: Iterator[tuple[int, Mapping[str, object] | None, str | None]], scan: FileScan, size: int
) -> Iterator[_Batch]:
    """Group the file's rows into batches, applying the row rules and the in-file cross-row rules."""
    batch = _Batch()
    for line, row, problem in records:
        batch.records += 1
        if problem is not None or row is None:
            batch.rejections.append(RowRejection(line, row_sku(row), problem or "unreadable line"))
        else:
            try:
                product = parse_row(row)
            except RowError as exc:
                batch.rejections.append(RowRejection(line, row_sku(row), exc.reason))
            else:
                reason = _cross_row_problem(product, line, scan)
                if reason is None:
                    batch.candidates.append((line, product))
                else:
                    batch.rejections.append(RowRejection(line, product.sku, reason))
        if batch.records >= size:
            yield batch
            batch = _Batch()
    if batch.records:
        yield batch


def _cross_row_problem(product: Product, line: int, scan: FileScan) -> str | None:
    first = scan.duplicates.get(product.sku)
    if first is not None and first != line:
        return f"duplicate sku {product.sku!r} in the file (first on line {first})"
    if product.parent_sku is not None:
        grandparent = scan.variant_parents.get(product.parent_sku)
        if grandparent is not None:
            return f"parent {product.parent_sku!r} is itself a variant (of {grandparent!r})"
    return None


def _write_with_retry(
    engine: Engine,
    tenant_id: int,
    import_id: int,
    batch: _Batch,
    scan: FileScan,
    stored_errors: list[dict[str, Any]],
    now: datetime,
) -> _BatchResult:
    """Write one batch in one transaction. A concurrent import inserting the same sku between our SELECT
    and INSERT (PostgreSQL) violates the unique index: the batch is then re-read and re-written."""
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        try:
            with transaction(engine) as conn:
                result = _write_batch(conn, tenant_id, batch.candidates, scan, now)
                result.rejections = sorted(batch.rejections + result.rejections, key=lambda r: r.line)
                kept = _record_counts(conn, import_id, result, stored_errors)
        except sa.exc.IntegrityError:
            if attempt == _WRITE_ATTEMPTS:
                raise
            continue
        stored_errors[:] = kept
        return result
    raise AssertionError("unreachable")


def _record_counts(
    conn: Connection, import_id: int, result: _BatchResult, stored_errors: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Add the batch's counts to the run's record; returns the run's stored errors after this batch."""
    values: dict[str, Any] = {
        "created": catalog_imports.c.created + result.created,
        "updated": catalog_imports.c.updated + result.updated,
        "unchanged": catalog_imports.c.unchanged + result.unchanged,
        "rejected": catalog_imports.c.rejected + len(result.rejections),
    }
    kept = stored_errors
    room = STORED_ERRORS - len(stored_errors)
    if room > 0 and result.rejections:
        kept = stored_errors + [r.as_dict() for r in result.rejections[:room]]
        values["errors"] = kept
    conn.execute(sa.update(catalog_imports).where(catalog_imports.c.id == import_id).values(**values))
    return kept


_STORED_COLUMNS = (
    products.c.id,
    products.c.sku,
    products.c.parent_sku,
    products.c.content_hash,
    products.c.price,
    products.c.currency,
    products.c.quantity,
)


def _write_batch(
    conn: Connection, tenant_id: int, candidates: Sequence[tuple[int, Product]], scan: FileScan, now: datetime
) -> _BatchResult:
    result = _BatchResult()
    if not candidates:
        return result
    wanted = {product.sku for _, product in candidates}
    wanted.update(product.parent_sku for _, product in candidates if product.parent_sku is not None)
    stored = {
        row.sku: row for row in conn.execute(_select_in(conn, _STORED_COLUMNS, tenant_id, "sku", wanted))
    }
    # Stored variants whose parent is a sku this batch makes a variant (two-level rule). A sku already
    # stored as a variant cannot have any, so a re-import of unchanged variants skips the query.
    becoming = [
        product.sku
        for _, product in candidates
        if product.parent_sku is not None
        and (product.sku not in stored or stored[product.sku].parent_sku is None)
    ]
    children: list[tuple[str, str]] = []
    if becoming:
        columns = (products.c.sku, products.c.parent_sku)
        children = [
            (row.sku, row.parent_sku)
            for row in conn.execute(_select_in(conn, columns, tenant_id, "parent_sku", becoming))
        ]
    accepted = _apply_stored_hierarchy(candidates, stored, children, scan, result)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    dirty: list[int] = []
    for product in accepted:
        digest = product.content_hash()
        current = stored.get(product.sku)
        if current is None:
            inserts.append(
                _product_values(product, digest, tenant_id=tenant_id, created_at=now, updated_at=now)
            )
        elif current.content_hash == digest:
            result.unchanged += 1
        else:
            updates.append(_product_values(product, digest, b_id=current.id, updated_at=now))
            before = Product(
                current.sku, price=current.price, currency=current.currency, quantity=current.quantity
            )
            if before.offer_fields_hash() != product.offer_fields_hash():
                dirty.append(current.id)
    if inserts:
        # Plain executemany, then the ids in one indexed SELECT: INSERT ... RETURNING turns into
        # multi-row VALUES statements that are several times slower on PostgreSQL.
        conn.execute(sa.insert(products), inserts)
        new_skus = [row["sku"] for row in inserts]
        new_ids = list(conn.execute(_select_in(conn, (products.c.id,), tenant_id, "sku", new_skus)).scalars())
        bind_new_products(conn, tenant_id, new_ids, now=now)
        result.created = len(inserts)
    if updates:
        conn.execute(sa.update(products).where(products.c.id == sa.bindparam("b_id")), updates)
        result.updated = len(updates)
    if dirty:
        mark_offers_dirty(conn, tenant_id, dirty, now=now)
    return result


def _select_in(
    conn: Connection,
    columns: Sequence[sa.ColumnElement[Any]],
    tenant_id: int,
    key: str,
    values: Collection[str],
) -> sa.Select[Any]:
    """``SELECT columns FROM products WHERE tenant_id = :tenant AND <key> IN :values``, planned as one
    index probe per value. On PostgreSQL that is a join with ``unnest(tenant ids, values)``: the IN form
    is planned from per-tenant statistics, which a large import makes stale at once (the planner then
    scans all of the tenant's rows for every batch)."""
    column = products.c[key]
    if not is_postgres(conn):
        return sa.select(*columns).where(products.c.tenant_id == tenant_id, column.in_(list(values)))
    keys = (
        sa.func.unnest(
            sa.bindparam(
                None, [tenant_id] * len(values), type_=postgresql.ARRAY(sa.BigInteger()), unique=True
            ),
            sa.bindparam(None, list(values), type_=postgresql.ARRAY(sa.String()), unique=True),
        )
        .table_valued("tenant_id", "value")
        .render_derived()
    )
    return sa.select(*columns).join_from(
        products, keys, sa.and_(products.c.tenant_id == keys.c.tenant_id, column == keys.c.value)
    )


def _apply_stored_hierarchy(
    candidates: Sequence[tuple[int, Product]],
    stored: Mapping[str, Any],
    children: Sequence[tuple[str, str]],
    scan: FileScan,
    result: _BatchResult,
) -> list[Product]:
    """Reject rows that would nest variants two levels deep through stored products: a parent that is a
    stored variant not in the file, or a row making a variant of a sku that stored variants (``children``:
    (sku, parent) pairs) still name as their parent."""
    stored_children: dict[str, str] = {}
    for child_sku, parent_sku in children:
        # A stored variant keeps its parent unless its own row in the file moves it; when the file also
        # names this parent for some row, that row is rejected, so the stored link may remain.
        if not scan.in_file(child_sku) or parent_sku in scan.variant_parents:
            stored_children.setdefault(parent_sku, child_sku)
    accepted: list[Product] = []
    for line, product in candidates:
        parent = product.parent_sku
        if parent is not None:
            stored_parent = stored.get(parent)
            if (
                stored_parent is not None
                and stored_parent.parent_sku is not None
                and not scan.in_file(parent)
            ):
                result.rejections.append(
                    RowRejection(
                        line,
                        product.sku,
                        f"parent {parent!r} is itself a variant (of {stored_parent.parent_sku!r}, stored)",
                    )
                )
                continue
            child = stored_children.get(product.sku)
            if child is not None:
                result.rejections.append(
                    RowRejection(
                        line,
                        product.sku,
                        f"stored variant {child!r} has {product.sku!r} as parent, "
                        "so it cannot become a variant itself",
                    )
                )
                continue
        accepted.append(product)
    return accepted


def _product_values(product: Product, digest: str, **extra: Any) -> dict[str, Any]:
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
        "content_hash": digest,
        **extra,
    }
