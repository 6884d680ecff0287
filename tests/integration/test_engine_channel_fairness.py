"""The fair claim takes turns across (tenant, channel) groups within each priority, not only across
tenants (SQLite and PostgreSQL, through ``claim`` and ``ack_and_claim``): one channel's backlog of a
merchant (a full offer sync, an order-acceptance storm) does not delay the acceptance of an order on
the same merchant's other channel. Jobs of no channel form a group of their own."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import FakeClock, make_channel, make_tenant
from tradelane.persistence.tables import jobs
from tradelane.persistence.types import JSONDoc
from tradelane.sync import jobs as jobstore
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

ACCEPT = "test.accept"  # stands for orders.accept: priority 10, a no-op handler


def _backlog(engine: Any, tenant_id: int, channel_id: int | None, count: int, *, run_at: datetime) -> None:
    """Queue ``count`` priority-10 jobs of ``channel_id`` in one set-wise statement (a recursive counter);
    their ids increase with their queue position."""
    counter = sa.select(sa.literal(1).label("i")).cte("counter", recursive=True)
    counter = counter.union_all(sa.select(counter.c.i + 1).where(counter.c.i < count))
    columns = ["tenant_id", "channel_id", "kind", "payload", "state", "priority", "attempts"]
    columns += ["max_attempts", "run_at", "created_at", "updated_at"]
    rows = sa.select(
        sa.literal(tenant_id),
        sa.literal(channel_id, type_=jobs.c.channel_id.type),
        sa.literal(ACCEPT),
        sa.literal({"backlog": True}, type_=JSONDoc),
        sa.literal("queued"),
        sa.literal(10),
        sa.literal(0),
        sa.literal(8),
        sa.literal(run_at, type_=jobs.c.run_at.type),
        sa.literal(run_at, type_=jobs.c.created_at.type),
        sa.literal(run_at, type_=jobs.c.updated_at.type),
    ).select_from(counter)
    with engine.begin() as conn:
        conn.execute(sa.insert(jobs).from_select(columns, rows.order_by(counter.c.i)))


def _enqueue(engine: Any, tenant_id: int, channel_id: int | None, at: datetime, priority: int = 10) -> int:
    with engine.begin() as conn:
        spec = jobstore.JobSpec(
            tenant_id=tenant_id, channel_id=channel_id, kind=ACCEPT, payload={}, run_at=at, priority=priority
        )
        return jobstore.enqueue(conn, spec, now=at).job_id


def _claim(engine: Any, now: datetime, limit: int) -> list[jobstore.ClaimedJob]:
    with engine.begin() as conn:
        return jobstore.claim(conn, worker="w", now=now, lease_seconds=30, limit=limit)


def _ack_and_claim(engine: Any, now: datetime, limit: int) -> list[jobstore.ClaimedJob]:
    with engine.begin() as conn:
        return jobstore.ack_and_claim(conn, [], worker="w", now=now, lease_seconds=30, limit=limit)[1]


BOTH = pytest.mark.parametrize("claim", [_claim, _ack_and_claim], ids=["claim", "ack_and_claim"])


@BOTH
def test_the_reviewers_case_a_quiet_channel_gets_its_job_into_the_first_claim(engine, now, claim):
    """One tenant, 500 older priority-10 jobs on channel "busy", one on channel "quiet": a claim of 50
    used to be the 50 oldest of "busy"."""
    tenant, _ = make_tenant(engine, "acme", now)
    busy = make_channel(engine, tenant.id, "busy", now)
    quiet = make_channel(engine, tenant.id, "quiet", now)
    _backlog(engine, tenant.id, busy.id, 500, run_at=now - timedelta(hours=1))
    accept = _enqueue(engine, tenant.id, quiet.id, now)

    batch = claim(engine, now, 50)
    assert len(batch) == 50
    # Round-robin: the first job of each channel first (the busy channel's is older), then the rest.
    assert [j.id for j in batch[:2]] == [batch[0].id, accept]
    assert [j.channel_id for j in batch].count(busy.id) == 49
    # The busy channel's jobs still run in their own queue order.
    busy_ids = [j.id for j in batch if j.channel_id == busy.id]
    assert busy_ids == sorted(busy_ids)
    rest = claim(engine, now, 1000)
    assert len(rest) == 451 and accept not in {j.id for j in rest}  # nothing handed out twice


@BOTH
def test_two_tenants_with_two_channels_and_channel_less_jobs_take_turns(engine, now, claim):
    a, _ = make_tenant(engine, "a", now)
    b, _ = make_tenant(engine, "b", now)
    a1, a2 = make_channel(engine, a.id, "a1", now), make_channel(engine, a.id, "a2", now)
    b1, b2 = make_channel(engine, b.id, "b1", now), make_channel(engine, b.id, "b2", now)
    hour = now - timedelta(hours=1)
    _backlog(engine, a.id, a1.id, 300, run_at=hour)  # the oldest and by far the largest
    _backlog(engine, b.id, b1.id, 5, run_at=hour + timedelta(minutes=10))
    b2_jobs = [_enqueue(engine, b.id, b2.id, hour + timedelta(minutes=20 + i)) for i in range(2)]
    a2_job = _enqueue(engine, a.id, a2.id, hour + timedelta(minutes=30))
    a_none = _enqueue(engine, a.id, None, hour + timedelta(minutes=40))  # no channel: a group of its own
    less_urgent = _enqueue(engine, b.id, b2.id, hour - timedelta(hours=1), priority=100)

    batch = claim(engine, now, 12)
    groups = [(j.tenant_id, j.channel_id) for j in batch]
    # Every group's first job first, oldest head first; then each group's second job; then the rest.
    assert groups[:5] == [(a.id, a1.id), (b.id, b1.id), (b.id, b2.id), (a.id, a2.id), (a.id, None)]
    assert groups[5:8] == [(a.id, a1.id), (b.id, b1.id), (b.id, b2.id)]
    assert batch[2].id == b2_jobs[0] and batch[7].id == b2_jobs[1]
    assert (batch[3].id, batch[4].id) == (a2_job, a_none)
    assert groups.count((a.id, a1.id)) == 5 and groups.count((b.id, b1.id)) == 3
    # The older but less urgent job waits behind every more urgent one, whatever its group.
    assert less_urgent not in {j.id for j in batch}
    rest = claim(engine, now, 1000)
    assert len(rest) == 300 + 5 + 2 + 1 + 1 + 1 - 12 and rest[-1].id == less_urgent


def test_the_worker_accepts_the_quiet_channels_order_in_its_first_batch(engine, now):
    """The same through a worker (``ack_and_claim`` on PostgreSQL), behind a 100,000-job backlog of the
    tenant's other channel."""
    tenant, _ = make_tenant(engine, "acme", now)
    busy = make_channel(engine, tenant.id, "busy", now)
    quiet = make_channel(engine, tenant.id, "quiet", now)
    _backlog(engine, tenant.id, busy.id, 100_000, run_at=now - timedelta(hours=1))
    accept = _enqueue(engine, tenant.id, quiet.id, now)

    seen: list[int | None] = []
    registry = JobRegistry()
    registry.register(ACCEPT, lambda ctx: seen.append(ctx.job.channel_id))
    worker = Worker(engine, registry, FakeClock(now), WorkerConfig(batch_size=10, schedule=False), name="w")
    assert worker.run_once() == 10
    assert seen.index(quiet.id) <= 1 and seen.count(busy.id) == 9
    with engine.connect() as conn:
        assert conn.execute(sa.select(jobs.c.state).where(jobs.c.id == accept)).scalar() == "succeeded"


def _scans(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every plan node under ``node`` (PostgreSQL's JSON plan) that reads the jobs table."""
    found = [node] if node.get("Relation Name") == "jobs" else []
    for child in node.get("Plans", []):
        found += _scans(child)
    return found


def test_the_claim_reads_the_partial_indexes_not_the_backlog(engine, now):
    """On 100,000 queued jobs the fair claim's statements are index-driven: every read of ``jobs``
    goes through an index (the two partial indexes of the claim among them), none sorts the backlog;
    on PostgreSQL the one-statement ``ack_and_claim`` reads a few hundred job rows for a claim of 50.
    SQLite uses a partial index only if the query spells its predicate (``_claimable``): before, its
    claim scanned and sorted every job."""
    tenant, _ = make_tenant(engine, "acme", now)
    other, _ = make_tenant(engine, "other", now)
    busy = make_channel(engine, tenant.id, "busy", now)
    quiet = make_channel(engine, tenant.id, "quiet", now)
    _backlog(engine, tenant.id, busy.id, 100_000, run_at=now - timedelta(hours=1))
    _enqueue(engine, tenant.id, quiet.id, now)
    _enqueue(engine, other.id, None, now)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE jobs" if engine.dialect.name == "postgresql" else "ANALYZE")

    if engine.dialect.name == "postgresql":
        params = {
            "b_ack_ids": "{}",
            "b_ack_results": "[]",
            "b_ack_token": None,
            "b_now": now,
            "b_limit": 50,
            "b_lost_reason": "lost",
            "b_worker": "w",
            "b_token": "t",
            "b_expires": now + timedelta(seconds=30),
        }
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + jobstore._ACK_AND_CLAIM_PG, params
            ).scalar()
            conn.rollback()
        scans = _scans(plan[0]["Plan"])
        assert {s["Node Type"] for s in scans} <= {"Index Scan", "Index Only Scan", "ModifyTable"}, scans
        assert {"ix_jobs_claim_order", "ix_jobs_group_ready"} <= {s.get("Index Name") for s in scans}
        read = sum((s["Actual Rows"] + s.get("Rows Removed by Filter", 0)) * s["Actual Loops"] for s in scans)
        assert read < 1_000, read
        return

    statements: list[tuple[str, Any]] = []

    def grab(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        if statement.lstrip().upper().startswith(("WITH", "SELECT")):
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", grab)
    try:
        batch = _claim(engine, now, 50)
    finally:
        sa.event.remove(engine, "before_cursor_execute", grab)
    assert len(batch) == 50 and len(statements) == 2  # the heads and the queue's first jobs, the shares
    details: list[str] = []
    raw = engine.raw_connection()
    try:
        for statement, parameters in statements:
            details += [row[3] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
    finally:
        raw.close()
    reads = [d for d in details if d.startswith(("SCAN", "SEARCH"))]
    jobs_reads = [
        d for d in reads if "channel_flows" not in d and "anon_" not in d and "group_heads" not in d
    ]
    assert all("USING" in d for d in jobs_reads), details
    assert any("ix_jobs_claim_order" in d for d in jobs_reads), details
    assert any("ix_jobs_group_ready" in d for d in jobs_reads), details
