"""What a job handler receives: the job, fenced transactions, the clock, the rate limiter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tradelane.persistence.db import is_postgres
from tradelane.persistence.tables import jobs
from tradelane.sync import jobs as jobstore
from tradelane.sync.ratelimit import RateLimiter


class LeaseLost(Exception):
    """This worker no longer owns the job (its lease expired and another worker took it)."""


@dataclass
class JobContext:
    job: jobstore.ClaimedJob
    engine: Engine
    clock: Callable[[], datetime]
    rate_limiter: RateLimiter
    services: dict[str, Any] = field(default_factory=dict)
    completed: bool = False

    def now(self) -> datetime:
        return self.clock()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction fenced by this job's lease: it only commits while the lease is held.

        The job row is locked for the transaction's duration (PostgreSQL ``FOR UPDATE``; SQLite holds
        the database write lock), so no other worker can take the job over mid-transaction."""
        with self.engine.begin() as conn:
            stmt = sa.select(jobs.c.id).where(
                jobs.c.id == self.job.id,
                jobs.c.lease_token == self.job.lease_token,
                jobs.c.state == jobstore.JobState.RUNNING.value,
            )
            if is_postgres(conn):
                stmt = stmt.with_for_update()
            if conn.execute(stmt).first() is None:
                raise LeaseLost(f"job {self.job.id} lease lost")
            yield conn

    def complete_in(self, conn: Connection, result: dict[str, Any] | None = None) -> None:
        """Mark the job succeeded inside ``conn`` (a :meth:`transaction`): effects and completion commit
        together, so a crash can never leave the effect done but the job pending (exactly once)."""
        if not jobstore.complete(conn, self.job, now=self.now(), result=result):
            raise LeaseLost(f"job {self.job.id} lease lost")
        self.completed = True
