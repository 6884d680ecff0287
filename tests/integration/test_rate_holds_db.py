"""Retry-After holds on the stored buckets (:func:`tradelane.sync.ratelimit.hold`), through the
:class:`~tradelane.sync.ratelimit.RateLimiter` the connector sessions use, on both databases."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from helpers import FakeClock, make_channel, make_tenant
from tradelane.domain.errors import RetryableError
from tradelane.persistence.tables import rate_buckets
from tradelane.services.channel_insights import budgets
from tradelane.sync.ratelimit import RateLimit, RateLimiter


def test_a_hold_reschedules_for_exactly_the_retry_after_and_keeps_the_burst(
    engine: Engine, now: datetime
) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    clock = FakeClock(now)
    limiter = RateLimiter(engine, clock, sleep=clock.advance, max_wait=5)
    search = RateLimit(calls=1, per_seconds=180, burst=20)  # Amazon's searchOrders
    limiter.acquire(channel.id, "searchOrders", search)  # answered 429, Retry-After 45
    limiter.hold(channel.id, "searchOrders", search, 45)
    with pytest.raises(RetryableError) as info:
        limiter.acquire(channel.id, "searchOrders", search)
    assert info.value.retry_after == pytest.approx(45.0)  # not the 180 s of a refill
    clock.advance(44.5)
    limiter.acquire(channel.id, "searchOrders", search)  # sleeps the last half second in-process
    assert clock() == now + timedelta(seconds=45)
    for _ in range(18):  # the burst left: 19 tokens at the hold's end, one just taken
        assert limiter.try_acquire(channel.id, "searchOrders", search)
    assert not limiter.try_acquire(channel.id, "searchOrders", search)  # and not one more
    with engine.connect() as conn:
        tokens = conn.execute(
            sa.select(rate_buckets.c.tokens).where(rate_buckets.c.bucket == "searchOrders")
        ).scalar_one()
    assert 0.0 <= tokens < 1.0


def test_a_hold_within_a_spent_budget_waits_for_the_budget(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    clock = FakeClock(now)
    limiter = RateLimiter(engine, clock, sleep=clock.advance, max_wait=5)
    slow = RateLimit(calls=1, per_seconds=60)
    limiter.acquire(channel.id, "OR11", slow)
    limiter.hold(channel.id, "OR11", slow, 45)
    with pytest.raises(RetryableError) as info:
        limiter.acquire(channel.id, "OR11", slow)
    assert info.value.retry_after == pytest.approx(60.0)  # the budget's moment, later than asked


def test_the_dashboard_budget_of_a_held_bucket_counts_the_hold(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    clock = FakeClock(now)
    limiter = RateLimiter(engine, clock, sleep=clock.advance, max_wait=5)
    search = RateLimit(calls=1, per_seconds=180, burst=20)
    limiter.acquire(channel.id, "x:searchOrders", search)
    limiter.hold(channel.id, "x:searchOrders", search, 45)
    clock.advance(15)
    with engine.connect() as conn:
        [view] = budgets(conn, channel, now=clock(), limit_for=lambda _ch, _bucket: search)
    assert view.held_for == pytest.approx(30.0) and view.seconds_to_next_token == pytest.approx(30.0)
    assert view.tokens == pytest.approx(19.25)  # what the bucket holds when the hold ends
    with engine.connect() as conn:
        [view] = budgets(conn, channel, now=clock() + timedelta(seconds=31), limit_for=lambda *_: search)
    assert view.held_for == 0.0 and view.seconds_to_next_token == 0.0
