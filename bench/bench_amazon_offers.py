"""Amazon offers: a full initial sync of N offers (JSON_LISTINGS_FEED feeds) and a 1 % price/stock delta
through the SP-API sandbox over real HTTP, timed against the floor Amazon's published usage plans allow.

    python bench/bench_amazon_offers.py [--products N] [--database-url URL] [--changed-fraction F]
                                        [--feed-seconds S] [--profile FILE]

The Amazon counterpart of ``bench_mirakl_offers.py`` (same rig, same clock model, same accounting).

Set-up (not timed): a fresh migrated SQLite file in a temporary folder (with a PostgreSQL URL: a new
database on that server, dropped afterwards), one tenant, N catalog products, an Amazon channel wired to
an :class:`AmazonSandboxServer` on 127.0.0.1 whose catalog holds an ASIN for every product's GTIN. Both
sides use Amazon's published usage plans: the channel the budgets the connector declares
(``client.PUBLISHED_BUDGETS``: createFeed 0.0083 rps burst 15, patchListingsItem 5 rps burst 5...), the
sandbox its ``published`` plans (a call above them gets a 429 ``QuotaExceeded``). The sandbox processes
a feed ``--feed-seconds`` after its creation (a third IN_QUEUE, the rest IN_PROGRESS; Amazon takes
minutes), whatever its size; the channel looks at a feed ``feed_poll_seconds`` (60) after sending it,
then every 60 s.

Time: engine and sandbox share one *simulated* clock that stands still while work is done and jumps,
event by event, to the next instant something can happen (the earliest queued job's ``run_at`` or a
feed's end of processing). ``simulated_seconds`` measure what the budgets and Amazon govern; the wall
and CPU figures what processing costs (split as in the Mirakl bench: ``sandbox_seconds`` is the
in-process sandbox, ``tradelane_seconds`` the rest). ``ratio`` is floor / achieved (1.0 = as fast as
the usage plans allow, like Mirakl's); ``over_floor`` its inverse, achieved / floor (the issue's target:
≤ 1.2). ``projected_held_seconds`` adds the wall processing spent before the last feed (or patch)
reached the sandbox to the simulated latency: what a real deployment would see.

Phases:

1. ``initial_sync``: an ``offers.full`` job — one feed per 25,000 offers (or 10 MiB) — then the worker
   (getFeed polls, processing reports) until the sandbox holds every offer with the catalog's price and
   quantity ("held") and tradelane knows every offer is published ("confirmed"). Floor: the feeds'
   createFeedDocument and createFeed calls within their bursts (beyond: one per interval), then one
   feed's processing.
2. ``delta``: the price and stock of ``changed_fraction`` of the products, spread over the catalog,
   change in three catalog transactions at one instant (every changed product once, a third of them a
   second time, a tenth a third time — coalescing must send each once, with its last value). Floor: the
   faster of the two routes the usage plans allow — ``patchListingsItem`` (burst 5, then 5 rps: held
   when the last patch is answered) or one feed (processing). The planner's route and reason are
   reported.

Both phases end with a check that every sandbox listing equals the catalog read back from the database;
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
from tradelane.connectors.amazon import connector as amazon
from tradelane.connectors.amazon import mapping
from tradelane.connectors.amazon.client import PUBLISHED_BUDGETS
from tradelane.connectors.amazon.planner import plan
from tradelane.connectors.amazon.sandbox import (
    AmazonSandboxServer,
    AmazonSandboxState,
    SandboxSettings,
)
from tradelane.connectors.amazon.sandbox import listings as li
from tradelane.connectors.amazon.sandbox.models import Feed, FeedStatus, SellerAccount
from tradelane.connectors.amazon.sandbox.ratelimits import PUBLISHED_PLANS
from tradelane.connectors.base import RateBudget, SubmitMode
from tradelane.connectors.mirakl.sandbox.clock import SandboxClock
from tradelane.domain.catalog import Product
from tradelane.persistence import migrate
from tradelane.persistence.db import make_engine
from tradelane.persistence.tables import products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.sync.jobs import JobState
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker

MARKETPLACE = "A1PA6795UKMFR9"  # Amazon.de (EUR)
START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
_INSERT_CHUNK = 5_000
#: The remote operations of an offer sync (budgets reported side by side).
_OPS = (
    "createFeedDocument",
    "createFeed",
    "getFeed",
    "getFeedDocument",
    "patchListingsItem",
    "putListingsItem",
)


# ------------------------------------------------------------------------------------ data set


def make_product(i: int, gtin: str) -> Product:
    return Product(
        sku=f"SKU-{i:07d}",
        title=f"Product {i}",
        gtin=gtin,
        price=Decimal(f"{10 + i % 990}.{i % 100:02d}"),
        currency="EUR",
        quantity=1 + i % 50,
    )


# ------------------------------------------------------------------------------------ the rig


class TimedSandbox(AmazonSandboxState):
    """The sandbox, noting how much tradelane wall time the phase had spent when each feed and each
    patch arrived (what delays the data reaching Amazon in a real deployment)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.meter: Meter | None = None
        self.feed_arrivals: dict[str, tuple[float, float]] = {}
        self.patch_arrivals: list[tuple[datetime, float, float]] = []

    def create_feed(self, *args: Any, **kwargs: Any) -> Feed:
        feed = super().create_feed(*args, **kwargs)
        if self.meter is not None:  # on the server thread while the worker waits for the reply
            self.feed_arrivals[feed.feed_id] = self.meter.processing_so_far()
        return feed

    def submit_patch(self, *args: Any, **kwargs: Any) -> Any:
        answer = super().submit_patch(*args, **kwargs)
        if self.meter is not None:
            self.patch_arrivals.append((self.now(), *self.meter.processing_so_far()))
        return answer


@dataclass
class Rig(OfferRig):
    engine: Engine
    state: TimedSandbox
    clock: SimClock
    tenant_id: int
    channel_id: int
    seller: SellerAccount
    keyring: KeyRing
    registry: JobRegistry
    meter: Meter = field(default_factory=Meter)
    worker: Worker = field(init=False)

    def __post_init__(self) -> None:
        self.state.meter = self.meter
        self.worker = self._make_worker()

    def advance(self, seconds: float) -> None:
        """Move both clocks (also the rate limiter's in-job waits, through the worker's ``sleep``); the
        feeds whose processing time has come are processed (sandbox time)."""
        if seconds <= 0:
            return
        self.clock.current += timedelta(seconds=seconds)
        with self.meter.sandbox():
            self.state.clock.set_now(self.clock.current)
            self.state.settle_feeds()

    def next_event(self) -> datetime | None:
        """The earliest instant something can happen: a queued job becomes ready, or a feed the
        sandbox holds is done processing."""
        job_at = self.next_job_at()
        candidates = [job_at] if job_at is not None else []
        with self.state.lock:
            candidates += [
                f.ends
                for f in self.state.feeds.values()
                if f.status in (FeedStatus.IN_QUEUE, FeedStatus.IN_PROGRESS)
            ]
        return min(candidates) if candidates else None

    # --- observations ---------------------------------------------------------------------------

    def feeds_since(self, known: set[str]) -> list[Feed]:
        with self.state.lock:
            return sorted(
                (f for f in self.state.feeds.values() if f.feed_id not in known), key=lambda f: int(f.feed_id)
            )

    def feed_ids(self) -> set[str]:
        with self.state.lock:
            return set(self.state.feeds)

    def sandbox_mismatches(self, expected: dict[str, tuple[Decimal, int]]) -> list[str]:
        """SKUs whose sandbox listing is missing or differs from ``expected`` (price, quantity)."""
        seller = self.seller.seller_id
        bad = []
        with self.state.lock:
            for sku, (price, quantity) in expected.items():
                listing = self.state.listings.get((seller, sku))
                offered = li.offer_price(listing, MARKETPLACE) if listing is not None else None
                if (
                    listing is None
                    or offered is None
                    or offered[0] != price
                    or li.quantity(listing) != max(quantity, 0)
                ):
                    bad.append(sku)
        return bad

    def calls(self, since: datetime) -> dict[str, Any]:
        """Sandbox-side view of the calls made since ``since``: per operation count, 429s, and the
        smallest gap between two admitted calls of the same operation (simulated seconds)."""
        return call_report(self.state.requests, since)


# ------------------------------------------------------------------------------------ floors


def burst_floor(calls: int, budget: RateBudget) -> float:
    """Seconds until the last of ``calls`` calls may go, from a full bucket: ``burst`` at once, then
    one per ``1 / rate``."""
    return max(0, calls - budget.burst) / budget.per_second


def feed_floor(feeds: int, feed_seconds: float) -> float:
    """Fewest seconds until ``feeds`` feeds are processed: their createFeedDocument and createFeed calls
    within the budgets, then one feed's processing."""
    sending = max(
        burst_floor(feeds, PUBLISHED_BUDGETS["createFeedDocument"]),
        burst_floor(feeds, PUBLISHED_BUDGETS["createFeed"]),
    )
    return sending + feed_seconds


def patch_floor(changes: int) -> float:
    """Fewest seconds until ``changes`` patches are answered (applied at once by Amazon)."""
    return burst_floor(changes, PUBLISHED_BUDGETS["patchListingsItem"])


# ------------------------------------------------------------------------------------ phases


def _phase_times(
    rig: Rig, t0: datetime, known_feeds: set[str], floor_held: float, floor_confirmed: float
) -> dict[str, Any]:
    """Held: the last feed's end of processing, or the last patch's answer; confirmed: when tradelane
    knew every offer published (the phase's end)."""
    feeds = rig.feeds_since(known_feeds)
    if any(f.status is not FeedStatus.DONE for f in feeds):
        raise RuntimeError("a feed of the phase did not end DONE")
    patches = [p for p in rig.state.patch_arrivals if p[0] >= t0]
    candidates: list[tuple[datetime, float, float]] = [
        (f.ends, *rig.state.feed_arrivals.get(f.feed_id, (0.0, 0.0))) for f in feeds
    ]
    candidates += patches
    if not candidates:
        raise RuntimeError("nothing was sent to the sandbox in the phase")
    held_at, before_wall, before_cpu = max(candidates, key=lambda c: c[0])
    held = seconds_between(t0, held_at)
    confirmed = seconds_between(t0, rig.clock())
    projected = round(held + before_wall, 3)
    projected_cpu = round(held + before_cpu, 3)
    held_ratios = ratios(floor_held, held)
    return {
        "feeds": [
            {
                "feed_id": f.feed_id,
                "messages": _messages(f),
                "sent_at_s": seconds_between(t0, f.created),
                "done_at_s": seconds_between(t0, f.ends),
                "errors": int(((f.report or {}).get("summary") or {}).get("messagesInvalid", 0) or 0),
            }
            for f in feeds
        ],
        "patches": len(patches),
        "simulated_seconds": {"held": held, "confirmed": confirmed},
        "floor_seconds": {"held": floor_held, "confirmed": floor_confirmed},
        **held_ratios,
        "ratio_confirmed": ratios(floor_confirmed, confirmed)["ratio"],
        "over_floor_confirmed": ratios(floor_confirmed, confirmed)["over_floor"],
        "processing_before_last_send_seconds": round(before_wall, 3),
        "processing_before_last_send_cpu_seconds": round(before_cpu, 3),
        "projected_held_seconds": projected,
        "over_floor_projected": ratios(floor_held, projected)["over_floor"],
        "projected_held_cpu_seconds": projected_cpu,
        "over_floor_projected_cpu": ratios(floor_held, projected_cpu)["over_floor"],
    }


def _messages(feed: Feed) -> int | None:
    summary = (feed.report or {}).get("summary") or {}
    value = summary.get("messagesProcessed")
    return int(value) if isinstance(value, int) else None


def _verify(rig: Rig, expected: dict[str, tuple[Decimal, int]]) -> dict[str, Any]:
    catalog = rig.catalog()
    if catalog != expected:
        raise RuntimeError("the bench's expected catalog differs from the database")
    bad = rig.sandbox_mismatches(catalog)
    with rig.state.lock:
        extra = sum(
            1 for (seller, sku) in rig.state.listings if seller == rig.seller.seller_id and sku not in catalog
        )
    if bad or extra:
        raise RuntimeError(
            f"sandbox differs from the catalog: {len(bad)} offers (e.g. {bad[:5]}), {extra} extra"
        )
    return {"sandbox_listings_equal_catalog": len(catalog)}


def initial_sync(rig: Rig, expected: dict[str, tuple[Decimal, int]], feed_seconds: float) -> dict[str, Any]:
    n = len(expected)
    feeds_needed = math.ceil(n / mapping.MAX_FEED_MESSAGES)
    floor = feed_floor(feeds_needed, feed_seconds)
    known = rig.feed_ids()
    t0 = rig.clock()
    rig.meter.start()
    rig.enqueue("offers.full")
    held_flag = {"ok": False}

    def done() -> bool:
        if not held_flag["ok"]:
            feeds = rig.feeds_since(known)
            if feeds and all(f.status is FeedStatus.DONE for f in feeds):
                held_flag["ok"] = not rig.sandbox_mismatches(expected)
        return held_flag["ok"] and rig.all_published()

    events = rig.drive(done)
    timing = rig.meter.split()
    result = {
        "offers": n,
        "events": events,
        **_phase_times(rig, t0, known, floor, floor),
        **timing,
        "tradelane_offers_per_s": per_s(n, timing["tradelane_seconds"]),
        "tradelane_offers_per_cpu_s": per_s(n, timing["tradelane_cpu_seconds"]),
        "calls": rig.calls(t0),
        "floor_explained": (
            f"at least ceil({n} / {mapping.MAX_FEED_MESSAGES}) = {feeds_needed} feed(s) (more when a "
            f"document would pass 10 MiB: {len(rig.feeds_since(known))} sent), their createFeedDocument "
            f"and createFeed calls within the bursts (15), + one feed's processing ({feed_seconds:g}s); "
            "confirmed: a getFeed at the end of processing"
        ),
        "peak_rss_mb": peak_rss_mb(),
    }
    result["verified"] = _verify(rig, expected)
    result["bindings"] = rig.binding_counts()
    return result


def _apply_round(
    rig: Rig, round_no: int, indexes: list[int], skus: list[str], expected: dict[str, tuple[Decimal, int]]
) -> None:
    """One catalog transaction: new prices/stock for these products and their offers marked dirty."""
    now = rig.clock()
    updates = []
    for i in indexes:
        sku = skus[i]
        price, quantity = changed_values(round_no, *expected[sku])
        expected[sku] = (price, quantity)
        updates.append(
            {"b_sku": sku, "price": price, "quantity": quantity, "content_hash": f"{sku}:{price}:{quantity}"}
        )
    write_catalog_changes(rig.engine, rig.tenant_id, updates, now)


def delta(
    rig: Rig, expected: dict[str, tuple[Decimal, int]], fraction: float, feed_seconds: float
) -> dict[str, Any]:
    skus = sorted(expected)
    rounds = change_plan(len(skus), fraction)
    distinct = len(rounds[0])
    if distinct == 0:
        raise ValueError("the catalog is too small for that changed fraction")
    by_feed = feed_floor(math.ceil(distinct / mapping.MAX_FEED_MESSAGES), feed_seconds)
    by_patch = patch_floor(distinct)
    floor = min(by_feed, by_patch)
    chosen = plan(distinct, SubmitMode.DELTA, patch_budget=PUBLISHED_BUDGETS["patchListingsItem"])
    known = rig.feed_ids()
    t0 = rig.clock()
    change_started = time.perf_counter()
    for round_no, indexes in enumerate(rounds):
        _apply_round(rig, round_no, indexes, skus, expected)
    change_wall = time.perf_counter() - change_started
    rig.meter.start()
    watched = {skus[i]: expected[skus[i]] for i in rounds[0]}
    held_flag = {"ok": False}

    def done() -> bool:
        if not held_flag["ok"]:
            feeds = rig.feeds_since(known)
            if all(f.status is FeedStatus.DONE for f in feeds):
                held_flag["ok"] = not rig.sandbox_mismatches(watched)
        return held_flag["ok"] and rig.all_published()

    rig.enqueue("offers.delta")
    events = rig.drive(done)
    timing = rig.meter.split()
    phase = _phase_times(rig, t0, known, floor, floor)
    sent = sum(f["messages"] or 0 for f in phase["feeds"]) + phase["patches"]
    result = {
        "products": len(expected),
        "changed_products": distinct,
        "change_events": sum(len(r) for r in rounds),
        "offers_sent": sent,
        "coalesced": sent == distinct,
        "route": chosen.route.value,
        "planner_reason": chosen.reason,
        "events": events,
        **phase,
        **timing,
        "catalog_change_wall_seconds": round(change_wall, 3),
        "tradelane_changes_per_s": per_s(distinct, timing["tradelane_seconds"]),
        "tradelane_changes_per_cpu_s": per_s(distinct, timing["tradelane_cpu_seconds"]),
        "calls": rig.calls(t0),
        "floor_explained": (
            f"the faster route the usage plans allow: {distinct} patchListingsItem calls (burst 5, then "
            f"5 rps) = {by_patch:g}s, or one feed = {by_feed:g}s"
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
    engine: Engine, tenant_id: int, gtins: list[str], now: datetime
) -> dict[str, tuple[Decimal, int]]:
    expected: dict[str, tuple[Decimal, int]] = {}
    with engine.begin() as conn:
        for start in range(0, len(gtins), _INSERT_CHUNK):
            rows = []
            for i in range(start, min(len(gtins), start + _INSERT_CHUNK)):
                p = make_product(i, gtins[i])
                assert p.price is not None
                expected[p.sku] = (p.price, p.quantity)
                rows.append(
                    {
                        "tenant_id": tenant_id,
                        "sku": p.sku,
                        "title": p.title,
                        "gtin": p.gtin,
                        "price": p.price,
                        "currency": p.currency,
                        "quantity": p.quantity,
                        "labels": [],
                        "attributes": {},
                        "content_hash": p.content_hash(),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            conn.execute(sa.insert(products), rows)
    return expected


def run(
    products_count: int = 100_000,
    database_url: str | None = None,
    *,
    changed_fraction: float = 0.01,
    feed_seconds: float = 120.0,
) -> dict[str, Any]:
    """Run both phases on a fresh database and sandbox; returns the JSON-ready result."""
    with quiet_logs(), fresh_database(database_url) as (url, backend):
        setup_started = time.perf_counter()
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            state = TimedSandbox(
                7,
                rate_limits="published",
                region="eu",
                products=products_count,
                settings=SandboxSettings(
                    feed_queue_seconds=feed_seconds / 3, feed_processing_seconds=feed_seconds * 2 / 3
                ),
                clock=SandboxClock(START),
            )
            seller = next(a for a in state.accounts.values() if MARKETPLACE in a.marketplace_ids)
            gtins = [item.gtin for item in state.catalog.values()]
            clock = SimClock(START)
            keyring = KeyRing([generate_key()])
            registry = JobRegistry()
            register_handlers(registry)
            tenant_id = create_tenant(engine, "bench-amazon", START)
            expected = _load_catalog(engine, tenant_id, gtins, START)
            with AmazonSandboxServer(state) as server:
                with engine.begin() as conn:
                    # Created after the catalog: every product is bound (dirty) and no delta is pending,
                    # as when a merchant adds a channel and asks for a full sync.
                    channel = amazon.add_channel(
                        conn,
                        tenant_id=tenant_id,
                        name="amazon-bench",
                        seller_id=seller.seller_id,
                        marketplace_id=MARKETPLACE,
                        client_id=state.application.client_id,
                        client_secret=state.application.client_secret,
                        refresh_token=seller.refresh_token,
                        keyring=keyring,
                        now=START,
                        region="eu",
                        endpoint=server.url,
                        token_endpoint=server.url,
                    )
                    go_live(conn, channel.id)
                rig = Rig(engine, state, clock, tenant_id, channel.id, seller, keyring, registry)
                setup_seconds = time.perf_counter() - setup_started
                rss_setup = peak_rss_mb()
                full = initial_sync(rig, expected, feed_seconds)
                rig.advance(3600)  # a quiet hour: every budget is full again
                changes = delta(rig, expected, changed_fraction, feed_seconds)
                leftovers = {s: n for s, n in rig.job_states().items() if s != JobState.SUCCEEDED.value}
        finally:
            engine.dispose()
    plans = {op: PUBLISHED_PLANS[op] for op in _OPS if op in PUBLISHED_PLANS}
    return {
        "benchmark": "amazon_offers_sandbox",
        "database": backend,
        "products": products_count,
        "rate_limits": {
            "channel": {op: [PUBLISHED_BUDGETS[op].per_second, PUBLISHED_BUDGETS[op].burst] for op in _OPS},
            "sandbox": {op: [float(p.rate), p.burst] for op, p in plans.items()},
            "sandbox_feed_seconds": feed_seconds,
        },
        "setup_wall_seconds": round(setup_seconds, 3),
        "peak_rss_mb_after_setup": rss_setup,
        "initial_sync": full,
        "delta": changes,
        "jobs_not_succeeded": leftovers,
        "peak_rss_mb": peak_rss_mb(),
        "notes": (
            "simulated seconds: engine and sandbox share a clock that only jumps between events, so they "
            "measure what budgets and Amazon govern; wall seconds: processing (tradelane_seconds excludes "
            "the in-process sandbox's CPU). ratio = floor / achieved (as Mirakl's); over_floor = achieved "
            "/ floor (target <= 1.2). Peak RSS includes the in-process sandbox."
        ),
    }


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--changed-fraction", type=float, default=0.01)
    parser.add_argument(
        "--feed-seconds", type=float, default=120.0, help="the sandbox's processing time of a feed"
    )
    run_and_print(
        parser,
        run,
        lambda args: {"changed_fraction": args.changed_fraction, "feed_seconds": args.feed_seconds},
    )


if __name__ == "__main__":
    main()
