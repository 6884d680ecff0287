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
* Rows are written in batches (``batch_size`` file rows), one transaction each: one SELECT of the stored ids
  and hashes (the batch's skus and the parents they name) and, only when rows become variants, one SELECT of
  stored variants naming them as parent; rows whose hash equals the stored one are unchanged and written
  nowhere. On SQLite a first import into an empty tenant skips both SELECTs while no other writer inserted a
  product between its batches (see :class:`_Freshness`). Then, on SQLite: one executemany INSERT (then, when
  the tenant has channels, one SELECT of the new ids), one executemany UPDATE (and one SELECT of the updated
  rows' offer fields). The INSERT and UPDATE go to the DB-API driver with values converted once by the column
  types' own bind processors (see :class:`_ProductStatements`), so they store exactly what SQLAlchemy Core
  would. On PostgreSQL (:func:`_upsert_postgres`): the new and changed rows streamed with ``COPY`` into a
  temporary staging table dropped at commit, then one ``INSERT ... SELECT ... ON CONFLICT (tenant_id, sku) DO
  UPDATE ... WHERE content_hash IS DISTINCT FROM`` returning the written rows (``xmax = 0``: created) and
  whether their offer fields changed; a sku another writer committed since the SELECT is updated in place (or,
  with ``create_only``, rejected) instead of failing the batch. In the same transaction, created products get
  dirty bindings to every channel (:func:`~tradelane.services.outbox.bind_new_products`) and updated products
  whose price, currency or quantity changed are marked dirty
  (:func:`~tradelane.services.outbox.mark_offers_dirty`); a change of other fields only (title...) does not
  dirty offers. Updated products are then matched against the selection rules of the tenant's channels
  (:func:`~tradelane.services.selection.reselect_products`: one indexed query when no channel has one).
  Counts are added to the run's ``catalog_imports`` row in the same transaction, so the record always
  matches what was committed (the first :data:`STORED_ERRORS` rejections are kept there);
  ``finished_at`` is set at the end (``now`` plus the elapsed time), so a run that failed half-way keeps its
  committed batches and a NULL ``finished_at``.
* Memory is bounded by the batch size, plus what the pre-pass keeps (8 bytes per row, 8 more per variant
  row, a set entry per distinct parent) and the first ``max_errors`` rejections kept in the summary.
* The file must not change during the import.
* Known limits of the two-level rule against stored rows: a parent stored as a variant is accepted when
  the file has a row for it (that row decides), even if that row is then rejected; "has a row in the file"
  is a 64-bit hash lookup (see :class:`~tradelane.services.catalog_files.FileScan`).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect, Engine

from tradelane.domain.catalog import CatalogRow, Product
from tradelane.domain.errors import NotFoundError
from tradelane.persistence.db import is_postgres, json_dumps, read_only, transaction
from tradelane.persistence.tables import catalog_imports, channels, products, tenants
from tradelane.services.catalog_files import (
    CatalogFileError,
    CatalogFormat,
    CatalogReader,
    FileScan,
    ParsedRow,
    detect_format,
    prescan,
)
from tradelane.services.outbox import bind_new_products, mark_offers_dirty
from tradelane.services.selection import reselect_products

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

    candidates: list[tuple[int, CatalogRow]] = field(default_factory=list)
    rejections: list[RowRejection] = field(default_factory=list)
    records: int = 0


@dataclass(frozen=True, slots=True)
class _WriteOptions:
    """How created rows are written: ``publish_to`` channels (None: all) and ``create_only``."""

    publish_to: frozenset[int] | None = None
    create_only: bool = False


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
    publish_to: Collection[int] | None = None,
    create_only: bool = False,
) -> ImportSummary:
    """Import the file at ``path`` for ``tenant_id`` (see the module docstring for the contract).

    ``fmt`` overrides the extension; ``filename`` is the name recorded for the run (defaults to the file's
    name, useful when ``path`` is a temporary upload). ``publish_to`` restricts the channels that created
    products get offer bindings on (None: every channel of the tenant; empty: none, so the new products
    are not published anywhere). ``create_only`` rejects a row whose sku is already stored (read in the
    transaction that inserts, so a concurrent creation hits the unique index and the batch is re-read)
    instead of updating the product. Raises :class:`CatalogFileError` or :class:`NotFoundError` before
    writing anything."""
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
    statements = _ProductStatements(engine.dialect, tenant_id, now)
    options = _WriteOptions(None if publish_to is None else frozenset(publish_to), create_only)
    freshness = None if is_postgres(engine) else _Freshness()
    rows_done = 0
    for batch in _batches(reader.rows(), scan, batch_size):
        result = _write_with_retry(
            engine, tenant_id, import_id, batch, scan, stored_errors, statements, now, options, freshness
        )
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


def _batches(rows: Iterator[ParsedRow], scan: FileScan, size: int) -> Iterator[_Batch]:
    """Group the file's parsed rows into batches, applying the in-file cross-row rules."""
    batch = _Batch()
    candidates, rejections = batch.candidates, batch.rejections
    duplicates, variant_parents = scan.duplicates, scan.variant_parents
    records = 0
    for line, row, sku, problem in rows:
        if row is None:
            rejections.append(RowRejection(line, sku, problem or "unreadable line"))
        elif row[0] not in duplicates and row[1] not in variant_parents:
            candidates.append((line, row))  # the common case, without a call
        else:
            reason = _cross_row_problem(row, line, scan)
            if reason is None:
                candidates.append((line, row))
            else:
                rejections.append(RowRejection(line, row[0], reason))
        records += 1
        if records >= size:
            batch.records = records
            yield batch
            batch, records = _Batch(), 0
            candidates, rejections = batch.candidates, batch.rejections
    if records:
        batch.records = records
        yield batch


def _cross_row_problem(row: CatalogRow, line: int, scan: FileScan) -> str | None:
    sku, parent_sku = row[0], row[1]
    first = scan.duplicates.get(sku)
    if first is not None and first != line:
        return f"duplicate sku {sku!r} in the file (first on line {first})"
    if parent_sku is not None:
        grandparent = scan.variant_parents.get(parent_sku)
        if grandparent is not None:
            return f"parent {parent_sku!r} is itself a variant (of {grandparent!r})"
    return None


def _write_with_retry(
    engine: Engine,
    tenant_id: int,
    import_id: int,
    batch: _Batch,
    scan: FileScan,
    stored_errors: list[dict[str, Any]],
    statements: _ProductStatements,
    now: datetime,
    options: _WriteOptions | None = None,
    freshness: _Freshness | None = None,
) -> _BatchResult:
    """Write one batch in one transaction. A concurrent import inserting the same sku between our SELECT
    and INSERT (PostgreSQL), or meanwhile into what looked like a fresh tenant (SQLite, see
    :class:`_Freshness`), violates the unique index: the batch is then re-read and re-written."""
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        max_id: int | None = None
        try:
            with transaction(engine) as conn:
                fresh = freshness is not None and freshness.holds(conn, tenant_id)
                result = _write_batch(
                    conn, tenant_id, batch.candidates, scan, statements, now, options, fresh=fresh
                )
                result.rejections = sorted(batch.rejections + result.rejections, key=lambda r: r.line)
                kept = _record_counts(conn, import_id, result, stored_errors)
                if fresh:
                    max_id = _max_product_id(conn)
        except sa.exc.IntegrityError:
            if freshness is not None:
                freshness.known_max_id, freshness.started = None, True
            if attempt == _WRITE_ATTEMPTS:
                raise
            continue
        if freshness is not None:
            freshness.known_max_id, freshness.started = max_id, True
        stored_errors[:] = kept
        return result
    raise AssertionError("unreachable")


@dataclass(slots=True)
class _Freshness:
    """SQLite only: whether the tenant's products are still exactly the rows this import wrote, so that
    a batch can skip reading stored rows (a first import into an empty tenant: none of its skus is
    stored, and a parent stored by it has its row in the file, which the cross-row rules already judge).

    It holds when the tenant had no product at the first batch and, at each later batch, the table's
    ``max(id)`` is still the one seen at the end of this import's previous batch: SQLite runs one writer
    at a time (every transaction is ``BEGIN IMMEDIATE``), so nobody inserted a product in between. Once
    it fails, or a batch hits the unique index (a concurrent insert), every later batch reads stored rows
    as usual. Not covered, between two batches: another writer changing one of this import's rows in
    place (an UPDATE keeps ``max(id)``), or deleting the row with the highest id and inserting one, which
    SQLite may give the same id (no AUTOINCREMENT). A sku of the file inserted that way still hits the
    unique index (the batch is then re-read); only the two-level variant rule could miss such a product,
    as it can on PostgreSQL for a product committed between the batch's SELECT and its upsert.
    """

    started: bool = False
    known_max_id: int | None = None

    def holds(self, conn: Connection, tenant_id: int) -> bool:
        """Whether the batch in ``conn``'s transaction may skip the stored-row reads."""
        if not self.started:
            found = conn.exec_driver_sql(_ANY_TENANT_PRODUCT, (tenant_id,)).first()
            return found is None
        return self.known_max_id is not None and _max_product_id(conn) == self.known_max_id


_ANY_TENANT_PRODUCT = "SELECT 1 FROM products WHERE tenant_id = ? LIMIT 1"


def _max_product_id(conn: Connection) -> int:
    found: int = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM products").scalar_one()
    return found


def _record_counts(
    conn: Connection, import_id: int, result: _BatchResult, stored_errors: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Add the batch's counts to the run's record; returns the run's stored errors after this batch."""
    values: dict[str, Any] = {
        "import_id": import_id,
        "add_created": result.created,
        "add_updated": result.updated,
        "add_unchanged": result.unchanged,
        "add_rejected": len(result.rejections),
    }
    kept = stored_errors
    room = STORED_ERRORS - len(stored_errors)
    if room > 0 and result.rejections:
        kept = stored_errors + [r.as_dict() for r in result.rejections[:room]]
        conn.execute(_ADD_COUNTS_AND_ERRORS, {**values, "errors": kept})
    else:
        conn.execute(_ADD_COUNTS, values)
    return kept


#: The batch's counts added to the run's record (built once: a statement per batch is not rebuilt).
_ADD_COUNTS = (
    sa.update(catalog_imports)
    .where(catalog_imports.c.id == sa.bindparam("import_id"))
    .values(
        created=catalog_imports.c.created + sa.bindparam("add_created", type_=sa.Integer()),
        updated=catalog_imports.c.updated + sa.bindparam("add_updated", type_=sa.Integer()),
        unchanged=catalog_imports.c.unchanged + sa.bindparam("add_unchanged", type_=sa.Integer()),
        rejected=catalog_imports.c.rejected + sa.bindparam("add_rejected", type_=sa.Integer()),
    )
)
_ADD_COUNTS_AND_ERRORS = _ADD_COUNTS.values(
    errors=sa.bindparam("errors", type_=catalog_imports.c.errors.type)
)


#: What the diff reads for every stored row of a batch; the offer fields (whose money column costs a
#: conversion per row) are read afterwards for the rows whose hash differs only (:func:`_offer_fields`).
_STORED_COLUMNS = (
    products.c.id,
    products.c.sku,
    products.c.parent_sku,
    products.c.content_hash,
)


def _write_batch(
    conn: Connection,
    tenant_id: int,
    candidates: Sequence[tuple[int, CatalogRow]],
    scan: FileScan,
    statements: _ProductStatements,
    now: datetime,
    options: _WriteOptions | None = None,
    *,
    fresh: bool = False,
) -> _BatchResult:
    """Diff and write one batch (see the module docstring). ``fresh``: the tenant's products are only
    rows this import wrote (see :class:`_Freshness`), so stored rows are not read."""
    result = _BatchResult()
    if not candidates:
        return result
    publish_to = options.publish_to if options is not None else None
    stored: dict[str, Any] = {}
    becoming: list[str] = []
    if not fresh:
        wanted = {row[0] for _, row in candidates}
        wanted.update(row[1] for _, row in candidates if row[1] is not None)
        # fetchall, and the hot loop below reads rows by position: (id, sku, parent_sku, content_hash).
        stored = {row[1]: row for row in _select_in(conn, _STORED_COLUMNS, tenant_id, "sku", wanted).all()}
        # Stored variants whose parent is a sku this batch makes a variant (two-level rule). A sku
        # already stored as a variant cannot have any, so a re-import of unchanged variants skips it.
        becoming = [
            row[0]
            for _, row in candidates
            if row[1] is not None and (row[0] not in stored or stored[row[0]].parent_sku is None)
        ]
    children: list[tuple[str, str]] = []
    if becoming:
        columns = (products.c.sku, products.c.parent_sku)
        children = [
            (row.sku, row.parent_sku) for row in _select_in(conn, columns, tenant_id, "parent_sku", becoming)
        ]
    if options is not None and options.create_only:
        new_rows: list[tuple[int, CatalogRow]] = []
        for line, row in candidates:
            if row[0] in stored:
                result.rejections.append(
                    RowRejection(line, row[0], f"SKU {row[0]!r} is already in the catalog")
                )
            else:
                new_rows.append((line, row))
        candidates = new_rows
    accepted = _apply_stored_hierarchy(candidates, stored, children, scan, result)
    if is_postgres(conn):
        create_only = options is not None and options.create_only
        lines = {row[0]: line for line, row in candidates} if create_only else {}
        _upsert_postgres(conn, tenant_id, accepted, stored, statements, now, options, lines, result)
        return result
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    dirty: list[int] = []
    statements.forget()
    insert_row, update_row = statements.insert_row, statements.update_row
    changed: list[tuple[int, CatalogRow]] = []
    get_stored = stored.get
    if not stored:
        inserts = [insert_row(row) for row in accepted]  # all new: a first import
    else:
        for row in accepted:
            current = get_stored(row[0])
            if current is None:
                inserts.append(insert_row(row))
            elif current[3] == row[11]:
                result.unchanged += 1
            else:
                updates.append(update_row(row, current[0]))
                changed.append((current[0], row))
    if changed:
        before = _offer_fields(conn, [product_id for product_id, _ in changed])
        for product_id, row in changed:
            price, currency, quantity = before[product_id]
            old = Product(row[0], price=price, currency=currency, quantity=quantity)
            new = Product(row[0], price=row[6], currency=row[7], quantity=row[8])
            if old.offer_fields_hash() != new.offer_fields_hash():
                dirty.append(product_id)
    if inserts:
        conn.exec_driver_sql(statements.insert_sql, inserts)
        result.created = len(inserts)
        # New products are bound to every channel of the tenant (or those of ``publish_to``): without
        # channels, their ids are not needed. Else one indexed SELECT (INSERT ... RETURNING cannot be an
        # executemany).
        has_channels = publish_to is None or bool(publish_to)
        if (
            has_channels
            and conn.execute(
                sa.select(channels.c.id).where(channels.c.tenant_id == tenant_id).limit(1)
            ).first()
        ):
            new_skus = [row[statements.insert_sku_index] for row in inserts]
            new_ids = list(_select_in(conn, (products.c.id,), tenant_id, "sku", new_skus).scalars())
            bind_new_products(conn, tenant_id, new_ids, now=now, only_channels=publish_to)
    if updates:
        conn.exec_driver_sql(statements.update_sql, updates)
        result.updated = len(updates)
    if dirty:
        mark_offers_dirty(conn, tenant_id, dirty, now=now)
    if changed:  # a label or attribute may have moved the product in or out of a channel's selection
        reselect_products(conn, tenant_id, [product_id for product_id, _ in changed], now=now)
    return result


class _ProductStatements:
    """The INSERT and UPDATE of ``products`` as DB-API statements, and the rows they take.

    Each value is converted exactly as its column's SQLAlchemy type converts it (the type's bind
    processor for the connection's dialect): money as exact text on SQLite, ``now`` as a naive UTC
    datetime on SQLite... The import's constants (tenant, ``now``) are converted once, and repeated JSON
    documents (labels, attributes) once per batch. Batches then go to the driver's ``executemany``
    without SQLAlchemy's per-row parameter processing. On PostgreSQL the JSON columns take JSON text cast
    to JSONB (what the JSONB type would send, minus a wrapper per value)."""

    #: The columns of a product's content, in the order :meth:`insert_row` and :meth:`update_row` give them.
    _CONTENT = (
        "parent_sku",
        "title",
        "description",
        "brand",
        "gtin",
        "price",
        "currency",
        "quantity",
        "labels",
        "attributes",
        "content_hash",
    )
    #: Columns passed as they are: their types have no bind processing (checked at construction).
    _PLAIN = ("id", "sku", "parent_sku", "title", "description", "brand", "gtin", "currency", "quantity")

    def __init__(self, dialect: Dialect, tenant_id: int, now: datetime) -> None:
        def processor(name: str) -> Callable[[Any], Any] | None:
            column = products.c[name]
            return column.type.dialect_impl(dialect).bind_processor(dialect)

        for name in (*self._PLAIN, "content_hash"):
            if processor(name) is not None:
                raise RuntimeError(f"products.{name} now has bind processing: convert it here")
        if dialect.paramstyle == "qmark":
            marker = "?"
        elif dialect.paramstyle in ("format", "pyformat"):
            marker = "%s"
        else:
            raise RuntimeError(f"unsupported DB-API paramstyle {dialect.paramstyle!r}")
        postgres = dialect.name == "postgresql"
        self._json: dict[str, Callable[[Any], Any]] = {}
        markers: dict[str, str] = {}
        for name in ("labels", "attributes"):
            convert = json_dumps if postgres else processor(name)
            if convert is None:
                raise RuntimeError(f"products.{name} has no JSON bind processing on {dialect.name}")
            self._json[name] = convert
            markers[name] = f"CAST({marker} AS JSONB)" if postgres else marker
        self._price = processor("price") or _same
        self._tenant = _convert(processor("tenant_id"), tenant_id)
        self._now = _convert(processor("updated_at"), now)
        if _convert(processor("created_at"), now) != self._now:
            raise RuntimeError("products.created_at and updated_at convert differently")
        self._labels: dict[tuple[str, ...], Any] = {}
        self._attributes: dict[tuple[tuple[str, str], ...], Any] = {}

        quote = dialect.identifier_preparer.quote
        table = quote(products.name)
        inserted = ("tenant_id", "sku", *self._CONTENT, "created_at", "updated_at")
        self.insert_sql = (
            f"INSERT INTO {table} ({', '.join(quote(name) for name in inserted)}) "
            f"VALUES ({', '.join(markers.get(name, marker) for name in inserted)})"
        )
        self.insert_sku_index = inserted.index("sku")
        assignments = ", ".join(
            f"{quote(name)} = {markers.get(name, marker)}" for name in (*self._CONTENT, "updated_at")
        )
        self.update_sql = f"UPDATE {table} SET {assignments} WHERE {quote('id')} = {marker}"

    def insert_row(self, row: CatalogRow) -> tuple[Any, ...]:
        """The INSERT parameters of a new product."""
        return (self._tenant, row[0], *self._content(row, self._price), self._now, self._now)

    def update_row(self, row: CatalogRow, product_id: int) -> tuple[Any, ...]:
        """The UPDATE parameters of a stored product (every column of its content, and ``updated_at``)."""
        return (*self._content(row, self._price), self._now, product_id)

    def stage_row(self, position: int, row: CatalogRow) -> tuple[Any, ...]:
        """The row of the PostgreSQL staging table (see :data:`_STAGE_COLUMNS`) for a product, written
        ``position``-th (the order of the INSERT, hence of new ids). Its price stays a ``Decimal``: COPY
        writes it as text itself."""
        return (position, row[0], *self._content(row, _same))

    def _content(self, row: CatalogRow, price: Callable[[Any], Any]) -> tuple[Any, ...]:
        """The values of :attr:`_CONTENT` for ``row``: its price (when it has one) through ``price``, its
        labels and attributes as serialised JSON documents (cached until :meth:`forget`)."""
        (
            _sku,
            parent_sku,
            title,
            description,
            brand,
            gtin,
            amount,
            currency,
            quantity,
            labels,
            attributes,
            digest,
        ) = row
        # The two document caches read inline (the hot path of a first import).
        labels_doc = self._labels.get(labels)
        if labels_doc is None:
            labels_doc = self._labels_doc(labels)
        attributes_doc = self._attributes.get(tuple(attributes.items()))
        if attributes_doc is None:
            attributes_doc = self._attributes_doc(attributes)
        return (
            parent_sku,
            title,
            description,
            brand,
            gtin,
            None if amount is None else price(amount),
            currency,
            quantity,
            labels_doc,
            attributes_doc,
            digest,
        )

    def forget(self) -> None:
        """Drop the serialised documents kept so far (called per batch: memory stays bounded by it)."""
        self._labels.clear()
        self._attributes.clear()

    def _labels_doc(self, labels: tuple[str, ...]) -> Any:
        found = self._labels.get(labels)
        if found is None:
            found = self._labels[labels] = self._json["labels"](list(labels))
        return found

    def _attributes_doc(self, attributes: dict[str, str]) -> Any:
        key = tuple(attributes.items())  # in order: the document keeps the file's attribute order
        found = self._attributes.get(key)
        if found is None:
            found = self._attributes[key] = self._json["attributes"](attributes)
        return found


def _same(value: Any) -> Any:
    return value


def _convert(processor: Callable[[Any], Any] | None, value: Any) -> Any:
    return value if processor is None else processor(value)


def _select_in(
    conn: Connection,
    columns: Sequence[sa.ColumnElement[Any]],
    tenant_id: int,
    key: str,
    values: Collection[str],
) -> sa.CursorResult[Any]:
    """``SELECT columns FROM products WHERE tenant_id = :tenant AND <key> IN :values``, planned as one
    index probe per value, with the values in one parameter (one cached statement, whatever their number).
    On PostgreSQL that is a join with ``unnest(tenant ids, values)``: the IN form is planned from
    per-tenant statistics, which a large import makes stale at once (the planner then scans all of the
    tenant's rows for every batch). On SQLite the values are a JSON array read by ``json_each``."""
    column = products.c[key]
    if is_postgres(conn):
        keys = (
            sa.func.unnest(
                sa.bindparam("key_tenants", type_=postgresql.ARRAY(sa.BigInteger())),
                sa.bindparam("key_values", type_=postgresql.ARRAY(sa.String())),
            )
            .table_valued("tenant_id", "value")
            .render_derived()
        )
        statement = sa.select(*columns).join_from(
            products, keys, sa.and_(products.c.tenant_id == keys.c.tenant_id, column == keys.c.value)
        )
        return conn.execute(statement, {"key_tenants": [tenant_id] * len(values), "key_values": list(values)})
    sql = _sqlite_select_in(tuple(c.name for c in columns), column.name)
    return conn.exec_driver_sql(sql, (tenant_id, json.dumps(list(values))))


@functools.lru_cache(maxsize=16)
def _sqlite_select_in(names: tuple[str, ...], key: str) -> str:
    """The SQLite text of :func:`_select_in` (the statement is per batch: built once, not compiled)."""
    return (
        f"SELECT {', '.join(names)} FROM {products.name} "
        f"WHERE tenant_id = ? AND {key} IN (SELECT value FROM json_each(?))"
    )


# --- PostgreSQL: COPY into a staging table, then one set-wise upsert --------------------------------

#: The staging table's columns, in the order :meth:`_ProductStatements.stage_row` gives them.
_STAGE_COLUMNS = ("position", "sku", *_ProductStatements._CONTENT)
_STAGE_TABLE = "tradelane_catalog_stage"
_STAGE_DDL = (
    f"CREATE TEMP TABLE {_STAGE_TABLE} (position integer NOT NULL, sku text NOT NULL, parent_sku text, "
    "title text, description text, brand text, gtin text, price numeric, currency text, "
    "quantity integer NOT NULL, labels jsonb NOT NULL, attributes jsonb NOT NULL, "
    "content_hash text NOT NULL) ON COMMIT DROP"
)
_STAGE_COPY = f"COPY {_STAGE_TABLE} ({', '.join(_STAGE_COLUMNS)}) FROM STDIN"
_CONTENT_COLUMNS = _STAGE_COLUMNS[2:]
_PG_INSERT = (
    "INSERT INTO products (tenant_id, sku, {content}, created_at, updated_at) "
    "SELECT %(tenant)s, sku, {content}, %(now)s, %(now)s FROM {stage} ORDER BY position "
).format(content=", ".join(_CONTENT_COLUMNS), stage=_STAGE_TABLE)
#: Inserts new skus, rewrites stored products whose content hash differs (a row stored meanwhile with
#: the same content is left alone), and returns one row per written product: its id, whether it was
#: inserted (``xmax = 0``) and whether its offer fields changed. ``old`` is read in the statement's
#: snapshot, so it holds the values from before the upsert; a row another writer committed after that
#: snapshot is not seen there and counts as changed (an extra offer sync, never a missed one).
_PG_UPSERT = (
    "WITH written AS ("
    + _PG_INSERT
    + "ON CONFLICT (tenant_id, sku) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in (*_CONTENT_COLUMNS, "updated_at"))
    + " WHERE products.content_hash IS DISTINCT FROM excluded.content_hash "
    "RETURNING id, sku, (xmax = 0) AS inserted, price, currency, quantity) "
    "SELECT written.id, written.sku, written.inserted, "
    "CASE WHEN written.inserted THEN false ELSE NOT EXISTS (SELECT FROM products old "
    "WHERE old.tenant_id = %(tenant)s AND old.sku = written.sku "
    "AND old.price IS NOT DISTINCT FROM written.price AND old.currency IS NOT DISTINCT FROM written.currency "
    "AND old.quantity = written.quantity) END AS offers_changed "
    "FROM written ORDER BY written.id"
)
#: ``create_only``: a sku stored meanwhile (a concurrent import) is not written; the row is rejected.
_PG_CREATE = _PG_INSERT + "ON CONFLICT (tenant_id, sku) DO NOTHING RETURNING id, sku"


def _upsert_postgres(
    conn: Connection,
    tenant_id: int,
    accepted: Sequence[CatalogRow],
    stored: Mapping[str, Any],
    statements: _ProductStatements,
    now: datetime,
    options: _WriteOptions | None,
    lines: Mapping[str, int],
    result: _BatchResult,
) -> None:
    """Write a batch's accepted rows on PostgreSQL, set-wise. Rows whose stored hash (read by the batch's
    SELECT: ``stored``, rows ``(id, sku, parent_sku, content_hash)``) equals theirs are unchanged and go
    nowhere; the others are streamed with ``COPY`` into a temporary staging table (dropped at commit) and
    written by one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE content_hash IS DISTINCT
    FROM``. Counts stay exact: ``created`` and ``updated`` are the rows it returns, every other accepted
    row is unchanged. A sku another writer committed since the SELECT is thus updated in place (or, with
    ``create_only``, rejected: ``lines`` gives the line of each sku) instead of failing the batch."""
    publish_to = options.publish_to if options is not None else None
    create_only = options is not None and options.create_only
    statements.forget()
    stage_row = statements.stage_row
    staged: list[tuple[Any, ...]] = []
    for row in accepted:
        current = stored.get(row[0])
        if current is not None and current[3] == row[11]:
            result.unchanged += 1
        else:
            staged.append(stage_row(len(staged), row))
    if not staged:
        return
    driver = conn.connection.driver_connection
    if driver is None:  # pragma: no cover - a checked-out connection always has one
        raise RuntimeError("no driver connection")
    conn.exec_driver_sql(_STAGE_DDL)
    with driver.cursor() as cursor, cursor.copy(_STAGE_COPY) as copy:
        write_row = copy.write_row
        for row in staged:
            write_row(row)
    # The planner cannot know the staging table's size, and the upsert's per-row subquery makes its cost
    # estimate large enough to trigger JIT compilation: 15-20 ms per batch (measured with EXPLAIN ANALYZE),
    # as much as writing 2,000 rows. The rest of the transaction is small statements: off for all of it.
    conn.exec_driver_sql("SET LOCAL jit = off")
    params = {"tenant": tenant_id, "now": now}
    new_ids: list[int] = []
    dirty: list[int] = []
    updated_ids: list[int] = []
    if create_only:
        written = conn.exec_driver_sql(_PG_CREATE, params).all()
        new_ids = [row.id for row in written]
        if len(written) < len(staged):
            created = {row.sku for row in written}
            for row in accepted:
                if row[0] not in created:
                    result.rejections.append(
                        RowRejection(lines[row[0]], row[0], f"SKU {row[0]!r} is already in the catalog")
                    )
    else:
        for product_id, _sku, inserted, offers_changed in conn.exec_driver_sql(_PG_UPSERT, params):
            if inserted:
                new_ids.append(product_id)
            else:
                result.updated += 1
                updated_ids.append(product_id)
                if offers_changed:
                    dirty.append(product_id)
        result.unchanged += len(staged) - len(new_ids) - result.updated
    result.created = len(new_ids)
    if new_ids and (publish_to is None or publish_to):
        bind_new_products(conn, tenant_id, new_ids, now=now, only_channels=publish_to)
    if dirty:
        mark_offers_dirty(conn, tenant_id, dirty, now=now)
    if updated_ids:  # a label or attribute may have moved the product in or out of a channel's selection
        reselect_products(conn, tenant_id, updated_ids, now=now)


def _offer_fields(conn: Connection, product_ids: Sequence[int]) -> dict[int, tuple[Any, Any, Any]]:
    """``id -> (price, currency, quantity)`` of stored products (SQLite: the ids as a JSON array)."""
    listed = sa.func.json_each(sa.bindparam("ids", type_=sa.String())).table_valued("value")
    statement = sa.select(products.c.id, products.c.price, products.c.currency, products.c.quantity).where(
        products.c.id.in_(sa.select(listed.c.value))
    )
    rows = conn.execute(statement, {"ids": json.dumps(list(product_ids))})
    return {row.id: (row.price, row.currency, row.quantity) for row in rows}


def _apply_stored_hierarchy(
    candidates: Sequence[tuple[int, CatalogRow]],
    stored: Mapping[str, Any],
    children: Sequence[tuple[str, str]],
    scan: FileScan,
    result: _BatchResult,
) -> list[CatalogRow]:
    """Reject rows that would nest variants two levels deep through stored products: a parent that is a
    stored variant not in the file, or a row making a variant of a sku that stored variants (``children``:
    (sku, parent) pairs) still name as their parent."""
    if not stored and not children:
        return [row for _line, row in candidates]  # nothing stored to judge against
    stored_children: dict[str, str] = {}
    for child_sku, parent_sku in children:
        # A stored variant keeps its parent unless its own row in the file moves it; when the file also
        # names this parent for some row, that row is rejected, so the stored link may remain.
        if not scan.in_file(child_sku) or parent_sku in scan.variant_parents:
            stored_children.setdefault(parent_sku, child_sku)
    accepted: list[CatalogRow] = []
    for line, row in candidates:
        parent = row[1]
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
                        row[0],
                        f"parent {parent!r} is itself a variant (of {stored_parent.parent_sku!r}, stored)",
                    )
                )
                continue
            child = stored_children.get(row[0])
            if child is not None:
                result.rejections.append(
                    RowRejection(
                        line,
                        row[0],
                        f"stored variant {child!r} has {row[0]!r} as parent, "
                        "so it cannot become a variant itself",
                    )
                )
                continue
        accepted.append(row)
    return accepted
