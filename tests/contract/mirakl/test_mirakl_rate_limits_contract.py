"""Budgets: tradelane never calls above the channel's rate, and a 429 storm loses nothing."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa

from mirakl_world import build_world, catalog
from tradelane.persistence.tables import jobs
from tradelane.services.orders import list_orders


def _gaps(records) -> list[float]:
    times = [r.at for r in records]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


def test_published_budgets_are_never_exceeded(engine, now):
    # Channel and sandbox both at Mirakl's published guidance (OR11 / OF24 once a minute).
    for w in build_world(engine, now, sandbox_limits=None, channel_limits={}):
        w.add_products(catalog(5))
        for _ in range(4):  # four separate poll requests in quick succession
            w.enqueue("orders.poll")
        for price in ("11", "12", "13"):
            w.change("SKU-1", price=Decimal(price))
            w.run()
            w.advance(10)
        w.run(step=10, max_rounds=200)
        assert [r for r in w.state.requests if r.status == 429] == []
        assert len(w.state.calls("OR11")) == 4
        assert all(gap >= 60 for gap in _gaps(w.state.calls("OR11")))
        assert all(gap >= 60 for gap in _gaps(w.state.calls("OF24")))
        assert w.state.shop_offers(2000)["SKU-1"].price == Decimal("13")


def test_429_storm_delivers_everything_and_honours_retry_after(engine, now):
    # The channel is configured faster than the operator allows: the marketplace answers 429s.
    for w in build_world(
        engine, now, sandbox_limits=None, channel_limits={"OR11": [1, 5], "OR21": [100, 60]}
    ):
        w.add_products(catalog(5, quantity=50))
        w.state.set_rate_limit("OR21", 100, 60)
        w.state.set_rate_limit("OF01", 1000, 1)
        w.state.set_rate_limit("OF02", 1000, 1)
        w.state.set_rate_limit("OF03", 1000, 1)
        w.state.set_rate_limit("OF24", 1000, 1)
        w.enqueue("offers.full", flow="offers")
        w.run(step=20, max_rounds=100)
        w.state.inject("OR11", "rate_limit", count=5, retry_after=45)
        expected = set()
        for i in range(6):
            expected.add(w.order([{"offer_sku": f"SKU-{i % 5}", "quantity": 1}]))
            w.enqueue("orders.poll")
            w.run()
            w.advance(5)
        w.run(step=5, max_rounds=400)
        with w.engine.connect() as conn:
            got = {o["marketplace_order_id"] for o in list_orders(conn, w.tenant_id)}
            states = dict(conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)).all())
        assert got == expected
        assert set(states) <= {"succeeded", "cancelled"}  # nothing dead, nothing left behind
        assert len(w.state.calls("OR21")) == len(expected)
        calls = w.state.calls("OR11")
        throttled = [c for c in calls if c.status == 429]
        assert len(throttled) >= 5
        for refused in throttled:  # the next call came no earlier than Retry-After allowed
            later = [c.at for c in calls if c.at > refused.at]
            if later:
                assert later[0] - refused.at >= timedelta(seconds=45) or refused.fault is None
