"""A :class:`MiraklClient` bound to one channel inside one job: every call takes a token from the
channel's shared rate-limit bucket for that operation first, and every exchange is recorded."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.connectors.mirakl.errors import MiraklRateLimited
from tradelane.connectors.mirakl.settings import MiraklSettings
from tradelane.domain.channels import LifecycleState
from tradelane.domain.errors import AuthenticationError, PermanentError
from tradelane.http_edge import Exchange
from tradelane.persistence.tables import exchanges
from tradelane.security.crypto import CredentialError, KeyRing
from tradelane.services.channels import Channel, channel_credentials
from tradelane.sync.context import JobContext

T = TypeVar("T")


def _text(value: str | None) -> str | None:
    """Exchange excerpts as storable text (PostgreSQL text cannot hold NUL, e.g. in a PDF upload)."""
    return None if value is None else value.replace("\x00", "\\0")


def load_settings(channel: Channel) -> MiraklSettings:
    try:
        return MiraklSettings.from_dict(channel.settings)
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"channel {channel.name}: invalid Mirakl settings: {exc}") from None


class MiraklGateway:
    def __init__(self, ctx: JobContext, channel: Channel) -> None:
        self.ctx = ctx
        self.channel = channel
        self.settings = load_settings(channel)
        keyring: KeyRing = ctx.services["keyring"]
        try:
            with ctx.engine.connect() as conn:
                credentials = channel_credentials(conn, channel, keyring)
        except CredentialError as exc:
            raise PermanentError(f"channel {channel.name}: {exc}") from None
        hostname, shop_id, api_key = self.settings.hostname, self.settings.shop_id, credentials.get("api_key")
        if channel.lifecycle_state == LifecycleState.TESTING.value and self.settings.staging_hostname:
            # In Testing, every flow runs against the staging/test account next to the live one.
            hostname, shop_id = self.settings.staging_hostname, self.settings.staging_shop_id
            api_key = credentials.get("staging_api_key")
        if not api_key:
            raise PermanentError(f"channel {channel.name} has no Mirakl API key for {hostname}")
        self.exchanges: list[Exchange] = []
        self._account = (hostname, str(api_key), shop_id)
        self._client: MiraklClient | None = None

    @property
    def client(self) -> MiraklClient:
        """Built on first use (after a rate-limit token is ours, so a throttled run pays nothing)."""
        if self._client is None:
            hostname, api_key, shop_id = self._account
            self._client = MiraklClient(
                hostname,
                api_key,
                shop_id,
                timeout=self.settings.timeout_seconds,
                on_exchange=self.exchanges.append,
                clock=self.ctx.clock,
            )
        return self._client

    def call(self, op: str, fn: Callable[[MiraklClient], T]) -> T:
        """Run ``fn`` (one operation ``op``) once a token of the channel's ``op`` budget is ours.

        A 429 holds the whole channel's ``op`` budget for the Retry-After period (every worker waits),
        and the error goes up for the engine to reschedule the job at exactly that time."""
        self.ctx.rate_limiter.acquire(self.channel.id, f"mirakl:{op}", self.settings.limit(op))
        return self._run(op, fn)

    def try_call(self, op: str, fn: Callable[[MiraklClient], T]) -> T | None:
        """Like :meth:`call`, but skip (None) when the budget has no token right now."""
        if not self.ctx.rate_limiter.try_acquire(self.channel.id, f"mirakl:{op}", self.settings.limit(op)):
            return None
        return self._run(op, fn)

    def _run(self, op: str, fn: Callable[[MiraklClient], T]) -> T:
        try:
            return fn(self.client)
        except MiraklRateLimited as exc:
            if exc.retry_after:
                self.ctx.rate_limiter.hold(
                    self.channel.id, f"mirakl:{op}", self.settings.limit(op), exc.retry_after
                )
            raise
        except AuthenticationError as exc:
            exc.host = self._account[0]  # the engine's alert says which host refused the key
            raise

    def record(
        self, conn: Connection, subject: str, *, now: datetime, only_ops: set[str] | None = None
    ) -> None:
        """Keep the raw exchanges of this job for ``subject`` (an order, an import...)."""
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
            if only_ops is None or ex.op in only_ops
        ]
        if rows:
            conn.execute(sa.insert(exchanges), rows)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> MiraklGateway:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
