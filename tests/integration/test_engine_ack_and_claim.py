"""``jobs.ack_and_claim``: the previous batch's acknowledgement and the next fair claim, one statement on
PostgreSQL (the two calls in one transaction on SQLite), with the contracts of ``complete_many`` and
``claim``; and a worker whose bookkeeping fails after its handlers ran acknowledges them on a fresh
connection instead of letting them run again."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import FakeClock, make_tenant
from tradelane.persistence.tables import job_attempts, jobs
from tradelane.sync import jobs as jobstore
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig
from tradelane.timeutil import utcnow

KIND = "test.fast"


def _enqueue(engine: Any, tenant_id: int, at: datetime, priority: int = 10) -> int:
    with engine.begin() as conn:
        spec = jobstore.JobSpec(
            tenant_id=tenant_id, kind=KIND, payload={"p": 1}, run_at=at, priority=priority
        )
        return jobstore.enqueue(conn, spec, now=at).job_id


def _rows(engine: Any, ids: list[int]) -> dict[int, Any]:
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(jobs).where(jobs.c.id.in_(ids)))}


def _ack_and_claim(engine: Any, done: list[Any], *, worker: str, now: datetime, limit: int) -> Any:
    with engine.begin() as conn:
        return jobstore.ack_and_claim(conn, done, worker=worker, now=now, lease_seconds=10, limit=limit)


def test_it_claims_fairly_and_acknowledges_the_previous_batch_in_the_same_statement(engine, now):
    a, _ = make_tenant(engine, "a", now)
    b, _ = make_tenant(engine, "b", now)
    c, _ = make_tenant(engine, "c", now)
    backlog = [_enqueue(engine, a.id, now - timedelta(minutes=5)) for _ in range(12)]
    later_b = [_enqueue(engine, b.id, now - timedelta(minutes=1)) for _ in range(3)]
    less_urgent = _enqueue(engine, c.id, now - timedelta(hours=2), priority=100)

    acked, first = _ack_and_claim(engine, [], worker="w", now=now, limit=8)
    assert acked == set()
    # Priority first, then round-robin across the tenants with work, each in its own queue order.
    assert [j.tenant_id for j in first] == [a.id, b.id, a.id, b.id, a.id, b.id, a.id, a.id]
    assert [j.id for j in first if j.tenant_id == b.id] == later_b
    assert [j.id for j in first if j.tenant_id == a.id] == backlog[:5]
    assert {j.lease_token for j in first} == {first[0].lease_token} and first[0].attempts == 1

    results = [({"n": j.id} if i % 2 else None) for i, j in enumerate(first)]
    acked, rest = _ack_and_claim(
        engine, list(zip(first, results, strict=True)), worker="w", now=now, limit=100
    )
    assert acked == {j.id for j in first}
    assert [j.id for j in rest] == [*backlog[5:], less_urgent]  # nothing handed out twice
    rows = _rows(engine, [j.id for j in first])
    assert {rows[j.id].state for j in first} == {"succeeded"}
    assert [rows[j.id].result for j in first] == results  # None stays SQL NULL
    assert all(rows[j.id].lease_token is None and rows[j.id].finished_at == now for j in first)


def test_a_lost_lease_is_not_acknowledged_and_the_job_is_taken_over_with_its_history(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    job_id = _enqueue(engine, tenant.id, now)
    _, [mine] = _ack_and_claim(engine, [], worker="w1", now=now, limit=10)
    later = now + timedelta(seconds=11)  # w1's lease (10 s) expired
    acked, [taken] = _ack_and_claim(engine, [], worker="w2", now=later, limit=10)
    assert (taken.id, taken.attempts, taken.worker) == (job_id, 2, "w2")
    with engine.connect() as conn:
        history = conn.execute(
            sa.select(job_attempts.c.attempt, job_attempts.c.outcome, job_attempts.c.worker)
        )
        assert [tuple(r) for r in history] == [(1, "lease_expired", "w1")]
    # w1 finishes late: its acknowledgement is fenced out.
    acked, claimed = _ack_and_claim(engine, [(mine, {"late": True})], worker="w1", now=later, limit=10)
    assert (acked, claimed) == (set(), [])
    row = _rows(engine, [job_id])[job_id]
    assert (row.state, row.lease_owner, row.result) == ("running", "w2", None)


def test_a_job_being_acknowledged_is_not_claimed_again_by_the_same_statement(engine, now):
    """Its lease ran out while it waited for the ack, but nobody took it: the ack wins, no re-run."""
    tenant, _ = make_tenant(engine, "acme", now)
    job_id = _enqueue(engine, tenant.id, now)
    _, [job] = _ack_and_claim(engine, [], worker="w", now=now, limit=10)
    acked, claimed = _ack_and_claim(
        engine, [(job, None)], worker="w", now=now + timedelta(seconds=11), limit=10
    )
    assert (acked, claimed) == ({job_id}, [])
    assert _rows(engine, [job_id])[job_id].state == "succeeded"


def test_finished_jobs_are_acknowledged_on_a_fresh_connection_when_the_loop_fails(engine, now):
    """The loop's bookkeeping failed after the handlers ran (their acks were pending): the worker writes
    the acks on a fresh connection and releases the unstarted jobs, instead of letting the finished
    jobs run again once their leases expire."""
    tenant, _ = make_tenant(engine, "acme", now)
    ids = [_enqueue(engine, tenant.id, now) for _ in range(4)]
    runs: list[int] = []
    registry = JobRegistry()
    registry.register(KIND, lambda ctx: runs.append(ctx.job.id))
    worker = Worker(engine, registry, FakeClock(now), WorkerConfig(batch_size=4, schedule=False), name="w")
    worker._kind_seconds[KIND] = 0.0  # a kind known to be fast: its acks wait for the batch's end
    process = worker._process

    def process_then_fail(job: Any) -> bool:
        process(job)
        raise RuntimeError("the database connection dropped")  # the loop's bookkeeping fails here

    worker._process = process_then_fail  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        worker.run_once(defer_acks=True)
    assert runs == [ids[0]] and len(worker._acks) == 1
    worker._abandon_batch()
    rows = _rows(engine, ids)
    assert rows[ids[0]].state == "succeeded"
    assert [rows[i].state for i in ids[1:]] == ["queued"] * 3  # released, attempt not counted
    assert [rows[i].attempts for i in ids[1:]] == [0, 0, 0]
    assert (worker.stats.succeeded, worker.stats.released, worker.stats.lost) == (1, 3, 0)


def test_claims_grow_while_full_batches_of_fast_jobs_keep_coming_and_shrink_back(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    for _ in range(20):
        _enqueue(engine, tenant.id, now)
    registry = JobRegistry()
    registry.register(KIND, lambda ctx: None)
    config = WorkerConfig(batch_size=2, max_batch_size=8, fast_job_seconds=1.0, schedule=False)
    worker = Worker(engine, registry, FakeClock(now), config, name="w")
    # Doubling while full, capped; a partial claim brings the size back to ``batch_size``.
    assert [worker.run_once(defer_acks=True) for _ in range(5)] == [2, 4, 8, 6, 0]
    for _ in range(10):
        _enqueue(engine, tenant.id, now)
    assert worker.run_once(defer_acks=True) == 2
    worker.config.fast_job_seconds = 0.0  # every batch now counts as slow: no growth
    assert [worker.run_once(defer_acks=True) for _ in range(3)] == [2, 2, 2]
    worker.run_once()
    assert worker.stats.succeeded == 30 and worker.stats.lost == 0


@pytest.mark.pg_only
def test_acks_and_claims_commit_asynchronously_but_handlers_transactions_do_not(engine, now):
    """The loop's ack+claim connection runs with ``synchronous_commit = off`` (see ``Worker._loop``:
    safe because WAL is written in order, so a handler's synchronous commit flushes the claim and the
    acks before it); a handler's own transaction keeps the server's setting, and the pooled connection
    gets it back when the loop ends."""
    tenant, _ = make_tenant(engine, "acme", now)
    _enqueue(engine, tenant.id, now)
    seen: dict[str, str] = {}
    registry = JobRegistry()
    worker = Worker(engine, registry, utcnow, WorkerConfig(schedule=False), name="w")

    def handler(ctx: Any) -> None:
        with ctx.transaction() as conn:
            seen["handler"] = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        with worker._autocommit.begin():
            seen["claims"] = worker._autocommit.exec_driver_sql("SHOW synchronous_commit").scalar()

    registry.register(KIND, handler)
    assert worker.run(burst=True).succeeded == 1
    assert seen == {"handler": "on", "claims": "off"}
    for _ in range(3):  # every pooled connection is back to the server's setting
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
