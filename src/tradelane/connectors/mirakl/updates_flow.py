"""Mirakl's ``fulfillments.ship`` / ``cancel`` / ``refund`` job handlers: the connector-neutral
:mod:`tradelane.services.fulfilment_push` over the channel's Mirakl account (see
:mod:`.offers_flow` for the session; the Mirakl calls are in :mod:`.fulfilment_port`)."""

from __future__ import annotations

from typing import Any

from tradelane.connectors.mirakl.offers_flow import open_session
from tradelane.services import fulfilment_push
from tradelane.services.channels import Channel
from tradelane.sync.context import JobContext


def ship(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    return fulfilment_push.ship(ctx, channel, open_session)


def cancel(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    return fulfilment_push.cancel(ctx, channel, open_session)


def refund(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    return fulfilment_push.refund(ctx, channel, open_session)
