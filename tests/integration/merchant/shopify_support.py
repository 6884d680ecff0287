"""Builders of the Shopify tests: a sandbox shop with products, its registration as the tenant's merchant
system, signed webhook posts, and a worker whose registry delivers orders to Shopify and applies its
webhooks."""

from __future__ import annotations

import json
from typing import Any

import httpx
import sqlalchemy as sa
from merchant_support import Shop

from tradelane.bootstrap import Container
from tradelane.merchant.base import MerchantSystem
from tradelane.merchant.capabilities import ADAPTERS as MERCHANT_ADAPTERS
from tradelane.merchant.shopify.adapter import shopify_adapter
from tradelane.merchant.shopify.sandbox import ShopifySandboxState, sign_webhook
from tradelane.persistence.tables import channel_flows
from tradelane.services import order_delivery, shopify_webhooks
from tradelane.services.merchant_systems import add_shopify_system
from tradelane.services.shopify_catalog import register as register_inventory
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig, WorkerStats

ACCESS_TOKEN = "shpat_sandbox_token_for_tests"
WEBHOOK_SECRET = "shopify-webhook-secret-for-tests"
SYSTEM_NAME = "shopify"
#: The SKUs the sandbox shop sells: sku -> (price, stock).
SHOP_SKUS = {"A": ("12.50", 10), "B": ("4.00", 3)}


def webhook_url(tenant: str = "acme", name: str = SYSTEM_NAME) -> str:
    return f"/api/v1/shopify/{tenant}/{name}/webhooks"


def seed_shop(state: ShopifySandboxState) -> None:
    state.add_product("Alpha", [{"sku": "A", "price": SHOP_SKUS["A"][0], "quantity": SHOP_SKUS["A"][1]}])
    state.add_product(
        "Beta",
        [
            {"sku": "B", "price": SHOP_SKUS["B"][0], "quantity": SHOP_SKUS["B"][1], "title": "Blue"},
            {"sku": "B-RED", "price": "4.50", "quantity": 0, "title": "Red"},
        ],
    )


def register_shopify(
    container: Container,
    shop: Shop,
    state: ShopifySandboxState,
    api_url: str,
    *,
    name: str = SYSTEM_NAME,
    currency: str | None = "EUR",
    **kwargs: Any,
) -> MerchantSystem:
    with container.engine.begin() as conn:
        return add_shopify_system(
            conn,
            tenant_id=shop.tenant_id,
            name=name,
            shop_domain=state.shop_domain,
            access_token=state.access_token,
            webhook_secret=state.webhook_secret,
            keyring=container.keyring,
            now=container.now(),
            api_url=api_url,
            currency=currency,
            **kwargs,
        )


def signed_headers(
    topic: str, body: bytes, *, secret: str = WEBHOOK_SECRET, webhook_id: str = "wh-1", **extra: str
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign_webhook(secret, body),
        "X-Shopify-Shop-Domain": "tradelane-sandbox.myshopify.com",
        "X-Shopify-Webhook-Id": webhook_id,
        **extra,
    }


def post_webhook(
    client: httpx.Client, topic: str, payload: Any, *, url: str | None = None, **kwargs: Any
) -> httpx.Response:
    body = json.dumps(payload).encode()
    return client.post(url or webhook_url(), content=body, headers=signed_headers(topic, body, **kwargs))


def shopify_registry() -> JobRegistry:
    """What the composition root registers once Shopify is wired: delivery with the Shopify adapter, the
    stock re-read, and the job applying stored webhooks."""
    registry = JobRegistry()
    order_delivery.register(registry, adapters=MERCHANT_ADAPTERS)
    register_inventory(registry, stock_sources=shopify_adapter)
    shopify_webhooks.register(registry)
    return registry


def run_jobs(container: Container, registry: JobRegistry, clock: Any) -> WorkerStats:
    worker = Worker(
        container.engine,
        registry,
        clock,
        WorkerConfig(schedule=False, lease_seconds=30),
        services=container.extras,
    )
    return worker.run(burst=True, max_jobs=50)


def hold_channel_work(container: Container, channel_id: int) -> None:
    """Pause the channel's offers and fulfillments flows: the jobs a webhook leads to for the marketplace
    (``offers.delta``, ``fulfillments.ship``/``cancel``) stay queued while :func:`run_jobs` applies the
    webhooks, to be inspected."""
    with container.engine.begin() as conn:
        done = conn.execute(
            sa.update(channel_flows)
            .where(
                channel_flows.c.channel_id == channel_id, channel_flows.c.flow.in_(["offers", "fulfillments"])
            )
            .values(paused=True)
        )
        assert done.rowcount == 2
