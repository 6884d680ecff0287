"""Shopify's webhook protocol, as the adapter knows it (pure): headers, topics, signatures.

Verification (:func:`verify_hmac`): ``X-Shopify-Hmac-SHA256`` must be the base64 HMAC-SHA256 of the raw
body keyed with the system's webhook secret; digests are compared with :func:`hmac.compare_digest`.
Shopify signs the body only, so :func:`payload_fits_topic` also checks that the (unsigned) topic
header announces the kind of resource the body is. What each topic does to tradelane is the service's
(:mod:`tradelane.services.shopify_webhooks`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
SHOP_DOMAIN_HEADER = "X-Shopify-Shop-Domain"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"


class WebhookTopic(StrEnum):
    PRODUCTS_CREATE = "products/create"
    PRODUCTS_UPDATE = "products/update"
    INVENTORY_LEVELS_UPDATE = "inventory_levels/update"
    FULFILLMENTS_CREATE = "fulfillments/create"
    ORDERS_FULFILLED = "orders/fulfilled"
    ORDERS_CANCELLED = "orders/cancelled"


class BadSignature(Exception):
    """The webhook is not signed with the expected secret; ``reason`` is a short code for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def compute_hmac(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-SHA256`` value of ``body``."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def verify_hmac(secret: str, body: bytes, header: str | None) -> None:
    """Raise :class:`BadSignature` unless ``header`` is the body's signature (constant-time compare)."""
    if not header or not header.strip():
        raise BadSignature("missing_signature")
    try:
        received = base64.b64decode(header.strip().encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise BadSignature("malformed_signature") from None
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    if not hmac.compare_digest(received, expected):
        raise BadSignature("bad_signature")


def payload_fits_topic(topic: str, payload: Any) -> bool:
    """Whether the body is the kind of resource ``topic`` announces.

    Shopify signs the body only, not ``X-Shopify-Topic``: without this check a genuine body could be
    re-sent under another topic (an ``orders/fulfilled`` order posted as ``orders/cancelled``). Topics
    tradelane does not handle fit anything (they are ignored)."""
    if not isinstance(payload, Mapping):
        return False
    match topic:
        case WebhookTopic.PRODUCTS_CREATE | WebhookTopic.PRODUCTS_UPDATE:
            return isinstance(payload.get("variants"), list) and "order_id" not in payload
        case WebhookTopic.INVENTORY_LEVELS_UPDATE:
            return "inventory_item_id" in payload and "location_id" in payload
        case WebhookTopic.FULFILLMENTS_CREATE:
            return "order_id" in payload and "line_items" in payload
        case WebhookTopic.ORDERS_FULFILLED:
            return "order_id" not in payload and payload.get("fulfillment_status") == "fulfilled"
        case WebhookTopic.ORDERS_CANCELLED:
            return "order_id" not in payload and payload.get("cancelled_at") is not None
    return True
