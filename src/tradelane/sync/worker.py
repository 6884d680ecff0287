"""The worker loop: schedule due flows, claim a batch, run handlers, record outcomes.

* Retryable errors are retried with exponential backoff and jitter; a ``retry_after`` from the remote
  (or our own rate limiter) is honoured exactly and does not consume an attempt.
* Permanent errors, exhausted attempts and unknown job kinds go to the dead-letter list with the reason.
* A heartbeat thread (its own connection, every third of the lease) extends the lease of *every* job of
  the claimed batch that has not finished yet, in one statement, and upserts the worker's liveness row
  (:mod:`tradelane.sync.liveness`). It never waits on a row lock (so it takes part in no deadlock): a
  job whose row another transaction holds (usually its handler's fenced one) is skipped as busy, still
  ours, and tried again every sixth of the interval until extended. A job whose lease could not be
  extended in time, or was lost to another worker, is never started. If the process dies (SIGKILL) the
  leases expire and other workers claim the jobs again.
* The loop survives its own bookkeeping failures (claim, complete, retry, bury, schedule, a dropped
  database connection): the error is logged with its traceback; on a fresh connection, in one
  transaction, the jobs of the batch whose handlers already ran are acknowledged (fenced: a finished
  job does not run again because the bookkeeping after it failed) and the unstarted ones released,
  when the database allows it; and after a bounded exponential backoff
  (``error_backoff_min`` doubling up to ``error_backoff_max``) the loop carries on with a fresh
  connection. A job whose failure could not be recorded because of that failure (its handler was
  interrupted by the same dropped connection) is recorded on the fresh connection as a retry (or dead
  letter) like any failed attempt, fenced by its lease token; failing that, its lease rules apply.
  Only a stop request (or ``burst``/``max_jobs``) ends :meth:`Worker.run`.
* SIGTERM/SIGINT: the running job finishes, the finished jobs are acknowledged, claimed-but-unstarted
  jobs are released, the loop exits.

Completing in batches (the engine's bookkeeping per job is near zero):

* The handlers of a claimed batch run one by one; a job whose handler returned (and did not complete
  itself with ``ctx.complete_in``) is *acknowledged later*, together with the others, by
  :func:`jobs.complete_many` in one transaction of two statements, fenced by the batch's lease token
  (a job whose lease was lost is not acknowledged and is counted lost). The flows' last success
  (``record_flow_result``) is written in that same transaction, once per flow.
* Acknowledgements are flushed at the end of the batch, before a job outcome that writes at once
  (retry, dead letter) so a flow's last result stays in order, when the oldest waits longer than
  ``ack_delay_max``, and before any job whose kind is not known to be fast (its recent runs took at
  most ``fast_handler_seconds``): a finished job does not wait on a slow handler for its ack (a
  handler of a fast kind that turns out slow delays the pending acks by its own run time, once).
  Until then the heartbeat keeps extending its lease like any held job.
* Crash safety: a job whose handler finished but whose acknowledgement was not written yet (the
  process was killed, or the database stayed down) runs again once its lease expires: the same
  at-least-once as before for handlers that do not complete in their own transaction (a handler
  that must not repeat its effect completes with ``ctx.complete_in`` inside ``ctx.transaction()``,
  which is exactly once, and is never deferred).
* Upkeep (due flows, jobs that crashed on every attempt, history rows of lost attempts) runs before
  a claim, but while claims come back full (a backlog) at most every ``upkeep_seconds``. A claim that
  takes over a job whose lease expired writes that lost attempt's history row itself.
* On PostgreSQL the pending acks and the next claim are one statement
  (:func:`jobs.ack_and_claim`), run on a second connection of the loop in autocommit: one round trip
  per batch. (With flow results to record, it runs in a transaction with them instead.) While claims
  come back full and their jobs took at most ``fast_job_seconds`` each, the claim size doubles per
  claim up to ``max_batch_size``; a partial claim or a slow batch brings it back to ``batch_size``. The
  heartbeat extends every held job of such a batch alike.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from types import FrameType
from typing import Any

import structlog

from tradelane.domain.errors import AuthenticationError, PermanentError, RetryableError
from tradelane.persistence.db import is_postgres
from tradelane.sync import jobs as jobstore
from tradelane.sync import liveness
from tradelane.sync.backoff import backoff_delay
from tradelane.sync.context import JobContext, LeaseLost
from tradelane.sync.ratelimit import RateLimiter
from tradelane.sync.registry import JobRegistry
from tradelane.sync.scheduler import enqueue_due, flow_ran, record_flow_result

log = structlog.get_logger("tradelane.worker")


@dataclass
class WorkerConfig:
    batch_size: int = 10
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    backoff_base: float = 2.0
    backoff_cap: float = 900.0
    schedule: bool = True
    #: After a failure of the loop's own bookkeeping, wait this long before trying again, doubling per
    #: consecutive failure up to ``error_backoff_max`` (reset by the next successful iteration).
    error_backoff_min: float = 0.5
    error_backoff_max: float = 30.0
    #: While claims come back full, run the upkeep (schedule due flows, recover crashed jobs) at most
    #: this often; otherwise before every claim.
    upkeep_seconds: float = 0.5
    #: A finished job waits at most this long for its batched acknowledgement (checked between jobs).
    ack_delay_max: float = 0.1
    #: A kind whose handlers so far took at most this long runs without flushing the pending acks first.
    fast_handler_seconds: float = 0.02
    #: While claims come back full and the last batch's jobs took at most ``fast_job_seconds`` each on
    #: average, the claim size doubles per claim up to this (never below ``batch_size``); see
    #: :meth:`Worker._claim_limit`. A batch of the cap then holds its jobs for at most ~0.8 s.
    max_batch_size: int = 400
    fast_job_seconds: float = 0.002


def loop_backoff(failures: int, *, low: float, high: float) -> float:
    """Wait after ``failures`` consecutive loop failures (1 = the first): ``low`` doubling per failure,
    never more than ``high``. No jitter: a few workers reconnecting in the same instant is cheap."""
    if failures < 1:
        raise ValueError("failures starts at 1")
    return float(min(high, low * 2 ** min(failures - 1, 60)))


@dataclass
class WorkerStats:
    succeeded: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    released: int = 0

    def total(self) -> int:
        return self.succeeded + self.retried + self.dead + self.lost


@dataclass
class Worker:
    engine: Any
    registry: JobRegistry
    clock: Callable[[], datetime]
    config: WorkerConfig = field(default_factory=WorkerConfig)
    services: dict[str, Any] = field(default_factory=dict)
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    rng: random.Random = field(default_factory=random.Random)
    stats: WorkerStats = field(default_factory=WorkerStats)
    #: How the rate limiter waits for a token (tests with a fake clock pass one that advances it).
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self.rate_limiter = RateLimiter(self.engine, self.clock, sleep=self.sleep)
        self._current: jobstore.ClaimedJob | None = None
        self._conn: Any = None
        # The claimed batch's unfinished jobs, shared with the heartbeat thread (under ``_lock``):
        # job id -> job, the instant until which its lease is known to hold, ids whose lease was lost,
        # ids whose handler has started.
        self._lock = threading.Lock()
        self._held: dict[int, jobstore.ClaimedJob] = {}
        self._lease_until: dict[int, datetime] = {}
        self._lost_ids: set[int] = set()
        self._started_ids: set[int] = set()
        self._failures = 0
        self._started_at: datetime | None = None
        # Batched completion: finished jobs awaiting their ack (with their result), flows whose success
        # is to be recorded, and since when (monotonic) the oldest ack waits.
        self._acks: list[tuple[jobstore.ClaimedJob, dict[str, Any] | None]] = []
        self._flow_successes: set[tuple[int, str]] = set()
        self._acks_since = 0.0
        # Per job kind, its recent worst run (seconds), to know which kinds may run before a flush.
        self._kind_seconds: dict[str, float] = {}
        self._last_upkeep: float | None = None
        self._last_batch_full = False
        self._last_claim_limit = self.config.batch_size
        self._last_batch_seconds = 0.0
        # PostgreSQL: a second connection of the loop, in autocommit, for the one-statement ack+claim.
        self._autocommit: Any = None
        self._budget: int | None = None  # jobs left to do under ``run(max_jobs=...)``
        # A started job's failed outcome not written yet (see :meth:`_record_outcome`).
        self._unrecorded: Callable[[Any], None] | None = None
        # The last lease extension skipped a held job as busy (its row locked by another transaction).
        self._busy = False

    @property
    def heartbeat_seconds(self) -> float:
        """The heartbeat interval: a third of the lease, so one missed beat never loses a lease."""
        return max(0.05, self.config.lease_seconds / 3)

    # -- lifecycle -------------------------------------------------------------------------------
    def request_stop(self, *_args: Any) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("worker.stopping", signal=signum)
            self.request_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self, *, burst: bool = False, max_jobs: int | None = None) -> WorkerStats:
        """Loop until stopped; with ``burst``, until nothing is ready (then return); with ``max_jobs``,
        until that many jobs were handled. Errors of the loop's own bookkeeping never end it (see the
        module docstring)."""
        log.info("worker.started", worker=self.name, burst=burst)
        self._started_at = self.clock()
        heartbeat_done = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(heartbeat_done,), name="heartbeat", daemon=True
        )
        heartbeat.start()
        try:
            while not self._stop.is_set():
                try:
                    if self._loop(burst=burst, max_jobs=max_jobs):
                        break
                except Exception as exc:
                    self._failures += 1
                    delay = loop_backoff(
                        self._failures, low=self.config.error_backoff_min, high=self.config.error_backoff_max
                    )
                    log.error(
                        "worker.loop_failed",
                        worker=self.name,
                        error=type(exc).__name__,
                        failures=self._failures,
                        retry_in=round(delay, 3),
                        exc_info=True,
                    )
                    self._abandon_batch()
                    self._stop.wait(delay)
        finally:
            heartbeat_done.set()
            heartbeat.join(timeout=5)
            self._retire()
        log.info("worker.stopped", worker=self.name, **self.stats.__dict__)
        return self.stats

    def _loop(self, *, burst: bool, max_jobs: int | None) -> bool:
        """Iterate on one connection until stopped or done (True); an exception means "reconnect"."""
        with ExitStack() as stack:
            conn = stack.enter_context(self.engine.connect())
            self._conn = conn
            if is_postgres(conn):
                self._autocommit = stack.enter_context(self.engine.connect()).execution_options(
                    isolation_level="AUTOCOMMIT"
                )
                # Acks and claims commit without waiting for the WAL flush. Safe: PostgreSQL writes
                # its WAL in order, so any later synchronous commit (a handler's own transaction, the
                # fenced ``ctx.transaction()`` that checks this very lease) flushes the claim and the
                # acks before it. A server crash can only lose the last few of them: a lost ack means
                # the job runs again (at-least-once, as after a worker crash; exactly-once handlers
                # complete in their own synchronous transaction), a lost claim means it never
                # happened (the handler's fenced transaction, which would have flushed it, cannot
                # have committed). Reset before the connection goes back to the pool.
                with self._autocommit.begin():
                    self._autocommit.exec_driver_sql("SET synchronous_commit = off")
                stack.callback(self._reset_autocommit, self._autocommit)
            try:
                while not self._stop.is_set():
                    self._budget = (
                        None if max_jobs is None else max_jobs - self.stats.total() - len(self._acks)
                    )
                    processed = self.run_once(defer_acks=True)
                    self._failures = 0
                    if max_jobs is not None and self.stats.total() + len(self._acks) >= max_jobs:
                        self._flush_acks()
                        return True
                    if processed == 0:
                        if burst:
                            return True
                        self._stop.wait(self.config.poll_seconds)
                self._flush_acks()
                return True
            finally:
                self._conn = None
                self._autocommit = None

    @staticmethod
    def _reset_autocommit(conn: Any) -> None:
        try:
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                conn.exec_driver_sql("RESET synchronous_commit")
        except Exception:  # a broken connection is discarded by the pool anyway
            conn.invalidate()

    def _abandon_batch(self) -> None:
        """After a loop failure, on a fresh connection and in one transaction (best effort, fenced):
        acknowledge the jobs whose handlers ran (a finished job is not run again just because the
        bookkeeping failed after it), record the outcome of a job whose failure could not be written
        (a retry or a dead letter, see :meth:`_record_outcome`) and give the unstarted ones back (one
        statement each, in id order, the order the heartbeat locks rows in); then forget the batch.
        If the database is still down, the leases expire and those jobs run again (at-least-once)."""
        with self._lock:
            unstarted = [j for i, j in self._held.items() if i not in self._started_ids]
        unrecorded, self._unrecorded = self._unrecorded, None
        try:
            if unstarted or self._acks or self._flow_successes or unrecorded is not None:
                with self.engine.begin() as conn:
                    done = self._write_acks(conn)
                    if unrecorded is not None:
                        unrecorded(conn)
                    now = self.clock()
                    released = sum(
                        1
                        for job in sorted(unstarted, key=lambda j: j.id)
                        if jobstore.release(conn, job, now=now)
                    )
                self._settle_acks(done)
                self.stats.released += released
        except Exception as exc:  # still down: the leases expire and the jobs are claimed again
            log.warning(
                "worker.abandon_failed",
                acks=len(self._acks),
                unstarted=len(unstarted),
                unrecorded=unrecorded is not None,
                error=type(exc).__name__,
            )
        finally:
            self._acks = []
            self._flow_successes.clear()
            with self._lock:
                self._forget_batch()

    def _forget_batch(self) -> None:
        self._held.clear()
        self._lease_until.clear()
        self._lost_ids.clear()
        self._started_ids.clear()

    def _retire(self) -> None:
        try:
            with self.engine.begin() as conn:
                liveness.retire(conn, self.name)
        except Exception as exc:
            log.warning("worker.retire_failed", error=type(exc).__name__)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """A transaction on the worker's own connection (no pool checkout per job)."""
        if self._conn is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._conn.begin():
            yield self._conn

    # -- one iteration ---------------------------------------------------------------------------
    def run_once(self, *, defer_acks: bool = False) -> int:
        """Claim one batch and run it; returns the number of jobs claimed. Every finished job is
        acknowledged on return, except with ``defer_acks`` (the loop's own calls) after a full batch:
        then the acks are written in the next claim's transaction, which follows at once."""
        now = self.clock()
        upkeep = self._upkeep_due()
        if upkeep:
            self._upkeep(now)
        batch = self._claim(now)
        if not batch and not upkeep:  # idle now: catch up on the upkeep skipped during the backlog
            self._upkeep(now)
            batch = self._claim(now)
        self._last_batch_full = bool(batch) and len(batch) >= self._last_claim_limit
        batch_started = time.monotonic()
        lease_until = now + timedelta(seconds=self.config.lease_seconds)
        with self._lock:
            self._forget_batch()
            self._held.update((job.id, job) for job in batch)
            self._lease_until.update((job.id, lease_until) for job in batch)
        for index, job in enumerate(batch):
            if self._stop.is_set():
                self._flush_acks()
                self._release(batch[index:])
                break
            if self._acks and self._flush_first(job):
                self._flush_acks()
            if not self._may_start(job):
                self._give_up(job)
                continue
            if not self._process(job):
                with self._lock:
                    self._held.pop(job.id, None)
        self._last_batch_seconds = time.monotonic() - batch_started
        if defer_acks and self._last_batch_full and self._acks and not self._stop.is_set():
            # A backlog: the next claim follows at once and writes these acks in its transaction.
            with self._lock:
                pending = [(job, self._lease_until[job.id]) for job, _ in self._acks]
                lost = {job.id for job, _ in self._acks} & self._lost_ids
                self._forget_batch()
                self._held.update((job.id, job) for job, _ in pending)
                self._lease_until.update((job.id, until) for job, until in pending)
                self._lost_ids.update(lost)
                self._started_ids.update(job.id for job, _ in pending)
        else:
            self._flush_acks()
            with self._lock:
                self._forget_batch()
        return len(batch)

    def _upkeep_due(self) -> bool:
        if self._last_upkeep is None or not self._last_batch_full:
            return True
        return time.monotonic() - self._last_upkeep >= self.config.upkeep_seconds

    def _upkeep(self, now: datetime) -> None:
        """Schedule due flows, bury jobs lost on every attempt, write the history of lost attempts."""
        with self._tx() as conn:
            done = self._write_acks(conn)
            if self.config.schedule:
                enqueue_due(conn, now=now, known_kinds=set(self.registry.kinds()))
            jobstore.recover_expired(conn, now=now)
            jobstore.record_lost_attempts(conn, now=now)
        self._settle_acks(done)
        self._last_upkeep = time.monotonic()

    def _claim(self, now: datetime) -> list[jobstore.ClaimedJob]:
        """Acknowledge the pending acks and claim the next batch: :func:`jobstore.ack_and_claim`, one
        statement on PostgreSQL. When no flow result is to be written with the acks, that statement runs
        alone on the worker's autocommit connection (it is atomic by itself: one round trip, no BEGIN
        or COMMIT); otherwise in a transaction with the flows' results."""
        limit = self._claim_limit()
        flows = bool(self._flow_successes) or any(
            job.channel_id is not None and job.flow is not None for job, _ in self._acks
        )
        alone = self._autocommit is not None and not flows
        with self._autocommit_tx() if alone else self._tx() as conn:
            done, batch = jobstore.ack_and_claim(
                conn,
                self._acks,
                worker=self.name,
                now=now,
                lease_seconds=self.config.lease_seconds,
                limit=limit,
            )
            if not alone:
                self._record_flows(conn, done)
        self._settle_acks(done)
        self._last_claim_limit = limit
        return batch

    def _claim_limit(self) -> int:
        """The claim's size: ``batch_size``; while claims come back full and their jobs are fast (the
        last batch's took at most ``fast_job_seconds`` each on average), doubled per claim up to
        ``max_batch_size`` (a deep backlog of fast jobs pays the claim's round trip once per many
        jobs); back to ``batch_size`` as soon as a claim is not full or a batch is slow."""
        base = self.config.batch_size
        top = max(base, self.config.max_batch_size)
        if self._budget is not None:  # ``run(max_jobs=...)``: never grow past what is left to do
            top = max(base, min(top, self._budget))
        slow = self._last_batch_seconds > self.config.fast_job_seconds * self._last_claim_limit
        if not self._last_batch_full or slow:
            return base
        return min(top, self._last_claim_limit * 2)

    @contextmanager
    def _autocommit_tx(self) -> Iterator[Any]:
        with self._autocommit.begin():  # type: ignore[union-attr]  # no BEGIN/COMMIT: autocommit
            yield self._autocommit

    def _flush_first(self, job: jobstore.ClaimedJob) -> bool:
        """Whether the pending acks must be written before ``job`` runs: they waited long enough, or
        ``job`` is of a kind not known to be fast (so they never wait on a slow handler)."""
        if time.monotonic() - self._acks_since >= self.config.ack_delay_max:
            return True
        seconds = self._kind_seconds.get(job.kind)
        return seconds is None or seconds > self.config.fast_handler_seconds

    def _flush_acks(self) -> None:
        """Acknowledge the finished jobs in a transaction of their own (see :meth:`_write_acks`)."""
        if not self._acks and not self._flow_successes:
            return
        with self._tx() as conn:
            done = self._write_acks(conn)
        self._settle_acks(done)

    def _write_acks(self, conn: Any) -> set[int]:
        """Acknowledge the finished jobs in ``conn``'s transaction, in one statement fenced by the lease
        token, and record their flows' success once per flow; returns the ids acknowledged. The acks
        stay pending until :meth:`_settle_acks` (called once the transaction committed): if it fails,
        :meth:`_abandon_batch` tries them again on a fresh connection."""
        if not self._acks and not self._flow_successes:
            return set()
        done = jobstore.complete_many(conn, self._acks, now=self.clock()) if self._acks else set()
        self._record_flows(conn, done)
        return done

    def _record_flows(self, conn: Any, done: set[int]) -> None:
        """The flows' last success, once per flow: those of the acknowledged jobs (``done``) and of the
        jobs that completed in their own transaction."""
        flows = set(self._flow_successes)
        for job, result in self._acks:
            ran = flow_ran(result)  # e.g. not when the channel is in Setup: a skipped run is no success
            if ran and job.id in done and job.channel_id is not None and job.flow is not None:
                flows.add((job.channel_id, job.flow))
        now = self.clock()
        for channel_id, flow in sorted(flows):
            record_flow_result(conn, channel_id, flow, now=now, error=None)

    def _settle_acks(self, done: set[int]) -> None:
        """After the acks' transaction committed: they are no longer pending nor held; a job missing
        from ``done`` had lost its lease (counted lost)."""
        acks = self._acks
        self._acks, self._flow_successes = [], set()
        if not acks:
            return
        with self._lock:
            for job, _ in acks:
                self._held.pop(job.id, None)
        lost = len(acks) - len(done)
        self.stats.succeeded += len(done)
        self.stats.lost += lost
        if lost:
            log.warning("job.lease_lost", jobs=[job.id for job, _ in acks if job.id not in done])

    def _may_start(self, job: jobstore.ClaimedJob) -> bool:
        """True while the job's lease is known to hold (claimed or extended by the heartbeat) for at
        least one more heartbeat interval: a job is not started on the last seconds of its lease."""
        margin = timedelta(seconds=self.heartbeat_seconds)
        with self._lock:
            if job.id in self._lost_ids or self.clock() + margin > self._lease_until[job.id]:
                return False
            self._started_ids.add(job.id)
            return True

    def _give_up(self, job: jobstore.ClaimedJob) -> None:
        """Not started: its lease was lost or could not be extended in time. Hand it back if still ours."""
        with self._lock:
            self._held.pop(job.id, None)
        with self._tx() as conn:
            released = jobstore.release(conn, job, now=self.clock())
        if released:
            self.stats.released += 1
        else:
            self.stats.lost += 1
        log.warning("job.lease_lost", job_id=job.id, started=False, released=released)

    def _release(self, remaining: list[jobstore.ClaimedJob]) -> None:
        with self._lock:
            for job in remaining:
                self._held.pop(job.id, None)
        with self._tx() as conn:
            for job in remaining:
                if jobstore.release(conn, job, now=self.clock()):
                    self.stats.released += 1

    def _process(self, job: jobstore.ClaimedJob) -> bool:
        """Run ``job``'s handler and record its outcome; True when its success awaits the batched ack
        (the job stays held, its lease extended by the heartbeat, until :meth:`_flush_acks`)."""
        # Bound for the job's log lines, and reset by token afterwards (cheaper than
        # ``bound_contextvars``, which reads the whole context: this runs once per job).
        tokens = structlog.contextvars.bind_contextvars(
            job_id=job.id, job_kind=job.kind, tenant_id=job.tenant_id, channel_id=job.channel_id
        )
        try:
            return self._run(job)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    def _run(self, job: jobstore.ClaimedJob) -> bool:
        handler = self.registry.get(job.kind)
        if handler is None:
            self._bury(job, f"no handler registered for job kind {job.kind!r}", jobstore.ErrorKind.PERMANENT)
            return False
        if job.attempts > job.max_attempts:
            self._bury(job, "worker lost the job (crash or kill) on every attempt", jobstore.ErrorKind.CRASH)
            return False
        ctx = JobContext(job, self.engine, self.clock, self.rate_limiter, services=self.services)
        self._current = job
        started = time.perf_counter()
        try:
            result = handler(ctx)
        except LeaseLost:
            self.stats.lost += 1
            log.warning("job.lease_lost")
            return False
        except RetryableError as exc:
            self._retry(job, exc.reason, exc.retry_after)
            return False
        except PermanentError as exc:
            detail = exc.reason if exc.raw is None else f"{exc.reason}\n--- raw ---\n{exc.raw}"
            auth = isinstance(exc, AuthenticationError)  # the channel's alert is raised at the edge
            self._bury(job, detail, jobstore.ErrorKind.AUTH if auth else jobstore.ErrorKind.PERMANENT)
            return False
        except Exception as exc:  # a bug or an unclassified failure: retried, then dead-lettered
            log.exception("job.crashed")
            summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self._retry(job, f"unexpected error: {summary}", None)
            return False
        finally:
            self._current = None
        elapsed = time.perf_counter() - started
        # The kind's recent worst run: a slow run counts at once, and halves away over fast ones.
        self._kind_seconds[job.kind] = max(elapsed, self._kind_seconds.get(job.kind, 0.0) / 2)
        if not ctx.completed:
            if not self._acks:
                self._acks_since = time.monotonic()
            self._acks.append((job, result))
            return True
        if job.channel_id is not None and job.flow is not None:  # completed in its own transaction
            self._flow_successes.add((job.channel_id, job.flow))
        self.stats.succeeded += 1
        log.debug("job.succeeded")
        return False

    def _record_flow(self, conn: Any, job: jobstore.ClaimedJob, error: str | None) -> None:
        if job.channel_id is not None and job.flow is not None:
            record_flow_result(conn, job.channel_id, job.flow, now=self.clock(), error=error)

    def _retry(self, job: jobstore.ClaimedJob, reason: str, retry_after: float | None) -> None:
        throttled = retry_after is not None
        if not throttled and job.attempts >= job.max_attempts:
            self._bury(job, f"gave up after {job.attempts} attempts: {reason}", jobstore.ErrorKind.EXHAUSTED)
            return
        delay = (
            retry_after
            if retry_after is not None
            else backoff_delay(
                job.attempts, base=self.config.backoff_base, cap=self.config.backoff_cap, rng=self.rng
            )
        )
        self._record_outcome(partial(self._write_retry, job, reason, delay, throttled))

    def _write_retry(
        self, job: jobstore.ClaimedJob, reason: str, delay: float, throttled: bool, conn: Any
    ) -> None:
        """Record a failed attempt as a retry in ``conn``'s transaction (fenced by the lease token)."""
        if jobstore.retry_later(
            conn, job, now=self.clock(), delay=delay, error=reason, count_attempt=not throttled
        ):
            self._record_flow(conn, job, reason)
            self.stats.retried += 1
            log.info("job.retry", job_id=job.id, delay=round(delay, 3), reason=reason, throttled=throttled)
        else:
            self.stats.lost += 1

    def _bury(self, job: jobstore.ClaimedJob, reason: str, kind: jobstore.ErrorKind) -> None:
        self._record_outcome(partial(self._write_bury, job, reason, kind))

    def _write_bury(self, job: jobstore.ClaimedJob, reason: str, kind: jobstore.ErrorKind, conn: Any) -> None:
        """Dead-letter the job in ``conn``'s transaction (fenced by the lease token)."""
        if jobstore.bury(conn, job, now=self.clock(), error=reason, kind=kind):
            self._record_flow(conn, job, reason)
            self.stats.dead += 1
            log.warning(
                "job.dead",
                job_id=job.id,
                reason=reason.splitlines()[0] if reason else "",
                error_kind=kind.value,
            )
        else:
            self.stats.lost += 1

    def _record_outcome(self, write: Callable[[Any], None]) -> None:
        """Write a job's failed outcome (a retry or a dead letter) after the pending acks (earlier
        successes first: a flow's last result stays in order). Until that transaction commits the
        outcome is kept in ``_unrecorded``: if the loop's connection fails under it (a dropped
        connection also interrupted the handler), :meth:`_abandon_batch` writes it on a fresh
        connection, still fenced by the job's lease token, so the interrupted attempt is a retry in
        its history rather than a lease that expires and is counted lost."""
        self._unrecorded = write
        self._flush_acks()
        with self._tx() as conn:
            write(conn)
        self._unrecorded = None

    def _extend_held(self) -> list[jobstore.ClaimedJob]:
        """Extend the leases of the batch's unfinished jobs in one statement (never raises); returns
        the jobs it tried. Sets ``_busy`` when a job still held was skipped as busy."""
        with self._lock:
            held = list(self._held.values())
        busy = False
        if held:
            now = self.clock()
            try:
                with self.engine.begin() as conn:
                    extended = jobstore.extend_leases(
                        conn, held, now=now, lease_seconds=self.config.lease_seconds
                    )
            except Exception as exc:  # unstarted jobs whose lease runs out are not started
                log.warning("job.heartbeat_failed", jobs=len(held), error=type(exc).__name__)
            else:
                # A busy job (its row locked by another transaction, usually its handler's) is still
                # ours: its lease is extended by a later try (see jobstore.extend_leases).
                until = now + timedelta(seconds=self.config.lease_seconds)
                with self._lock:
                    for job in held:
                        if job.id in extended.extended:
                            self._lease_until[job.id] = until
                        elif job.id in self._held:
                            if job.id in extended.busy:
                                busy = True
                            else:
                                self._lost_ids.add(job.id)
        self._busy = busy
        return held

    def _heartbeat(self, done: threading.Event) -> None:
        """Every :attr:`heartbeat_seconds`, on connections of its own: extend the leases of the batch's
        unfinished jobs, then report liveness. A failed beat is logged; the next one tries again. While
        a held job is skipped as busy (its row locked by another transaction, usually its own handler's
        fenced one), the leases are extended again every :attr:`busy_retry_seconds` until it is not
        (leases only: the liveness row keeps the regular rate), so a job found locked by two regular
        beats in a row still keeps its lease once that transaction ends."""
        while True:
            # At a fixed rate: a slow beat (a loaded database) does not push the next one back, so the
            # gap between two extensions stays one interval plus one beat's own time, not two intervals.
            started = time.monotonic()
            due = started + self.heartbeat_seconds
            self.beat()
            while self._busy and time.monotonic() + self.busy_retry_seconds < due:
                if done.wait(self.busy_retry_seconds):
                    return
                self._extend_held()
            if done.wait(max(0.0, due - time.monotonic())):
                return

    @property
    def busy_retry_seconds(self) -> float:
        """How soon the leases are extended again after a beat skipped a held job as busy: a sixth of
        :attr:`heartbeat_seconds`."""
        return self.heartbeat_seconds / 6

    def beat(self) -> None:
        """One heartbeat (see :meth:`_heartbeat`): extend the held jobs' leases, report liveness;
        never raises."""
        held = self._extend_held()
        current = self._current
        report = liveness.WorkerBeat(
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at or self.clock(),
            heartbeat_seconds=self.heartbeat_seconds,
            current_job_id=None if current is None else current.id,
            held_jobs=len(held),
            stats=dict(self.stats.__dict__),
        )
        try:
            now = self.clock()
            with self.engine.begin() as conn:
                liveness.beat(conn, report, now=now)
                liveness.resolve_alerts(conn, now=now)
                liveness.prune(conn, now=now)
        except Exception as exc:
            log.warning("worker.heartbeat_failed", error=type(exc).__name__)
