"""Group commit for the webhook routes: concurrent requests' writes share one transaction.

A webhook request's database work is small (an authentication read, one or two inserts) and its cost
is mostly the round trips and the commit around it. :class:`GroupCommitWriter` runs the work of
concurrent requests in a few writer threads per server process (``threads``): each batch is whatever
is queued when a writer is free (at most ``max_batch`` units), run in one transaction and committed
once. (Several writers, because a thread that returns from a database round trip waits for the GIL
while the event loop is busy: one writer alone would serialise those waits.)

Contracts:

* :meth:`GroupCommitWriter.run` returns the unit's result only once the transaction that ran it has
  committed: a 2xx built from it still means durably stored. It raises the unit's own exception after
  that unit's own transaction was rolled back.
* One failing unit never fails its neighbours: when any unit of a batch raises (or the commit fails),
  the whole batch is rolled back and every unit is run again alone, in its own transaction, and gets
  its own result or exception. A unit may therefore run twice and must be idempotent within a rolled
  back transaction (database writes only; no other side effects). Units that refuse a request without
  writing (401, 404...) should *return* the refusal rather than raise it, so as not to cost their batch
  a second run.
* Nobody waits for a batch to form: the writer takes what is already queued and starts at once, so
  batches grow only while the previous one is running (under load), and a request on an idle server
  waits for nothing but its own work.
* The queue is bounded (``max_queue``): when it is full, :meth:`run` raises :class:`RetryableError`
  (503 with ``Retry-After``) instead of queueing without limit.
* The request's task awaits an asyncio future (no worker-thread hop per request); results are handed
  back to each event loop once per batch. Each unit runs in a copy of its request's context variables.
* The threads start on the first request and stop after ``idle_seconds`` without work (and on
  :meth:`close`); nothing runs at import or construction time.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

from tradelane.domain.errors import RetryableError
from tradelane.logging import get_logger

T = TypeVar("T")

log = get_logger("tradelane.web.group_commit")


@dataclass(slots=True)
class _Unit:
    work: Callable[[Connection], Any]
    context: contextvars.Context
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


_Outcome = tuple[_Unit, Any, BaseException | None]


def _resolve(outcomes: list[_Outcome]) -> None:
    """On the unit's event loop: hand each result or exception to its waiting request (gone if the
    request was cancelled meanwhile)."""
    for unit, result, error in outcomes:
        if unit.future.done():
            continue
        if error is not None:
            unit.future.set_exception(error)
        else:
            unit.future.set_result(result)


class GroupCommitWriter:
    """Runs units of work ``work(conn) -> result`` from many requests in shared transactions on
    ``engine`` (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 64,
        max_queue: int = 2048,
        threads: int = 4,
        idle_seconds: float = 5.0,
        name: str = "webhook-group-commit",
    ) -> None:
        if max_batch < 1 or max_queue < 1 or threads < 1:
            raise ValueError("max_batch, max_queue and threads must be at least 1")
        self.engine = engine
        self.max_batch = max_batch
        self.idle_seconds = idle_seconds
        self.threads = threads
        self.name = name
        self._queue: queue.Queue[_Unit | None] = queue.Queue(max_queue)
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._closed = False
        #: Batches committed together and units run alone after a failed batch (for tests and metrics).
        self.batches = 0
        self.largest_batch = 0
        self.fallbacks = 0

    async def run(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)``'s result once its transaction has committed, or its exception once its own
        transaction was rolled back. Raises :class:`RetryableError` when the queue is full or the
        writer is closed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        unit = _Unit(work, contextvars.copy_context(), loop, future)
        if self._closed:
            raise RetryableError("the server is shutting down", retry_after=1)
        try:
            self._queue.put_nowait(unit)
        except queue.Full:
            raise RetryableError(
                "too many webhook requests are waiting to be stored", retry_after=1
            ) from None
        with self._lock:
            while len(self._threads) < self.threads:
                thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                self._threads.add(thread)
                thread.start()
        return await future

    def close(self, timeout: float = 10.0) -> None:
        """Refuse new work, finish what is queued, stop the thread."""
        self._closed = True
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None, timeout=timeout)
        for thread in threads:
            thread.join(timeout)

    # -- the writer thread -----------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._threads.discard(threading.current_thread())  # run() starts new ones
                        return
                continue
            if first is None:
                self._stop()
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    unit = self._queue.get_nowait()
                except queue.Empty:
                    break
                if unit is None:
                    stop = True
                    break
                batch.append(unit)
            try:
                self._process(batch)
            except Exception as exc:  # never leave a request waiting
                log.exception("group_commit.failed", units=len(batch))
                self._settle([(unit, None, exc) for unit in batch])
            if stop:
                self._stop()
                return

    def _stop(self) -> None:
        """After :meth:`close`: this thread ends; the last one refuses whatever was queued behind the
        stop marks."""
        with self._lock:
            self._threads.discard(threading.current_thread())
            if self._threads:
                return
        refused: list[_Outcome] = []
        while True:
            try:
                unit = self._queue.get_nowait()
            except queue.Empty:
                break
            if unit is not None:
                refused.append((unit, None, RetryableError("the server is shutting down", retry_after=1)))
        self._settle(refused)

    def _process(self, batch: list[_Unit]) -> None:
        if len(batch) > 1:
            try:
                with self.engine.begin() as conn:
                    results = [unit.context.run(unit.work, conn) for unit in batch]
            except Exception:
                self.fallbacks += 1  # rolled back: every unit again, alone
            else:
                self.batches += 1
                self.largest_batch = max(self.largest_batch, len(batch))
                self._settle([(unit, result, None) for unit, result in zip(batch, results, strict=True)])
                return
        for unit in batch:
            try:
                with self.engine.begin() as conn:
                    result = unit.context.run(unit.work, conn)
            except Exception as exc:
                self._settle([(unit, None, exc)])
            else:
                self._settle([(unit, result, None)])

    @staticmethod
    def _settle(outcomes: list[_Outcome]) -> None:
        loops: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for outcome in outcomes:
            loops.setdefault(outcome[0].loop, []).append(outcome)
        for loop, group in loops.items():
            try:
                loop.call_soon_threadsafe(_resolve, group)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass
