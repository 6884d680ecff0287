"""One job's use of its channel's marketplace connector.

:class:`ConnectorSession` builds the :class:`~tradelane.connectors.base.ConnectorEnv` a connector gets:
the channel's settings and decrypted credentials, the job's clock, the channel's durable rate budget
(token buckets shared by every worker, named ``<connector>:<operation>``, sized from the budgets the
connector declares in its capabilities) and an exchange sink kept in memory until the job stores the
exchanges with its effects (:meth:`ConnectorSession.record`). Connectors never write tables; this is
where their exchanges and budgets meet the database.
"""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import ConnectorEnv, ConnectorFactory, MarketplaceConnector, RateBudget
from tradelane.domain.channels import LifecycleState
from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.http_edge import Exchange
from tradelane.persistence.tables import exchanges
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services.channels import Channel, channel_credentials
from tradelane.sync.context import JobContext
from tradelane.sync.ratelimit import RateLimit


class BudgetSpent(RetryableError):
    """No token of ``operation``'s budget right now, and the session was told not to wait (optional
    work, e.g. a secondary feed read again on the next poll)."""

    def __init__(self, operation: str) -> None:
        super().__init__(f"no {operation} budget left right now", retry_after=None)
        self.operation = operation


def budget_limit(budget: RateBudget) -> RateLimit:
    """The token bucket of a declared budget, as calls per period in small integers (1/60 per second
    becomes 1 call per 60 s, 100/60 becomes 5 per 3 s), so that refills land exactly on the period."""
    rate = Fraction(budget.per_second).limit_denominator(1_000_000)
    return RateLimit(rate.numerator, float(rate.denominator), burst=budget.burst)


def _text(value: str | None) -> str | None:
    """Exchange excerpts as storable text (PostgreSQL text cannot hold NUL, e.g. in a PDF upload)."""
    return None if value is None else value.replace("\x00", "\\0")


class ConnectorSession:
    """The channel's connector for one job, built by ``factory``.

    ``wait_for_budget``: True (default) waits for a token as the rate limiter allows, beyond that the
    job is rescheduled (:class:`RetryableError` with the wait); False takes a token only if one is free
    now, else raises :class:`BudgetSpent`. Raises :class:`PermanentError` when the credentials cannot
    be decrypted or the connector refuses the channel's settings."""

    def __init__(
        self,
        ctx: JobContext,
        channel: Channel,
        factory: ConnectorFactory,
        *,
        wait_for_budget: bool = True,
    ) -> None:
        self.ctx = ctx
        self.channel = channel
        self.wait_for_budget = wait_for_budget
        self.exchanges: list[Exchange] = []
        keyring: KeyRing = ctx.services["keyring"]
        try:
            with ctx.engine.connect() as conn:
                credentials = channel_credentials(conn, channel, keyring)
        except CredentialError as exc:
            raise PermanentError(f"channel {channel.name}: {exc}") from None
        env = ConnectorEnv(
            channel_id=channel.id,
            channel_name=channel.name,
            settings=channel.settings,
            credentials={k: str(v) for k, v in credentials.items() if v is not None},
            now=ctx.clock,
            throttle=self._throttle,
            on_exchange=self.exchanges.append,
            testing=channel.lifecycle_state == LifecycleState.TESTING.value,
            hold=self._hold,
        )
        self.connector: MarketplaceConnector = factory(env)

    def limit(self, operation: str) -> RateLimit:
        """The channel's budget of ``operation`` as the connector declares it."""
        budget = self.connector.capabilities.budgets.get(operation)
        if budget is None:
            raise PermanentError(f"connector {self.connector.name!r} declares no rate budget for {operation}")
        return budget_limit(budget)

    def bucket(self, operation: str) -> str:
        return f"{self.connector.name}:{operation}"

    def _throttle(self, operation: str) -> None:
        limit = self.limit(operation)
        limiter = self.ctx.rate_limiter
        if self.wait_for_budget:
            limiter.acquire(self.channel.id, self.bucket(operation), limit)
        elif not limiter.try_acquire(self.channel.id, self.bucket(operation), limit):
            raise BudgetSpent(operation)

    def _hold(self, operation: str, seconds: float) -> None:
        self.ctx.rate_limiter.hold(self.channel.id, self.bucket(operation), self.limit(operation), seconds)

    def record(self, conn: Connection, subject: str, *, now: datetime) -> None:
        """Keep this job's raw exchanges under ``subject`` (an order, an import, a feed...)."""
        rows: list[dict[str, Any]] = [
            {
                "tenant_id": self.channel.tenant_id,
                "channel_id": self.channel.id,
                "subject": subject,
                "operation": ex.op,
                "method": ex.method,
                "url": ex.url,
                "status": ex.status,
                "request": _text(ex.request_body),
                "response": _text(
                    ex.response_body if ex.error is None else f"{ex.error}\n{ex.response_body or ''}"
                ),
                "at": now,
            }
            for ex in self.exchanges
        ]
        if rows:
            conn.execute(sa.insert(exchanges), rows)

    def close(self) -> None:
        self.connector.close()

    def __enter__(self) -> ConnectorSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
