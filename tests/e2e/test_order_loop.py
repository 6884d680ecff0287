"""The full order loop, every hop over real HTTP on 127.0.0.1 and one fake clock:

Mirakl sandbox order → tradelane polls and accepts it → payment → tradelane imports it and delivers it
to the merchant side (the HTTP OMS sandbox, or the Shopify sandbox) → the merchant ships it and tells
tradelane (REST API, signed OMS webhook, or signed Shopify ``fulfillments/create`` webhook, all to the
served app) → the worker sends tracking (OR23) then the shipment (OR24) → the Mirakl order is SHIPPED.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from order_loop_support import (
    MAX_ROUNDS,
    App,
    job_states,
    order_through_payment,
    serve_app,
    shipment_calls,
    sync_offers,
    tradelane_order,
)

from mirakl_world import World, build_world
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.merchant.sandbox.callback import Via, send_update
from tradelane.merchant.sandbox.state import CallbackConfig
from tradelane.merchant.shopify.sandbox import ShopifySandboxServer, ShopifySandboxState
from tradelane.services.merchant_systems import add_http_system, add_shopify_system

OMS_SECRET = "order-loop-oms-signing-secret-0123"
SHOPIFY_TOKEN = "shpat_order_loop_sandbox_token"
SHOPIFY_SECRET = "order-loop-shopify-webhook-secret"
#: Channel option: the merchant's carrier names → Mirakl carrier codes (the carrier conversion).
CARRIER_MAP = {"colissimo-expert": "COLISSIMO"}


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={}, options={"carrier_map": CARRIER_MAP})


def _assert_shipped(world: World, app: App, mirakl_id: str, ref: str, carrier: str, tracking: str) -> None:
    """The Mirakl order is SHIPPED with the tracking (OR23 before OR24), tradelane's history shows the
    recorded and sent shipment, and no job was dead-lettered."""
    assert shipment_calls(world) == ["OR23", "OR24"]
    mirakl = world.state.order(mirakl_id)
    assert mirakl.state.value == "SHIPPED"
    assert mirakl.tracking is not None
    assert (mirakl.tracking.carrier_code, mirakl.tracking.tracking_number) == (carrier, tracking)

    detail = app.order(ref)
    history = [h["state"] for h in detail["history"]]
    assert history[0] == "awaiting_acceptance"
    assert history.index("DELIVERED") < history.index("SHIPMENT_RECORDED") < history.index("SHIPMENT_SENT")
    [update] = detail["updates"]
    assert (update["kind"], update["status"]) == ("shipment", "sent")
    assert update["payload"]["tracking_number"] == tracking

    assert app.dead_letters() == []
    states = job_states(world)
    assert {state for kind in states.values() for state in kind} == {"succeeded"}, states
    assert (states["orders.deliver"], states["fulfillments.ship"]) == (["succeeded"], ["succeeded"])


@pytest.mark.parametrize("via", ["api", "webhook"])
def test_mirakl_order_to_http_oms_and_shipment_back_to_mirakl(world: World, db_url: str, via: Via) -> None:
    skus = sync_offers(world, 3)
    oms_state = OmsSandboxState(OMS_SECRET, clock=world.clock)
    with OmsSandboxServer(oms_state) as oms, serve_app(world, db_url) as app:
        with world.engine.begin() as conn:
            add_http_system(
                conn,
                tenant_id=world.tenant_id,
                name="oms",
                url=oms.orders_url,
                secret=OMS_SECRET,
                keyring=world.keyring,
                now=world.clock(),
                timeout_seconds=5,
            )
        oms_state.callback = CallbackConfig(app.url, api_token=app.token, merchant_name="oms")

        mirakl_id = order_through_payment(
            world,
            [
                {"offer_sku": skus[1], "quantity": 2, "unit_price": "11.00"},
                {"offer_sku": skus[2], "quantity": 1, "unit_price": "12.00"},
            ],
        )
        order = tradelane_order(world, mirakl_id)
        assert (order["state"], order["merchant_status"]) == ("to_ship", "delivered")
        [received] = oms_state.orders()
        assert received.ref == f"{world.channel.name}:{mirakl_id}"
        doc = received.document
        assert doc["marketplace_order_id"] == mirakl_id and doc["channel"] == world.channel.name
        assert sorted((ln["sku"], ln["quantity"], Decimal(ln["unit_price"])) for ln in doc["lines"]) == [
            (skus[1], 2, Decimal("11.00")),
            (skus[2], 1, Decimal("12.00")),
        ]
        assert doc["shipping_address"]["city"]
        assert shipment_calls(world) == []  # nothing shipped before the OMS says so

        tracking = "8R41234567890"
        answer = send_update(
            oms_state,
            received,
            "shipment",
            {"carrier": "colissimo-expert", "tracking_number": tracking},
            via=via,
        )
        assert answer.status_code == (201 if via == "api" else 202), answer.text
        assert [s["via"] for s in received.shipments] == [via]

        world.run(max_rounds=MAX_ROUNDS, step=5)

        _assert_shipped(world, app, mirakl_id, received.ref, "COLISSIMO", tracking)


def test_mirakl_order_to_shopify_and_fulfillment_back_to_mirakl(world: World, db_url: str) -> None:
    skus = sync_offers(world, 3)
    shop = ShopifySandboxState(access_token=SHOPIFY_TOKEN, webhook_secret=SHOPIFY_SECRET, clock=world.clock)
    for sku in skus:  # the shop sells the same SKUs as tradelane's catalog
        shop.add_product(f"Shop {sku}", [{"sku": sku, "price": "10.00", "quantity": 20}])
    with ShopifySandboxServer(shop) as shopify, serve_app(world, db_url) as app:
        shop.subscribe(f"{app.url}/api/v1/shopify/acme/shopify/webhooks")
        with world.engine.begin() as conn:
            add_shopify_system(
                conn,
                tenant_id=world.tenant_id,
                name="shopify",
                shop_domain=shop.shop_domain,
                access_token=SHOPIFY_TOKEN,
                webhook_secret=SHOPIFY_SECRET,
                keyring=world.keyring,
                now=world.clock(),
                api_url=shopify.url,
                currency="EUR",
            )

        mirakl_id = order_through_payment(
            world,
            [
                {"offer_sku": skus[0], "quantity": 1, "unit_price": "10.00"},
                {"offer_sku": skus[2], "quantity": 3, "unit_price": "12.00"},
            ],
        )
        order = tradelane_order(world, mirakl_id)
        assert (order["state"], order["merchant_status"]) == ("to_ship", "delivered")
        [created] = shop.orders_tagged(f"tradelane-order-{order['id']}")
        assert created["source_identifier"] == f"{world.channel.name}:{mirakl_id}"
        assert sorted((li["sku"], li["quantity"]) for li in created["line_items"]) == [
            (skus[0], 1),
            (skus[2], 3),
        ]
        assert shipment_calls(world) == []

        tracking = "1Z999AA10123456784"
        shop.fulfill(created["id"], tracking_company="UPS", tracking_number=tracking)
        assert [(d.topic, d.status) for d in shop.deliveries] == [
            ("fulfillments/create", 200),
            ("orders/fulfilled", 200),
        ]

        world.run(max_rounds=MAX_ROUNDS, step=5)

        _assert_shipped(world, app, mirakl_id, str(order["id"]), "UPS", tracking)
