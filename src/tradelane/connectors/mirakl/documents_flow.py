"""Mirakl's ``fulfillments.label`` job handler: :func:`tradelane.services.fulfilment_push.upload_label`
over the channel's Mirakl account (OR74, with OR72 on a retry; see :mod:`.fulfilment_port`)."""

from __future__ import annotations

from typing import Any

from tradelane.connectors.mirakl.offers_flow import open_session
from tradelane.services import fulfilment_push
from tradelane.services.channels import Channel
from tradelane.sync.context import JobContext


def upload_label(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    return fulfilment_push.upload_label(ctx, channel, open_session)
