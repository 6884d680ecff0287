"""Catalog import throughput against raw executemany INSERTs of the same rows.

Usage: ``python bench/bench_catalog_import.py [--rows N] [--database-url URL] [--batch-size N]
[--sequential] [--no-reimport] [--floors-only] [--rounds N]``

Generates a CSV of N products, then measures in the same run:

* ``import``: :func:`tradelane.services.catalog_import.import_catalog` end to end (pre-pass, parsing,
  validation, diff SELECT, INSERTs, outbox, run record) into an empty tenant;
* ``raw_driver_executemany``: the same rows, already converted (not timed) into the tuples the DB-API
  driver stores (each value through its column type's bind processor: money as text on SQLite, naive
  UTC datetimes, JSON text...), inserted with the driver cursor's own ``executemany`` (the engine's
  ``conn.connection.cursor()``), in batches of the same size, one transaction each. This is the floor:
  no Python work per row beyond the driver's;
* ``raw_core_executemany``: the same rows as column dicts (not timed), inserted with SQLAlchemy Core
  ``executemany`` (its per-row parameter and type processing is timed), same batches;
* PostgreSQL only, ``raw_copy``: the same pre-converted rows streamed with ``COPY products ... FROM
  STDIN`` (psycopg ``cursor.copy()``) into the same table with its indexes, same batches, one
  transaction each (interleaved like the others); and ``raw_copy_one_transaction``: the same, every row
  in one transaction (run after the import, not interleaved): the bulk-load floor;
* ``reimport_1pct_changed`` (unless ``--no-reimport``): the import again into the now full tenant, from
  the same file with one row in 100 changed (half a new price, half a new title): the everyday case.
  It runs alone after the raw loads; its ratios are against the raw loads of the whole file.

By default the three are *interleaved*: after each import batch (from its progress callback) each raw
side inserts the same number of rows, and that time is subtracted from the import's. All thus see the
same background load, which keeps the ratios meaningful on a busy machine; ``--sequential`` runs the raw
sides after the import instead.

Without ``--database-url`` each side gets a fresh, migrated SQLite file in a temporary folder. A
PostgreSQL URL names a *server* (e.g. ``postgresql://postgres@127.0.0.1:5432/test``, :data:`DEFAULT_PG`):
the run creates its own database there (``tradelane_bench_cat_<random>``, reported as ``pg_database``),
migrates it, gives each side its own tenant and drops the database afterwards; the database of the URL
itself is only used to connect, never written to. A SQLite URL is used as it is (every side in that file,
each its own tenant, deleted afterwards). Prints one JSON object; :func:`run` returns the same dict.

``--floors-only`` measures only the sides the ratios against the floor need: the import, the driver's
``executemany`` and, on PostgreSQL, the batched ``COPY`` (no Core ``executemany``, no one-transaction
``COPY``): what the 1,000,000-row re-import run of ``bench/run.py`` uses.

``ratio`` is import rows/s over raw driver rows/s (wall clock), ``ratio_vs_core`` the same over Core;
``ratio_cpu`` and ``ratio_cpu_vs_core`` are the same from process CPU time (on PostgreSQL the server's
work is not counted: read the wall-clock ratios there). ``peak_rss_mb_import`` is ``ru_maxrss`` right
after the import (CSV generation streams to disk, raw batches are small, so it is the import's peak);
``peak_rss_mb`` is the whole run's (it includes the re-import).

``--rounds N`` (N > 1) repeats the whole measurement N times, back to back, and prints
``{"rounds": [...], "median": {...}}``: every run's figures, and the median of each ratio and rate over
the rounds (on a shared machine the load moves between rounds; the median is the figure to quote).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from tradelane.domain.catalog import Product
from tradelane.domain.catalog_rows import gtin_check_digit
from tradelane.logging import configure_logging
from tradelane.persistence import migrate
from tradelane.persistence.db import json_dumps, make_engine, normalize_url
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
#: The PostgreSQL server ``make bench`` uses when none is given (the run creates and drops its own
#: database there).
DEFAULT_PG = os.environ.get("TRADELANE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
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


def changed_product(i: int) -> Product:
    """Row ``i`` as the re-import file gives it when it changed: every other one a new price (its offers
    become dirty), the others a new title only."""
    p = make_product(i)
    if i % (2 * CHANGED_EVERY) == 0:
        assert p.price is not None
        return replace(p, price=p.price + 1)
    return replace(p, title=f"{p.title} (new edition)")


#: The re-import file changes one row in this many (1 %).
CHANGED_EVERY = 100


def write_csv(path: Path, rows: int, *, changed: bool = False) -> None:
    """The generated catalog; with ``changed``, one row in :data:`CHANGED_EVERY` differs."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for i in range(rows):
            p = changed_product(i) if changed and i % CHANGED_EVERY == 0 else make_product(i)
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


def _create_database(server_url: str) -> tuple[str, str]:
    """A new, empty database on the server of ``server_url``: (name, URL)."""
    admin = sa.create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"tradelane_bench_cat_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    url = sa.engine.make_url(normalize_url(server_url)).set(database=name)
    return name, url.render_as_string(hide_password=False)


def _drop_database(server_url: str, name: str) -> None:
    admin = sa.create_engine(normalize_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class _Baseline:
    """A raw side: inserts generated rows ``[done, upto)`` in batches of ``batch_size``, one transaction
    each, and accounts wall and CPU time of the transaction only (building the rows is free)."""

    def __init__(self, engine: Engine, tenant_id: int, batch_size: int, now: datetime) -> None:
        self.engine, self.tenant_id, self.batch_size, self.now = engine, tenant_id, batch_size, now
        self.done = 0
        self.seconds = self.cpu = 0.0

    def rows(self, start: int, end: int) -> Any:
        raise NotImplementedError

    def write(self, conn: Connection, rows: Any) -> None:
        raise NotImplementedError

    def insert_up_to(self, upto: int) -> None:
        while self.done < upto:
            end = min(upto, self.done + self.batch_size)
            batch = self.rows(self.done, end)
            started, cpu_started = time.perf_counter(), time.process_time()
            with self.engine.begin() as conn:
                self.write(conn, batch)
            self.seconds += time.perf_counter() - started
            self.cpu += time.process_time() - cpu_started
            self.done = end

    def figures(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.done / self.seconds) if self.seconds > 0 else None,
            "cpu_seconds": round(self.cpu, 3),
        }


class _CoreInserter(_Baseline):
    """SQLAlchemy Core ``executemany`` of column dicts (type processing happens inside the timing)."""

    statement = sa.insert(products)

    def rows(self, start: int, end: int) -> list[dict[str, Any]]:
        return _raw_rows(start, end, self.tenant_id, self.now)

    def write(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        conn.execute(self.statement, rows)


class _DriverInserter(_Baseline):
    """The DB-API cursor's own ``executemany`` of tuples already converted to what the driver stores:
    every value went through its column type's bind processor outside the timing (on PostgreSQL the JSON
    columns are JSON text cast to JSONB by the statement). This is the floor any import can reach."""

    def __init__(self, engine: Engine, tenant_id: int, batch_size: int, now: datetime) -> None:
        super().__init__(engine, tenant_id, batch_size, now)
        dialect = engine.dialect
        if dialect.paramstyle == "qmark":
            marker = "?"
        elif dialect.paramstyle in ("format", "pyformat"):
            marker = "%s"
        else:
            raise RuntimeError(f"unsupported DB-API paramstyle {dialect.paramstyle!r}")
        postgres = dialect.name == "postgresql"
        self.columns = [column for column in products.columns if column.name != "id"]
        self.converters: list[Callable[[Any], Any] | None] = []
        placeholders = []
        for column in self.columns:
            if postgres and isinstance(column.type.dialect_impl(dialect), sa.JSON):
                self.converters.append(json_dumps)
                placeholders.append(f"CAST({marker} AS JSONB)")
            else:
                self.converters.append(column.type.dialect_impl(dialect).bind_processor(dialect))
                placeholders.append(marker)
        quote = dialect.identifier_preparer.quote
        self.sql = (
            f"INSERT INTO {quote(products.name)} ({', '.join(quote(c.name) for c in self.columns)}) "
            f"VALUES ({', '.join(placeholders)})"
        )

    def rows(self, start: int, end: int) -> list[tuple[Any, ...]]:
        converted = []
        for row in _raw_rows(start, end, self.tenant_id, self.now):
            values = []
            for column, convert in zip(self.columns, self.converters, strict=True):
                value = row[column.name]
                values.append(value if convert is None or value is None else convert(value))
            converted.append(tuple(values))
        return converted

    def write(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(self.sql, rows)
        finally:
            cursor.close()


class _CopyInserter(_DriverInserter):
    """PostgreSQL only: the same pre-converted tuples streamed with ``COPY products (...) FROM STDIN``
    (psycopg's ``cursor.copy()``, text format), into the same table with its indexes and constraints,
    one ``COPY`` per batch of the same size, one transaction each. The floor of a bulk load."""

    def __init__(self, engine: Engine, tenant_id: int, batch_size: int, now: datetime) -> None:
        super().__init__(engine, tenant_id, batch_size, now)
        self.converters = [
            json_dumps if isinstance(column.type.dialect_impl(engine.dialect), sa.JSON) else None
            for column in self.columns
        ]
        quote = engine.dialect.identifier_preparer.quote
        self.sql = (
            f"COPY {quote(products.name)} ({', '.join(quote(c.name) for c in self.columns)}) FROM STDIN"
        )

    def write(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(self.sql) as copy:
            for row in rows:
                copy.write_row(row)


class _CopyOneTransaction(_CopyInserter):
    """PostgreSQL only: every row in one transaction (a ``COPY`` per batch-sized chunk, rows built
    outside the timing): the bulk-load floor without per-batch commits. Not interleaved: run after."""

    def insert_up_to(self, upto: int) -> None:
        with self.engine.begin() as conn:
            while self.done < upto:
                end = min(upto, self.done + self.batch_size)
                batch = self.rows(self.done, end)
                started, cpu_started = time.perf_counter(), time.process_time()
                self.write(conn, batch)
                self.seconds += time.perf_counter() - started
                self.cpu += time.process_time() - cpu_started
                self.done = end
            started, cpu_started = time.perf_counter(), time.process_time()
        self.seconds += time.perf_counter() - started  # the commit
        self.cpu += time.process_time() - cpu_started


def run(
    rows: int = 200_000,
    database_url: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    interleave: bool = True,
    reimport: bool = True,
    floors_only: bool = False,
) -> dict[str, Any]:
    """Run the measurements and return the figures (see the module docstring). ``database_url``: None
    (a SQLite file per side), a PostgreSQL server (the run's own database is created there and dropped
    afterwards) or a SQLite URL (used as it is). When nobody configured structlog yet, logging is set to
    WARNING on stderr so that the import's INFO line stays off stdout."""
    if not structlog.is_configured():
        configure_logging("WARNING")
    now = datetime.now(UTC)
    postgres = database_url is not None and database_url.startswith("postgres")
    database = _create_database(database_url) if postgres and database_url is not None else None
    try:
        with tempfile.TemporaryDirectory(prefix="tradelane-bench-") as folder:
            work = Path(folder)
            measured = _measure(
                work,
                rows,
                database[1] if database else database_url,
                batch_size,
                interleave,
                reimport,
                now,
                floors_only,
            )
    finally:
        if database is not None and database_url is not None:
            _drop_database(database_url, database[0])
    result: dict[str, Any] = {
        "rows": rows,
        "database": "postgresql" if postgres else "sqlite",
    }
    if database is not None:
        result["pg_database"] = database[0]  # created for this run, dropped at its end
    result.update(measured)
    return result


def _measure(
    work: Path,
    rows: int,
    url: str | None,
    batch_size: int,
    interleave: bool,
    reimport: bool,
    now: datetime,
    floors_only: bool,
) -> dict[str, Any]:
    """The measurements of :func:`run` in ``work`` (a temporary folder), against ``url`` (None: a new
    SQLite file per side; otherwise every side in that database, each its own tenant)."""
    csv_path = work / "catalog.csv"
    write_csv(csv_path, rows)
    engines: list[Engine] = []
    cleanup: list[tuple[Engine, int]] = []

    def engine_for(name: str) -> Engine:
        engine = make_engine(url or f"sqlite:///{work / name}")
        if url is None or not engines:  # a shared database is migrated once
            migrate.upgrade(engine)
        engines.append(engine)
        return engine

    try:
        import_engine = engine_for("import.db")
        tenant_id = _new_tenant(import_engine, now)
        cleanup.append((import_engine, tenant_id))
        postgres = import_engine.dialect.name == "postgresql"
        kinds: list[tuple[str, type[_Baseline]]] = [("driver.db", _DriverInserter)]
        if not floors_only:
            kinds.append(("core.db", _CoreInserter))
        if postgres:
            kinds.append(("copy", _CopyInserter))
        baselines: dict[type[_Baseline], _Baseline] = {}
        for name, kind in kinds:
            engine = engine_for(name)
            baselines[kind] = kind(engine, _new_tenant(engine, now), batch_size, now)
            cleanup.append((engine, baselines[kind].tenant_id))
        driver = baselines[_DriverInserter]
        core = baselines.get(_CoreInserter)
        copy = baselines.get(_CopyInserter)
        paused = paused_cpu = 0.0

        def interleaved(rows_done: int, _bytes_done: int, _total: int) -> None:
            # Runs the raw batches for the rows the import just did; their time is not the import's.
            nonlocal paused, paused_cpu
            started, cpu_started = time.perf_counter(), time.process_time()
            for baseline in baselines.values():
                baseline.insert_up_to(rows_done)
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
        for baseline in baselines.values():
            baseline.insert_up_to(rows)
        one_copy: _CopyOneTransaction | None = None
        if postgres and not floors_only:
            engine = engine_for("copy-one")
            one_copy = _CopyOneTransaction(engine, _new_tenant(engine, now), batch_size, now)
            cleanup.append((engine, one_copy.tenant_id))
            one_copy.insert_up_to(rows)
        again: dict[str, Any] | None = None
        if reimport:
            changed_path = work / "catalog-changed.csv"
            write_csv(changed_path, rows, changed=True)
            started, cpu_started = time.perf_counter(), time.process_time()
            resummary = import_catalog(
                import_engine, tenant_id=tenant_id, path=changed_path, now=now, batch_size=batch_size
            )
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            again = {
                "seconds": round(seconds, 3),
                "rows_per_s": round(rows / seconds),
                "cpu_seconds": round(cpu, 3),
                "created": resummary.created,
                "updated": resummary.updated,
                "unchanged": resummary.unchanged,
                "rejected": resummary.rejected,
            }
    finally:
        if url is not None and not postgres:  # a given SQLite file: leave it as it was
            for engine, owner in cleanup:
                with engine.begin() as conn:
                    conn.execute(sa.delete(tenants).where(tenants.c.id == owner))
        for engine in engines:
            engine.dispose()
    import_rate = rows / import_seconds
    result: dict[str, Any] = {
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
        "raw_driver_executemany": driver.figures(),
        "ratio": round(import_rate / (rows / driver.seconds), 3),
        # The same ratio from this process's CPU time. With PostgreSQL the server's work is not counted:
        # use the wall-clock ratios there.
        "ratio_cpu": round(driver.cpu / import_cpu, 3) if import_cpu > 0 else None,
        "peak_rss_mb_import": rss_import,
        "peak_rss_mb": _peak_rss_mb(),
    }
    if core is not None:
        result["raw_core_executemany"] = core.figures()
        result["ratio_vs_core"] = round(import_rate / (rows / core.seconds), 3)
        result["ratio_cpu_vs_core"] = round(core.cpu / import_cpu, 3) if import_cpu > 0 else None
    if copy is not None:
        result["raw_copy"] = copy.figures()
        result["ratio_vs_copy"] = round(import_rate / (rows / copy.seconds), 3)
        result["ratio_cpu_vs_copy"] = round(copy.cpu / import_cpu, 3) if import_cpu > 0 else None
    if one_copy is not None:
        result["raw_copy_one_transaction"] = one_copy.figures()
        result["ratio_vs_copy_one_transaction"] = round(import_rate / (rows / one_copy.seconds), 3)
    if again is not None:
        # The everyday case: the same catalog again with 1 % of the rows changed, against the same raw
        # loads of the whole file (what a full rewrite would cost at the floor).
        result["reimport_1pct_changed"] = again
        rate = again["rows_per_s"]
        result["reimport_ratio"] = round(rate / (rows / driver.seconds), 3)
        # Not interleaved (it runs alone, after the raw loads): on a busy box read the CPU ratio too.
        result["reimport_ratio_cpu"] = (
            round(driver.cpu / again["cpu_seconds"], 3) if again["cpu_seconds"] else None
        )
        if copy is not None:
            result["reimport_ratio_vs_copy"] = round(rate / (rows / copy.seconds), 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument(
        "--sequential", action="store_true", help="run the raw inserts after the import, not interleaved"
    )
    parser.add_argument(
        "--no-reimport", action="store_true", help="skip the re-import of the file with 1 %% of rows changed"
    )
    parser.add_argument(
        "--floors-only",
        action="store_true",
        help="only the sides the floor ratios need: no Core executemany, no one-transaction COPY",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat N times and report medians")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.batch_size < 1 or args.rounds < 1:
        parser.error("--rows, --batch-size and --rounds must be positive")
    results = [
        run(
            args.rows,
            args.database_url,
            args.batch_size,
            interleave=not args.sequential,
            reimport=not args.no_reimport,
            floors_only=args.floors_only,
        )
        for _ in range(args.rounds)
    ]
    output = results[0] if args.rounds == 1 else {"rounds": results, "median": medians(results)}
    sys.stdout.write(json.dumps(output) + "\n")
    return 0


def medians(results: list[dict[str, Any]]) -> dict[str, float]:
    """The median over rounds of every ratio and of every side's ``rows_per_s`` and ``cpu_seconds``
    (keys ``<side>.rows_per_s``...)."""
    figures: dict[str, list[float]] = {}
    for result in results:
        for key, value in result.items():
            if key.startswith(("ratio", "reimport_ratio")) and isinstance(value, (int, float)):
                figures.setdefault(key, []).append(value)
            elif isinstance(value, dict):
                for name in ("rows_per_s", "cpu_seconds"):
                    if isinstance(value.get(name), (int, float)):
                        figures.setdefault(f"{key}.{name}", []).append(value[name])
    return {key: round(statistics.median(values), 3) for key, values in figures.items()}


if __name__ == "__main__":
    raise SystemExit(main())
