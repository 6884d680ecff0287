"""Mirakl offers: a full initial sync of N offers (OF01) and a 1 % price/stock delta (OF24) through the
sandbox over real HTTP, timed against the floor Mirakl's published rate limits allow.

    python bench/bench_mirakl_offers.py [--products N] [--database-url URL] [--delta-batch-size N]
                                        [--changed-fraction F] [--profile FILE]

Set-up (not timed): a fresh migrated SQLite file in a temporary folder (with a PostgreSQL URL: a new
database on that server, dropped afterwards), one tenant, N catalog products, a Mirakl channel wired to
a :class:`SandboxServer` on 127.0.0.1 whose operator catalog knows every product's EAN. Both sides use
Mirakl's published budgets: the channel its defaults (``limits.DEFAULT_LIMITS``: OF01, OF02, OF03 and
OF24 once a minute), the sandbox ``MANIFEST_RATE_LIMITS`` (OF01 and OF24 once a minute; a call above
them gets a 429). The sandbox completes an import after ``import_polls`` unfinished OF02 polls or
``import_delay``, whichever comes first (``SandboxConfig`` defaults).

Time: engine and sandbox share one *simulated* clock that stands still while work is done and jumps,
event by event, to the next instant something can happen (the earliest queued job's ``run_at`` or the
sandbox's next import completion). So a minute of budget costs no wall time, and:

* ``simulated_seconds`` measure what the budgets and the marketplace govern; ``ratio`` is read there.
* ``wall_seconds`` measure what processing costs. Split into ``sandbox_seconds`` (CPU of the other
  threads — the sandbox's HTTP server, its CSV parsing and import processing — plus the sandbox time
  transitions the bench triggers), ``bench_check_seconds`` (the bench's own predicates) and
  ``tradelane_seconds`` (the rest: the worker, its DB work, its HTTP client). ``tradelane_cpu_seconds``
  is the same share in main-thread CPU time, steadier than wall time on a busy machine.
* ``projected_held_seconds`` = simulated latency + the wall processing spent before the last import
  reached the sandbox: what a real deployment would see (exact for one call, an upper bound for
  several); ``ratio_projected`` is the floor over it. The ``*_cpu`` variants count main-thread CPU
  instead, unaffected by other processes competing for the machine (but blind to database waits, which
  matter on PostgreSQL).

Phases:

1. ``initial_sync``: an ``offers.full`` job (OF01 with every offer), then the worker (OF02 polls...)
   until every offer is held by the sandbox with the catalog's price and quantity ("held") and
   tradelane knows every offer is published ("confirmed"). Floor: one OF01 call at once, then the
   sandbox's processing: ``min(import_delay, import_polls x OF02 interval)`` (polls start at once).
2. ``delta``: the price and stock of ``changed_fraction`` of the products, spread evenly over the
   catalog, change in three catalog transactions at one instant (every changed product once, a third of
   them a second time, a tenth a third time — coalescing must send each once, with its last value).
   Floor: ``ceil(changed / delta_batch_size)`` OF24 calls, the first at once, then one per OF24 interval,
   plus the sandbox's processing of the last one. ``ratio = floor / achieved`` (1.0 = as fast as the
   budget allows).

Both phases end with a check that every sandbox offer equals the catalog read back from the database;
a mismatch raises. Prints one JSON object; :func:`run` returns the same dict.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if str(Path(__file__).resolve().parent) not in sys.path:  # the sibling bench modules (a script's own folder)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from offers_bench_support import (
    Meter,
    OfferRig,
    SimClock,
    bench_parser,
    call_report,
    change_plan,
    changed_values,
    create_tenant,
    fresh_database,
    go_live,
    peak_rss_mb,
    per_s,
    quiet_logs,
    ratios,
    run_and_print,
    seconds_between,
    write_catalog_changes,
)
from tradelane.bootstrap import register_handlers
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.connectors.mirakl.sandbox import Product as SandboxProduct
from tradelane.connectors.mirakl.sandbox import SandboxConfig, SandboxServer, SandboxState, Shop
from tradelane.connectors.mirakl.sandbox.faults import MANIFEST_RATE_LIMITS, RateLimit
from tradelane.connectors.mirakl.sandbox.models import ImportStatus, OfferImport
from tradelane.connectors.mirakl.settings import MiraklSettings
from tradelane.domain.catalog import Product
from tradelane.persistence import migrate
from tradelane.persistence.db import make_engine
from tradelane.persistence.tables import products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.sync.jobs import JobState
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker

SHOP_ID = 2000
#: The sandbox shop's API key: a fixture value of the in-process sandbox, not a credential.
SANDBOX_KEY = "bench-sandbox-shop-key"
START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
_INSERT_CHUNK = 5_000


# ------------------------------------------------------------------------------------ data set


def ean(n: int) -> str:
    """A valid EAN-13 for ``n`` (< 10**9)."""
    body = f"400{n:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def make_product(i: int) -> Product:
    return Product(
        sku=f"SKU-{i:07d}",
        title=f"Product {i}",
        gtin=ean(i),
        price=Decimal(f"{10 + i % 990}.{i % 100:02d}"),
        currency="EUR",
        quantity=1 + i % 50,
    )


def sandbox_catalog(count: int) -> list[SandboxProduct]:
    """The operator catalog: one product per EAN the merchant's products carry."""
    return [
        SandboxProduct(
            sku=f"OP-{i}",
            title=f"Operator product {i}",
            category_code="home",
            category_label="Home",
            references=(("EAN", ean(i)),),
        )
        for i in range(count)
    ]


def _product_row(p: Product, tenant_id: int, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "sku": p.sku,
        "parent_sku": p.parent_sku,
        "title": p.title,
        "gtin": p.gtin,
        "price": p.price,
        "currency": p.currency,
        "quantity": p.quantity,
        "labels": list(p.labels),
        "attributes": dict(p.attributes),
        "content_hash": p.content_hash(),
        "created_at": now,
        "updated_at": now,
    }


# ------------------------------------------------------------------------------------ the rig


class TimedSandbox(SandboxState):
    """The sandbox, noting for each import how much tradelane wall time the phase had spent when the
    import arrived (what delays the data reaching the marketplace in a real deployment)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meter: Meter | None = None
        self.arrivals: dict[int, tuple[float, float]] = {}

    def add_import(self, imp: OfferImport) -> OfferImport:
        if self.meter is not None:  # runs on the server thread while the worker waits for the reply
            self.arrivals[imp.import_id] = self.meter.processing_so_far()
        return super().add_import(imp)


@dataclass
class Rig(OfferRig):
    engine: Engine
    state: TimedSandbox
    clock: SimClock
    tenant_id: int
    channel_id: int
    settings: MiraklSettings
    keyring: KeyRing
    registry: JobRegistry
    meter: Meter = field(default_factory=Meter)
    worker: Worker = field(init=False)

    def __post_init__(self) -> None:
        self.state.meter = self.meter
        self.worker = self._make_worker()

    def advance(self, seconds: float) -> None:
        """Move both clocks (also the rate limiter's in-job waits, through the worker's ``sleep``)."""
        if seconds <= 0:
            return
        self.clock.current += timedelta(seconds=seconds)
        with self.meter.sandbox():
            self.state.set_now(self.clock.current)  # applies every transition due by then

    def next_event(self) -> datetime | None:
        """The earliest instant something can happen: a queued job becomes ready, or an import the
        sandbox is processing completes on its own."""
        job_at = self.next_job_at()
        candidates = [job_at] if job_at is not None else []
        delay = self.state.config.import_delay
        if delay is not None:
            with self.state.lock:
                candidates += [
                    imp.created + delay
                    for imp in self.state.imports.values()
                    if imp.status in (ImportStatus.WAITING, ImportStatus.RUNNING)
                ]
        return min(candidates) if candidates else None

    # --- observations ---------------------------------------------------------------------------

    def imports_since(self, first_id: int) -> list[OfferImport]:
        with self.state.lock:
            return sorted(
                (i for i in self.state.imports.values() if i.import_id >= first_id), key=lambda i: i.import_id
            )

    def next_import_id(self) -> int:
        with self.state.lock:
            return max(self.state.imports, default=0) + 1

    def sandbox_mismatches(self, expected: dict[str, tuple[Decimal, int]]) -> list[str]:
        """SKUs whose sandbox offer is missing or differs from ``expected`` (price, quantity)."""
        with self.state.lock:
            offers = self.state.shop_offers(SHOP_ID)
            bad = []
            for sku, (price, quantity) in expected.items():
                offer = offers.get(sku)
                if offer is None or offer.price != price or offer.quantity != max(quantity, 0):
                    bad.append(sku)
            return bad

    def calls(self, since: datetime) -> dict[str, Any]:
        """Sandbox-side view of the calls made since ``since``: per operation count, 429s, and the
        smallest gap between two admitted calls of the same operation (simulated seconds)."""
        return call_report(self.state.requests, since)


# ------------------------------------------------------------------------------------ floors


def _interval(op: str, settings: MiraklSettings, state: SandboxState) -> float:
    """Seconds between two calls of ``op`` both sides allow (the stricter of the two)."""
    ours = settings.limit(op)
    theirs = state.limiter.limits.get(op)
    return max(ours.per_seconds / ours.calls, theirs.per_seconds / theirs.calls if theirs else 0.0)


def processing_floor(config: SandboxConfig, of02_interval: float) -> float:
    """Fewest seconds from an import's creation to the sandbox applying it: after ``import_polls``
    unfinished OF02 polls (the first at once, then one per OF02 interval; the next poll completes it)
    or ``import_delay``, whichever comes first."""
    by_polls = config.import_polls * of02_interval
    if config.import_delay is None:
        return by_polls
    return min(config.import_delay.total_seconds(), by_polls)


def call_floor(calls: int, interval: float, processing: float) -> float:
    """``calls`` calls, the first at once, one per ``interval``; the last one processed."""
    return (calls - 1) * interval + processing


# ------------------------------------------------------------------------------------ phases


def _phase_times(
    rig: Rig, t0: datetime, first_import: int, floor_held: float, floor_confirmed: float
) -> dict[str, Any]:
    imports = rig.imports_since(first_import)
    if not imports or any(i.completed_at is None for i in imports):
        raise RuntimeError("an import of the phase did not complete")
    held_at = max(i.completed_at for i in imports if i.completed_at is not None)
    confirmed_at = rig.clock()
    held = seconds_between(t0, held_at)
    confirmed = seconds_between(t0, confirmed_at)
    last = max(i.import_id for i in imports)
    before_wall, before_cpu = rig.state.arrivals.get(last, (0.0, 0.0))
    projected = round(held + before_wall, 3)
    projected_cpu = round(held + before_cpu, 3)
    return {
        "imports": [
            {
                "import_id": i.import_id,
                "lines": len(i.rows),
                "lines_in_error": i.lines_in_error,
                "sent_at_s": seconds_between(t0, i.created),
                "completed_at_s": seconds_between(t0, i.completed_at) if i.completed_at else None,
            }
            for i in imports
        ],
        "simulated_seconds": {"held": held, "confirmed": confirmed},
        "floor_seconds": {"held": floor_held, "confirmed": floor_confirmed},
        "ratio": ratios(floor_held, held)["ratio"],
        "ratio_confirmed": ratios(floor_confirmed, confirmed)["ratio"],
        # Wall processing before the last import reached the sandbox, added to the simulated latency:
        # what a real deployment would see (exact for one call; an upper bound for several, whose
        # processing in between would overlap the budget waits).
        # The CPU variant leaves out waits for other processes (a busy machine) and for the database.
        "processing_before_last_send_seconds": round(before_wall, 3),
        "processing_before_last_send_cpu_seconds": round(before_cpu, 3),
        "projected_held_seconds": projected,
        "ratio_projected": ratios(floor_held, projected)["ratio"],
        "projected_held_cpu_seconds": projected_cpu,
        "ratio_projected_cpu": ratios(floor_held, projected_cpu)["ratio"],
    }


def _verify(rig: Rig, expected: dict[str, tuple[Decimal, int]]) -> dict[str, Any]:
    catalog = rig.catalog()
    if catalog != expected:
        raise RuntimeError("the bench's expected catalog differs from the database")
    bad = rig.sandbox_mismatches(catalog)
    with rig.state.lock:
        extra = len(set(rig.state.shop_offers(SHOP_ID)) - set(catalog))
    if bad or extra:
        raise RuntimeError(
            f"sandbox differs from the catalog: {len(bad)} offers (e.g. {bad[:5]}), {extra} extra"
        )
    return {"sandbox_offers_equal_catalog": len(catalog)}


def initial_sync(rig: Rig, expected: dict[str, tuple[Decimal, int]]) -> dict[str, Any]:
    of02 = _interval("OF02", rig.settings, rig.state)
    processing = processing_floor(rig.state.config, of02)
    first_import = rig.next_import_id()
    t0 = rig.clock()
    rig.meter.start()
    rig.enqueue("offers.full")
    held_flag = {"ok": False}

    def done() -> bool:
        if not held_flag["ok"]:
            imports = rig.imports_since(first_import)
            if imports and all(i.status is ImportStatus.COMPLETE for i in imports):
                held_flag["ok"] = not rig.sandbox_mismatches(expected)
        return held_flag["ok"] and rig.all_published()

    events = rig.drive(done)
    timing = rig.meter.split()
    n = len(expected)
    result = {
        "offers": n,
        "events": events,
        **_phase_times(rig, t0, first_import, call_floor(1, 0.0, processing), call_floor(1, 0.0, processing)),
        **timing,
        "tradelane_offers_per_s": per_s(n, timing["tradelane_seconds"]),
        "tradelane_offers_per_cpu_s": per_s(n, timing["tradelane_cpu_seconds"]),
        "calls": rig.calls(t0),
        "floor_explained": (
            f"1 OF01 call at once + the sandbox's processing min(import_delay "
            f"{rig.state.config.import_delay}, import_polls {rig.state.config.import_polls} x OF02 "
            f"interval {of02:g}s) = {processing:g}s; confirmed: an OF02 poll at completion"
        ),
        "peak_rss_mb": peak_rss_mb(),
    }
    result["verified"] = _verify(rig, expected)
    result["bindings"] = rig.binding_counts()
    return result


def _apply_round(
    rig: Rig, round_no: int, indexes: list[int], expected: dict[str, tuple[Decimal, int]]
) -> None:
    """One catalog transaction: new prices/stock for these products and their offers marked dirty."""
    now = rig.clock()
    updates = []
    for i in indexes:
        base = make_product(i)
        price, quantity = changed_values(round_no, *expected[base.sku])
        changed = Product(
            sku=base.sku, title=base.title, gtin=base.gtin, price=price, currency="EUR", quantity=quantity
        )
        expected[base.sku] = (price, quantity)
        updates.append(
            {"b_sku": base.sku, "price": price, "quantity": quantity, "content_hash": changed.content_hash()}
        )
    write_catalog_changes(rig.engine, rig.tenant_id, updates, now)


def delta(rig: Rig, expected: dict[str, tuple[Decimal, int]], fraction: float) -> dict[str, Any]:
    rounds = change_plan(len(expected), fraction)
    distinct = len(rounds[0])
    if distinct == 0:
        raise ValueError("the catalog is too small for that changed fraction")
    batch = rig.settings.delta_batch_size
    calls = math.ceil(distinct / batch)
    of24 = _interval("OF24", rig.settings, rig.state)
    of02 = _interval("OF02", rig.settings, rig.state)
    processing = processing_floor(rig.state.config, of02)
    floor_held = call_floor(calls, of24, processing)
    # tradelane confirms each import with its own OF02 poll, at most one per OF02 interval.
    confirmed = 0.0
    for k in range(calls):
        confirmed = max(k * of24 + processing, confirmed + of02 if k else 0.0)
    first_import = rig.next_import_id()
    t0 = rig.clock()
    change_started = time.perf_counter()
    for round_no, indexes in enumerate(rounds):
        _apply_round(rig, round_no, indexes, expected)
    change_wall = time.perf_counter() - change_started
    rig.meter.start()
    changed_skus = {make_product(i).sku for i in rounds[0]}
    watched = {sku: expected[sku] for sku in changed_skus}
    held_flag = {"ok": False}

    def done() -> bool:
        if not held_flag["ok"]:
            imports = rig.imports_since(first_import)
            if imports and all(i.status is ImportStatus.COMPLETE for i in imports):
                held_flag["ok"] = not rig.sandbox_mismatches(watched)
        return held_flag["ok"] and rig.all_published()

    events = rig.drive(done)
    timing = rig.meter.split()
    phase = _phase_times(rig, t0, first_import, floor_held, confirmed)
    sent = sum(i["lines"] for i in phase["imports"])
    result = {
        "products": len(expected),
        "changed_products": distinct,
        "change_events": sum(len(r) for r in rounds),
        "offers_sent": sent,
        "coalesced": sent == distinct,
        "delta_batch_size": batch,
        "events": events,
        **phase,
        **timing,
        "catalog_change_wall_seconds": round(change_wall, 3),
        "tradelane_changes_per_s": per_s(distinct, timing["tradelane_seconds"]),
        "tradelane_changes_per_cpu_s": per_s(distinct, timing["tradelane_cpu_seconds"]),
        "calls": rig.calls(t0),
        "floor_explained": (
            f"ceil({distinct} / {batch}) = {calls} OF24 call(s), the first at once, one per {of24:g}s, "
            f"+ the sandbox's processing of the last ({processing:g}s); confirmed: one OF02 poll per "
            f"import, at most one per {of02:g}s"
        ),
        "peak_rss_mb": peak_rss_mb(),
    }
    if not result["coalesced"]:
        raise RuntimeError(f"{sent} offers sent for {distinct} changed products: changes were not coalesced")
    result["verified"] = _verify(rig, expected)
    result["bindings"] = rig.binding_counts()
    return result


# ------------------------------------------------------------------------------------ set-up


def _load_catalog(
    engine: Engine, tenant_id: int, count: int, now: datetime
) -> dict[str, tuple[Decimal, int]]:
    expected: dict[str, tuple[Decimal, int]] = {}
    with engine.begin() as conn:
        for start in range(0, count, _INSERT_CHUNK):
            rows = []
            for i in range(start, min(count, start + _INSERT_CHUNK)):
                p = make_product(i)
                assert p.price is not None
                expected[p.sku] = (p.price, p.quantity)
                rows.append(_product_row(p, tenant_id, now))
            conn.execute(sa.insert(products), rows)
    return expected


def run(
    products: int = 100_000,
    database_url: str | None = None,
    *,
    delta_batch_size: int | None = None,
    changed_fraction: float = 0.01,
) -> dict[str, Any]:
    """Run both phases on a fresh database and sandbox; returns the JSON-ready result."""
    with quiet_logs(), fresh_database(database_url) as (url, backend):
        setup_started = time.perf_counter()
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            state = TimedSandbox(
                7,
                shops=[Shop(SHOP_ID, "Bench Shop", SANDBOX_KEY)],
                products=sandbox_catalog(products),
                rate_limits={op: RateLimit(*budget) for op, budget in MANIFEST_RATE_LIMITS.items()},
                start=START,
            )
            clock = SimClock(START)
            keyring = KeyRing([generate_key()])
            registry = JobRegistry()
            register_handlers(registry)
            tenant_id = create_tenant(engine, "bench-mirakl", START)
            expected = _load_catalog(engine, tenant_id, products, START)
            with SandboxServer(state) as server:
                options: dict[str, Any] = {}
                if delta_batch_size is not None:
                    options["delta_batch_size"] = delta_batch_size
                with engine.begin() as conn:
                    # Created after the catalog: every product is bound (dirty) and no delta is pending,
                    # as when a merchant adds a channel and asks for a full sync.
                    channel = add_channel(
                        conn,
                        tenant_id=tenant_id,
                        name="mirakl-bench",
                        hostname=server.url,
                        shop_id=str(SHOP_ID),
                        api_key=SANDBOX_KEY,
                        keyring=keyring,
                        now=START,
                        options=options,
                    )
                    go_live(conn, channel.id)
                settings = MiraklSettings.from_dict(channel.settings)
                rig = Rig(engine, state, clock, tenant_id, channel.id, settings, keyring, registry)
                setup_seconds = time.perf_counter() - setup_started
                rss_setup = peak_rss_mb()
                full = initial_sync(rig, expected)
                rig.advance(3600)  # a quiet hour: every budget is full again
                changes = delta(rig, expected, changed_fraction)
                leftovers = {s: n for s, n in rig.job_states().items() if s != JobState.SUCCEEDED.value}
        finally:
            engine.dispose()
    return {
        "benchmark": "mirakl_offers_sandbox",
        "database": backend,
        "products": products,
        "rate_limits": {
            "channel": {op: _budget(settings, op) for op in _OPS},
            "sandbox": {op: list(b) for op, b in MANIFEST_RATE_LIMITS.items() if op in _OPS},
            "sandbox_import_polls": state.config.import_polls,
            "sandbox_import_delay_seconds": (
                state.config.import_delay.total_seconds() if state.config.import_delay else None
            ),
        },
        "setup_wall_seconds": round(setup_seconds, 3),
        "peak_rss_mb_after_setup": rss_setup,
        "initial_sync": full,
        "delta": changes,
        "jobs_not_succeeded": leftovers,
        "peak_rss_mb": peak_rss_mb(),
        "notes": (
            "simulated seconds: engine and sandbox share a clock that only jumps between events, so they "
            "measure what budgets and the marketplace govern; wall seconds: processing (tradelane_seconds "
            "excludes the in-process sandbox's CPU). Peak RSS includes the in-process sandbox."
        ),
    }


_OPS = ("OF01", "OF02", "OF03", "OF24")


def _budget(settings: MiraklSettings, op: str) -> list[float]:
    limit = settings.limit(op)
    return [limit.calls, limit.per_seconds]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--delta-batch-size", type=int, default=None, help="channel setting (default 5000)")
    parser.add_argument("--changed-fraction", type=float, default=0.01)
    run_and_print(
        parser,
        run,
        lambda args: {"delta_batch_size": args.delta_batch_size, "changed_fraction": args.changed_fraction},
    )


if __name__ == "__main__":
    main()
