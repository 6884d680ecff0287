"""What the marketplace offer benchmarks (``bench_mirakl_offers.py``, ``bench_amazon_offers.py``) share:
the simulated clock, the wall/CPU meter, the rig's drive loop and database observations, the phase
arithmetic (seconds, ratios, rates), the catalog change plan, the fresh database, and the command line.

Each bench keeps what is its marketplace's own: the sandbox, its events, its floors and its report.
Importing this module has no side effects.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import json
import resource
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from tradelane.domain.channels import Flow, LifecycleState
from tradelane.logging import configure_logging
from tradelane.persistence.db import normalize_url
from tradelane.persistence.tables import channels, jobs, offer_bindings, products, tenants
from tradelane.security.crypto import KeyRing
from tradelane.services.outbox import mark_offers_dirty
from tradelane.sync.jobs import JobSpec, JobState, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

#: Upper bound on simulation events per phase (each is one worker burst or one clock jump).
MAX_EVENTS = 10_000

# ------------------------------------------------------------------------------------ clock and meter


class SimClock:
    """The simulated clock shared by the engine (``clock()``) and the sandbox (kept in step)."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current


def go_live(conn: sa.Connection, channel_id: int) -> None:
    """Put the bench's channel straight in Live, as an operator would after Setup and Testing (a new
    channel starts in Setup, where nothing is sent). The lifecycle is not what these benches measure."""
    conn.execute(
        sa.update(channels)
        .where(channels.c.id == channel_id)
        .values(lifecycle_state=LifecycleState.LIVE.value)
    )


def _other_threads_cpu() -> float:
    """CPU seconds of every thread but this one (the sandbox server; the heartbeat is negligible)."""
    return time.process_time() - time.thread_time()


@dataclass
class Meter:
    """Wall-clock and CPU accounting of one phase. The bench's own checks and the sandbox transitions
    it triggers run on the main thread too; they are measured and taken out of tradelane's share."""

    wall_start: float = 0.0
    cpu_start: float = 0.0
    other_cpu_start: float = 0.0
    sandbox_ticks: float = 0.0  # wall of sandbox transitions run on the main thread by clock jumps
    sandbox_ticks_cpu: float = 0.0
    bench_checks: float = 0.0  # wall of the bench's own predicates and bookkeeping
    bench_checks_cpu: float = 0.0
    main_clock: int | None = None  # the main thread's CPU clock, readable from the server thread

    def start(self) -> None:
        self.wall_start = time.perf_counter()
        self.cpu_start = time.thread_time()
        self.main_clock = time.pthread_getcpuclockid(threading.get_ident())
        self.other_cpu_start = _other_threads_cpu()
        self.sandbox_ticks = self.sandbox_ticks_cpu = 0.0
        self.bench_checks = self.bench_checks_cpu = 0.0

    @contextmanager
    def sandbox(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.sandbox_ticks += time.perf_counter() - wall
            self.sandbox_ticks_cpu += time.thread_time() - cpu

    @contextmanager
    def bench(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.bench_checks += time.perf_counter() - wall
            self.bench_checks_cpu += time.thread_time() - cpu

    def processing_so_far(self) -> tuple[float, float]:
        """(wall, main-thread CPU) seconds since :meth:`start`, minus the bench's checks and the
        sandbox transitions it triggered. Callable from another thread. The wall figure still holds
        the sandbox's handling of HTTP requests (an over-estimate of tradelane's); the CPU one not."""
        wall = time.perf_counter() - self.wall_start - self.sandbox_ticks - self.bench_checks
        cpu = 0.0
        if self.main_clock is not None:
            cpu = time.clock_gettime(self.main_clock) - self.cpu_start
            cpu -= self.sandbox_ticks_cpu + self.bench_checks_cpu
        return max(0.0, wall), max(0.0, cpu)

    def split(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall_start
        other_cpu = _other_threads_cpu() - self.other_cpu_start
        sandbox = other_cpu + self.sandbox_ticks
        main_cpu = time.thread_time() - self.cpu_start
        return {
            "wall_seconds": round(wall, 3),
            "sandbox_seconds": round(sandbox, 3),
            "sandbox_cpu_seconds": round(other_cpu + self.sandbox_ticks_cpu, 3),
            "bench_check_seconds": round(self.bench_checks, 3),
            "tradelane_seconds": round(max(0.0, wall - sandbox - self.bench_checks), 3),
            "tradelane_cpu_seconds": round(
                max(0.0, main_cpu - self.sandbox_ticks_cpu - self.bench_checks_cpu), 3
            ),
        }


# ------------------------------------------------------------------------------------ the rig


class OfferRig:
    """The marketplace-neutral half of a bench rig; a bench's ``Rig`` dataclass inherits it and
    supplies the fields below, :meth:`advance` (move both clocks) and :meth:`next_event` (the earliest
    instant something can happen, or None)."""

    engine: Engine
    clock: SimClock
    tenant_id: int
    channel_id: int
    keyring: KeyRing
    registry: JobRegistry
    meter: Meter
    worker: Worker

    def advance(self, seconds: float) -> None:
        raise NotImplementedError

    def next_event(self) -> datetime | None:
        raise NotImplementedError

    def _make_worker(self) -> Worker:
        """The bench's worker: no scheduler, short backoffs, and sleeping by moving the clocks."""
        return Worker(
            self.engine,
            self.registry,
            self.clock,
            WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
            services={"keyring": self.keyring},
            name="bench-worker",
            sleep=self.advance,
        )

    def enqueue(self, kind: str) -> None:
        with self.engine.begin() as conn:
            enqueue(
                conn,
                JobSpec(self.tenant_id, kind, {}, channel_id=self.channel_id, flow=Flow.OFFERS.value),
                now=self.clock(),
            )

    def next_job_at(self) -> datetime | None:
        """When the earliest queued job of the tenant becomes ready."""
        with self.engine.connect() as conn:
            job_at: datetime | None = conn.execute(
                sa.select(sa.func.min(jobs.c.run_at)).where(
                    jobs.c.tenant_id == self.tenant_id, jobs.c.state == JobState.QUEUED.value
                )
            ).scalar()
        return job_at

    def drive(self, done: Callable[[], bool]) -> int:
        """Run the worker and jump the clock from event to event until ``done()``; returns the events."""
        for events in range(1, MAX_EVENTS + 1):
            self.worker.run(burst=True)
            if self._check(done):
                return events
            with self.meter.bench():
                upcoming = self.next_event()
            if upcoming is None:
                raise RuntimeError("stalled: nothing queued, nothing processing, and not done")
            self.advance(max((upcoming - self.clock()).total_seconds(), 0.001))
            if self._check(done):
                return events
        raise RuntimeError(f"not done after {MAX_EVENTS} events")

    def _check(self, predicate: Callable[[], bool]) -> bool:
        with self.meter.bench():
            return predicate()

    # --- observations ---------------------------------------------------------------------------

    def catalog(self) -> dict[str, tuple[Decimal, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(products.c.sku, products.c.price, products.c.quantity).where(
                    products.c.tenant_id == self.tenant_id
                )
            ).all()
        return {r.sku: (r.price, r.quantity) for r in rows}

    def binding_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(offer_bindings.c.status, offer_bindings.c.dirty, sa.func.count())
                .where(offer_bindings.c.channel_id == self.channel_id)
                .group_by(offer_bindings.c.status, offer_bindings.c.dirty)
            ).all()
        counts: dict[str, int] = {}
        for status, dirty, n in rows:
            key = f"{status}{'+dirty' if dirty else ''}"
            counts[key] = counts.get(key, 0) + int(n)
        return counts

    def all_published(self) -> bool:
        """Every binding of the channel published and clean (stops at the first that is not)."""
        with self.engine.connect() as conn:
            pending = conn.execute(
                sa.select(offer_bindings.c.id)
                .where(
                    offer_bindings.c.channel_id == self.channel_id,
                    sa.or_(offer_bindings.c.dirty.is_(True), offer_bindings.c.status != "published"),
                )
                .limit(1)
            ).first()
        return pending is None

    def job_states(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.state, sa.func.count())
                .where(jobs.c.tenant_id == self.tenant_id)
                .group_by(jobs.c.state)
            ).all()
        return {str(state): int(n) for state, n in rows}


def call_report(records: list[Any], since: datetime) -> dict[str, Any]:
    """Sandbox-side view of the request ``records`` (``at``, ``op_id``, ``status``) since ``since``: per
    operation count, 429s, and the smallest gap between two admitted calls of the same operation
    (simulated seconds)."""
    records = [r for r in records if r.at >= since and r.op_id]
    out: dict[str, Any] = {}
    for op in sorted({r.op_id for r in records if r.op_id}):
        mine = [r for r in records if r.op_id == op]
        admitted = sorted(r.at for r in mine if r.status != 429)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(admitted)]
        out[op] = {
            "calls": len(mine),
            "429": sum(1 for r in mine if r.status == 429),
            "min_gap_seconds": round(min(gaps), 3) if gaps else None,
        }
    return out


# ------------------------------------------------------------------------------------ figures


def seconds_between(a: datetime, b: datetime) -> float:
    return round((b - a).total_seconds(), 3)


def ratios(floor: float, achieved: float) -> dict[str, float | None]:
    """``ratio`` = floor / achieved (1.0 = as fast as the budgets allow), ``over_floor`` its inverse."""
    return {
        "ratio": round(floor / achieved, 3) if achieved > 0 else None,
        "over_floor": round(achieved / floor, 3) if floor > 0 else None,
    }


def per_s(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


# ------------------------------------------------------------------------------------ catalog changes


def change_plan(count: int, fraction: float) -> list[list[int]]:
    """Three rounds of product indexes: every ``1/fraction``-th product (spread over the catalog), a
    third of those again, a tenth of those a third time."""
    step = max(1, round(1 / fraction))
    changed = list(range(step // 2, count, step))
    return [changed, changed[::3], changed[::10]]


def changed_values(round_no: int, price: Decimal, quantity: int) -> tuple[Decimal, int]:
    """A product's (price, quantity) after change round ``round_no``: both, then the price, then the
    stock to zero."""
    if round_no == 0:
        return price + Decimal("1.00"), (quantity + 7) % 60
    if round_no == 1:
        return price + Decimal("0.50"), quantity
    return price, 0


def write_catalog_changes(
    engine: Engine, tenant_id: int, updates: list[dict[str, Any]], now: datetime
) -> None:
    """One catalog transaction: ``updates`` (``b_sku``, ``price``, ``quantity``, ``content_hash``)
    written to the products and their offers marked dirty."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(products)
            .where(products.c.tenant_id == tenant_id, products.c.sku == sa.bindparam("b_sku"))
            .values(
                price=sa.bindparam("price"),
                quantity=sa.bindparam("quantity"),
                content_hash=sa.bindparam("content_hash"),
                updated_at=now,
            ),
            updates,
        )
        ids = [
            r.id
            for r in conn.execute(
                sa.select(products.c.id).where(
                    products.c.tenant_id == tenant_id, products.c.sku.in_([u["b_sku"] for u in updates])
                )
            )
        ]
        mark_offers_dirty(conn, tenant_id, ids, now=now)


# ------------------------------------------------------------------------------------ set-up and CLI


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Warnings and errors only, to stderr, for the run; the caller's structlog set-up is restored."""
    saved = structlog.get_config()
    configure_logging("WARNING", json_output=True)
    try:
        yield
    finally:
        structlog.configure(**saved)


@contextmanager
def fresh_database(database_url: str | None) -> Iterator[tuple[str, str]]:
    """(URL, backend) of a fresh database: a SQLite file in a temporary folder, or a new database on
    the PostgreSQL server of ``database_url`` (dropped afterwards; the worker claims every job in it)."""
    if database_url is None:
        with tempfile.TemporaryDirectory(prefix="tradelane-bench-mirakl-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}", "sqlite"
        return
    admin = sa.create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT")
    name = f"tradelane_bench_mirakl_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = sa.engine.make_url(normalize_url(database_url)).set(database=name)
        yield url.render_as_string(hide_password=False), "postgresql"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def create_tenant(engine: Engine, name: str, now: datetime) -> int:
    """A new tenant's id."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                sa.insert(tenants).values(name=name, created_at=now).returning(tenants.c.id)
            ).scalar_one()
        )


def bench_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every offer bench takes (``--products``, ``--database-url``); the bench adds its own."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL server (a new database is made)")
    return parser


def run_and_print(
    parser: argparse.ArgumentParser,
    run: Callable[..., dict[str, Any]],
    options: Callable[[argparse.Namespace], dict[str, Any]],
) -> None:
    """Add ``--profile``, parse the command line, call ``run(products, database_url, **options(args))``
    (under cProfile when asked) and print its result as one JSON object."""
    parser.add_argument("--profile", default=None, help="write a cProfile dump of the run to this file")
    args = parser.parse_args()
    kwargs = options(args)
    if args.profile:
        profiler = cProfile.Profile()
        result = profiler.runcall(run, args.products, args.database_url, **kwargs)
        profiler.dump_stats(args.profile)
    else:
        result = run(args.products, args.database_url, **kwargs)
    print(json.dumps(result, indent=2))
