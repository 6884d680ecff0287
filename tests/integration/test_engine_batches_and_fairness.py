"""The engine completes claimed batches in one go and claims fairly across tenants (SQLite and
PostgreSQL): a tenant's 100,000-job backlog does not keep another tenant's order acceptance waiting."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from helpers import FakeClock, make_channel, make_tenant
from tradelane.domain.channels import Flow
from tradelane.persistence.tables import channel_flows, job_attempts, jobs
from tradelane.persistence.types import JSONDoc
from tradelane.sync import jobs as jobstore
from tradelane.sync.context import JobContext
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

ACCEPT = "test.accept"  # stands for orders.accept: same priority (10), a no-op handler

BACKLOG = 100_000


def _backlog(engine: Any, tenant_id: int, count: int, *, priority: int, run_at: datetime) -> None:
    """Queue ``count`` jobs for ``tenant_id`` in one set-wise statement (a recursive counter)."""
    counter = sa.select(sa.literal(1).label("i")).cte("counter", recursive=True)
    counter = counter.union_all(sa.select(counter.c.i + 1).where(counter.c.i < count))
    columns = ["tenant_id", "kind", "payload", "state", "priority", "attempts", "max_attempts", "run_at"]
    columns += ["created_at", "updated_at"]
    rows = sa.select(
        sa.literal(tenant_id),
        sa.literal(ACCEPT),
        sa.literal({"backlog": True}, type_=JSONDoc),
        sa.literal("queued"),
        sa.literal(priority),
        sa.literal(0),
        sa.literal(8),
        sa.literal(run_at, type_=jobs.c.run_at.type),
        sa.literal(run_at, type_=jobs.c.created_at.type),
        sa.literal(run_at, type_=jobs.c.updated_at.type),
    ).select_from(counter)
    with engine.begin() as conn:
        conn.execute(sa.insert(jobs).from_select(columns, rows))


def _enqueue(engine: Any, tenant_id: int, now: datetime, **spec: Any) -> int:
    with engine.begin() as conn:
        return jobstore.enqueue(
            conn, jobstore.JobSpec(tenant_id=tenant_id, kind=ACCEPT, payload={}, **spec), now=now
        ).job_id


def _states(engine: Any, ids: list[int]) -> list[str]:
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(ids))).all())
    return [rows[i] for i in ids]


def test_a_backlog_of_one_tenant_does_not_delay_another_tenants_acceptance(engine, now):
    big, _ = make_tenant(engine, "big", now)
    small, _ = make_tenant(engine, "small", now)
    # 100,000 acceptances of one tenant, all older and as urgent as the other tenant's one.
    _backlog(engine, big.id, BACKLOG, priority=10, run_at=now - timedelta(hours=1))
    urgent = _enqueue(engine, small.id, now, priority=10, idempotency_key="accept:order-1")

    seen: list[int] = []
    registry = JobRegistry()
    registry.register(ACCEPT, lambda ctx: seen.append(ctx.job.tenant_id))
    worker = Worker(engine, registry, FakeClock(now), WorkerConfig(batch_size=10, schedule=False), name="w")
    assert worker.run_once() == 10
    # Accepted in the first batch, and early in it (round-robin: one job of each tenant first).
    assert _states(engine, [urgent]) == ["succeeded"]
    assert seen.index(small.id) <= 1 and seen.count(big.id) == 9


def test_the_fair_claim_keeps_priority_first_then_round_robin(engine, now):
    a, _ = make_tenant(engine, "a", now)
    b, _ = make_tenant(engine, "b", now)
    c, _ = make_tenant(engine, "c", now)
    _backlog(engine, a.id, 50, priority=10, run_at=now - timedelta(minutes=5))
    later_b = [_enqueue(engine, b.id, now - timedelta(minutes=1), priority=10) for _ in range(3)]
    less_urgent = _enqueue(engine, c.id, now - timedelta(hours=2), priority=100)
    with engine.begin() as conn:
        batch = jobstore.claim(conn, worker="w", now=now, lease_seconds=30, limit=8)
    assert [j.tenant_id for j in batch] == [a.id, b.id, a.id, b.id, a.id, b.id, a.id, a.id]
    assert [j.id for j in batch if j.tenant_id == b.id] == later_b
    # The older but less urgent job of a third tenant waits behind every more urgent one.
    assert less_urgent not in {j.id for j in batch}
    with engine.begin() as conn:
        rest = jobstore.claim(conn, worker="w2", now=now, lease_seconds=30, limit=100)
    assert len(rest) == 46 and rest[-1].id == less_urgent  # nothing handed out twice


def _counting_updates(engine: Any) -> tuple[list[str], Any]:
    statements: list[str] = []

    def count(_conn, _cursor, statement, _params, _context, _executemany) -> None:
        text = statement.lstrip().upper()
        if text.startswith(("UPDATE JOBS", "INSERT INTO JOB_ATTEMPTS")) or (
            text.startswith("WITH") and "UPDATE JOBS" in text  # PostgreSQL's one-statement ack + claim
        ):
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    return statements, count


def test_a_batch_is_acknowledged_in_one_statement_with_its_flow_success(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    channel = make_channel(engine, tenant.id, "shop", now)
    ids = [_enqueue(engine, tenant.id, now, channel_id=channel.id, flow=Flow.ORDERS.value) for _ in range(20)]
    registry = JobRegistry()
    registry.register(ACCEPT, lambda ctx: {"n": ctx.job.id})
    worker = Worker(engine, registry, FakeClock(now), WorkerConfig(batch_size=20, schedule=False), name="w")
    worker.run_once()  # learns that the kind is fast (the first job's ack is flushed before the next)
    more = [
        _enqueue(engine, tenant.id, now, channel_id=channel.id, flow=Flow.ORDERS.value) for _ in range(20)
    ]
    statements, listener = _counting_updates(engine)
    try:
        assert worker.run_once() == 20
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    # One claim and one (executemany) completion for 20 jobs; no attempt rows for successes.
    assert len(statements) == 2, statements
    assert _states(engine, ids + more) == ["succeeded"] * 40
    assert worker.stats.succeeded == 40 and worker.stats.lost == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(jobs.c.result).where(jobs.c.id == more[-1])).scalar() == {"n": more[-1]}
        flow = conn.execute(
            sa.select(channel_flows.c.last_success_at).where(
                channel_flows.c.channel_id == channel.id, channel_flows.c.flow == Flow.ORDERS.value
            )
        ).scalar()
        assert conn.execute(sa.select(sa.func.count()).select_from(job_attempts)).scalar() == 0
    assert flow == now


def test_a_finished_job_whose_lease_was_lost_before_its_ack_is_not_acknowledged(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    first = _enqueue(engine, tenant.id, now, priority=1)
    second = _enqueue(engine, tenant.id, now, priority=2)
    warmup = _enqueue(engine, tenant.id, now - timedelta(seconds=1), priority=0)
    clock = FakeClock(now)
    taken: list[jobstore.ClaimedJob] = []

    def handler(ctx: JobContext) -> None:
        if ctx.job.id != second:
            return
        # While the second job runs, the first (finished, its ack pending) is lost: its lease runs
        # out and another worker takes it over.
        with engine.begin() as conn:
            conn.execute(
                sa.update(jobs).where(jobs.c.id == first).values(lease_expires_at=now - timedelta(seconds=1))
            )
            taken.extend(jobstore.claim(conn, worker="other", now=now, lease_seconds=30, kinds=[ACCEPT]))

    registry = JobRegistry()
    registry.register(ACCEPT, handler)
    worker = Worker(engine, registry, clock, WorkerConfig(batch_size=1, schedule=False), name="w")
    assert worker.run_once() == 1  # the warm-up job: the kind is now known to be fast
    worker.config.batch_size = 10
    assert worker.run_once() == 2
    assert [j.id for j in taken] == [first]
    assert _states(engine, [warmup, first, second]) == ["succeeded", "running", "succeeded"]
    assert worker.stats.succeeded == 2 and worker.stats.lost == 1
    with engine.connect() as conn:
        owner = conn.execute(sa.select(jobs.c.lease_owner).where(jobs.c.id == first)).scalar()
    assert owner == "other"


def test_a_stop_mid_batch_acknowledges_the_finished_and_releases_the_rest(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    ids = [_enqueue(engine, tenant.id, now) for _ in range(5)]
    worker: Worker

    def handler(ctx: JobContext) -> None:
        if ctx.job.id == ids[1]:
            worker.request_stop()

    registry = JobRegistry()
    registry.register(ACCEPT, handler)
    worker = Worker(engine, registry, FakeClock(now), WorkerConfig(batch_size=5, schedule=False), name="w")
    assert worker.run_once() == 5
    assert _states(engine, ids) == ["succeeded", "succeeded", "queued", "queued", "queued"]
    assert worker.stats.succeeded == 2 and worker.stats.released == 3
