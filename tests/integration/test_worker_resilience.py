"""A worker never dies silently: replayed jobs keep their history, the loop survives its own bookkeeping
failures, every held job's lease is kept alive, and workers report liveness."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from helpers import FakeClock, make_tenant
from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.persistence.tables import alerts, job_attempts, jobs, workers
from tradelane.services.job_queries import get_job
from tradelane.sync import jobs as jobstore
from tradelane.sync import liveness
from tradelane.sync.context import JobContext
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig
from tradelane.timeutil import utcnow


def _state(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()


def _history(engine, job_id) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(job_attempts.c.attempt, job_attempts.c.outcome)
            .where(job_attempts.c.job_id == job_id)
            .order_by(job_attempts.c.id)
        )
        return [(r.attempt, r.outcome) for r in rows]


def _enqueue(engine, tenant_id: int, kind: str, count: int = 1, at=None, **spec: Any) -> list[int]:
    with engine.begin() as conn:
        return [
            jobstore.enqueue(
                conn, jobstore.JobSpec(tenant_id, kind, {"n": i}, **spec), now=at or utcnow()
            ).job_id
            for i in range(count)
        ]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- replay then fail again ------------------------------------------------------------------------


def test_replayed_job_that_fails_again_keeps_numbering_its_history(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    clock = FakeClock(now)

    def refuse(ctx: JobContext) -> None:
        raise PermanentError("order 7 refused by the OMS", raw='{"error":"bad sku"}')

    def flaky(ctx: JobContext) -> None:
        raise RetryableError("OMS 503")

    registry = JobRegistry()
    registry.register("t.refuse", refuse)
    registry.register("t.flaky", flaky)
    with engine.begin() as conn:
        refused = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, "t.refuse", {}), now=now).job_id
        flaky_id = jobstore.enqueue(
            conn, jobstore.JobSpec(tenant.id, "t.flaky", {}, max_attempts=2), now=now
        ).job_id
    worker = Worker(engine, registry, clock, WorkerConfig(schedule=False, backoff_base=1, backoff_cap=1))
    for _ in range(3):
        worker.run_once()
        clock.advance(5)
    assert _state(engine, refused).state == "dead" and _state(engine, flaky_id).state == "dead"
    for _ in range(2):  # replayed twice; fails again each time (old code: IntegrityError on the history)
        with engine.begin() as conn:
            assert jobstore.replay(conn, tenant.id, None, now=clock()) == [refused, flaky_id]
        for _ in range(3):
            worker.run_once()
            clock.advance(5)
    assert _history(engine, refused) == [(1, "dead"), (2, "dead"), (3, "dead")]
    assert _history(engine, flaky_id) == [(n, "retry" if n % 2 else "dead") for n in range(1, 7)]
    row = _state(engine, flaky_id)
    assert row.state == "dead" and row.attempts == 2 and row.error_kind == "exhausted"  # a fresh budget
    with engine.connect() as conn:
        detail = get_job(conn, tenant.id, refused)  # what the job page shows
    assert [a.attempt for a in detail.attempts] == [1, 2, 3]
    assert all("refused by the OMS" in (a.error or "") for a in detail.attempts)


def test_lost_attempt_of_a_replayed_job_is_numbered_after_the_old_ones(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    [job_id] = _enqueue(engine, tenant.id, "system.noop", at=now)
    with engine.begin() as conn:
        [job] = jobstore.claim(conn, worker="w1", now=now, lease_seconds=10)
        assert jobstore.bury(conn, job, now=now, error="permanent", kind=jobstore.ErrorKind.PERMANENT)
        jobstore.replay(conn, tenant.id, [job_id], now=now)
        jobstore.claim(conn, worker="w2", now=now, lease_seconds=10)  # w2 is then killed
        [again] = jobstore.claim(conn, worker="w3", now=now + timedelta(seconds=11), lease_seconds=10)
        assert jobstore.complete(conn, again, now=now + timedelta(seconds=12))
    assert _history(engine, job_id) == [(1, "dead"), (2, "lease_expired")]
    assert again.attempt_number == 3 and again.attempts == 2


# --- the loop survives its own bookkeeping failures ------------------------------------------------


class DatabaseOutage:
    """Wraps an engine; once :meth:`start` is called, the next ``begin``/``connect`` calls fail with a
    driver-level OperationalError (like a dropped PostgreSQL backend), then the database is back."""

    def __init__(self, engine, *, failures: int) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._remaining = 0
        self._failures = failures
        self.raised = 0

    def start(self) -> None:
        with self._lock:
            self._remaining = self._failures

    def _maybe_fail(self) -> None:
        with self._lock:
            if self._remaining <= 0:
                return
            self._remaining -= 1
            self.raised += 1
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    def connect(self):
        self._maybe_fail()
        return _FlakyConnection(self._engine.connect(), self)

    def begin(self):
        self._maybe_fail()
        return self._engine.begin()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


class _FlakyConnection:
    def __init__(self, conn, outage: DatabaseOutage) -> None:
        self._conn = conn
        self._outage = outage

    def begin(self):
        self._outage._maybe_fail()
        return self._conn.begin()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self._conn.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_worker_loop_survives_database_failures_of_its_own_bookkeeping(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    outage = DatabaseOutage(engine, failures=6)
    runs: list[int] = []

    def trip(ctx: JobContext) -> dict[str, Any]:
        runs.append(ctx.job.id)
        if len(runs) == 1:
            outage.start()  # the database goes away: completing this job fails, and so does the rest
        return {"ok": True}

    def ok(ctx: JobContext) -> dict[str, Any]:
        runs.append(ctx.job.id)
        return {"ok": True}

    registry = JobRegistry()
    registry.register("t.trip", trip)
    registry.register("t.ok", ok)
    tripping = _enqueue(engine, tenant.id, "t.trip", priority=1)
    others = _enqueue(engine, tenant.id, "t.ok", count=4)
    config = WorkerConfig(
        schedule=False, lease_seconds=1.0, poll_seconds=0.05, error_backoff_min=0.02, error_backoff_max=0.1
    )
    worker = Worker(outage, registry, utcnow, config, name="w-survivor")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # the old loop died here with the OperationalError
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        _wait(
            lambda: errors or all(_state(engine, i).state == "succeeded" for i in [*tripping, *others]),
            30,
            "every job to succeed after the outage",
        )
        assert thread.is_alive() and not errors
    finally:
        worker.request_stop()
        thread.join(10)
    assert not thread.is_alive() and not errors
    assert outage.raised == 6
    # The unstarted jobs ran once each; the job interrupted by the outage ran again under its lease rules.
    assert sorted(runs) == sorted([*tripping, *tripping, *others])
    assert _state(engine, tripping[0]).attempts == 2
    assert _history(engine, tripping[0]) == [(1, "lease_expired")]


# --- the heartbeat keeps every held job's lease ----------------------------------------------------


def test_heartbeat_extends_the_lease_of_every_job_in_the_batch(engine, now):
    """Behind a slow remote, jobs waiting in a worker's batch keep their lease: nobody else runs them."""
    tenant, _ = make_tenant(engine, "acme", now)
    executions: list[tuple[int, str]] = []
    lock = threading.Lock()

    def slow_post(ctx: JobContext) -> None:  # an unfenced remote effect, like a POST to an OMS
        with lock:
            executions.append((ctx.job.id, ctx.job.worker))
        time.sleep(0.6)

    registry = JobRegistry()
    registry.register("t.slow", slow_post)
    ids = _enqueue(engine, tenant.id, "t.slow", count=4)
    config = WorkerConfig(schedule=False, lease_seconds=1.2, poll_seconds=0.05, batch_size=4)
    first = Worker(engine, registry, utcnow, config, name="w-first")
    second = Worker(engine, registry, utcnow, config, name="w-second")
    threads = [threading.Thread(target=w.run) for w in (first, second)]
    threads[0].start()
    try:
        _wait(lambda: executions, 10, "the first worker to claim the batch")
        threads[1].start()
        _wait(lambda: all(_state(engine, i).state == "succeeded" for i in ids), 20, "the batch")
    finally:
        first.request_stop()
        second.request_stop()
        for t in threads:
            if t.is_alive():
                t.join(10)
    assert sorted(i for i, _ in executions) == ids, f"a job ran twice: {executions}"
    assert first.stats.lost == 0 and second.stats.lost == 0
    assert first.stats.succeeded + second.stats.succeeded == 4


def test_a_job_whose_lease_ran_out_before_it_started_is_not_started(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    clock = FakeClock(now)
    started: list[int] = []

    def stalls(ctx: JobContext) -> None:
        started.append(ctx.job.id)
        if len(started) == 1:
            clock.advance(21)  # no heartbeat extended it: 9 s of lease left, less than one beat (10 s)

    registry = JobRegistry()
    registry.register("t.stall", stalls)
    first, second = _enqueue(engine, tenant.id, "t.stall", count=2, at=now)
    worker = Worker(engine, registry, clock, WorkerConfig(schedule=False, lease_seconds=30), name="w")
    assert worker.run_once() == 2
    assert started == [first]  # the second job's lease had run out: not started...
    row = _state(engine, second)
    assert row.state == "queued" and row.attempts == 0  # ...but handed back, the attempt not counted
    assert worker.stats.released == 1
    worker.run_once()
    assert started == [first, second] and _state(engine, second).state == "succeeded"


def test_a_job_whose_lease_was_taken_over_is_not_started(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    clock = FakeClock(now)
    started: list[int] = []
    worker: Worker

    def handler(ctx: JobContext) -> None:
        started.append(ctx.job.id)
        if len(started) == 1:
            with engine.begin() as conn:  # meanwhile another worker took the second job over
                conn.execute(sa.update(jobs).where(jobs.c.id == second).values(lease_token="someone-else"))
            worker.beat()  # the heartbeat notices: the lease of the second job was not extended

    registry = JobRegistry()
    registry.register("t.h", handler)
    _first, second = _enqueue(engine, tenant.id, "t.h", count=2, at=now)
    worker = Worker(engine, registry, clock, WorkerConfig(schedule=False, lease_seconds=30), name="w")
    worker.run_once()
    assert started == [_first]
    assert worker.stats.lost == 1
    assert _state(engine, second).lease_token == "someone-else"


# --- liveness --------------------------------------------------------------------------------------


def test_workers_report_liveness_and_a_stalled_queue_raises_an_alert(engine, now):
    tenant, _ = make_tenant(engine, "acme", now)
    clock = FakeClock(now)
    [job_id] = _enqueue(engine, tenant.id, "t.never", at=now, run_at=now - timedelta(seconds=90))
    with engine.begin() as conn:
        health = liveness.watch(conn, now=now)
    assert health.workers_live == 0 and health.jobs_due == 1 and health.stalled
    assert health.oldest_due_job_age_seconds == 90
    with engine.begin() as conn:
        liveness.watch(conn, now=now + timedelta(seconds=5))  # idempotent
    with engine.connect() as conn:
        [alert] = conn.execute(sa.select(alerts)).all()
    assert alert.tenant_id == tenant.id and alert.kind == "no_live_worker" and alert.resolved_at is None
    assert "1 job(s) are due" in alert.message and "95 s" in alert.message

    worker = Worker(engine, JobRegistry(), clock, WorkerConfig(schedule=False, lease_seconds=30), name="w1")
    worker.beat()  # a worker comes up: its beat resolves the alert
    with engine.connect() as conn:
        health = liveness.queue_health(conn, now=clock())
        assert conn.execute(sa.select(alerts.c.resolved_at)).scalar_one() == now
    assert [w.name for w in health.live_workers] == ["w1"] and not health.stalled
    assert health.live_workers[0].held_jobs == 0

    clock.advance(31)  # 3 heartbeats of 10 s: still live after 30 s, not after 31 s
    with engine.begin() as conn:
        health = liveness.watch(conn, now=clock())
        assert health.workers_live == 0 and health.stalled
        reopened = conn.execute(sa.select(alerts)).one()
    assert reopened.resolved_at is None and reopened.created_at == clock()
    with engine.begin() as conn:
        jobstore.claim(conn, worker="x", now=clock(), lease_seconds=60)
        assert not liveness.watch(conn, now=clock()).stalled  # nothing due any more: resolved
        assert conn.execute(sa.select(alerts.c.resolved_at)).scalar_one() == clock()
        assert liveness.prune(conn, now=clock() + timedelta(hours=2)) == 1
    assert _state(engine, job_id).state == "running"


def test_running_worker_keeps_a_live_row_and_removes_it_when_stopped(engine, now):
    config = WorkerConfig(schedule=False, lease_seconds=0.3, poll_seconds=0.05)
    worker = Worker(engine, JobRegistry(), utcnow, config, name="w-live")
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:

        def live() -> list[str]:
            with engine.connect() as conn:
                return [w.name for w in liveness.live_workers(conn, now=utcnow())]

        _wait(lambda: live() == ["w-live"], 10, "the worker's first beat")
        time.sleep(0.5)  # several heartbeats later it is still live
        assert live() == ["w-live"]
    finally:
        worker.request_stop()
        thread.join(10)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(workers)).scalar_one() == 0
