"""The two PostgreSQL deadlocks the long chaos run logged (docs/benchmarks.md, "Chaos suite"), each
reproduced step by step with one connection per party, so that each party's lock wait happens in a
fixed order: the heartbeat (``jobs.extend_leases``) takes part in neither any more.

a) The heartbeat against a loop releasing the same unstarted jobs one statement at a time, in another
   order than the heartbeat locks them (the loop's ``_abandon_batch`` released them in claim order).
b) Three ways: an orders poll's ``enqueue_many`` waits on the unique-index entry the heartbeat's
   uncommitted ``UPDATE jobs SET lease_expires_at`` wrote; the heartbeat waits on the job row an
   ``orders.accept`` handler's fenced transaction holds; that transaction waits on the order row the
   poll has just written.

Before the heartbeat skipped locked rows, PostgreSQL broke each cycle after ``deadlock_timeout`` by
aborting one of the transactions ("deadlock detected"); these tests failed that way. Every party
sets a ``lock_timeout`` so that a wait that should not happen fails the test instead of hanging it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from helpers import make_channel, make_tenant
from tradelane.persistence.tables import jobs, orders
from tradelane.services.order_health import delivery_spec
from tradelane.services.order_intake import ACCEPT
from tradelane.sync import jobs as jobstore
from tradelane.sync.context import JobContext
from tradelane.sync.ratelimit import RateLimiter
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig
from tradelane.timeutil import utcnow

pytestmark = pytest.mark.pg_only

LEASE = 30.0
LOCK_TIMEOUT = "10s"  # far above deadlock_timeout (1 s by default): a deadlock is reported as one


def _pid(conn: Connection) -> int:
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


class Party:
    """One transaction on a thread of its own; its error (if any) is kept for the test to check."""

    def __init__(self, name: str, body: Callable[[Callable[[int], None]], Any]) -> None:
        self.name = name
        self.pid: int | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self._known = threading.Event()
        self._body = body
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        try:
            self.result = self._body(self._announce)
        except BaseException as exc:  # checked by the test
            self.error = exc
        finally:
            self._known.set()

    def _announce(self, pid: int) -> None:
        self.pid = pid
        self._known.set()

    def start(self) -> None:
        self._thread.start()
        assert self._known.wait(10), f"{self.name} did not start"

    def join(self) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive(), f"{self.name} is still running"

    def done(self) -> bool:
        return not self._thread.is_alive()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _waits_on_a_lock(engine: Engine, party: Party) -> bool:
    with engine.connect() as conn:
        kind = conn.execute(
            sa.text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": party.pid}
        ).scalar_one_or_none()
    return kind == "Lock"


def _until_blocked_or_done(engine: Engine, party: Party) -> None:
    """Wait until ``party`` waits on a lock (it stays blocked) or has finished."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if party.done() or _waits_on_a_lock(engine, party):
            return
        time.sleep(0.01)
    raise AssertionError(f"{party.name} neither blocked nor finished")


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        _pid(conn)
        yield conn


def _beat(engine: Engine, held: list[jobstore.ClaimedJob], at: datetime) -> Party:
    """The heartbeat's transaction (as ``Worker.beat`` runs it) over the claim's jobs ``held``."""

    def body(announce: Callable[[int], None]) -> jobstore.LeaseExtension:
        with engine.begin() as conn:
            announce(_pid(conn))
            return jobstore.extend_leases(conn, held, now=at, lease_seconds=LEASE)

    return Party("heartbeat", body)


def _claim(engine: Engine, now: datetime, count: int) -> list[jobstore.ClaimedJob]:
    with engine.begin() as conn:
        held = jobstore.claim(conn, worker="w", now=now, lease_seconds=LEASE, limit=count)
    assert len(held) == count
    return held


def test_heartbeat_and_a_release_of_the_same_jobs_in_another_order_do_not_deadlock(
    engine: Engine, now: datetime
) -> None:
    tenant, _ = make_tenant(engine, "lock-order-release", now)
    with engine.begin() as conn:
        for n in range(3):
            jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, "test.lock", {"n": n}, run_at=now), now=now)
    first, second, third = sorted(_claim(engine, now, 3), key=lambda job: job.id)
    later = now + timedelta(seconds=10)
    with _transaction(engine) as release:
        # The loop gives the unstarted jobs back one statement at a time, the highest id first ...
        assert jobstore.release(release, third, now=later)
        # ... while the heartbeat extends the whole claim (before: it locked the first two rows and
        # waited on the third) ...
        beat = _beat(engine, [first, second, third], later)
        beat.start()
        _until_blocked_or_done(engine, beat)
        # ... and the loop goes on to the rows the heartbeat held: the cycle closed here.
        assert jobstore.release(release, first, now=later)
        assert jobstore.release(release, second, now=later)
    beat.join()
    assert beat.error is None, f"heartbeat: {beat.error!r}"
    # The row the release held was skipped, still ours then (busy): not lost, left for the next beat.
    assert beat.result == jobstore.LeaseExtension({first.id, second.id}, {third.id})
    with engine.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.state, jobs.c.attempts, jobs.c.lease_token)).all()
    assert sorted(rows) == [("queued", 0, None)] * 3  # all three given back, not counted as attempts


def _order(conn: Connection, tenant_id: int, channel_id: int, ref: str, now: datetime) -> int:
    return int(
        conn.execute(
            sa.insert(orders)
            .values(
                tenant_id=tenant_id,
                channel_id=channel_id,
                marketplace_order_id=ref,
                state="awaiting_acceptance",
                marketplace_state="WAITING_ACCEPTANCE",
                currency="EUR",
                attributes={},
                marketplace_created_at=now,
                marketplace_updated_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(orders.c.id)
        ).scalar_one()
    )


def test_poll_heartbeat_and_fenced_accept_do_not_deadlock(engine: Engine, now: datetime) -> None:
    tenant, _ = make_tenant(engine, "lock-order-poll", now)
    channel = make_channel(engine, tenant.id, "mirakl", now)
    with engine.begin() as conn:
        delivered = _order(conn, tenant.id, channel.id, "ORDER-1", now)
        to_accept = _order(conn, tenant.id, channel.id, "ORDER-2", now)
        deliver_id = jobstore.enqueue(
            conn, delivery_spec(tenant_id=tenant.id, order_id=delivered, channel_id=channel.id), now=now
        ).job_id
        accept_spec = jobstore.JobSpec(
            tenant.id,
            ACCEPT,
            {"order_id": to_accept},
            channel_id=channel.id,
            flow="orders",
            idempotency_key=f"{ACCEPT}:{to_accept}",
            priority=10,
        )
        accept_id = jobstore.enqueue(conn, accept_spec, now=now).job_id
    assert deliver_id < accept_id  # the heartbeat reaches the delivery's row first
    held = {job.id: job for job in _claim(engine, now, 2)}  # one worker's batch: both jobs
    later = now + timedelta(seconds=10)
    with _transaction(engine) as poll:
        # An orders poll stores ORDER-2's new version (its transaction goes on: the jobs follow) ...
        poll.execute(sa.update(orders).where(orders.c.id == to_accept).values(marketplace_updated_at=later))

        # ... while the accept handler's fenced transaction, its job row locked, records the
        # acceptance: it waits on the poll's order row ...
        def accept(announce: Callable[[int], None]) -> None:
            clock = lambda: later  # noqa: E731
            ctx = JobContext(held[accept_id], engine, clock, RateLimiter(engine, clock))
            with ctx.transaction() as conn:
                announce(_pid(conn))
                conn.execute(sa.update(orders).where(orders.c.id == to_accept).values(accepted_at=later))

        accepting = Party("accept", accept)
        accepting.start()
        _until_blocked_or_done(engine, accepting)
        assert not accepting.done(), accepting.error
        # ... the heartbeat extends the batch (before: it rewrote the delivery's row, with its
        # exclusive key's index entry, then waited on the accept job's row) ...
        beat = _beat(engine, list(held.values()), later)
        beat.start()
        _until_blocked_or_done(engine, beat)
        # ... and the poll queues ORDER-1's delivery again: its unique key is held by the running
        # delivery (the heartbeat's entry, uncommitted before: the cycle closed here).
        queued = jobstore.enqueue_many(
            poll, [delivery_spec(tenant_id=tenant.id, order_id=delivered, channel_id=channel.id)], now=later
        )
    accepting.join()
    beat.join()
    assert accepting.error is None, f"accept: {accepting.error!r}"
    assert beat.error is None, f"heartbeat: {beat.error!r}"
    assert queued == [jobstore.EnqueueResult(deliver_id, False)]  # the one in flight, not a second
    assert beat.result == jobstore.LeaseExtension({deliver_id}, {accept_id})
    with engine.connect() as conn:
        accepted_at = conn.execute(sa.select(orders.c.accepted_at).where(orders.c.id == to_accept)).scalar()
        leases = dict(conn.execute(sa.select(jobs.c.id, jobs.c.lease_expires_at)).tuples().all())
    assert accepted_at == later
    assert leases == {deliver_id: later + timedelta(seconds=LEASE), accept_id: now + timedelta(seconds=LEASE)}


def test_a_job_busy_in_its_fenced_transaction_keeps_its_lease_once_the_transaction_ends(
    engine: Engine, now: datetime
) -> None:
    """The heartbeat skips the job row its handler's fenced transaction holds (busy, still ours) and
    tries again every sixth of its interval: once the transaction ends, the lease is extended well
    before the next regular beat (so a transaction across two regular beats does not cost the lease)."""
    tenant, _ = make_tenant(engine, "lock-order-busy", now)
    seen: dict[str, Any] = {}
    worker: Worker

    def lease() -> datetime:
        with engine.connect() as conn:
            return conn.execute(sa.select(jobs.c.lease_expires_at).where(jobs.c.id == job_id)).scalar_one()

    def handler(ctx: JobContext) -> None:
        with ctx.transaction():  # the job row is locked until this ends
            wait_for(lambda: worker._busy, 10, "a beat to skip the job as busy")
            before = lease()
        ended = time.monotonic()
        wait_for(lambda: lease() > before, 10, "the lease to be extended", every=0.01)
        seen["extended_after"] = time.monotonic() - ended

    registry = JobRegistry()
    registry.register("test.busy", handler)
    with engine.begin() as conn:
        job_id = jobstore.enqueue(conn, jobstore.JobSpec(tenant.id, "test.busy", {}), now=utcnow()).job_id
    config = WorkerConfig(schedule=False, lease_seconds=6.0, poll_seconds=0.05)
    worker = Worker(engine, registry, utcnow, config, name="busy-worker")
    assert worker.heartbeat_seconds == 2.0 and worker.busy_retry_seconds == pytest.approx(1 / 3)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: "extended_after" in seen, 20, "the handler to finish")
        wait_for(lambda: worker.stats.succeeded == 1, 10, "the job's ack")
    finally:
        worker.request_stop()
        thread.join(10)
    # The next regular beat was ~2 s away; the retry for the busy job comes within a third of a second.
    assert seen["extended_after"] < 1.2, seen
    assert worker.stats.lost == 0
