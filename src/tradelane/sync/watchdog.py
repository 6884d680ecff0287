"""The worker watchdog: a thread of the API server that judges the queue every ``interval`` seconds.

A dead worker cannot report its own death, so the "no live worker while jobs are due" alert is raised
from outside the workers: :func:`tradelane.sync.liveness.watch` runs here, in its own short transaction,
first right after :meth:`WorkerWatchdog.start` and then every ``interval``. A failed check (database
down) is logged and tried again at the next tick; it never stops the thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Engine

from tradelane.logging import get_logger
from tradelane.sync import liveness

log = get_logger(__name__)


class WorkerWatchdog:
    def __init__(self, engine: Engine, clock: Callable[[], datetime], *, interval: float = 30.0) -> None:
        if interval <= 0:
            raise ValueError(f"watchdog interval must be positive, not {interval}")
        self._engine = engine
        self._clock = clock
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_stalled = False

    def check(self) -> liveness.QueueHealth | None:
        """One judgement (raises or resolves the alerts); None when the database could not be read."""
        try:
            with self._engine.begin() as conn:
                health = liveness.watch(conn, now=self._clock())
        except Exception as exc:
            log.warning("watchdog.check_failed", error=type(exc).__name__)
            return None
        if health.stalled and not self._was_stalled:
            log.error(
                "workers.none_live",
                jobs_due=health.jobs_due,
                oldest_due_job_age_seconds=round(health.oldest_due_job_age_seconds, 1),
            )
        elif self._was_stalled and not health.stalled:
            log.info("workers.live_again", workers_live=health.workers_live)
        self._was_stalled = health.stalled
        return health

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the watchdog is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="worker-watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            self.check()
            if self._stop.wait(self._interval):
                return
