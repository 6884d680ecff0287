"""Generic job kinds (``orders.poll``, ``offers.delta``...) dispatched to the channel's connector.

Each connector module exposes ``HANDLERS: Mapping[str, ChannelHandler]``; the engine registers one
dispatcher per kind, which loads the job's channel and calls that connector's handler — or dead-letters
the job with a clear reason when the connector does not support the kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tradelane.domain.channels import LifecycleState
from tradelane.domain.errors import PermanentError
from tradelane.services.channels import Channel, get_channel_by_id
from tradelane.sync.context import JobContext
from tradelane.sync.registry import Handler, JobRegistry

ChannelHandler = Callable[[JobContext, Channel], dict[str, Any] | None]


def _dispatcher(kind: str, connectors: Mapping[str, Mapping[str, ChannelHandler]]) -> Handler:
    def handle(ctx: JobContext) -> dict[str, Any] | None:
        if ctx.job.channel_id is None:
            raise PermanentError(f"{kind} job has no channel")
        with ctx.engine.connect() as conn:
            channel = get_channel_by_id(conn, ctx.job.tenant_id, ctx.job.channel_id)
        if channel.lifecycle_state == LifecycleState.DISABLED.value:
            return {"skipped": f"channel {channel.name} is disabled"}
        handler = connectors.get(channel.connector, {}).get(kind)
        if handler is None:
            raise PermanentError(f"connector {channel.connector!r} does not support {kind}")
        return handler(ctx, channel)

    return handle


def register_connectors(
    registry: JobRegistry, connectors: Mapping[str, Mapping[str, ChannelHandler]]
) -> None:
    kinds = sorted({kind for handlers in connectors.values() for kind in handlers})
    for kind in kinds:
        registry.register(kind, _dispatcher(kind, connectors))
