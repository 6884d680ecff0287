"""Shopify webhooks into tradelane's API: HMAC verification, replay refusal, catalog updates (price and
stock, offers marked dirty) and order updates mapped back to tradelane's orders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from merchant_support import add_product, ingest, marketplace_order, read
from shopify_support import (
    ACCESS_TOKEN,
    WEBHOOK_SECRET,
    post_webhook,
    register_shopify,
    run_jobs,
    seed_shop,
    shopify_registry,
    signed_headers,
    webhook_url,
)

from helpers import FakeClock
from tradelane.merchant.shopify.sandbox import ShopifySandboxServer, ShopifySandboxState
from tradelane.persistence.tables import (
    inbound_events,
    jobs,
    offer_bindings,
    order_deliveries,
    order_quarantine,
    order_updates,
    products,
)
from tradelane.services.inbound import store_inbound_event
from tradelane.services.order_health import enqueue_delivery


@pytest.fixture
def state(clock: FakeClock) -> ShopifySandboxState:
    shop = ShopifySandboxState(access_token=ACCESS_TOKEN, webhook_secret=WEBHOOK_SECRET, clock=clock)
    seed_shop(shop)
    shop.subscribe(f"http://testserver{webhook_url()}")
    return shop


@pytest.fixture
def server(state: ShopifySandboxState) -> Iterator[ShopifySandboxServer]:
    with ShopifySandboxServer(state) as running:
        yield running


@pytest.fixture
def system(container, shop, state, server):
    return register_shopify(container, shop, state, server.url)


def _security_lines(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "security.webhook_rejected"]


def _events(engine) -> list:
    return read(engine, sa.select(inbound_events).order_by(inbound_events.c.id))


def _product(engine, sku: str):
    [row] = read(engine, sa.select(products).where(products.c.sku == sku))
    return row


def _bindings(engine, sku: str) -> list:
    return read(
        engine,
        sa.select(offer_bindings)
        .join(products, products.c.id == offer_bindings.c.product_id)
        .where(products.c.sku == sku),
    )


def _delta_jobs(engine) -> list:
    return read(engine, sa.select(jobs).where(jobs.c.kind == "offers.delta"))


def _bind_in_sync(engine, shop, skus: list[str]) -> None:
    """Bind catalog products to the shop's channel, as already published."""
    rows = [
        {
            "tenant_id": shop.tenant_id,
            "channel_id": shop.channel_id,
            "product_id": _product(engine, sku).id,
            "dirty": False,
            "change_seq": 1,
            "synced_seq": 1,
        }
        for sku in skus
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(offer_bindings), rows)


def _mark_clean(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(offer_bindings).values(dirty=False, synced_seq=offer_bindings.c.change_seq))
        conn.execute(sa.delete(jobs))


# --- verification ------------------------------------------------------------------------------


def test_a_signed_webhook_is_stored_once_and_processed(client, container, shop, state, system, capsys):
    state.update_variant("A", price="13.00", emit=False)
    [delivery] = state.emit("products/update", state.product_json("A"), client=client)
    assert delivery.status == 200, delivery.response
    ack = json.loads(delivery.response)
    assert ack["status"] == "processed" and ack["topic"] == "products/update"
    [event] = _events(container.engine)
    assert event.id == ack["event_id"] and event.tenant_id == shop.tenant_id
    assert event.source == "shopify:shopify" and event.external_id == delivery.webhook_id
    assert event.body == delivery.body and event.status == "processed" and event.processed_at is not None
    assert _security_lines(capsys) == []


def test_a_forged_webhook_is_refused_and_leaves_only_a_security_line(
    client, container, system, state, capsys
):
    payload = state.product_json("A")
    forged = post_webhook(client, "products/update", payload, secret="not-the-shop-secret-at-all")
    body = json.dumps(payload).encode()
    tampered_headers = signed_headers("products/update", body, webhook_id="wh-2")
    tampered = client.post(webhook_url(), content=body + b" ", headers=tampered_headers)
    unsigned_headers = {k: v for k, v in tampered_headers.items() if k != "X-Shopify-Hmac-Sha256"}
    unsigned = client.post(
        webhook_url(), content=body, headers={**unsigned_headers, "X-Shopify-Webhook-Id": "wh-3"}
    )
    garbage = client.post(
        webhook_url(), content=body, headers={**tampered_headers, "X-Shopify-Hmac-Sha256": "%%%not-base64"}
    )
    for response in (forged, tampered, unsigned, garbage):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "urn:tradelane:problem:invalid-signature"
    assert _events(container.engine) == [] and read(container.engine, sa.select(jobs)) == []
    reasons = [line["reason"] for line in _security_lines(capsys)]
    assert reasons == ["bad_signature", "bad_signature", "missing_signature", "malformed_signature"]
    assert WEBHOOK_SECRET not in capsys.readouterr().err


def test_a_replayed_webhook_is_refused_and_stored_once(client, container, state, system, capsys):
    state.update_variant("B", available=7, client=client)
    delivery = state.deliveries[-1]
    assert delivery.topic == "inventory_levels/update" and delivery.status == 200
    replay = state.redeliver(delivery, client=client)
    assert replay.status == 401 and replay.webhook_id == delivery.webhook_id
    events = [e for e in _events(container.engine) if e.external_id == delivery.webhook_id]
    assert len(events) == 1 and events[0].status == "processed"
    inventory_jobs = read(container.engine, sa.select(jobs).where(jobs.c.kind == "shopify.inventory"))
    assert len(inventory_jobs) == 1
    [line] = _security_lines(capsys)
    assert line["reason"] == "replayed" and line["webhook_id"] == delivery.webhook_id
    assert line["tenant"] == "acme" and line["merchant"] == "shopify"


def test_a_delivery_whose_processing_never_finished_is_processed_on_redelivery(
    client, container, state, system
):
    body = json.dumps(state.product_json("A")).encode()
    headers = signed_headers("products/update", body, webhook_id="wh-crashed")
    with container.engine.begin() as conn:  # stored, then the process died before recording an outcome
        store_inbound_event(
            conn,
            tenant_id=system.tenant_id,
            source="shopify:shopify",
            channel_id=None,
            headers=headers.items(),
            body=body,
            content_type="application/json",
            now=container.now(),
        )
    retried = client.post(webhook_url(), content=body, headers=headers)
    assert retried.status_code == 200 and retried.json()["status"] == "processed"
    [event] = _events(container.engine)
    assert event.status == "processed"
    assert client.post(webhook_url(), content=body, headers=headers).status_code == 401


def test_unknown_tenants_systems_and_shops_are_refused(client, container, shop, state, system, capsys):
    payload = {"id": 1, "variants": []}
    responses = [
        post_webhook(client, "products/update", payload, url=webhook_url(tenant="nobody"), webhook_id="x1"),
        post_webhook(client, "products/update", payload, url=webhook_url(name="other"), webhook_id="x2"),
        post_webhook(
            client,
            "products/update",
            payload,
            webhook_id="x3",
            **{"X-Shopify-Shop-Domain": "evil.myshopify.com"},
        ),
    ]
    assert [r.status_code for r in responses] == [401, 401, 401]
    assert [line["reason"] for line in _security_lines(capsys)] == [
        "unknown_merchant",
        "unknown_merchant",
        "shop_mismatch",
    ]
    assert _events(container.engine) == []


# --- catalog -------------------------------------------------------------------------------------


def test_product_updates_set_price_and_stock_and_mark_offers_dirty(
    client, container, shop, state, system, now
):
    for sku in ("A", "B"):
        add_product(container.engine, shop.tenant_id, sku, now)
    _bind_in_sync(container.engine, shop, ["A", "B"])
    state.update_variant("A", price="14.90", available=6, client=client)
    a = _product(container.engine, "A")
    assert (a.price, a.currency, a.quantity) == (Decimal("14.90"), "EUR", 6)
    assert a.title == "Product A"  # only price and stock come from Shopify
    [binding] = _bindings(container.engine, "A")
    assert binding.dirty and binding.change_seq == 2
    [untouched] = _bindings(container.engine, "B")
    assert not untouched.dirty and untouched.change_seq == 1
    assert [j.channel_id for j in _delta_jobs(container.engine)] == [shop.channel_id]

    _mark_clean(container.engine)
    again = post_webhook(client, "products/update", state.product_json("A"), webhook_id="same-content")
    assert again.json()["detail"] == "0 created, 0 updated, 1 unchanged"
    assert not _bindings(container.engine, "A")[0].dirty and _delta_jobs(container.engine) == []


def test_a_new_shopify_product_enters_the_catalog_and_releases_quarantined_orders(
    client, container, shop, state, system, clock, now
):
    order_id = ingest(container, shop, marketplace_order("Q-1", [("NEW-1", 1, "9.99")], now=now), now)
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=now
        )
    run_jobs(container, shopify_registry(), clock)
    [quarantined] = read(container.engine, sa.select(order_quarantine))
    assert quarantined.reason_code == "unknown_sku"

    product = state.add_product(
        "Newcomer",
        [{"sku": "NEW-1", "price": "9.50", "quantity": 4, "title": "XL", "barcode": "4006381333931"}],
        vendor="Acme",
        emit=True,
        client=client,
    )
    ack = json.loads(state.deliveries[-1].response)
    assert ack["detail"] == "1 created, 0 updated, 0 unchanged"
    new = _product(container.engine, "NEW-1")
    assert (new.title, new.brand, new.gtin) == ("Newcomer - XL", "Acme", "4006381333931")
    assert (new.price, new.currency, new.quantity) == (Decimal("9.50"), "EUR", 4)
    assert [b.channel_id for b in _bindings(container.engine, "NEW-1")] == [shop.channel_id]
    assert _bindings(container.engine, "NEW-1")[0].dirty
    retries = read(
        container.engine, sa.select(jobs).where(jobs.c.kind == "orders.deliver", jobs.c.state == "queued")
    )
    assert [j.payload["order_id"] for j in retries] == [order_id]
    assert product["variants"][0]["sku"] == "NEW-1"


def test_inventory_level_updates_reread_the_stock_through_the_admin_api(
    client, container, shop, state, system, clock, now
):
    add_product(container.engine, shop.tenant_id, "B", now)
    _bind_in_sync(container.engine, shop, ["B"])
    second = state.new_id()
    state.catalog.locations[second] = "Second warehouse"
    item = state.variant("B").inventory_item_id
    state.catalog.set_available(item, second, 5, now)
    for available in (2, 3):  # a burst of stock changes at the main location
        _, level = state.update_variant("B", available=available, emit=False)
        state.emit("inventory_levels/update", level, client=client)
    assert [json.loads(d.response)["status"] for d in state.deliveries] == ["processed", "processed"]
    # one job per inventory item: the second webhook coalesced into the queued one
    [job] = read(container.engine, sa.select(jobs).where(jobs.c.kind == "shopify.inventory"))
    assert job.payload == {"merchant_system_id": system.id, "inventory_item_id": item}

    run_jobs(container, shopify_registry(), clock)
    [done] = read(container.engine, sa.select(jobs).where(jobs.c.kind == "shopify.inventory"))
    assert done.state == "succeeded" and done.result == {"sku": "B", "quantity": 8, "status": "updated"}
    assert _product(container.engine, "B").quantity == 8  # 3 + 5, every location
    assert _bindings(container.engine, "B")[0].dirty


# --- order updates -------------------------------------------------------------------------------


@pytest.fixture
def delivered(container, shop, state, system, clock, now):
    """A marketplace order delivered to the sandbox shop: (tradelane order id, Shopify order id)."""
    for sku in ("A", "B"):
        add_product(container.engine, shop.tenant_id, sku, now)
    order_id = ingest(
        container, shop, marketplace_order("S-1", [("A", 2, "12.50"), ("B", 1, "4")], now=now), now
    )
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=now
        )
    run_jobs(container, shopify_registry(), clock)
    [row] = read(container.engine, sa.select(order_deliveries))
    assert row.status == "delivered"
    return order_id, int(row.external_ref)


def test_a_cancellation_in_shopify_is_recorded_for_the_origin_channel(
    client, container, shop, state, delivered
):
    order_id, shopify_id = delivered
    state.cancel(shopify_id, reason="inventory", client=client)
    ack = json.loads(state.deliveries[-1].response)
    assert ack["status"] == "processed" and ack["detail"] == "cancellation queued"
    [update] = read(container.engine, sa.select(order_updates))
    assert (update.order_id, update.kind, update.external_id) == (
        order_id,
        "cancellation",
        f"shopify-cancel-{shopify_id}",
    )
    assert update.payload == {"reason": "cancelled in Shopify (inventory)"}
    [job] = read(container.engine, sa.select(jobs).where(jobs.c.kind == "fulfillments.cancel"))
    assert job.channel_id == shop.channel_id and job.payload["order_id"] == order_id


def test_partial_fulfillments_map_lines_back_by_marketplace_line_id(
    client, container, shop, state, delivered
):
    order_id, shopify_id = delivered
    state.fulfill(shopify_id, tracking_company="UPS", tracking_number="1Z1", lines={"A": 1}, client=client)
    [update] = read(container.engine, sa.select(order_updates))
    assert update.order_id == order_id
    assert update.payload["lines"] == [{"sku": "A", "line_id": "S-1-1", "quantity": 1}]
    assert update.status == "not_supported"  # the Mirakl channel's multi_shipment setting is off


def test_orders_tradelane_did_not_create_are_ignored(client, container, state, system):
    web_order = state.create_order(
        {"order": {"line_items": [{"variant_id": state.variant("A").id, "quantity": 1}]}}, via_app=False
    )
    state.fulfill(web_order["id"], tracking_company="DHL", tracking_number="JD1", client=client)
    state.cancel(web_order["id"], client=client)
    acks = [json.loads(d.response) for d in state.deliveries]
    assert [a["status"] for a in acks] == ["ignored", "ignored", "ignored"]
    assert read(container.engine, sa.select(order_updates)) == []
    assert {e.status for e in _events(container.engine)} == {"ignored"}


def test_an_update_tradelane_cannot_apply_is_acknowledged_and_kept_as_failed(
    client, container, state, delivered
):
    order_id, shopify_id = delivered
    with container.engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET state = 'cancelled' WHERE id = :id"), {"id": order_id})
    state.fulfill(shopify_id, tracking_company="UPS", tracking_number="1Z2", client=client)
    assert [(d.topic, d.status) for d in state.deliveries] == [
        ("fulfillments/create", 200),
        ("orders/fulfilled", 200),
    ]
    assert [json.loads(d.response)["status"] for d in state.deliveries] == ["failed", "failed"]
    events = _events(container.engine)
    assert [e.status for e in events] == ["failed", "failed"]
    assert all("is cancelled on shop-fr: there is nothing to ship" in e.error for e in events)
    assert read(container.engine, sa.select(order_updates)) == []


def test_a_genuine_body_under_another_topic_is_refused(client, container, state, delivered, capsys):
    _, shopify_id = delivered
    state.fulfill(shopify_id, tracking_company="UPS", tracking_number="1Z3", client=client)
    fulfilled = next(d for d in state.deliveries if d.topic == "orders/fulfilled")
    headers = {**fulfilled.headers, "X-Shopify-Topic": "orders/cancelled", "X-Shopify-Webhook-Id": "new-id"}
    response = client.post(webhook_url(), content=fulfilled.body, headers=headers)
    assert response.status_code == 401
    assert [line["reason"] for line in _security_lines(capsys)] == ["topic_mismatch"]
    kinds = [u.kind for u in read(container.engine, sa.select(order_updates))]
    assert kinds == ["shipment"]  # no cancellation for an order Shopify never cancelled
    assert all(e.external_id != "new-id" for e in _events(container.engine))


@pytest.mark.parametrize("fulfillments", [5, "x", {"id": 1}])
def test_a_fulfilled_order_with_a_malformed_fulfillments_field_is_kept_as_failed(
    client, container, delivered, fulfillments
):
    """Found by fuzzing: a non-list ``fulfillments`` crashed the handler (a 500, which Shopify retries
    and then drops the subscription for) instead of being stored as a failed event with the reason."""
    _order_id, shopify_id = delivered
    order = {"id": shopify_id, "fulfillment_status": "fulfilled", "fulfillments": fulfillments}
    body = json.dumps(order).encode()
    headers = signed_headers("orders/fulfilled", body, webhook_id="wh-malformed")
    answer = client.post(webhook_url(), content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "failed"
    [event] = [e for e in _events(container.engine) if e.status == "failed"]
    assert "'fulfillments' must be a list" in event.error
    assert read(container.engine, sa.select(order_updates)) == []
