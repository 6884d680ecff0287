"""Generic job kinds (``orders.poll``, ``offers.delta``...) dispatched to the channel's connector.

Each connector module exposes ``HANDLERS: Mapping[str, ChannelHandler]``; the engine registers one
dispatcher per kind, which loads the job's channel and calls that connector's handler — or dead-letters
the job with a clear reason when the connector does not support the kind.

Channel health is handled here, for every connector: a handler that raises
:class:`~tradelane.domain.errors.AuthenticationError` raises the channel's credentials alert and pauses
its flows (the worker then dead-letters that one job, error kind ``auth``); a job claimed before its flow
was paused goes back to the queue without running (a throttled retry, no attempt spent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.channels import LifecycleState
from tradelane.domain.errors import AuthenticationError, PermanentError, RetryableError
from tradelane.persistence.tables import channel_flows
from tradelane.services.channels import AUTH_PAUSE, Channel, credentials_rejected, get_channel_by_id
from tradelane.sync.context import JobContext
from tradelane.sync.registry import Handler, JobRegistry

ChannelHandler = Callable[[JobContext, Channel], dict[str, Any] | None]


def _dispatcher(kind: str, connectors: Mapping[str, Mapping[str, ChannelHandler]]) -> Handler:
    def handle(ctx: JobContext) -> dict[str, Any] | None:
        if ctx.job.channel_id is None:
            raise PermanentError(f"{kind} job has no channel")
        with ctx.engine.connect() as conn:
            channel = get_channel_by_id(conn, ctx.job.tenant_id, ctx.job.channel_id)
            paused = _paused_since_claim(conn, ctx)
        if channel.lifecycle_state == LifecycleState.DISABLED.value:
            return {"skipped": f"channel {channel.name} is disabled"}
        if paused is not None:
            # E.g. another job of the channel met rejected credentials after this batch was claimed.
            raise RetryableError(
                f"{ctx.job.flow} flow of {channel.name} was paused ({paused}); back in the queue",
                retry_after=0.0,
            )
        handler = connectors.get(channel.connector, {}).get(kind)
        if handler is None:
            raise PermanentError(f"connector {channel.connector!r} does not support {kind}")
        try:
            return handler(ctx, channel)
        except AuthenticationError as exc:
            with ctx.engine.begin() as conn:
                credentials_rejected(conn, channel, host=exc.host, reason=exc.reason, now=ctx.now())
            raise

    return handle


def _paused_since_claim(conn: Connection, ctx: JobContext) -> str | None:
    """Why the job's flow is paused now (it was not when the job was claimed), or None."""
    if ctx.job.flow is None or ctx.job.channel_id is None:
        return None
    row = conn.execute(
        sa.select(channel_flows.c.paused, channel_flows.c.pause_reason).where(
            channel_flows.c.channel_id == ctx.job.channel_id, channel_flows.c.flow == ctx.job.flow
        )
    ).first()
    if row is None or not row.paused:
        return None
    return "credentials rejected" if row.pause_reason == AUTH_PAUSE else "by an operator"


def register_connectors(
    registry: JobRegistry, connectors: Mapping[str, Mapping[str, ChannelHandler]]
) -> None:
    kinds = sorted({kind for handlers in connectors.values() for kind in handlers})
    for kind in kinds:
        registry.register(kind, _dispatcher(kind, connectors))
