"""Channels (one marketplace account of a tenant) and their flows."""

from __future__ import annotations

from enum import StrEnum


class Flow(StrEnum):
    """Independent streams of work on a channel; each can be paused or switched off on its own."""

    OFFERS = "offers"  # catalog -> marketplace listings (price/stock deltas, full syncs)
    ORDERS = "orders"  # marketplace -> merchant system (poll, accept, import)
    FULFILLMENTS = "fulfillments"  # merchant system -> marketplace (shipments, cancellations, refunds)
    RECONCILER = "reconciler"  # periodic comparison of marketplace state with tradelane's


class LifecycleState(StrEnum):
    SETUP = "setup"
    TESTING = "testing"
    LIVE = "live"
    DISABLED = "disabled"


#: Default period of scheduled work per flow, in seconds (None = event driven only).
DEFAULT_FREQUENCIES: dict[Flow, int | None] = {
    Flow.OFFERS: 60,
    Flow.ORDERS: 300,
    Flow.FULFILLMENTS: None,
    Flow.RECONCILER: 86_400,
}

#: Nobody polls faster than this, whatever the configuration says.
MIN_FREQUENCY_SECONDS = 60


def parse_flow(value: str) -> Flow:
    try:
        return Flow(value)
    except ValueError:
        allowed = ", ".join(f.value for f in Flow)
        raise ValueError(f"unknown flow {value!r} (expected one of: {allowed})") from None
