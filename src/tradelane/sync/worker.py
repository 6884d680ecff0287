"""The worker loop: schedule due flows, claim a batch, run handlers, record outcomes.

* Retryable errors are retried with exponential backoff and jitter; a ``retry_after`` from the remote
  (or our own rate limiter) is honoured exactly and does not consume an attempt.
* Permanent errors, exhausted attempts and unknown job kinds go to the dead-letter list with the reason.
* While a handler runs, a heartbeat thread extends the job's lease; if the process dies (SIGKILL) the
  lease expires and another worker claims the job again.
* SIGTERM/SIGINT: the running job finishes, claimed-but-unstarted jobs are released, the loop exits.
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any

import structlog

from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.sync import jobs as jobstore
from tradelane.sync.backoff import backoff_delay
from tradelane.sync.context import JobContext, LeaseLost
from tradelane.sync.ratelimit import RateLimiter
from tradelane.sync.registry import JobRegistry
from tradelane.sync.scheduler import enqueue_due, record_flow_result

log = structlog.get_logger("tradelane.worker")


@dataclass
class WorkerConfig:
    batch_size: int = 10
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    backoff_base: float = 2.0
    backoff_cap: float = 900.0
    schedule: bool = True


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
        """Loop until stopped; with ``burst``, until nothing is ready (then return)."""
        log.info("worker.started", worker=self.name, burst=burst)
        heartbeat_done = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(heartbeat_done,), name="heartbeat", daemon=True
        )
        heartbeat.start()
        try:
            with self.engine.connect() as conn:
                self._conn = conn
                while not self._stop.is_set():
                    processed = self.run_once()
                    if max_jobs is not None and self.stats.total() >= max_jobs:
                        break
                    if processed == 0:
                        if burst:
                            break
                        self._stop.wait(self.config.poll_seconds)
        finally:
            self._conn = None
            heartbeat_done.set()
            heartbeat.join(timeout=5)
        log.info("worker.stopped", worker=self.name, **self.stats.__dict__)
        return self.stats

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
    def run_once(self) -> int:
        now = self.clock()
        if self.config.schedule:
            with self._tx() as conn:
                enqueue_due(conn, now=now, known_kinds=set(self.registry.kinds()))
        with self._tx() as conn:
            jobstore.recover_expired(conn, now=now)
            batch = jobstore.claim(
                conn,
                worker=self.name,
                now=now,
                lease_seconds=self.config.lease_seconds,
                limit=self.config.batch_size,
            )
        for index, job in enumerate(batch):
            if self._stop.is_set():
                self._release(batch[index:])
                break
            self._process(job)
        return len(batch)

    def _release(self, remaining: list[jobstore.ClaimedJob]) -> None:
        with self._tx() as conn:
            for job in remaining:
                if jobstore.release(conn, job, now=self.clock()):
                    self.stats.released += 1

    def _process(self, job: jobstore.ClaimedJob) -> None:
        bound = {
            "job_id": job.id,
            "job_kind": job.kind,
            "tenant_id": job.tenant_id,
            "channel_id": job.channel_id,
        }
        with structlog.contextvars.bound_contextvars(**bound):
            handler = self.registry.get(job.kind)
            if handler is None:
                self._bury(
                    job, f"no handler registered for job kind {job.kind!r}", jobstore.ErrorKind.PERMANENT
                )
                return
            if job.attempts > job.max_attempts:
                self._bury(
                    job, "worker lost the job (crash or kill) on every attempt", jobstore.ErrorKind.CRASH
                )
                return
            ctx = JobContext(job, self.engine, self.clock, self.rate_limiter, services=self.services)
            self._current = job
            try:
                result = handler(ctx)
            except LeaseLost:
                self.stats.lost += 1
                log.warning("job.lease_lost")
                return
            except RetryableError as exc:
                self._retry(job, exc.reason, exc.retry_after)
                return
            except PermanentError as exc:
                detail = exc.reason if exc.raw is None else f"{exc.reason}\n--- raw ---\n{exc.raw}"
                self._bury(job, detail, jobstore.ErrorKind.PERMANENT)
                return
            except Exception as exc:  # a bug or an unclassified failure: retried, then dead-lettered
                log.exception("job.crashed")
                summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self._retry(job, f"unexpected error: {summary}", None)
                return
            finally:
                self._current = None
            if not ctx.completed:
                with self._tx() as conn:
                    if not jobstore.complete(conn, job, now=self.clock(), result=result):
                        self.stats.lost += 1
                        log.warning("job.lease_lost")
                        return
                    self._record_flow(conn, job, None)
            elif job.channel_id is not None and job.flow is not None:
                with self._tx() as conn:  # the handler completed the job in its own transaction
                    self._record_flow(conn, job, None)
            self.stats.succeeded += 1
            log.debug("job.succeeded")

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
        with self._tx() as conn:
            if jobstore.retry_later(
                conn, job, now=self.clock(), delay=delay, error=reason, count_attempt=not throttled
            ):
                self._record_flow(conn, job, reason)
                self.stats.retried += 1
                log.info("job.retry", delay=round(delay, 3), reason=reason, throttled=throttled)
            else:
                self.stats.lost += 1

    def _bury(self, job: jobstore.ClaimedJob, reason: str, kind: jobstore.ErrorKind) -> None:
        with self._tx() as conn:
            if jobstore.bury(conn, job, now=self.clock(), error=reason, kind=kind):
                self._record_flow(conn, job, reason)
                self.stats.dead += 1
                log.warning(
                    "job.dead", reason=reason.splitlines()[0] if reason else "", error_kind=kind.value
                )
            else:
                self.stats.lost += 1

    def _heartbeat(self, done: threading.Event) -> None:
        """Extend the running job's lease every third of the lease time, on a connection of its own."""
        interval = max(0.05, self.config.lease_seconds / 3)
        while not done.wait(interval):
            job = self._current
            if job is None:
                continue
            try:
                with self.engine.begin() as conn:
                    jobstore.extend_lease(
                        conn, job, now=self.clock(), lease_seconds=self.config.lease_seconds
                    )
            except Exception:  # the next beat retries; the lease margin covers a miss
                log.warning("job.heartbeat_failed", exc_info=True)
