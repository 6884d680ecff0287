"""Per-channel token buckets persisted in the database, so every worker shares one budget.

A :class:`RateLimit` of ``calls`` per ``per_seconds`` is a bucket refilled at ``calls / per_seconds``
tokens a second with capacity ``burst``. With the default ``burst=1`` calls are evenly spaced, so *any*
window of ``per_seconds`` holds at most ``calls`` requests — safe against a marketplace that counts in
fixed or sliding windows. APIs that document a token bucket themselves (Amazon SP-API's rate + burst)
declare their ``burst``. Acquisition happens in its own short
transaction (the bucket row is locked: ``FOR UPDATE`` on PostgreSQL, the write lock on SQLite).

A marketplace's Retry-After is a *hold* (:func:`hold`): the bucket's stamp moves to the moment asked
for, so no token is granted before it — exactly then if the budget allows, never later than the budget
requires — and the tokens the bucket holds then are kept (a hold neither spends nor grants any).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

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


@dataclass(frozen=True, slots=True)
class BucketState:
    """A bucket as stored: ``tokens`` as of ``at``. An ``at`` later than the reader's ``now`` means the
    bucket is held until then (a Retry-After): no token before ``at``, and ``tokens`` is what the bucket
    holds at that moment (its refill during the hold included)."""

    tokens: float
    at: datetime

    def at_moment(self, limit: RateLimit, now: datetime) -> BucketState:
        """The bucket at ``max(now, at)``: refilled up to ``now`` at the limit's rate, capped at the
        burst; a bucket stamped later than ``now`` (held, or written by a worker whose clock is ahead)
        is returned as is."""
        if now <= self.at:
            return self
        elapsed = (now - self.at).total_seconds()
        return BucketState(min(float(limit.burst), self.tokens + elapsed * limit.rate), now)

    def taken(self, limit: RateLimit, now: datetime) -> tuple[BucketState, float]:
        """Take one token at ``now`` (pure). Returns the new state and 0.0, or the state unchanged
        (refilled) and the seconds until a token is available: what is left of a hold plus the refill
        still missing after it."""
        state = self.at_moment(limit, now)
        held = max(0.0, (state.at - now).total_seconds())
        if held == 0.0 and state.tokens >= 1.0:
            return BucketState(state.tokens - 1.0, state.at), 0.0
        return state, held + max(0.0, 1.0 - state.tokens) / limit.rate

    def held(self, limit: RateLimit, now: datetime, seconds: float) -> BucketState:
        """The remote said "not before ``seconds`` from ``now``" (pure): the bucket is held until that
        moment exactly — never earlier, nor earlier than a hold already in place — and keeps the tokens
        it has then (those it has now plus the refill meanwhile, capped at the burst). No token is
        granted beyond the budget, and none taken: the first call after the hold goes at its moment if
        the budget allows it then, else when it does."""
        state = self.at_moment(limit, now)
        until = max(state.at, now + timedelta(microseconds=math.ceil(max(0.0, seconds) * 1_000_000)))
        return state.at_moment(limit, until)


def _locked(
    conn: Connection, channel_id: int, bucket: str, limit: RateLimit, *, now: datetime
) -> BucketState:
    """The bucket's stored state, created full at ``now`` if missing, locked for this transaction."""
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
    return BucketState(float(row.tokens), row.updated_at)


def _store(conn: Connection, channel_id: int, bucket: str, state: BucketState) -> None:
    conn.execute(
        sa.update(rate_buckets)
        .where(rate_buckets.c.channel_id == channel_id, rate_buckets.c.bucket == bucket)
        .values(tokens=state.tokens, updated_at=state.at)
    )


def take(conn: Connection, channel_id: int, bucket: str, limit: RateLimit, *, now: datetime) -> float:
    """Take one token if available. Returns 0.0 on success, else the seconds until one is available
    (see :meth:`BucketState.taken`). The stored ``updated_at`` never moves backwards (clocks of several
    workers may differ slightly: one behind a stamp waits until its clock reaches it)."""
    state, wait = _locked(conn, channel_id, bucket, limit, now=now).taken(limit, now)
    _store(conn, channel_id, bucket, state)
    return wait


def hold(
    conn: Connection, channel_id: int, bucket: str, limit: RateLimit, *, now: datetime, seconds: float
) -> None:
    """The remote said "not before ``seconds``" (429 Retry-After): no token for anyone until exactly
    then, and from then on no more than the budget (see :meth:`BucketState.held`)."""
    state = _locked(conn, channel_id, bucket, limit, now=now).held(limit, now, seconds)
    _store(conn, channel_id, bucket, state)


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
