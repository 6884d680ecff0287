"""The durable engine against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import FakeClock, make_channel, make_tenant
from tradelane.domain.channels import Flow
from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.persistence.tables import channel_flows, jobs
from tradelane.services.channels import set_paused
from tradelane.sync import jobs as jobstore
from tradelane.sync.context import JobContext
from tradelane.sync.ratelimit import RateLimit, RateLimiter, take
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig


def _worker(engine, registry, clock, **cfg: Any) -> Worker:
    config = WorkerConfig(**{"lease_seconds": 30, "schedule": False, **cfg})
    return Worker(engine, registry, clock, config, name="w-test")


def _state(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()


def test_idempotency_key_yields_one_job(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    spec = jobstore.JobSpec(tenant_id=tenant.id, kind="system.noop", payload={}, idempotency_key="order:1")
    with engine.begin() as conn:
        first = jobstore.enqueue(conn, spec, now=now)
        second = jobstore.enqueue(conn, spec, now=now)
    assert first.created and not second.created and first.job_id == second.job_id
    other, _ = make_tenant(engine, "other", now)
    with engine.begin() as conn:  # keys are per tenant
        third = jobstore.enqueue(
            conn, jobstore.JobSpec(other.id, "system.noop", {}, idempotency_key="order:1"), now=now
        )
    assert third.created


def test_dedupe_key_coalesces_only_pending_jobs(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    spec = jobstore.JobSpec(tenant_id=tenant.id, kind="system.noop", payload={}, dedupe_key="delta:1")
    with engine.begin() as conn:
        a = jobstore.enqueue(conn, spec, now=now)
        b = jobstore.enqueue(conn, spec, now=now)
        assert a.job_id == b.job_id and not b.created
        [claimed] = jobstore.claim(conn, worker="w", now=now, lease_seconds=30)
        c = jobstore.enqueue(conn, spec, now=now)  # the first is running: a new pending one is allowed
    assert c.created and c.job_id != a.job_id
    # The running one fails retryably: it folds into the pending job instead of violating uniqueness.
    with engine.begin() as conn:
        assert jobstore.retry_later(conn, claimed, now=now, delay=40, error="429")
    assert _state(engine, a.job_id).state == "cancelled"
    assert _state(engine, c.job_id).run_at == now + timedelta(seconds=40)


def test_success_retry_backoff_and_retry_after(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    clock = FakeClock(now)
    calls: list[int] = []

    def flaky(ctx: JobContext) -> dict[str, Any]:
        calls.append(ctx.job.attempts)
        if len(calls) == 1:
            raise RetryableError("503 from remote")
        if len(calls) == 2:
            raise RetryableError("429", retry_after=17.5)
        return {"ok": True}

    registry = JobRegistry()
    registry.register("t.flaky", flaky)
    with engine.begin() as conn:
        job_id = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, "t.flaky", {}), now=now).job_id
    worker = _worker(engine, registry, clock, backoff_base=4, backoff_cap=100)
    assert worker.run_once() == 1
    row = _state(engine, job_id)
    assert row.state == "queued" and row.attempts == 1 and row.last_error == "503 from remote"
    assert now + timedelta(seconds=2) <= row.run_at <= now + timedelta(seconds=4)  # attempt 1: [base/2, base]
    assert worker.run_once() == 0  # not ready yet
    clock.advance(4)
    assert worker.run_once() == 1
    row = _state(engine, job_id)
    assert row.run_at == clock() + timedelta(seconds=17.5)  # Retry-After honoured exactly
    assert row.attempts == 1  # throttling does not consume an attempt
    clock.advance(17.4)
    assert worker.run_once() == 0
    clock.advance(0.1)
    assert worker.run_once() == 1
    row = _state(engine, job_id)
    assert row.state == "succeeded" and row.result == {"ok": True}
    assert calls == [1, 2, 2]


def test_permanent_error_dead_letters_with_reason_and_replay(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    clock = FakeClock(now)
    fail = {"on": True}

    def handler(ctx: JobContext) -> None:
        if fail["on"]:
            raise PermanentError("SKU ABC unknown on marketplace", raw='{"status":400}')

    registry = JobRegistry()
    registry.register("t.perm", handler)
    with engine.begin() as conn:
        job_id = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, "t.perm", {"sku": "ABC"}), now=now).job_id
    worker = _worker(engine, registry, clock)
    worker.run_once()
    row = _state(engine, job_id)
    assert row.state == "dead" and row.error_kind == "permanent"
    assert "SKU ABC unknown" in row.last_error and '{"status":400}' in row.last_error
    assert row.payload == {"sku": "ABC"}
    fail["on"] = False
    with engine.begin() as conn:
        assert jobstore.replay(conn, tenant.id, [job_id], now=clock()) == [job_id]
    worker.run_once()
    assert _state(engine, job_id).state == "succeeded"


def test_attempts_exhausted_and_unknown_kind_go_dead(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    clock = FakeClock(now)

    def always_fails(ctx: JobContext) -> None:
        raise RuntimeError("boom")

    registry = JobRegistry()
    registry.register("t.crash", always_fails)
    with engine.begin() as conn:
        crash = jobstore.enqueue(
            conn, jobstore.JobSpec(tenant.id, "t.crash", {}, max_attempts=3), now=now
        ).job_id
        unknown = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, "t.nobody", {}), now=now).job_id
    worker = _worker(engine, registry, clock, backoff_base=1, backoff_cap=1)
    for _ in range(5):
        worker.run_once()
        clock.advance(2)
    crashed = _state(engine, crash)
    assert crashed.state == "dead" and crashed.attempts == 3 and crashed.error_kind == "exhausted"
    assert "RuntimeError: boom" in crashed.last_error
    assert _state(engine, unknown).state == "dead"
    assert "no handler" in _state(engine, unknown).last_error


def test_expired_lease_is_reclaimed_and_fenced(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        job_id = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, "system.noop", {}), now=now).job_id
        [first] = jobstore.claim(conn, worker="dead-worker", now=now, lease_seconds=10)
        assert jobstore.claim(conn, worker="other", now=now + timedelta(seconds=5), lease_seconds=10) == []
        [second] = jobstore.claim(conn, worker="other", now=now + timedelta(seconds=11), lease_seconds=10)
    assert second.id == job_id and second.attempts == 2
    with engine.begin() as conn:
        # The first worker woke up: it can no longer complete, fail or extend the job.
        assert not jobstore.complete(conn, first, now=now)
        assert not jobstore.extend_lease(conn, first, now=now, lease_seconds=10)
        assert jobstore.complete(conn, second, now=now + timedelta(seconds=12))
    assert _state(engine, job_id).state == "succeeded"


def test_paused_flow_is_not_claimed_until_resumed(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    with engine.begin() as conn:
        orders = jobstore.enqueue(
            conn,
            jobstore.JobSpec(tenant.id, "system.noop", {}, channel_id=channel.id, flow="orders"),
            now=now,
        ).job_id
        offers = jobstore.enqueue(
            conn,
            jobstore.JobSpec(tenant.id, "system.noop", {}, channel_id=channel.id, flow="offers"),
            now=now,
        ).job_id
        set_paused(conn, channel, [Flow.ORDERS], True)
    registry = JobRegistry()
    from tradelane.sync import builtin

    builtin.register(registry)
    worker = _worker(engine, registry, FakeClock(now))
    worker.run(burst=True)
    assert _state(engine, offers).state == "succeeded"
    assert _state(engine, orders).state == "queued"
    with engine.begin() as conn:
        set_paused(conn, channel, [Flow.ORDERS], False)
    worker.run(burst=True)
    assert _state(engine, orders).state == "succeeded"


def test_scheduler_enqueues_due_flows_once(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    ran: list[int] = []
    registry = JobRegistry()
    registry.register("orders.poll", lambda ctx: ran.append(ctx.job.channel_id) or None)
    clock = FakeClock(now)
    worker = _worker(engine, registry, clock, schedule=True)
    worker.run(burst=True)
    worker.run(burst=True)
    assert ran == [channel.id]  # due once at creation, then every 300 s
    clock.advance(299)
    worker.run(burst=True)
    assert ran == [channel.id]
    clock.advance(1)
    worker.run(burst=True)
    assert ran == [channel.id, channel.id]
    with engine.connect() as conn:
        flow = conn.execute(
            sa.select(channel_flows).where(
                channel_flows.c.channel_id == channel.id, channel_flows.c.flow == "orders"
            )
        ).one()
    assert flow.last_success_at == clock() and flow.next_run_at == clock() + timedelta(seconds=300)


def test_token_bucket_never_exceeds_budget(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    limit = RateLimit(calls=3, per_seconds=60)
    granted = []
    t = now
    for step in range(120):  # two simulated minutes, one try per second
        with engine.begin() as conn:
            if take(conn, channel.id, "OR11", limit, now=t) == 0.0:
                granted.append(t)
        t = now + timedelta(seconds=step + 1)
    # Evenly spaced: one grant every 20 s, so any 60 s window holds at most 3 and the budget is used.
    assert len(granted) == 6
    for i, start in enumerate(granted):
        in_window = [g for g in granted[i:] if g < start + timedelta(seconds=60)]
        assert len(in_window) <= 3
    burst = RateLimit(calls=2, per_seconds=1, burst=5)  # declared token bucket (e.g. Amazon)
    with engine.begin() as conn:
        grants = [take(conn, channel.id, "burst", burst, now=t) == 0.0 for _ in range(7)]
    assert grants == [True] * 5 + [False] * 2


def test_rate_limiter_sleeps_briefly_or_reschedules(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    clock = FakeClock(now)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    limiter = RateLimiter(engine, clock, sleep=sleep, max_wait=5)
    fast = RateLimit(calls=1, per_seconds=2)
    limiter.acquire(channel.id, "fast", fast)
    limiter.acquire(channel.id, "fast", fast)
    assert slept == [pytest.approx(2.0)]
    slow = RateLimit(calls=1, per_seconds=60)
    limiter.acquire(channel.id, "slow", slow)
    with pytest.raises(RetryableError) as info:
        limiter.acquire(channel.id, "slow", slow)
    assert info.value.retry_after == pytest.approx(60.0)


def test_complete_in_commits_effect_and_completion_together(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    registry = JobRegistry()

    def handler(ctx: JobContext) -> None:
        with ctx.transaction() as conn:
            conn.execute(sa.update(jobs).where(jobs.c.id == ctx.job.id).values(priority=7))
            ctx.complete_in(conn, {"done": 1})

    registry.register("t.atomic", handler)
    with engine.begin() as conn:
        job_id = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, "t.atomic", {}), now=now).job_id
    _worker(engine, registry, FakeClock(now)).run(burst=True)
    row = _state(engine, job_id)
    assert row.state == "succeeded" and row.priority == 7 and row.result == {"done": 1}
