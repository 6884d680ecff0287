"""A job whose handler is interrupted by a database connection drop (PostgreSQL terminating every
connection of the database, as the long chaos run does) should be retried as a failed attempt of its
own, not left running until its lease expires and then counted as lost ("the worker stopped renewing
its lease"): a worker that is alive did not lose the job, and eight such drops in a row dead-letter
it as "worker lost the job (crash or kill) on every attempt".

Known open point of the engine (``sync/worker.py``, not fixed here): the handler's failure is
recorded by ``Worker._retry`` on the loop's own connection, which the same drop terminated; the
loop's failure path (``_abandon_batch``) then acknowledges finished jobs and releases unstarted ones
but leaves the interrupted, started one to its lease. Marked ``xfail(strict=True)``: the test
passes (and the marker must go) once the engine records that attempt.
"""

from __future__ import annotations

import threading
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


def test_a_job_interrupted_by_a_connection_drop_is_retried_not_lost(
    engine: Any, db_url: str, now: Any
) -> None:
    tenant, _ = make_tenant(engine, "interrupted", now)
    killer = make_engine(db_url, poolclass=sa.pool.NullPool)
    runs: list[int] = []

    def handler(ctx: Any) -> None:
        runs.append(ctx.job.attempts)
        if len(runs) == 1:  # the first attempt: every other connection of the database goes away
            with killer.connect() as conn:
                assert conn.exec_driver_sql(TERMINATE).scalar_one() >= 1
                conn.commit()
            raise ConnectionError("the database went away under the handler")

    registry = JobRegistry()
    registry.register("probe.interrupted", handler)
    with engine.begin() as conn:
        job_id = enqueue(conn, JobSpec(tenant.id, "probe.interrupted", {}), now=utcnow()).job_id
    worker = Worker(
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

    def state() -> str:
        with engine.connect() as conn:
            return str(conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).scalar_one())

    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: state() in ("succeeded", "dead"), 20, "the job to finish")
    finally:
        worker.request_stop()
        thread.join(10)
        killer.dispose()
    with engine.connect() as conn:
        outcomes = list(
            conn.execute(
                sa.select(job_attempts.c.outcome)
                .where(job_attempts.c.job_id == job_id)
                .order_by(job_attempts.c.attempt)
            ).scalars()
        )
    assert len(runs) == 2 and state() == "succeeded", (runs, state())
    assert "lease_expired" not in outcomes, f"the interrupted attempt was counted lost: {outcomes}"
