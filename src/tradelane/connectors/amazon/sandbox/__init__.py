"""A stateful in-process sandbox of the Amazon Selling Partner API for a merchant-fulfilled seller.

``create_app(AmazonSandboxState(seed))`` is an ASGI app answering Login with Amazon
(``POST /auth/o2/token``), Orders 2026-01-01 (searchOrders, getOrder), Orders v0 confirmShipment,
Listings Items 2021-08-01 (get/put/patch/delete) and Feeds 2021-06-30 (JSON_LISTINGS_FEED with a local
document store and schema-v2 processing reports) the way the models in ``contracts/amazon`` describe
them, rejections included; with Amazon's usage plans as token buckets, fault injection, a controllable
clock and ``/_sandbox`` controls. Serve it with Starlette's ``TestClient``, over real HTTP with
:class:`AmazonSandboxServer`, or from the command line (``tradelane sandbox amazon``). What is faithful
and what is simplified: docs/amazon-sandbox.md.
"""

from __future__ import annotations

from tradelane.connectors.amazon.sandbox.app import create_app
from tradelane.connectors.amazon.sandbox.errors import LwaError, SpApiError
from tradelane.connectors.amazon.sandbox.models import Address, FeedStatus, FulfillmentStatus
from tradelane.connectors.amazon.sandbox.ratelimits import PUBLISHED_PLANS, FaultKind, RouteMode, UsagePlan
from tradelane.connectors.amazon.sandbox.server import AmazonSandboxServer, serve
from tradelane.connectors.amazon.sandbox.state import (
    AmazonSandboxState,
    RequestRecord,
    SandboxSettings,
    offer_attributes,
)

__all__ = [
    "PUBLISHED_PLANS",
    "Address",
    "AmazonSandboxServer",
    "AmazonSandboxState",
    "FaultKind",
    "FeedStatus",
    "FulfillmentStatus",
    "LwaError",
    "RequestRecord",
    "RouteMode",
    "SandboxSettings",
    "SpApiError",
    "UsagePlan",
    "create_app",
    "offer_attributes",
    "serve",
]
