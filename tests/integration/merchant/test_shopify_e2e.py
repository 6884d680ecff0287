"""End to end: a SHIPPING marketplace order → ``orders.deliver`` → the Shopify sandbox has it → the shop
fulfils it and signs a ``fulfillments/create`` webhook to tradelane's app, which stores it and answers →
the worker applies it: a shipment update is recorded and a ``fulfillments.ship`` job waits for the origin
channel."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from merchant_support import add_product, ingest, marketplace_order, order_row, read
from shopify_support import (
    ACCESS_TOKEN,
    WEBHOOK_SECRET,
    hold_channel_work,
    register_shopify,
    run_jobs,
    seed_shop,
    shopify_registry,
    webhook_url,
)

from tradelane.merchant.shopify.sandbox import ShopifySandboxServer, ShopifySandboxState
from tradelane.persistence.tables import (
    inbound_events,
    jobs,
    order_deliveries,
    order_quarantine,
    order_updates,
)
from tradelane.services.order_health import enqueue_delivery


@pytest.fixture
def state(clock) -> ShopifySandboxState:
    shop = ShopifySandboxState(access_token=ACCESS_TOKEN, webhook_secret=WEBHOOK_SECRET, clock=clock)
    seed_shop(shop)
    shop.subscribe(f"http://testserver{webhook_url()}")
    return shop


@pytest.fixture
def server(state) -> Iterator[ShopifySandboxServer]:
    with ShopifySandboxServer(state) as running:
        yield running


def _deliver(container, shop, order_id, clock, now) -> None:
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=now
        )
    run_jobs(container, shopify_registry(), clock)


def test_order_to_shopify_and_fulfillment_back_to_the_origin_channel(
    client, container, shop, state, server, clock, now
):
    system = register_shopify(container, shop, state, server.url)
    for sku in ("A", "B"):
        add_product(container.engine, shop.tenant_id, sku, now)
    order = marketplace_order("E2E-1", [("A", 2, "12.50"), ("B", 1, "4.00")], now=now)
    order_id = ingest(container, shop, order, now)
    assert order_row(container.engine, order_id).merchant_status == "pending"

    _deliver(container, shop, order_id, clock, now)

    [created] = state.orders_tagged(f"tradelane-order-{order_id}")
    assert [(li["sku"], li["quantity"]) for li in created["line_items"]] == [("A", 2), ("B", 1)]
    assert created["source_identifier"] == "shop-fr:E2E-1"
    [delivery] = read(container.engine, sa.select(order_deliveries))
    assert (delivery.merchant_system_id, delivery.status) == (system.id, "delivered")
    assert delivery.external_ref == str(created["id"])
    assert order_row(container.engine, order_id).merchant_status == "delivered"

    fulfillment = state.fulfill(
        created["id"],
        tracking_company="UPS",
        tracking_number="1Z999AA10123456784",
        tracking_url="https://www.ups.com/track?tracknum=1Z999AA10123456784",
        client=client,
    )
    assert [(d.topic, d.status) for d in state.deliveries] == [
        ("fulfillments/create", 200),
        ("orders/fulfilled", 200),
    ]
    assert [json.loads(d.response)["status"] for d in state.deliveries] == ["accepted", "accepted"]
    assert read(container.engine, sa.select(order_updates)) == []  # applied by the worker, not the request

    hold_channel_work(container, shop.channel_id)  # the origin channel's jobs wait, to be inspected
    run_jobs(container, shopify_registry(), clock)
    events = read(container.engine, sa.select(inbound_events))
    assert [e.status for e in events] == ["processed", "processed"]

    [update] = read(container.engine, sa.select(order_updates))
    assert (update.order_id, update.kind, update.status) == (order_id, "shipment", "queued")
    assert update.external_id == f"shopify-fulfillment-{fulfillment['id']}"
    assert update.payload["carrier"] == "UPS" and update.payload["tracking_number"] == "1Z999AA10123456784"
    assert update.payload["tracking_url"] == "https://www.ups.com/track?tracknum=1Z999AA10123456784"
    [ship] = read(container.engine, sa.select(jobs).where(jobs.c.kind == "fulfillments.ship"))
    assert ship.id == update.job_id and ship.state == "queued"
    assert (ship.channel_id, ship.flow) == (shop.channel_id, "fulfillments")
    assert ship.payload["order_id"] == order_id and ship.payload["tracking_number"] == "1Z999AA10123456784"


def test_an_order_shopify_refuses_is_quarantined_with_shopifys_reason(
    container, shop, state, server, clock, now
):
    register_shopify(container, shop, state, server.url)
    add_product(container.engine, shop.tenant_id, "GONE", now)  # known to tradelane, not to the shop
    order_id = ingest(container, shop, marketplace_order("E2E-2", [("GONE", 1, "5")], now=now), now)

    _deliver(container, shop, order_id, clock, now)

    [quarantined] = read(container.engine, sa.select(order_quarantine))
    assert quarantined.order_id == order_id and quarantined.reason_code == "oms_rejected"
    assert quarantined.reason == "shopify: unknown variant SKU(s) in Shopify: GONE"
    assert quarantined.detail["response"] == {"unknown_skus": ["GONE"], "pages_read": 1}
    assert state.orders == {}


def test_a_throttled_delivery_is_retried_after_shopifys_delay(container, shop, state, server, clock, now):
    register_shopify(container, shop, state, server.url)
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("E2E-3", [("A", 1, "12.50")], now=now), now)
    state.inject_faults(1, status=429, retry_after=30)

    _deliver(container, shop, order_id, clock, now)

    [job] = read(container.engine, sa.select(jobs).where(jobs.c.kind == "orders.deliver"))
    assert job.state == "queued" and job.attempts == 0  # throttling does not use up an attempt
    assert (job.run_at - now).total_seconds() == 30
    assert state.orders == {}
    clock.advance(30)
    run_jobs(container, shopify_registry(), clock)
    assert len(state.orders_tagged(f"tradelane-order-{order_id}")) == 1
    assert order_row(container.engine, order_id).merchant_status == "delivered"
