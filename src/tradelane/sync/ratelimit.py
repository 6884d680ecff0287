"""Per-channel token buckets persisted in the database, so every worker shares one budget.

A :class:`RateLimit` of ``calls`` per ``per_seconds`` is a bucket refilled at ``calls / per_seconds``
tokens a second with capacity ``burst``. With the default ``burst=1`` calls are evenly spaced, so *any*
window of ``per_seconds`` holds at most ``calls`` requests — safe against a marketplace that counts in
fixed or sliding windows. APIs that document a token bucket themselves (Amazon SP-API's rate + burst)
declare their ``burst``. Acquisition happens in its own short
transaction (the bucket row is locked: ``FOR UPDATE`` on PostgreSQL, the write lock on SQLite).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from tradelane.domain.errors import RetryableError
from tradelane.persistence.db import insert_ignore, is_postgres
from tradelane.persistence.tables import rate_buckets


@dataclass(frozen=True, slots=True)
class RateLimit:
    calls: int
    per_seconds: float
    burst: int = 1

    def __post_init__(self) -> None:
        if self.calls < 1 or self.per_seconds <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs calls >= 1, per_seconds > 0 and burst >= 1")

    @property
    def rate(self) -> float:
        return self.calls / self.per_seconds


def take(conn: Connection, channel_id: int, bucket: str, limit: RateLimit, *, now: datetime) -> float:
    """Take one token if available. Returns 0.0 on success, else the seconds until one is available."""
    conn.execute(
        insert_ignore(conn, rate_buckets).values(
            channel_id=channel_id, bucket=bucket, tokens=float(limit.burst), updated_at=now
        )
    )
    select = sa.select(rate_buckets.c.tokens, rate_buckets.c.updated_at).where(
        rate_buckets.c.channel_id == channel_id, rate_buckets.c.bucket == bucket
    )
    if is_postgres(conn):
        select = select.with_for_update()
    row = conn.execute(select).one()
    elapsed = max(0.0, (now - row.updated_at).total_seconds())
    tokens = min(float(limit.burst), row.tokens + elapsed * limit.rate)
    if tokens >= 1.0:
        tokens -= 1.0
        wait = 0.0
    else:
        wait = (1.0 - tokens) / limit.rate
    # updated_at never moves backwards (clocks of several workers may differ slightly).
    stamp = max(now, row.updated_at)
    conn.execute(
        sa.update(rate_buckets)
        .where(rate_buckets.c.channel_id == channel_id, rate_buckets.c.bucket == bucket)
        .values(tokens=tokens, updated_at=stamp)
    )
    return wait


def hold(
    conn: Connection, channel_id: int, bucket: str, limit: RateLimit, *, now: datetime, seconds: float
) -> None:
    """The remote said "not before ``seconds``" (429 Retry-After): no token for anyone until then."""
    take(conn, channel_id, bucket, limit, now=now)  # ensure the row exists and is refilled to now
    conn.execute(
        sa.update(rate_buckets)
        .where(rate_buckets.c.channel_id == channel_id, rate_buckets.c.bucket == bucket)
        .values(tokens=min(0.0, 1.0 - seconds * limit.rate), updated_at=now)
    )


class RateLimiter:
    """Blocking acquisition for connectors: waits up to ``max_wait`` seconds in-process, beyond that
    raises :class:`RetryableError` with ``retry_after`` so the job is rescheduled instead of holding a
    worker."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime],
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 5.0,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait

    def hold(self, channel_id: int, bucket: str, limit: RateLimit, seconds: float) -> None:
        with self._engine.begin() as conn:
            hold(conn, channel_id, bucket, limit, now=self._clock(), seconds=seconds)

    def try_acquire(self, channel_id: int, bucket: str, limit: RateLimit) -> bool:
        """Take a token only if one is available now (for optional work that can wait a run)."""
        with self._engine.begin() as conn:
            return take(conn, channel_id, bucket, limit, now=self._clock()) == 0.0

    def acquire(self, channel_id: int, bucket: str, limit: RateLimit) -> None:
        waited = 0.0
        while True:
            with self._engine.begin() as conn:
                wait = take(conn, channel_id, bucket, limit, now=self._clock())
            if wait <= 0.0:
                return
            if waited + wait > self._max_wait:
                raise RetryableError(
                    f"rate limit {limit.calls}/{limit.per_seconds:g}s for {bucket} reached",
                    retry_after=wait,
                )
            self._sleep(wait)
            waited += wait
