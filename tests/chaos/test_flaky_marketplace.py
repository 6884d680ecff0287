"""A marketplace that misbehaves on 30 % of the calls: 429 with Retry-After, 5xx, gateway HTML pages,
timeouts (the call took effect, the answer never came) and truncated bodies. All work still completes,
every Retry-After is honoured and no call goes above the published rate limits.

The Mirakl sandbox serves real HTTP on 127.0.0.1 and enforces the published budgets (OR11 / OF01 / OF24
once a minute, OR21 100 a minute); the channel is configured with tradelane's defaults for them. Time
is a fake clock moved by the worker's waits (both the engine's and the sandbox's), so Retry-After and
budgets are checked exactly, whatever the box's load.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from chaos_support import scale

from mirakl_world import World, build_world, catalog
from tradelane.connectors.mirakl.limits import DEFAULT_LIMITS
from tradelane.connectors.mirakl.sandbox.faults import (
    MANIFEST_RATE_LIMITS,
    Fault,
    FaultBook,
    FaultKind,
    RequestRecord,
)
from tradelane.persistence.tables import jobs, orders

PRODUCTS = scale(20, 200)
ORDERS = scale(10, 80)
FAULT_RATE = 0.30
#: Real seconds: a timed-out call costs the client TIMEOUT_SECONDS of wall time, so they are capped.
TIMEOUT_SECONDS = 0.5
MAX_TIMEOUTS = scale(4, 25)
ROUNDS = 3000
KINDS = (
    FaultKind.RATE_LIMIT,
    FaultKind.SERVER_ERROR,
    FaultKind.TRUNCATED_JSON,
    FaultKind.RATE_LIMIT,
    FaultKind.TIMEOUT,
    FaultKind.HTML_ERROR,
)


class FlakyFaults(FaultBook):
    """A fault book that, besides the queued faults, fails a seeded 30 % of the calls at random."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.rate_limited: list[tuple[str, int]] = []  # (op, Retry-After) of each injected 429, in order
        self.timeouts = 0
        self.injected = 0

    def take(self, op_id: str) -> Fault | None:
        queued = super().take(op_id)
        if queued is not None or self.rng.random() >= FAULT_RATE:
            return queued
        # The kinds take turns (so a short run sees each of them); their details are random.
        kind = KINDS[self.injected % len(KINDS)]
        self.injected += 1
        if kind is FaultKind.TIMEOUT and self.timeouts >= MAX_TIMEOUTS:
            kind = FaultKind.TRUNCATED_JSON
        if kind is FaultKind.RATE_LIMIT:
            retry_after = self.rng.choice([1, 5, 30, 90])
            self.rate_limited.append((op_id, retry_after))
            return Fault(kind, retry_after=retry_after)
        if kind is FaultKind.SERVER_ERROR:
            return Fault(kind, status=self.rng.choice([500, 502, 503, 504]))
        if kind is FaultKind.HTML_ERROR:
            return Fault(kind, status=502)
        if kind is FaultKind.TIMEOUT:
            self.timeouts += 1
            return Fault(kind, delay=TIMEOUT_SECONDS * 2)
        return Fault(kind)


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    # The sandbox enforces the published budgets (None = MANIFEST_RATE_LIMITS); the channel keeps
    # tradelane's defaults (no override), with a short client timeout for the injected timeouts.
    yield from build_world(
        engine,
        now,
        sandbox_limits=None,
        channel_limits={},
        options={"timeout_seconds": TIMEOUT_SECONDS},
        products_count=PRODUCTS,
    )


def _jobs_by_state(world: World) -> Counter[str]:
    with world.engine.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.state).where(jobs.c.tenant_id == world.tenant_id)).scalars()
        return Counter(rows)


def _drain(world: World) -> None:
    """Run until nothing is queued or running, moving time 5 s whenever nothing is ready."""
    world.run(max_rounds=ROUNDS, step=5)
    assert world.pending() == 0, f"work left after {ROUNDS} rounds: {_jobs_by_state(world)}"


def _check_retry_after(records: list[RequestRecord], injected: list[tuple[str, int]]) -> int:
    """Every injected 429: the next call of that operation came no earlier than its Retry-After."""
    limited = [r for r in records if r.fault is FaultKind.RATE_LIMIT]
    assert [r.op_id for r in limited] == [op for op, _ in injected]
    for record, (_, wait) in zip(limited, injected, strict=True):
        later = [r for r in records if r.op_id == record.op_id and r.at > record.at]
        same_instant = [
            r for r in records if r.op_id == record.op_id and r.at == record.at and r is not record
        ]
        assert not same_instant or wait == 0, f"{record.op_id} called again at once after a 429: {record}"
        if later:
            gap = (later[0].at - record.at).total_seconds()
            assert gap >= wait, f"{record.op_id} called {gap:g}s after a 429 with Retry-After {wait}"
    return len(limited)


def _check_budgets(records: list[RequestRecord]) -> None:
    """No sliding window of any published budget holds more calls than it allows (every call counts,
    failed ones too), and the sandbox's own limiter never had to refuse one."""
    refused = [r for r in records if r.status == 429 and r.fault is None]
    assert not refused, f"calls above the rate limit: {refused[:5]}"
    for op, (calls, per) in MANIFEST_RATE_LIMITS.items():
        assert DEFAULT_LIMITS[op].calls <= calls and DEFAULT_LIMITS[op].per_seconds >= per
        times = sorted(r.at for r in records if r.op_id == op)
        for i in range(calls, len(times)):
            window = (times[i] - times[i - calls]).total_seconds()
            assert window >= per, f"{op}: {calls + 1} calls within {window:g}s (budget {calls}/{per:g}s)"


def test_all_work_completes_through_a_flaky_marketplace_within_its_rate_limits(world: World) -> None:
    faults = FlakyFaults(seed=12)
    world.state.faults = faults
    products = catalog(PRODUCTS, quantity=1000)
    world.add_products(products)
    world.enqueue("offers.full", flow="offers")
    _drain(world)

    skus = [p.sku for p in products]
    expected_lines: dict[str, int] = {}
    for i in range(ORDERS):
        lines = [
            {"offer_sku": skus[(i + k) % PRODUCTS], "quantity": 1, "unit_price": "11.00"} for k in range(2)
        ]
        mid = world.order(lines, payment_delay=timedelta(0), staging_delay=timedelta(0))
        expected_lines[mid] = len(lines)
    # The scheduler's job, by hand: poll until every order is accepted and imported.
    for _ in range(40):
        world.enqueue("orders.poll")
        _drain(world)
        if {world.state.order(mid).state.value for mid in expected_lines} == {"SHIPPING"}:
            break
        world.advance(60)
    # A price change of every other product goes out as a delta.
    for product in products[::2]:
        world.change(product.sku, price=product.price + Decimal("1.50"))
    world.enqueue("offers.delta", flow="offers")
    _drain(world)

    states = _jobs_by_state(world)
    assert set(states) == {"succeeded"}, f"work that did not complete: {states}"
    assert {mid: world.state.order(mid).state.value for mid in expected_lines} == dict.fromkeys(
        expected_lines, "SHIPPING"
    )
    with world.engine.connect() as conn:
        imported = set(
            conn.execute(
                sa.select(orders.c.marketplace_order_id).where(orders.c.tenant_id == world.tenant_id)
            )
            .scalars()
            .all()
        )
    assert imported == set(expected_lines)
    offers = world.state.shop_offers(2000)
    want = {p.sku: p.price + (Decimal("1.50") if i % 2 == 0 else 0) for i, p in enumerate(products)}
    assert {sku: Decimal(str(o.price)) for sku, o in offers.items()} == want

    if faults.timeouts:  # a held-back answer is logged once the sandbox finally sends it
        time.sleep(TIMEOUT_SECONDS * 2 + 0.5)
    records = world.state.requests
    by_fault = Counter(r.fault.value for r in records if r.fault is not None)
    assert sum(by_fault.values()) >= 0.15 * len(records), (by_fault, len(records))
    assert set(by_fault) == {k.value for k in KINDS}, by_fault
    honoured = _check_retry_after(records, faults.rate_limited)
    _check_budgets(records)
    print(
        f"\nchaos flaky marketplace: {len(records)} calls, faults {dict(by_fault)}, {honoured} 429s honoured"
    )
