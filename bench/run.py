"""Run every benchmark and print one JSON object (``make bench``).

Each benchmark compares tradelane with a raw baseline measured in the same run on the same machine;
read the ratios, not the absolute times (CI boxes are noisy 2-core machines).

Without flags it runs every figure issue 12 names: the sync engine (PostgreSQL), the catalog import at
``--rows`` on SQLite and on PostgreSQL (against ``executemany`` and ``COPY``), the catalog re-import of
``--reimport-rows`` (1,000,000) rows with 1 % changed with its peak RSS (``catalog_reimport``, on the
``--reimport-backends``), the Mirakl and Amazon offer syncs (SQLite), the order intake on SQLite and on
PostgreSQL, and the two inbound webhooks at 200 and 500 req/s (PostgreSQL). Every PostgreSQL benchmark
creates its own database on the server of ``--pg-url`` (default :data:`DEFAULT_PG`) and drops it at the
end; none writes into the database the URL names.

The re-import run is on PostgreSQL too by default (``--reimport-backends sqlite`` skips it): its write
path (COPY into a staging table, a set-wise upsert) and its memory are not SQLite's, and it costs about
2.5-3 minutes on a quiet box (about 1 for SQLite), extrapolated from 50,000-row runs and the 1M figures
of docs/benchmarks.md.

The JSON ends with ``summary``: each issue-12 goal with its figure from this run and whether it is met,
then the extra figures (some with a goal of their own). ``bench_seconds`` is the wall time each
benchmark took. Progress lines go to stderr; stdout carries the JSON object only.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
#: The PostgreSQL server the PostgreSQL benchmarks use when ``--pg-url`` is not given (each creates and
#: drops its own database there).
DEFAULT_PG = os.environ.get("TRADELANE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
KINDS = (
    "catalog_import",
    "catalog_reimport",
    "sync_engine",
    "mirakl_offers",
    "amazon_offers",
    "order_intake",
    "webhooks",
)
WEBHOOK_RATES = (200, 500)
BACKENDS = ("sqlite", "postgresql")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="tradelane benchmarks: every issue-12 ratio, one JSON object"
    )
    parser.add_argument("--only", action="append", choices=KINDS, help="run only these (repeatable)")
    parser.add_argument("--rows", type=int, default=200_000, help="catalog import rows")
    parser.add_argument(
        "--reimport-rows",
        type=int,
        default=1_000_000,
        help="catalog_reimport: rows imported, then re-imported with 1 %% changed; peak RSS at that size",
    )
    parser.add_argument(
        "--reimport-backends",
        default=",".join(BACKENDS),
        help="catalog_reimport on these, comma-separated: sqlite, postgresql (default both)",
    )
    parser.add_argument("--jobs", type=int, default=20_000, help="sync engine jobs")
    parser.add_argument("--products", type=int, default=100_000, help="Mirakl and Amazon offers products")
    parser.add_argument("--orders", type=int, default=5_000, help="order intake orders")
    parser.add_argument("--webhook-seconds", type=float, default=10.0, help="each open-loop webhook run")
    parser.add_argument(
        "--pg-url",
        default=None,
        help=f"PostgreSQL server for the PostgreSQL benchmarks (default {DEFAULT_PG})",
    )
    args = parser.parse_args(argv)
    backends = tuple(b.strip() for b in args.reimport_backends.split(",") if b.strip())
    unknown = set(backends) - set(BACKENDS)
    if unknown or not backends:
        parser.error(f"--reimport-backends: choose among {', '.join(BACKENDS)}, not {sorted(unknown)}")
    args.reimport_backends = backends
    for name in ("rows", "reimport_rows", "jobs", "products", "orders"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.webhook_seconds <= 0:
        parser.error("--webhook-seconds must be positive")
    return args


def load_benchmark(kind: str) -> ModuleType:
    """The module ``bench/bench_<kind>.py`` (``bench/`` must be on ``sys.path``: :func:`main` puts it
    there, the modules import their siblings)."""
    return importlib.import_module(f"bench_{kind}")


def reimport_in_own_process(rows: int, database_url: str | None) -> dict[str, Any]:
    """``bench/bench_catalog_import.py --rows N --floors-only`` in a process of its own, so that its
    ``peak_rss_mb`` is that run's alone (``ru_maxrss`` is per process): the import of ``rows`` rows
    into an empty tenant (interleaved with the driver ``executemany`` and, on PostgreSQL, the batched
    ``COPY``), then the re-import with 1 % changed. Its stderr goes to ours."""
    command = [sys.executable, str(BENCH / "bench_catalog_import.py"), "--rows", str(rows), "--floors-only"]
    if database_url is not None:
        command += ["--database-url", database_url]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(
    args: argparse.Namespace,
    load: Callable[[str], ModuleType] = load_benchmark,
    reimport: Callable[[int, str | None], dict[str, Any]] = reimport_in_own_process,
) -> dict[str, Any]:
    """Run the selected benchmarks with the sizes of ``args`` and return their figures, then
    ``bench_seconds`` and ``summary``. ``load`` gives a benchmark's module by kind, ``reimport`` runs
    the re-import measurement (rows, database URL or None for SQLite)."""
    selected = set(args.only or KINDS)
    pg_url: str = args.pg_url or DEFAULT_PG
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}

    def timed(key: str, measurement: Callable[[], dict[str, Any]]) -> None:
        print(f"bench: {key} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        results[key] = measurement()
        seconds[key] = round(time.perf_counter() - started, 1)
        print(f"bench: {key} done in {seconds[key]} s", file=sys.stderr, flush=True)

    if "catalog_import" in selected:
        catalog = load("catalog_import")
        # Its own re-import at --rows only when the --reimport-rows run is not part of this run.
        again = "catalog_reimport" not in selected
        timed("catalog_import", lambda: catalog.run(args.rows, None, reimport=again))
        timed("catalog_import_postgresql", lambda: catalog.run(args.rows, pg_url, reimport=again))
    if "catalog_reimport" in selected:
        if "sqlite" in args.reimport_backends:
            timed("catalog_reimport", lambda: reimport(args.reimport_rows, None))
        if "postgresql" in args.reimport_backends:
            timed("catalog_reimport_postgresql", lambda: reimport(args.reimport_rows, pg_url))
    if "sync_engine" in selected:
        engine = load("sync_engine")
        timed("sync_engine", lambda: engine.run(args.jobs, pg_url))
    if "mirakl_offers" in selected:
        mirakl = load("mirakl_offers")
        timed("mirakl_offers", lambda: mirakl.run(args.products, None))
    if "amazon_offers" in selected:
        amazon = load("amazon_offers")
        timed("amazon_offers", lambda: amazon.run(args.products, None))
    if "order_intake" in selected:
        intake = load("order_intake")
        timed("order_intake", lambda: intake.run(args.orders, None))
        timed("order_intake_postgresql", lambda: intake.run(args.orders, pg_url))
    if "webhooks" in selected:
        webhooks = load("webhooks")
        timed("webhooks", lambda: webhooks.run(WEBHOOK_RATES, args.webhook_seconds, pg_url))
    results["bench_seconds"] = seconds
    results["summary"] = summary(results)
    return results


@dataclass(frozen=True)
class Figure:
    """One figure of the summary: where it is in the results (keys, outermost first), what it is, and
    its goal if it has one (``value <op> limit``, op ``>=`` or ``<=``, or ``==`` for a flag)."""

    name: str
    what: str
    path: tuple[str, ...]
    op: str | None = None
    limit: float | bool | None = None

    def report(self, results: dict[str, Any]) -> dict[str, Any]:
        value: Any = results
        for key in self.path:
            value = value.get(key) if isinstance(value, dict) else None
        entry: dict[str, Any] = {"what": self.what, "value": value, "from": ".".join(self.path)}
        if isinstance(results.get(self.path[0]), dict) and "rows" in results[self.path[0]]:
            entry["rows"] = results[self.path[0]]["rows"]
        if self.op is not None:
            entry["goal"] = f"{self.op} {self.limit}"
            entry["met"] = None if value is None else _meets(value, self.op, self.limit)
        if value is None:
            entry["note"] = "not measured in this run"
        return entry


def _meets(value: Any, op: str, limit: float | bool | None) -> bool:
    if op == ">=":
        return bool(value >= limit)
    if op == "<=":
        return bool(value <= limit)
    if op == "==":
        return bool(value == limit)
    raise ValueError(f"unknown comparison {op!r}")


#: Issue 12's goals, each a ratio (or latency) of this run.
GOALS = (
    Figure(
        "sync_engine_vs_raw_batch_50",
        "sync engine, 2 workers, PostgreSQL: tradelane jobs/s / raw claim+ack batches of 50",
        ("sync_engine", "ratio_vs_raw_batch"),
        ">=",
        0.25,
    ),
    Figure(
        "catalog_import_postgresql_vs_copy",
        "catalog import, PostgreSQL: tradelane rows/s / COPY into the same table (batched like the import)",
        ("catalog_import_postgresql", "ratio_vs_copy"),
        ">=",
        0.30,
    ),
    Figure(
        "catalog_import_sqlite_vs_executemany",
        "catalog import, SQLite: tradelane rows/s / sqlite3 executemany",
        ("catalog_import", "ratio"),
        ">=",
        0.30,
    ),
    Figure(
        "order_intake_postgresql_vs_raw",
        "order intake, PostgreSQL: tradelane orders/s / raw driver inserts, same transaction size",
        ("order_intake_postgresql", "ratio"),
        ">=",
        0.25,
    ),
    Figure(
        "order_intake_sqlite_vs_raw",
        "order intake, SQLite: tradelane orders/s / raw sqlite3 inserts, same transaction size",
        ("order_intake", "ratio"),
        ">=",
        0.25,
    ),
    Figure(
        "webhook_merchant_p99_ms_at_500_rps",
        "signed merchant webhook, PostgreSQL, open loop 500 req/s: tradelane p99 (ms)",
        ("webhooks", "merchant_500_rps", "tradelane", "p99_ms"),
        "<=",
        20.0,
    ),
    Figure(
        "webhook_generic_p99_ms_at_500_rps",
        "generic inbound webhook, PostgreSQL, open loop 500 req/s: tradelane p99 (ms)",
        ("webhooks", "generic_500_rps", "tradelane", "p99_ms"),
        "<=",
        20.0,
    ),
)

#: The figures beside the goals: other baselines, the everyday re-import, memory, webhook details.
EXTRAS = (
    Figure(
        "sync_engine_vs_raw_batch_400",
        "sync engine: tradelane / raw batches at the engine's largest claim size (max_batch_size)",
        ("sync_engine", "ratio_vs_raw_batch_max"),
    ),
    Figure(
        "sync_engine_vs_raw_single",
        "sync engine: tradelane / raw one job per transaction (the old baseline)",
        ("sync_engine", "ratio_vs_raw_single"),
    ),
    Figure(
        "catalog_reimport_sqlite_vs_executemany",
        "catalog re-import, 1 % changed, SQLite: rows/s / executemany of the whole file",
        ("catalog_reimport", "reimport_ratio"),
    ),
    Figure(
        "catalog_reimport_sqlite_cpu",
        "catalog re-import, 1 % changed, SQLite: the same from CPU time",
        ("catalog_reimport", "reimport_ratio_cpu"),
    ),
    Figure(
        "catalog_reimport_postgresql_vs_copy",
        "catalog re-import, 1 % changed, PostgreSQL: rows/s / batched COPY of the whole file",
        ("catalog_reimport_postgresql", "reimport_ratio_vs_copy"),
    ),
    Figure(
        "catalog_reimport_postgresql_vs_executemany",
        "catalog re-import, 1 % changed, PostgreSQL: rows/s / driver executemany of the whole file",
        ("catalog_reimport_postgresql", "reimport_ratio"),
    ),
    Figure(
        "catalog_peak_rss_mb_sqlite",
        "catalog import + re-import at --reimport-rows, SQLite: peak RSS of its process (MB)",
        ("catalog_reimport", "peak_rss_mb"),
        "<=",
        500,
    ),
    Figure(
        "catalog_peak_rss_mb_postgresql",
        "catalog import + re-import at --reimport-rows, PostgreSQL: peak RSS of its process (MB)",
        ("catalog_reimport_postgresql", "peak_rss_mb"),
        "<=",
        500,
    ),
    Figure(
        "webhook_merchant_p99_ms_at_200_rps",
        "signed merchant webhook, 200 req/s: tradelane p99 (ms)",
        ("webhooks", "merchant_200_rps", "tradelane", "p99_ms"),
    ),
    Figure(
        "webhook_generic_p99_ms_at_200_rps",
        "generic inbound webhook, 200 req/s: tradelane p99 (ms)",
        ("webhooks", "generic_200_rps", "tradelane", "p99_ms"),
    ),
    Figure(
        "webhook_merchant_p99_ratio_at_500_rps",
        "signed merchant webhook, 500 req/s: p99 tradelane / raw ASGI app",
        ("webhooks", "merchant_500_rps", "p99_ratio"),
    ),
    Figure(
        "webhook_generic_p99_ratio_at_500_rps",
        "generic inbound webhook, 500 req/s: p99 tradelane / raw ASGI app",
        ("webhooks", "generic_500_rps", "p99_ratio"),
    ),
    Figure(
        "webhooks_every_acknowledged_event_stored",
        "webhooks: every event answered 202 is stored",
        ("webhooks", "durability", "every_acknowledged_event_stored"),
        "==",
        True,
    ),
)


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """Issue 12's goals with this run's figures and whether each is met (None: not measured), the
    extra figures, and a count of the goals met among those measured."""
    goals = {figure.name: figure.report(results) for figure in GOALS}
    measured = [entry for entry in goals.values() if entry["met"] is not None]
    return {
        "goals": goals,
        "goals_met": f"{sum(entry['met'] for entry in measured)} of {len(measured)} measured "
        f"({len(goals) - len(measured)} not measured)",
        "extra": {figure.name: figure.report(results) for figure in EXTRAS},
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the benchmark modules and their siblings
    print(json.dumps(measure(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
