"""``jobs.extend_leases`` (the heartbeat): one statement over a claim's jobs that never waits on a row
lock on PostgreSQL — a job row locked by another transaction (its handler's fenced transaction) is
reported busy and left for the next beat, not lost; a job whose lease is gone is in neither set."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import make_tenant
from tradelane.persistence.tables import jobs
from tradelane.sync import jobs as jobstore

KIND = "test.heartbeat"


def _claim_three(engine: Any, now: Any) -> list[jobstore.ClaimedJob]:
    tenant, _ = make_tenant(engine, "heartbeat", now)
    with engine.begin() as conn:
        for n in range(3):
            jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, KIND, {"n": n}, run_at=now), now=now)
    with engine.begin() as conn:
        held = jobstore.claim(conn, worker="w", now=now, lease_seconds=30, limit=3)
    assert len(held) == 3
    return sorted(held, key=lambda j: j.id)


def _lease(engine: Any, job_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(jobs.c.lease_expires_at).where(jobs.c.id == job_id)).scalar_one()


def test_extend_leases_extends_held_jobs_and_leaves_out_lost_ones(engine: Any, now: Any) -> None:
    first, second, third = _claim_three(engine, now)
    with engine.begin() as conn:  # the third's lease was taken over (another token)
        conn.execute(sa.update(jobs).where(jobs.c.id == third.id).values(lease_token="someone-else"))
    later = now + timedelta(seconds=10)
    with engine.begin() as conn:
        result = jobstore.extend_leases(conn, [first, second, third], now=later, lease_seconds=30)
    assert result.extended == {first.id, second.id} and result.busy == set()
    with engine.connect() as conn:
        nothing = jobstore.extend_leases(conn, [], now=later, lease_seconds=30)
    assert nothing == jobstore.LeaseExtension(set(), set())


@pytest.mark.pg_only
def test_extend_leases_skips_a_row_locked_by_another_transaction(engine: Any, now: Any) -> None:
    first, second, third = _claim_three(engine, now)
    later = now + timedelta(seconds=10)
    with engine.connect() as handler:
        handler.execute(sa.select(jobs.c.id).where(jobs.c.id == second.id).with_for_update())
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")  # a wait would fail the test
            result = jobstore.extend_leases(conn, [third, first, second], now=later, lease_seconds=30)
        assert result.extended == {first.id, third.id} and result.busy == {second.id}
        handler.rollback()
    assert _lease(engine, second.id) == now + timedelta(seconds=30)
    assert _lease(engine, first.id) == later + timedelta(seconds=30)
    with engine.begin() as conn:  # the next beat, the lock gone: extended
        result = jobstore.extend_leases(conn, [first, second, third], now=later, lease_seconds=30)
    assert result.extended == {first.id, second.id, third.id} and result.busy == set()
