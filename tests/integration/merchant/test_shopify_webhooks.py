"""Shopify webhooks into tradelane's API: HMAC verification, replay refusal, the raw event stored with one
job and answered before anything is applied; the job's catalog updates (price and stock, offers marked
dirty) and order updates mapped back to tradelane's orders; failures kept, dead-lettered and replayable."""

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
    hold_channel_work,
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
from tradelane.persistence.merchant_systems import set_enabled
from tradelane.persistence.tables import (
    inbound_events,
    jobs,
    merchant_systems,
    offer_bindings,
    order_deliveries,
    order_quarantine,
    order_updates,
    products,
)
from tradelane.services.inbound import store_inbound_event
from tradelane.services.order_health import enqueue_delivery
from tradelane.services.shopify_webhooks import APPLY_KIND
from tradelane.sync.jobs import replay as replay_jobs


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


def _apply_jobs(engine) -> list:
    return read(engine, sa.select(jobs).where(jobs.c.kind == APPLY_KIND).order_by(jobs.c.id))


def _acks(state) -> list[dict]:
    return [json.loads(d.response) for d in state.deliveries]


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


def test_a_signed_webhook_is_stored_with_one_job_and_answered_before_it_is_applied(
    client, container, shop, state, system, clock, now, capsys
):
    add_product(container.engine, shop.tenant_id, "A", now)
    before = _product(container.engine, "A").price
    state.update_variant("A", price="13.00", emit=False)
    [delivery] = state.emit("products/update", state.product_json("A"), client=client)
    assert delivery.status == 200, delivery.response
    ack = json.loads(delivery.response)
    assert ack["status"] == "accepted" and ack["topic"] == "products/update" and ack["detail"] == "queued"
    [event] = _events(container.engine)
    assert event.id == ack["event_id"] and event.tenant_id == shop.tenant_id
    assert event.source == "shopify:shopify" and event.external_id == delivery.webhook_id
    assert event.body == delivery.body
    # Answered before any work: the raw event and exactly one job to apply it, committed together.
    assert (event.status, event.processed_at) == ("received", None)
    assert _product(container.engine, "A").price == before != Decimal("13.00")
    [job] = _apply_jobs(container.engine)
    assert (job.id, job.state, job.tenant_id) == (ack["job_id"], "queued", shop.tenant_id)
    assert job.payload == {"event_id": event.id, "merchant_system_id": system.id}
    assert job.idempotency_key == f"inbound-event:{event.id}"

    run_jobs(container, shopify_registry(), clock)
    [event] = _events(container.engine)
    assert (event.status, event.processed_at, event.error) == ("processed", now, None)
    assert _product(container.engine, "A").price == Decimal("13.00")
    [job] = _apply_jobs(container.engine)
    assert job.state == "succeeded" and job.result["status"] == "processed"
    assert job.result["detail"] == "0 created, 1 updated, 0 unchanged"
    assert _security_lines(capsys) == []


def test_a_topic_tradelane_does_not_handle_is_stored_ignored_without_a_job(client, container, system):
    response = post_webhook(client, "orders/paid", {"id": 1}, webhook_id="wh-paid")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ignored" and response.json()["job_id"] is None
    [event] = _events(container.engine)
    assert (event.status, event.external_id) == ("ignored", "wh-paid") and event.processed_at is not None
    assert read(container.engine, sa.select(jobs)) == []
    assert post_webhook(client, "orders/paid", {"id": 1}, webhook_id="wh-paid").status_code == 401


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


def test_a_duplicate_delivery_enqueues_nothing_and_a_replay_is_refused(
    client, container, state, system, clock, capsys
):
    state.update_variant("B", available=7, client=client)
    delivery = state.deliveries[-1]
    assert delivery.topic == "inventory_levels/update" and delivery.status == 200
    first = json.loads(delivery.response)
    # Shopify retrying before the job ran (its answer got lost): acknowledged again, nothing new enqueued.
    retry = state.redeliver(delivery, client=client)
    assert retry.status == 200 and retry.webhook_id == delivery.webhook_id
    again = json.loads(retry.response)
    assert (again["event_id"], again["job_id"], again["status"]) == (
        first["event_id"],
        first["job_id"],
        "accepted",
    )
    assert [j.payload["event_id"] for j in _apply_jobs(container.engine)] == [
        e.id for e in _events(container.engine)
    ]
    assert len(_apply_jobs(container.engine)) == 2  # products/update and inventory_levels/update: one each

    run_jobs(container, shopify_registry(), clock)
    replay = state.redeliver(delivery, client=client)
    assert replay.status == 401 and replay.webhook_id == delivery.webhook_id
    events = [e for e in _events(container.engine) if e.external_id == delivery.webhook_id]
    assert len(events) == 1 and events[0].status == "processed"
    assert [j.state for j in _apply_jobs(container.engine)] == ["succeeded", "succeeded"]
    inventory_jobs = read(container.engine, sa.select(jobs).where(jobs.c.kind == "shopify.inventory"))
    assert len(inventory_jobs) == 1
    [line] = _security_lines(capsys)
    assert line["reason"] == "replayed" and line["webhook_id"] == delivery.webhook_id
    assert line["tenant"] == "acme" and line["merchant"] == "shopify"


def test_a_delivery_stored_without_its_job_gets_one_on_redelivery(client, container, state, system, clock):
    body = json.dumps(state.product_json("A")).encode()
    headers = signed_headers("products/update", body, webhook_id="wh-crashed")
    with container.engine.begin() as conn:  # stored by a version that applied it in the request, which died
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
    assert retried.status_code == 200 and retried.json()["status"] == "accepted"
    [event] = _events(container.engine)
    [job] = _apply_jobs(container.engine)
    assert (retried.json()["event_id"], retried.json()["job_id"]) == (event.id, job.id)
    assert client.post(webhook_url(), content=body, headers=headers).json()["job_id"] == job.id
    assert len(_apply_jobs(container.engine)) == 1
    run_jobs(container, shopify_registry(), clock)
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


def test_new_credentials_take_effect_on_the_next_request(client, container, state, system, capsys):
    payload = {"id": 1, "variants": []}
    assert post_webhook(client, "products/update", payload, webhook_id="k1").status_code == 200
    with container.engine.begin() as conn:
        conn.execute(
            sa.update(merchant_systems)
            .where(merchant_systems.c.id == system.id)
            .values(
                credentials=container.keyring.encrypt(
                    {"access_token": ACCESS_TOKEN, "webhook_secret": "a-brand-new-webhook-secret"}
                )
            )
        )
    old = post_webhook(client, "products/update", payload, webhook_id="k2")
    new = post_webhook(
        client, "products/update", payload, webhook_id="k3", secret="a-brand-new-webhook-secret"
    )
    assert (old.status_code, new.status_code) == (401, 200)
    assert [line["reason"] for line in _security_lines(capsys)] == ["bad_signature"]
    with container.engine.begin() as conn:
        conn.execute(sa.update(merchant_systems).values(credentials=None))
    assert post_webhook(client, "products/update", payload, webhook_id="k4").status_code == 401
    assert [line["reason"] for line in _security_lines(capsys)] == ["no_usable_secret"]
    assert [e.external_id for e in _events(container.engine)] == ["k1", "k3"]


# --- catalog -------------------------------------------------------------------------------------


def test_product_updates_set_price_and_stock_and_mark_offers_dirty(
    client, container, shop, state, system, clock, now
):
    for sku in ("A", "B"):
        add_product(container.engine, shop.tenant_id, sku, now)
    _bind_in_sync(container.engine, shop, ["A", "B"])
    hold_channel_work(container, shop.channel_id)
    state.update_variant("A", price="14.90", available=6, client=client)
    assert not _bindings(container.engine, "A")[0].dirty and _delta_jobs(container.engine) == []
    run_jobs(container, shopify_registry(), clock)
    a = _product(container.engine, "A")
    assert (a.price, a.currency, a.quantity) == (Decimal("14.90"), "EUR", 6)
    assert a.title == "Product A"  # only price and stock come from Shopify
    [binding] = _bindings(container.engine, "A")
    assert binding.dirty and binding.change_seq == 2
    [untouched] = _bindings(container.engine, "B")
    assert not untouched.dirty and untouched.change_seq == 1
    assert [(j.channel_id, j.state) for j in _delta_jobs(container.engine)] == [(shop.channel_id, "queued")]

    _mark_clean(container.engine)
    again = post_webhook(client, "products/update", state.product_json("A"), webhook_id="same-content")
    assert again.json()["status"] == "accepted"
    run_jobs(container, shopify_registry(), clock)
    [job] = _apply_jobs(container.engine)
    assert job.result["detail"] == "0 created, 0 updated, 1 unchanged"
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
    hold_channel_work(container, shop.channel_id)

    product = state.add_product(
        "Newcomer",
        [{"sku": "NEW-1", "price": "9.50", "quantity": 4, "title": "XL", "barcode": "4006381333931"}],
        vendor="Acme",
        emit=True,
        client=client,
    )
    assert _acks(state)[-1]["status"] == "accepted"
    assert read(container.engine, sa.select(products).where(products.c.sku == "NEW-1")) == []
    run_jobs(container, shopify_registry(), clock)
    [job] = _apply_jobs(container.engine)
    assert job.result["detail"] == "1 created, 0 updated, 0 unchanged"
    new = _product(container.engine, "NEW-1")
    assert (new.title, new.brand, new.gtin) == ("Newcomer - XL", "Acme", "4006381333931")
    assert (new.price, new.currency, new.quantity) == (Decimal("9.50"), "EUR", 4)
    assert [b.channel_id for b in _bindings(container.engine, "NEW-1")] == [shop.channel_id]
    assert _bindings(container.engine, "NEW-1")[0].dirty
    # The released order's delivery was retried by the same worker run, and reached the shop.
    retries = read(
        container.engine, sa.select(jobs).where(jobs.c.kind == "orders.deliver").order_by(jobs.c.id)
    )
    assert [(j.payload["order_id"], j.state) for j in retries[1:]] == [(order_id, "succeeded")]
    assert len(state.orders_tagged(f"tradelane-order-{order_id}")) == 1
    assert product["variants"][0]["sku"] == "NEW-1"


def test_inventory_level_updates_reread_the_stock_through_the_admin_api(
    client, container, shop, state, system, clock, now
):
    add_product(container.engine, shop.tenant_id, "B", now)
    _bind_in_sync(container.engine, shop, ["B"])
    hold_channel_work(container, shop.channel_id)
    second = state.new_id()
    state.catalog.locations[second] = "Second warehouse"
    item = state.variant("B").inventory_item_id
    state.catalog.set_available(item, second, 5, now)
    for available in (2, 3):  # a burst of stock changes at the main location
        _, level = state.update_variant("B", available=available, emit=False)
        state.emit("inventory_levels/update", level, client=client)
    assert [a["status"] for a in _acks(state)] == ["accepted", "accepted"]
    assert read(container.engine, sa.select(jobs).where(jobs.c.kind == "shopify.inventory")) == []

    run_jobs(container, shopify_registry(), clock)
    # one job per inventory item: the second event coalesced into the job the first one queued
    [job] = read(container.engine, sa.select(jobs).where(jobs.c.kind == "shopify.inventory"))
    assert job.payload == {"merchant_system_id": system.id, "inventory_item_id": item}
    assert [a.result["detail"] for a in _apply_jobs(container.engine)] == [
        f"stock re-read queued (job {job.id})"
    ] * 2
    assert job.state == "succeeded" and job.result == {"sku": "B", "quantity": 8, "status": "updated"}
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
    client, container, shop, state, delivered, clock
):
    order_id, shopify_id = delivered
    hold_channel_work(container, shop.channel_id)
    state.cancel(shopify_id, reason="inventory", client=client)
    assert _acks(state)[-1]["status"] == "accepted"
    assert read(container.engine, sa.select(order_updates)) == []
    run_jobs(container, shopify_registry(), clock)
    [apply_job] = _apply_jobs(container.engine)
    assert apply_job.result["status"] == "processed" and apply_job.result["detail"] == "cancellation queued"
    [update] = read(container.engine, sa.select(order_updates))
    assert (update.order_id, update.kind, update.external_id) == (
        order_id,
        "cancellation",
        f"shopify-cancel-{shopify_id}",
    )
    assert update.payload == {"reason": "cancelled in Shopify (inventory)"}
    [job] = read(container.engine, sa.select(jobs).where(jobs.c.kind == "fulfillments.cancel"))
    assert job.channel_id == shop.channel_id and job.payload["order_id"] == order_id
    assert job.state == "queued"  # waits for the origin channel's fulfillments flow


def test_partial_fulfillments_map_lines_back_by_marketplace_line_id(
    client, container, shop, state, delivered, clock
):
    order_id, shopify_id = delivered
    state.fulfill(shopify_id, tracking_company="UPS", tracking_number="1Z1", lines={"A": 1}, client=client)
    run_jobs(container, shopify_registry(), clock)
    [update] = read(container.engine, sa.select(order_updates))
    assert update.order_id == order_id
    assert update.payload["lines"] == [{"sku": "A", "line_id": "S-1-1", "quantity": 1}]
    assert update.status == "not_supported"  # the Mirakl channel's multi_shipment setting is off


def test_orders_tradelane_did_not_create_are_ignored(client, container, state, system, clock):
    web_order = state.create_order(
        {"order": {"line_items": [{"variant_id": state.variant("A").id, "quantity": 1}]}}, via_app=False
    )
    state.fulfill(web_order["id"], tracking_company="DHL", tracking_number="JD1", client=client)
    state.cancel(web_order["id"], client=client)
    assert [a["status"] for a in _acks(state)] == ["accepted", "accepted", "accepted"]
    run_jobs(container, shopify_registry(), clock)
    assert [j.result["status"] for j in _apply_jobs(container.engine)] == ["ignored", "ignored", "ignored"]
    assert read(container.engine, sa.select(order_updates)) == []
    assert {e.status for e in _events(container.engine)} == {"ignored"}


def test_an_update_tradelane_cannot_apply_is_kept_as_failed_dead_lettered_and_replayable(
    client, container, shop, state, delivered, clock, now
):
    order_id, shopify_id = delivered
    hold_channel_work(container, shop.channel_id)
    with container.engine.begin() as conn:
        was = conn.execute(sa.text("SELECT state FROM orders WHERE id = :id"), {"id": order_id}).scalar_one()
        conn.execute(sa.text("UPDATE orders SET state = 'cancelled' WHERE id = :id"), {"id": order_id})
    fulfillment = state.fulfill(shopify_id, tracking_company="UPS", tracking_number="1Z2", client=client)
    assert [(d.topic, d.status) for d in state.deliveries] == [
        ("fulfillments/create", 200),
        ("orders/fulfilled", 200),
    ]
    assert [a["status"] for a in _acks(state)] == ["accepted", "accepted"]
    run_jobs(container, shopify_registry(), clock)
    events = _events(container.engine)
    assert [e.status for e in events] == ["failed", "failed"]
    assert all("is cancelled on shop-fr: there is nothing to ship" in e.error for e in events)
    assert read(container.engine, sa.select(order_updates)) == []
    dead = _apply_jobs(container.engine)
    assert [(j.state, j.payload["event_id"]) for j in dead] == [("dead", e.id) for e in events]
    assert all("is cancelled on shop-fr" in j.last_error for j in dead)

    # The order was wrongly cancelled: once it is fixed, replaying the dead letters applies the shipment
    # (both events carry the same fulfillment: it is recorded once).
    with container.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE orders SET state = :state WHERE id = :id"), {"state": was, "id": order_id}
        )
    auth = {"Authorization": f"Bearer {shop.token}"}
    listed = client.get("/api/v1/jobs/dead", headers=auth).json()["items"]
    assert sorted((j["id"], j["kind"]) for j in listed) == [(j.id, APPLY_KIND) for j in dead]
    for job in dead:  # what an operator does, one dead letter at a time
        assert client.post(f"/api/v1/jobs/{job.id}/replay", headers=auth).json() == {"replayed": [job.id]}
    run_jobs(container, shopify_registry(), clock)
    assert [(e.status, e.error) for e in _events(container.engine)] == [("processed", None)] * 2
    assert [j.state for j in _apply_jobs(container.engine)] == ["succeeded", "succeeded"]
    [update] = read(container.engine, sa.select(order_updates))
    assert (update.order_id, update.kind) == (order_id, "shipment")
    assert update.external_id == f"shopify-fulfillment-{fulfillment['id']}"
    assert len(read(container.engine, sa.select(jobs).where(jobs.c.kind == "fulfillments.ship"))) == 1


def test_an_event_accepted_before_its_system_was_disabled_is_still_applied(
    client, container, shop, state, system, delivered, clock
):
    order_id, shopify_id = delivered
    hold_channel_work(container, shop.channel_id)
    state.cancel(shopify_id, client=client)
    assert _acks(state)[-1]["status"] == "accepted"
    with container.engine.begin() as conn:
        set_enabled(conn, system, False)
    assert post_webhook(client, "orders/cancelled", {"id": 1}, webhook_id="late").status_code == 401
    run_jobs(container, shopify_registry(), clock)
    [event] = _events(container.engine)
    assert event.status == "processed"
    [update] = read(container.engine, sa.select(order_updates))
    assert (update.order_id, update.kind) == (order_id, "cancellation")


def test_an_apply_job_run_again_after_its_event_was_applied_changes_nothing(
    client, container, shop, state, delivered, clock, now
):
    _order_id, shopify_id = delivered
    hold_channel_work(container, shop.channel_id)
    state.cancel(shopify_id, client=client)
    run_jobs(container, shopify_registry(), clock)
    [job] = _apply_jobs(container.engine)
    with container.engine.begin() as conn:  # e.g. a stale dead letter of an event applied since
        conn.execute(sa.update(jobs).where(jobs.c.id == job.id).values(state="dead"))
        assert replay_jobs(conn, shop.tenant_id, [job.id], now=now) == [job.id]
    clock.advance(60)
    run_jobs(container, shopify_registry(), clock)
    [job] = _apply_jobs(container.engine)
    assert job.state == "succeeded" and job.result["detail"] == "already applied"
    [event] = _events(container.engine)
    assert event.status == "processed" and event.processed_at == now  # not applied a second time
    assert len(read(container.engine, sa.select(order_updates))) == 1


def test_a_genuine_body_under_another_topic_is_refused(client, container, state, delivered, clock, capsys):
    _, shopify_id = delivered
    state.fulfill(shopify_id, tracking_company="UPS", tracking_number="1Z3", client=client)
    run_jobs(container, shopify_registry(), clock)
    fulfilled = next(d for d in state.deliveries if d.topic == "orders/fulfilled")
    headers = {**fulfilled.headers, "X-Shopify-Topic": "orders/cancelled", "X-Shopify-Webhook-Id": "new-id"}
    response = client.post(webhook_url(), content=fulfilled.body, headers=headers)
    assert response.status_code == 401
    assert [line["reason"] for line in _security_lines(capsys)] == ["topic_mismatch"]
    run_jobs(container, shopify_registry(), clock)
    kinds = [u.kind for u in read(container.engine, sa.select(order_updates))]
    assert kinds == ["shipment"]  # no cancellation for an order Shopify never cancelled
    assert all(e.external_id != "new-id" for e in _events(container.engine))


@pytest.mark.parametrize("fulfillments", [5, "x", {"id": 1}])
def test_a_fulfilled_order_with_a_malformed_fulfillments_field_is_kept_as_failed(
    client, container, delivered, clock, fulfillments
):
    """Found by fuzzing: a non-list ``fulfillments`` crashed the handler (a 500, which Shopify retries
    and then drops the subscription for) instead of being stored as a failed event with the reason."""
    _order_id, shopify_id = delivered
    order = {"id": shopify_id, "fulfillment_status": "fulfilled", "fulfillments": fulfillments}
    body = json.dumps(order).encode()
    headers = signed_headers("orders/fulfilled", body, webhook_id="wh-malformed")
    answer = client.post(webhook_url(), content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "accepted"
    run_jobs(container, shopify_registry(), clock)
    [event] = [e for e in _events(container.engine) if e.status == "failed"]
    assert "'fulfillments' must be a list" in event.error
    [job] = _apply_jobs(container.engine)
    assert job.state == "dead" and "'fulfillments' must be a list" in job.last_error
    assert read(container.engine, sa.select(order_updates)) == []
