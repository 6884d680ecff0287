"""What the dashboard needs to show rate-limit budgets: the limit behind a bucket, read from the
channel's connector through the registry (nothing here knows a connector by name)."""

from __future__ import annotations

from fractions import Fraction

from tradelane.connectors.registry import CONNECTORS
from tradelane.domain.errors import ValidationError
from tradelane.services.channels import Channel
from tradelane.sync.ratelimit import RateLimit


def bucket_limit(channel: Channel, bucket: str) -> RateLimit | None:
    """The limit behind ``bucket`` of ``channel``: buckets are named ``<connector>:<operation>`` (see
    :class:`~tradelane.services.connector_session.ConnectorSession`), and the limit is the budget the
    channel's connector declares for the operation with the channel's settings, as the session sizes
    it. None when the bucket is not the channel's connector's, the operation has no declared budget,
    or the channel's settings cannot be read."""
    spec = CONNECTORS.get(channel.connector)
    prefix = f"{channel.connector}:"
    if spec is None or not bucket.startswith(prefix):
        return None
    try:
        budget = spec.channel_capabilities(channel.settings).budgets.get(bucket[len(prefix) :])
    except (TypeError, ValueError, ValidationError):
        return None
    if budget is None:
        return None
    # calls per period as small integers (1/60 s -> 1 per 60 s), like the connector session's buckets.
    rate = Fraction(budget.per_second).limit_denominator(1_000_000)
    return RateLimit(rate.numerator, float(rate.denominator), burst=budget.burst)
