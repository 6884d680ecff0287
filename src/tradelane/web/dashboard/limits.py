"""Connector knowledge the dashboard needs to show rate-limit budgets: the limit of a bucket."""

from __future__ import annotations

from tradelane.connectors.mirakl.settings import CONNECTOR as MIRAKL
from tradelane.connectors.mirakl.settings import MiraklSettings
from tradelane.services.channels import Channel
from tradelane.sync.ratelimit import RateLimit

_MIRAKL_BUCKET = "mirakl:"


def bucket_limit(channel: Channel, bucket: str) -> RateLimit | None:
    """The limit behind ``bucket`` of ``channel`` (None when the connector's buckets are unknown here
    or the channel's settings cannot be read)."""
    if channel.connector == MIRAKL and bucket.startswith(_MIRAKL_BUCKET):
        try:
            return MiraklSettings.from_dict(channel.settings).limit(bucket[len(_MIRAKL_BUCKET) :])
        except (TypeError, ValueError):
            return None
    return None
