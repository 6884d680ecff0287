"""``exclusive_key``: at most one queued-or-running job per key, enforced by the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from helpers import make_tenant
from tradelane.persistence.tables import jobs
from tradelane.sync import jobs as jobstore


def _row(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()


def _spec(tenant_id: int, **extra):
    return jobstore.JobSpec(
        tenant_id=tenant_id, kind="t.deliver", payload={"order_id": 1}, exclusive_key="t.deliver:1", **extra
    )


def test_a_running_job_holds_its_key_until_it_finishes(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        first = jobstore.enqueue(conn, _spec(tenant.id), now=now)
        [claimed] = jobstore.claim(conn, worker="w1", now=now, lease_seconds=30)
        again = jobstore.enqueue(conn, _spec(tenant.id), now=now)  # a re-poll while it runs
    assert first.created and claimed.id == first.job_id
    assert again == jobstore.EnqueueResult(first.job_id, False)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one() == 1
    # Nothing else can be claimed meanwhile.
    with engine.begin() as conn:
        assert jobstore.claim(conn, worker="w2", now=now, lease_seconds=30) == []
        assert jobstore.complete(conn, claimed, now=now)
        after = jobstore.enqueue(conn, _spec(tenant.id), now=now)
    assert after.created and after.job_id != first.job_id


def test_the_database_refuses_a_second_in_flight_job(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        jobstore.enqueue(conn, _spec(tenant.id), now=now)
        jobstore.claim(conn, worker="w1", now=now, lease_seconds=30)
    values = {
        "tenant_id": tenant.id,
        "kind": "t.deliver",
        "payload": {},
        "exclusive_key": "t.deliver:1",
        "state": "queued",
        "max_attempts": 3,
        "run_at": now,
        "created_at": now,
        "updated_at": now,
    }
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(jobs).values(**values))


def test_retry_and_lease_loss_of_the_holder_keep_working(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    spec = _spec(tenant.id, dedupe_key="t.deliver:1")
    with engine.begin() as conn:
        job_id = jobstore.enqueue(conn, spec, now=now).job_id
        [claimed] = jobstore.claim(conn, worker="w1", now=now, lease_seconds=30)
        assert jobstore.retry_later(conn, claimed, now=now, delay=10, error="503")
    row = _row(engine, job_id)
    assert row.state == "queued" and row.run_at == now + timedelta(seconds=10)
    later = now + timedelta(seconds=10)
    with engine.begin() as conn:
        # A trigger asking for sooner moves the pending job earlier; it does not add one.
        assert jobstore.enqueue(conn, jobstore.JobSpec(**{**_as_dict(spec), "run_at": now}), now=now) == (
            jobstore.EnqueueResult(job_id, False)
        )
        [claimed] = jobstore.claim(conn, worker="w1", now=later, lease_seconds=30)
    # The worker dies: the lease expires, another worker takes the same job over.
    expired = later + timedelta(seconds=31)
    with engine.begin() as conn:
        assert not jobstore.enqueue(conn, spec, now=expired).created
        [taken] = jobstore.claim(conn, worker="w2", now=expired, lease_seconds=30)
        assert taken.id == job_id and taken.attempts == 3
        assert jobstore.complete(conn, taken, now=expired)
    assert _row(engine, job_id).state == "succeeded"


def _as_dict(spec: jobstore.JobSpec) -> dict:
    return {name: getattr(spec, name) for name in spec.__slots__}


def test_replaying_a_dead_job_while_another_holds_the_key_supersedes_it(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        dead_id = jobstore.enqueue(conn, _spec(tenant.id), now=now).job_id
        [claimed] = jobstore.claim(conn, worker="w1", now=now, lease_seconds=30)
        assert jobstore.bury(conn, claimed, now=now, error="boom", kind=jobstore.ErrorKind.PERMANENT)
        live_id = jobstore.enqueue(conn, _spec(tenant.id), now=now).job_id
        [running] = jobstore.claim(conn, worker="w1", now=now, lease_seconds=30)
        assert running.id == live_id
    with engine.begin() as conn:
        assert jobstore.replay(conn, tenant.id, [dead_id], now=now) == []
    dead = _row(engine, dead_id)
    assert dead.state == "cancelled"
    assert (
        dead.last_error == f"superseded: job {live_id} doing the same work (t.deliver:1) is already in flight"
    )
    assert _row(engine, live_id).state == "running"


def test_replaying_a_dead_job_whose_key_is_free_requeues_it(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        dead_id = jobstore.enqueue(conn, _spec(tenant.id), now=now).job_id
        [claimed] = jobstore.claim(conn, worker="w1", now=now, lease_seconds=30)
        assert jobstore.bury(conn, claimed, now=now, error="boom", kind=jobstore.ErrorKind.PERMANENT)
        assert jobstore.replay(conn, tenant.id, None, now=now) == [dead_id]
        assert not jobstore.enqueue(conn, _spec(tenant.id), now=now).created
    assert _row(engine, dead_id).state == "queued"


def test_plain_dedupe_key_still_queues_a_follow_up_while_one_runs(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    spec = jobstore.JobSpec(tenant_id=tenant.id, kind="offers.delta", payload={}, dedupe_key="offers.delta:1")
    with engine.begin() as conn:
        a = jobstore.enqueue(conn, spec, now=now)
        jobstore.claim(conn, worker="w", now=now, lease_seconds=30)
        b = jobstore.enqueue(conn, spec, now=now)
    assert a.created and b.created and a.job_id != b.job_id
