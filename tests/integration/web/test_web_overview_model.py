"""The read models behind the Overview and Channels pages, and the chart geometry."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from helpers import make_channel, make_tenant
from tradelane.connectors.mirakl.mapping import MiraklOrderState, neutral_state
from tradelane.domain.orders import MarketplaceOrder, MarketplaceOrderLine
from tradelane.persistence.tables import jobs, orders, rate_buckets
from tradelane.services.channel_insights import channel_insights
from tradelane.services.orders import ingest_order
from tradelane.services.overview import business_overview, hour_starts
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.ratelimit import RateLimit
from tradelane.web.dashboard.charts import nice_ceiling, stacked_bars


def _order(mid: str, created, state=MiraklOrderState.SHIPPING, deadline=None) -> MarketplaceOrder:
    line = MarketplaceOrderLine(f"{mid}-1", "SKU-1", 1, Decimal("5"), "EUR", state.value)
    return MarketplaceOrder(
        mid, neutral_state(state), "EUR", created, created, (line,), state.value, acceptance_deadline=deadline
    )


def test_overview_counts_backlog_and_buckets_per_hour(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    other, _ = make_tenant(engine, "globex", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    foreign = make_channel(engine, other.id, "shop", now)
    waiting = MiraklOrderState.WAITING_ACCEPTANCE
    placed = {
        "A": (now - timedelta(minutes=30), waiting, now + timedelta(hours=3)),
        "B": (now - timedelta(hours=2, minutes=10), waiting, now - timedelta(minutes=5)),  # overdue
        "C": (now - timedelta(hours=2, minutes=50), MiraklOrderState.SHIPPING, None),
        "D": (now - timedelta(hours=30), MiraklOrderState.SHIPPING, None),  # outside 24 h
    }
    with engine.begin() as conn:
        for mid, (created, state, deadline) in placed.items():
            ingest_order(
                conn,
                tenant_id=tenant.id,
                channel_id=channel.id,
                order=_order(mid, created, state, deadline),
                now=now,
            )
        ingest_order(
            conn, tenant_id=other.id, channel_id=foreign.id, order=_order("X", now, waiting, now), now=now
        )
        for i, state in enumerate(["succeeded", "succeeded", "dead"]):
            job = enqueue(conn, JobSpec(tenant.id, "k", {"i": i}), now=now).job_id
            finished = now - timedelta(minutes=5 + 60 * (i // 2))
            conn.execute(sa.update(jobs).where(jobs.c.id == job).values(state=state, finished_at=finished))
        view = business_overview(conn, tenant.id, now=now)
    assert (view.backlog.waiting, view.backlog.overdue) == (2, 1)
    assert view.backlog.soonest_seconds_left == 3 * 3600
    assert view.orders_per_hour is not None and view.jobs_per_hour is not None
    series = view.orders_per_hour.values["orders"]
    assert len(series) == 24 and sum(series) == 3
    # now is 12:00 sharp: the last bucket is the (empty) current hour
    assert (series[-1], series[-2], series[-3], series[-4]) == (0, 1, 0, 2)
    assert view.jobs_per_hour.values["succeeded"][-2] == 2 and view.jobs_per_hour.values["dead"][-3] == 1
    assert view.dead_letters == 1 and view.rejection_rate is None
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar() == 5


def test_hour_starts_end_with_the_current_hour(now):
    starts = hour_starts(now + timedelta(minutes=42), 24)
    assert starts[-1] == now and starts[0] == now - timedelta(hours=23)


def test_channel_insights_observe_the_period_and_refill_budgets(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    with engine.begin() as conn:
        for i in range(5):
            start = now - timedelta(minutes=5 * (5 - i))
            job = enqueue(
                conn,
                JobSpec(tenant.id, "orders.poll", {"i": i}, channel_id=channel.id, flow="orders"),
                now=start,
            )
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job.job_id)
                .values(state="succeeded", finished_at=start + timedelta(seconds=3))
            )
        conn.execute(
            sa.insert(rate_buckets).values(
                channel_id=channel.id, bucket="x:OP", tokens=0.5, updated_at=now - timedelta(seconds=6)
            )
        )
        [insight] = channel_insights(
            conn, tenant.id, now=now, limit_for=lambda ch, bucket: RateLimit(1, 60.0)
        )
    flows = {f.status.flow.value: f for f in insight.flows}
    assert flows["orders"].observed_period_seconds == 300 and flows["orders"].runs_last_24h == 5
    assert flows["offers"].observed_period_seconds is None
    assert flows["orders"].last_success_at == now - timedelta(minutes=5, seconds=-3)  # from the jobs
    assert flows["offers"].last_success_at is None
    [bucket] = insight.budgets
    assert bucket.tokens == pytest.approx(0.6) and bucket.capacity == 1.0
    assert bucket.seconds_to_next_token == pytest.approx(24.0)


def test_stacked_bars_scale_to_a_nice_ceiling(now):
    starts = hour_starts(now, 4)
    chart = stacked_bars(starts, {"succeeded": [0, 3, 1, 2], "dead": [0, 4, 0, 0]})
    assert chart.total == 10 and [t.value for t in chart.ticks] == [0, 5, 10]
    by_bucket = {(b.series, round(b.x)) for b in chart.bars}
    assert len(by_bucket) == 4  # zero values draw nothing
    tall = [b for b in chart.bars if b.value in (3, 4)]
    assert sum(b.height for b in tall) == pytest.approx((chart.baseline - 6) * 7 / 10)
    stacked_dead = next(b for b in chart.bars if b.series == "dead")
    under = next(b for b in chart.bars if b.series == "succeeded" and b.value == 3)
    assert stacked_dead.y + stacked_dead.height == pytest.approx(under.y)
    assert "2026-11-25 10:00 UTC: 4 dead" in stacked_dead.title
    with pytest.raises(ValueError):
        stacked_bars(starts, {"a": [1, 2]})


@pytest.mark.parametrize(("value", "expected"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (480, 500)])
def test_nice_ceiling(value, expected):
    assert nice_ceiling(value) == expected
