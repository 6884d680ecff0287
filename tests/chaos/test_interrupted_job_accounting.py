"""A job whose handler is interrupted by a database connection drop (PostgreSQL terminating every
connection of the database, as the long chaos run does) is retried as a failed attempt of its own,
with the connection error as its reason, not left running until its lease expires and then counted as
lost ("the worker stopped renewing its lease"): a worker that is alive did not lose the job, and eight
such drops in a row used to dead-letter it as "worker lost the job (crash or kill) on every attempt".

The handler's failure is recorded on the loop's own connection, which the same drop terminated; the
loop's failure path (``Worker._abandon_batch``) then writes that outcome on a fresh connection, fenced
by the job's lease token like every other write after a claim (the second test: a job whose lease was
taken over meanwhile is left alone).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from chaos_support import wait_for

from helpers import make_tenant
from tradelane.persistence.db import make_engine
from tradelane.persistence.tables import job_attempts, jobs
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig
from tradelane.timeutil import utcnow

pytestmark = pytest.mark.pg_only

TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _worker(engine: Any, registry: JobRegistry) -> Worker:
    return Worker(
        engine,
        registry,
        utcnow,
        WorkerConfig(
            schedule=False,
            lease_seconds=1.5,
            poll_seconds=0.05,
            backoff_base=0.05,
            backoff_cap=0.1,
            error_backoff_min=0.05,
            error_backoff_max=0.2,
        ),
        name="interrupted-worker",
    )


def _drop_every_connection(killer: Any) -> None:
    with killer.connect() as conn:
        assert conn.exec_driver_sql(TERMINATE).scalar_one() >= 1
        conn.commit()


def _job(engine: Any, job_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(jobs.c.state, jobs.c.attempts, jobs.c.lease_token).where(jobs.c.id == job_id)
        ).one()


def _history(engine: Any, job_id: int) -> list[tuple[int, str, str | None]]:
    with engine.connect() as conn:
        return [
            (row.attempt, row.outcome, row.error)
            for row in conn.execute(
                sa.select(job_attempts.c.attempt, job_attempts.c.outcome, job_attempts.c.error)
                .where(job_attempts.c.job_id == job_id)
                .order_by(job_attempts.c.attempt)
            )
        ]


def test_a_job_interrupted_by_a_connection_drop_is_retried_not_lost(
    engine: Any, db_url: str, now: Any
) -> None:
    tenant, _ = make_tenant(engine, "interrupted", now)
    killer = make_engine(db_url, poolclass=sa.pool.NullPool)
    runs: list[int] = []

    def handler(ctx: Any) -> None:
        runs.append(ctx.job.attempts)
        if len(runs) == 1:  # the first attempt: every other connection of the database goes away
            _drop_every_connection(killer)
            raise ConnectionError("the database went away under the handler")

    registry = JobRegistry()
    registry.register("probe.interrupted", handler)
    with engine.begin() as conn:
        job_id = enqueue(conn, JobSpec(tenant.id, "probe.interrupted", {}), now=utcnow()).job_id
    worker = _worker(engine, registry)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: _job(engine, job_id).state in ("succeeded", "dead"), 20, "the job to finish")
    finally:
        worker.request_stop()
        thread.join(10)
        killer.dispose()
    outcomes = _history(engine, job_id)
    assert runs == [1, 2] and _job(engine, job_id).state == "succeeded", (runs, _job(engine, job_id))
    assert "lease_expired" not in [outcome for _, outcome, _ in outcomes], (
        f"the interrupted attempt was counted lost: {outcomes}"
    )
    # One failed attempt, a retry whose reason is the connection error; the worker went on.
    assert outcomes == [
        (1, "retry", "unexpected error: ConnectionError: the database went away under the handler")
    ]
    assert (worker.stats.retried, worker.stats.succeeded, worker.stats.lost) == (1, 1, 0)


def test_an_interrupted_job_whose_lease_was_taken_over_is_left_alone(
    engine: Any, db_url: str, now: Any
) -> None:
    """The outcome written on the fresh connection is fenced: when another worker holds the job by
    then (its lease expired and was claimed again), nothing of the job is touched."""
    tenant, _ = make_tenant(engine, "interrupted-taken", now)
    killer = make_engine(db_url, poolclass=sa.pool.NullPool)
    other = "token-of-another-worker"
    runs: list[int] = []

    def handler(ctx: Any) -> None:
        runs.append(ctx.job.attempts)
        with killer.begin() as conn:  # meanwhile another worker took the job over
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == ctx.job.id)
                .values(
                    lease_owner="other-worker",
                    lease_token=other,
                    lease_expires_at=utcnow() + timedelta(seconds=60),
                )
            )
        _drop_every_connection(killer)
        raise ConnectionError("the database went away under the handler")

    registry = JobRegistry()
    registry.register("probe.interrupted", handler)
    with engine.begin() as conn:
        job_id = enqueue(conn, JobSpec(tenant.id, "probe.interrupted", {}), now=utcnow()).job_id
    worker = _worker(engine, registry)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.stats.lost == 1, 20, "the worker to find the job's lease lost")
    finally:
        worker.request_stop()
        thread.join(10)
        killer.dispose()
    assert runs == [1]
    assert tuple(_job(engine, job_id)) == ("running", 1, other)  # still the other worker's, untouched
    assert _history(engine, job_id) == []
    assert (worker.stats.retried, worker.stats.dead, worker.stats.released) == (0, 0, 0)
