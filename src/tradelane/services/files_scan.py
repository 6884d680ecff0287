"""The Files merchant system (kind ``files``, adapter :mod:`tradelane.merchant.files`) and its
``merchant.files.scan`` job.

Contracts:

* :func:`add_files_system` stores the folder's absolute path and the scan interval in the system's
  ``settings`` (no credentials), creates ``inbox/``, ``processed/`` and ``rejected/`` in the folder
  (the folder too when missing) and queues the first scan. Workers must see the folder at that path.
* A scan (:func:`handle_scan_job`, payload ``{"merchant_system_id": N}``) takes at most
  :data:`MAX_FILES_PER_SCAN` settled files of ``inbox/``, oldest first (see
  :mod:`~tradelane.merchant.files.folder` for "settled": ``.tmp`` names are ignored, other files must be
  unmodified for :data:`SETTLE_SECONDS`):

  - not ``.csv`` / ``.jsonl`` / ``.ndjson``: moved to ``rejected/`` with ``<name>.error.txt``;
  - named ``stock*`` (case-insensitive): a stock file (:mod:`~tradelane.merchant.files.stock`), applied in
    batches of :data:`STOCK_BATCH` lines by :func:`apply_stock`, each in one lease-fenced transaction
    with its dirty offers;
  - anything else: a catalog file, imported with
    :func:`~tradelane.services.catalog_import.import_catalog`, then orders waiting in Order Health for
    SKUs it added are re-tried (:func:`~tradelane.services.catalog_followups.release_resolved_orders`);
  - a refused file (``CatalogFileError``, ``StockFileError``, unreadable) goes to ``rejected/`` with
    ``<name>.error.txt`` and nothing of it is applied; a processed one goes to ``processed/`` with
    ``<name>.result.json`` (counts and rejected lines with their line numbers). Moves never overwrite
    (a taken name gets ``.1``, ``.2``... before its extension; the sidecar follows the new name).

* A folder may send catalog files only, or stock files only (``settings.sends``, see
  :mod:`~tradelane.merchant.files.capabilities`; default both): a file of the other kind goes to
  ``rejected/`` with the reason, nothing of it applied. A drop folder never receives orders.
* Never lost, never imported twice: a file leaves ``inbox/`` only by an atomic move, after it was
  applied. A crash between applying and moving leaves it in ``inbox/``, so the next scan applies it again:
  for a catalog file that is harmless (the import is a diff: every row is then "unchanged"); a stock file
  sets absolute quantities again, which is harmless too unless something else changed a quantity of it
  in between. A crash between the move and the sidecar loses only the sidecar.
* The schedule perpetuates itself: in the transaction that completes the job, the next scan is queued
  for ``now + every_seconds`` (``now`` when files were left over) with the dedupe key
  ``merchant.files.scan:<system id>``, so at most one scan per system is ever pending. A disabled or
  deleted system is not scanned and its schedule stops (``tradelane merchant files scan`` restarts it).
  A missing folder (e.g. an unmounted share) is reported in the job result and logged, and the schedule
  goes on. A scan that finds the folder locked by another scan does nothing but reschedule.
* :func:`apply_stock` sets the quantities of one batch in the caller's transaction, updates the stored
  ``content_hash`` (so a later catalog import of the same values is "unchanged") and marks the offers of
  every product whose quantity changed dirty in that same transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from tradelane.domain.errors import NotFoundError, PermanentError, ValidationError
from tradelane.merchant.base import MerchantSystem
from tradelane.merchant.files.capabilities import FILES_KIND
from tradelane.merchant.files.folder import DropFolder, sidecar, write_atomically
from tradelane.merchant.files.settings import DEFAULT_EVERY_SECONDS, FilesSettings
from tradelane.merchant.files.stock import (
    LineRejection,
    StockFileError,
    StockLine,
    StockResult,
    read_stock_file,
    scan_stock_file,
)
from tradelane.persistence.db import is_postgres, read_only, transaction
from tradelane.persistence.merchant_systems import add_merchant_system
from tradelane.persistence.tables import merchant_systems, products
from tradelane.security.crypto import KeyRing
from tradelane.services.catalog_followups import release_resolved_orders
from tradelane.services.catalog_import import CatalogFileError, import_catalog
from tradelane.services.offers import stored_product
from tradelane.services.outbox import mark_offers_dirty
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import EnqueueResult, JobSpec, enqueue
from tradelane.sync.registry import JobRegistry

SCAN_JOB = "merchant.files.scan"
SETTLE_SECONDS = 2.0
MAX_FILES_PER_SCAN = 100
STOCK_BATCH = 1_000
#: Rejected lines kept in a stock file's result (the count is always exact).
MAX_REPORTED_ERRORS = 10_000
ACCEPTED_SUFFIXES = frozenset({".csv", ".jsonl", ".ndjson"})

log = structlog.get_logger(__name__)


def scan_dedupe_key(system_id: int) -> str:
    return f"{SCAN_JOB}:{system_id}"


def add_files_system(
    conn: Connection,
    *,
    tenant_id: int,
    name: str,
    folder: Path | str,
    keyring: KeyRing,
    now: datetime,
    every_seconds: int = DEFAULT_EVERY_SECONDS,
    sends: list[str] | None = None,
) -> MerchantSystem:
    """Create a drop-folder merchant system and queue its first scan (module docstring). ``sends``:
    the file kinds it sends (``catalog`` and/or ``stock``; None: both)."""
    settings = FilesSettings.from_settings(
        {
            "folder": str(Path(folder).expanduser().resolve()),
            "every_seconds": every_seconds,
            "sends": sends,
        }
    )
    try:
        DropFolder(settings.folder).prepare(create_root=True)
    except OSError as exc:
        raise ValidationError(f"cannot prepare the folder {settings.folder}: {exc.strerror or exc}") from None
    system = add_merchant_system(
        conn,
        tenant_id=tenant_id,
        name=name,
        kind=FILES_KIND,
        settings=settings.as_settings(),
        credentials=None,
        keyring=keyring,
        now=now,
    )
    enqueue_scan(conn, system, now=now)
    return system


def enqueue_scan(
    conn: Connection, system: MerchantSystem, *, now: datetime, run_at: datetime | None = None
) -> EnqueueResult:
    """Queue a scan of ``system`` at ``run_at`` (default now); coalesced with a pending one, which is
    moved earlier when ``run_at`` is sooner, never later."""
    return enqueue(
        conn,
        JobSpec(
            tenant_id=system.tenant_id,
            kind=SCAN_JOB,
            payload={"merchant_system_id": system.id},
            dedupe_key=scan_dedupe_key(system.id),
            run_at=run_at,
        ),
        now=now,
    )


def _load_system(conn: Connection, tenant_id: int, system_id: int) -> MerchantSystem:
    row = conn.execute(
        sa.select(merchant_systems).where(
            merchant_systems.c.id == system_id,
            merchant_systems.c.tenant_id == tenant_id,
            merchant_systems.c.kind == FILES_KIND,
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no files merchant system {system_id}")
    return MerchantSystem(row.id, row.tenant_id, row.name, row.kind, dict(row.settings), bool(row.enabled))


def handle_scan_job(ctx: JobContext) -> dict[str, Any] | None:
    """The ``merchant.files.scan`` handler (module docstring)."""
    tenant_id = ctx.job.tenant_id
    with read_only(ctx.engine) as conn:
        try:
            system = _load_system(conn, tenant_id, int(ctx.job.payload["merchant_system_id"]))
        except NotFoundError:
            return {"skipped": "the merchant system no longer exists"}
    if not system.enabled:
        return {"skipped": f"merchant system {system.name} is disabled"}
    try:
        settings = FilesSettings.from_settings(system.settings)
    except ValidationError as exc:
        raise PermanentError(f"{system.name}: {exc}") from None
    folder = DropFolder(settings.folder)
    report: dict[str, Any] = {"files": []}
    left_over = False
    try:
        folder.prepare(create_root=False)
    except OSError as exc:
        report["error"] = f"drop folder unusable: {exc}"
        log.warning(
            "merchant.files.folder_unusable", system=system.name, folder=str(folder.root), error=str(exc)
        )
    else:
        with folder.lock() as held:
            if not held:
                report["skipped"] = "another scan holds the folder"
            else:
                ready = folder.pending(settle_seconds=SETTLE_SECONDS, wall_now=time.time())
                left_over = len(ready) > MAX_FILES_PER_SCAN
                for path in ready[:MAX_FILES_PER_SCAN]:
                    report["files"].append(_process(ctx, folder, path, settings.sends))
    now = ctx.now()
    next_run = now if left_over else now + timedelta(seconds=settings.every_seconds)
    report["next_scan_at"] = next_run.isoformat()
    with ctx.transaction() as conn:
        enqueue_scan(conn, system, now=now, run_at=next_run)
        ctx.complete_in(conn, report)
    return report


def _process(ctx: JobContext, folder: DropFolder, path: Path, sends: tuple[str, ...]) -> dict[str, Any]:
    """Apply one file and move it out of the inbox; returns a short entry for the job result."""
    name = path.name
    if path.suffix.lower() not in ACCEPTED_SUFFIXES:
        reason = f"unsupported file type {path.suffix or '(none)'!r}: drop .csv, .jsonl or .ndjson files"
        return _reject(folder, path, reason)
    kind = "stock" if name.lower().startswith("stock") else "catalog"
    if kind not in sends:
        only = " and ".join(sends)
        reason = (
            f"this drop folder sends {only} files only (its 'sends' setting): a {kind} file is not applied"
        )
        return _reject(folder, path, reason, kind=kind)
    try:
        summary = _apply_stock(ctx, path) if kind == "stock" else _apply_catalog(ctx, path)
    except (CatalogFileError, StockFileError) as exc:
        return _reject(folder, path, str(exc), kind=kind)
    except OSError as exc:
        return _reject(folder, path, f"cannot read the file: {exc.strerror or exc}", kind=kind)
    moved = folder.move(path, folder.processed)
    result = {"file": name, "kind": kind, "processed_at": ctx.now().isoformat(), **summary}
    write_atomically(sidecar(moved, ".result.json"), json.dumps(result, indent=2, default=str) + "\n")
    log.info("merchant.files.processed", file=name, kind=kind, moved_to=moved.name)
    counts = {k: v for k, v in summary.items() if isinstance(v, int)}
    return {"file": name, "kind": kind, "outcome": "processed", "moved_to": moved.name, **counts}


def _reject(folder: DropFolder, path: Path, reason: str, *, kind: str | None = None) -> dict[str, Any]:
    moved = folder.move(path, folder.rejected)
    write_atomically(sidecar(moved, ".error.txt"), f"{path.name}: {reason}\n")
    log.warning("merchant.files.rejected", file=path.name, reason=reason, moved_to=moved.name)
    return {"file": path.name, "kind": kind, "outcome": "rejected", "moved_to": moved.name, "error": reason}


def _apply_catalog(ctx: JobContext, path: Path) -> dict[str, Any]:
    tenant_id, now = ctx.job.tenant_id, ctx.now()
    summary = import_catalog(ctx.engine, tenant_id=tenant_id, path=path, now=now)
    with transaction(ctx.engine) as conn:
        released = release_resolved_orders(conn, tenant_id=tenant_id, now=now)
    return {**summary.as_dict(), "orders_retried": released}


def _apply_stock(ctx: JobContext, path: Path) -> dict[str, Any]:
    first_lines = scan_stock_file(path)  # refuses a bad file before anything is written
    total = StockResult()
    rejected = 0
    batch: list[StockLine] = []

    def note(rejections: list[LineRejection]) -> None:
        nonlocal rejected
        rejected += len(rejections)
        room = MAX_REPORTED_ERRORS - len(total.rejections)
        total.rejections.extend(rejections[: max(room, 0)])

    def flush() -> None:
        with ctx.transaction() as conn:
            result = apply_stock(conn, tenant_id=ctx.job.tenant_id, lines=batch, now=ctx.now())
        total.updated += result.updated
        total.unchanged += result.unchanged
        note(result.rejections)
        batch.clear()

    lines = 0
    for item in read_stock_file(path):
        lines += 1
        if isinstance(item, LineRejection):
            note([item])
        elif first_lines.get(item.sku) != item.line:
            first = first_lines.get(item.sku)
            note([LineRejection(item.line, item.sku, f"duplicate sku {item.sku!r} (first on line {first})")])
        else:
            batch.append(item)
            if len(batch) >= STOCK_BATCH:
                flush()
    if batch:
        flush()
    errors = sorted(total.rejections, key=lambda r: r.line)
    return {
        "lines": lines,
        "updated": total.updated,
        "unchanged": total.unchanged,
        "rejected": rejected,
        "errors": [e.as_dict() for e in errors],
        "errors_truncated": rejected > len(errors),
    }


def apply_stock(
    conn: Connection, *, tenant_id: int, lines: Sequence[StockLine], now: datetime
) -> StockResult:
    """Set the quantities of ``lines`` (distinct skus) in the caller's transaction (module docstring)."""
    result = StockResult()
    if not lines:
        return result
    stmt = sa.select(products).where(
        products.c.tenant_id == tenant_id, products.c.sku.in_([line.sku for line in lines])
    )
    if is_postgres(conn):
        stmt = stmt.with_for_update()
    stored = {row.sku: row for row in conn.execute(stmt)}
    updates: list[dict[str, Any]] = []
    for line in lines:
        row = stored.get(line.sku)
        if row is None:
            result.rejections.append(LineRejection(line.line, line.sku, f"unknown sku {line.sku!r}"))
        elif row.quantity == line.quantity:
            result.unchanged += 1
        else:
            digest = replace(stored_product(row), quantity=line.quantity).content_hash()
            updates.append({"b_id": row.id, "b_quantity": line.quantity, "b_hash": digest})
    if updates:
        conn.execute(
            sa.update(products)
            .where(products.c.id == sa.bindparam("b_id"))
            .values(quantity=sa.bindparam("b_quantity"), content_hash=sa.bindparam("b_hash"), updated_at=now),
            updates,
        )
        mark_offers_dirty(conn, tenant_id, [u["b_id"] for u in updates], now=now)
        result.updated = len(updates)
    return result


def register(registry: JobRegistry) -> None:
    """Register the ``merchant.files.scan`` job handler."""
    registry.register(SCAN_JOB, handle_scan_job)
