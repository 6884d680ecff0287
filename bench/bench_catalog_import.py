"""Catalog import throughput against a raw executemany INSERT of the same rows.

Usage: ``python bench/bench_catalog_import.py [--rows N] [--database-url URL] [--batch-size N]
[--sequential]``

Generates a CSV of N products, then measures in the same run:

* ``import``: :func:`tradelane.services.catalog_import.import_catalog` end to end (pre-pass, parsing,
  validation, diff SELECT, INSERTs, outbox, run record) into an empty tenant;
* ``raw_executemany``: the same rows, already parsed into column dicts (not timed), inserted into
  ``products`` with SQLAlchemy Core ``executemany`` in batches of the same size, one transaction each.

By default the two are *interleaved*: after each import batch (from its progress callback) the raw side
inserts the same number of rows, and that time is subtracted from the import's. Both thus see the same
background load, which keeps the ratio meaningful on a busy machine; ``--sequential`` runs the raw side
after the import instead.

Without ``--database-url`` each side gets a fresh, migrated SQLite file in a temporary folder. With a
PostgreSQL URL the database is migrated to head if needed and each side uses its own new tenant, deleted
afterwards. Prints one JSON object; :func:`run` returns the same dict.

``ratio`` is import rows/s over raw rows/s (wall clock); ``ratio_cpu`` the same from process CPU time.
``peak_rss_mb_import`` is ``ru_maxrss`` right after the import (CSV generation streams to disk, raw
batches are small, so it is the import's peak); ``peak_rss_mb`` is the whole run's.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from tradelane.domain.catalog import Product
from tradelane.domain.catalog_rows import gtin_check_digit
from tradelane.logging import configure_logging
from tradelane.persistence import migrate
from tradelane.persistence.db import make_engine
from tradelane.persistence.tables import products, tenants
from tradelane.services.catalog_import import DEFAULT_BATCH_SIZE, import_catalog

HEADER = (
    "sku",
    "parent_sku",
    "title",
    "description",
    "brand",
    "gtin",
    "price",
    "currency",
    "quantity",
    "labels",
    "attr:color",
    "attr:size",
)
_COLORS = ("red", "green", "blue", "black", "white")
_SIZES = ("XS", "S", "M", "L", "XL")


def make_product(i: int) -> Product:
    """Row ``i`` of the generated catalog: groups of 4 variants share a parent key."""
    body = f"400{i:09d}"
    return Product(
        sku=f"SKU-{i:08d}",
        parent_sku=f"MODEL-{i // 4:07d}" if i % 5 else None,
        title=f"Product {i} in {_COLORS[i % 5]}",
        description=f"Generated product number {i}. Cotton, machine washable, made to last.",
        brand=f"Brand {i % 97}",
        gtin=body + str(gtin_check_digit(body)),
        price=Decimal(f"{(i % 9000) + 100}.{i % 100:02d}"),
        currency="EUR",
        quantity=i % 250,
        labels=("bench", f"season-{i % 4}"),
        attributes={"color": _COLORS[i % 5], "size": _SIZES[(i // 5) % 5]},
    )


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for i in range(rows):
            p = make_product(i)
            writer.writerow(
                (
                    p.sku,
                    p.parent_sku or "",
                    p.title,
                    p.description,
                    p.brand,
                    p.gtin,
                    format(p.price, "f") if p.price is not None else "",
                    p.currency,
                    p.quantity,
                    ";".join(p.labels),
                    p.attributes["color"],
                    p.attributes["size"],
                )
            )


def _raw_rows(start: int, end: int, tenant_id: int, now: datetime) -> list[dict[str, Any]]:
    """Rows ``[start, end)`` as column dicts, exactly what the import stores for them."""
    batch = []
    for i in range(start, end):
        p = make_product(i)
        batch.append(
            {
                "tenant_id": tenant_id,
                "sku": p.sku,
                "parent_sku": p.parent_sku,
                "title": p.title,
                "description": p.description,
                "brand": p.brand,
                "gtin": p.gtin,
                "price": p.price,
                "currency": p.currency,
                "quantity": p.quantity,
                "labels": list(p.labels),
                "attributes": p.attributes,
                "content_hash": p.content_hash(),
                "created_at": now,
                "updated_at": now,
            }
        )
    return batch


def _new_tenant(engine: Engine, now: datetime) -> int:
    with engine.begin() as conn:
        tenant_id: int = conn.execute(
            sa.insert(tenants)
            .values(name=f"bench-{uuid.uuid4().hex[:12]}", created_at=now)
            .returning(tenants.c.id)
        ).scalar_one()
    return tenant_id


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class _RawInserter:
    """The raw side: inserts generated rows ``[done, upto)`` with Core executemany, one transaction per
    batch, and accounts wall and CPU time of the ``execute`` calls only (building the dicts is free)."""

    def __init__(self, engine: Engine, tenant_id: int, batch_size: int, now: datetime) -> None:
        self.engine, self.tenant_id, self.batch_size, self.now = engine, tenant_id, batch_size, now
        self.done = 0
        self.seconds = self.cpu = 0.0
        self.statement = sa.insert(products)

    def insert_up_to(self, upto: int) -> None:
        while self.done < upto:
            end = min(upto, self.done + self.batch_size)
            batch = _raw_rows(self.done, end, self.tenant_id, self.now)
            started, cpu_started = time.perf_counter(), time.process_time()
            with self.engine.begin() as conn:
                conn.execute(self.statement, batch)
            self.seconds += time.perf_counter() - started
            self.cpu += time.process_time() - cpu_started
            self.done = end


def run(
    rows: int = 200_000,
    database_url: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    interleave: bool = True,
) -> dict[str, Any]:
    """Run both measurements and return the figures (see the module docstring). When nobody configured
    structlog yet, logging is set to WARNING on stderr so that the import's INFO line stays off stdout."""
    if not structlog.is_configured():
        configure_logging("WARNING")
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="tradelane-bench-") as folder:
        work = Path(folder)
        csv_path = work / "catalog.csv"
        write_csv(csv_path, rows)
        engines: list[Engine] = []
        cleanup: list[tuple[Engine, int]] = []

        def engine_for(name: str) -> Engine:
            engine = make_engine(database_url or f"sqlite:///{work / name}")
            migrate.upgrade(engine)
            engines.append(engine)
            return engine

        try:
            import_engine = engine_for("import.db")
            raw_engine = engine_for("raw.db")
            tenant_id = _new_tenant(import_engine, now)
            cleanup.append((import_engine, tenant_id))
            raw = _RawInserter(raw_engine, _new_tenant(raw_engine, now), batch_size, now)
            cleanup.append((raw_engine, raw.tenant_id))
            paused = paused_cpu = 0.0

            def interleaved(rows_done: int, _bytes_done: int, _total: int) -> None:
                # Runs the raw batches for the rows the import just did; its time is not the import's.
                nonlocal paused, paused_cpu
                started, cpu_started = time.perf_counter(), time.process_time()
                raw.insert_up_to(rows_done)
                paused += time.perf_counter() - started
                paused_cpu += time.process_time() - cpu_started

            started, cpu_started = time.perf_counter(), time.process_time()
            summary = import_catalog(
                import_engine,
                tenant_id=tenant_id,
                path=csv_path,
                now=now,
                batch_size=batch_size,
                progress=interleaved if interleave else None,
            )
            import_seconds = time.perf_counter() - started - paused
            import_cpu = time.process_time() - cpu_started - paused_cpu
            rss_import = _peak_rss_mb()
            raw.insert_up_to(rows)
        finally:
            if database_url:
                for engine, owner in cleanup:
                    with engine.begin() as conn:
                        conn.execute(sa.delete(tenants).where(tenants.c.id == owner))
            for engine in engines:
                engine.dispose()
    import_rate = rows / import_seconds
    raw_rate = rows / raw.seconds
    return {
        "rows": rows,
        "database": "postgresql" if database_url and database_url.startswith("postgres") else "sqlite",
        "batch_size": batch_size,
        "interleaved": interleave,
        "import": {
            "seconds": round(import_seconds, 3),
            "rows_per_s": round(import_rate),
            "cpu_seconds": round(import_cpu, 3),
            "created": summary.created,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "rejected": summary.rejected,
        },
        "raw_executemany": {
            "seconds": round(raw.seconds, 3),
            "rows_per_s": round(raw_rate),
            "cpu_seconds": round(raw.cpu, 3),
        },
        "ratio": round(import_rate / raw_rate, 3),
        # The same ratio from this process's CPU time. With PostgreSQL the server's work is not counted:
        # use "ratio" there.
        "ratio_cpu": round(raw.cpu / import_cpu, 3) if import_cpu > 0 else None,
        "peak_rss_mb_import": rss_import,
        "peak_rss_mb": _peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument(
        "--sequential", action="store_true", help="run the raw inserts after the import, not interleaved"
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.batch_size < 1:
        parser.error("--rows and --batch-size must be positive")
    result = run(args.rows, args.database_url, args.batch_size, interleave=not args.sequential)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
