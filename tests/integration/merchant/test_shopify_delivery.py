"""The Shopify adapter against the sandbox over real HTTP: orders created once and classified at the edge
(unknown SKUs and Shopify's 4xx rejected with the reason, 429/5xx/timeouts retried)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from shopify_support import ACCESS_TOKEN, WEBHOOK_SECRET, register_shopify, seed_shop

from helpers import FakeClock
from tradelane.merchant.base import MerchantSystem, OutcomeKind
from tradelane.merchant.schema import OmsAddress, OmsOrder, OmsOrderLine
from tradelane.merchant.shopify.adapter import ShopifyAdapter
from tradelane.merchant.shopify.client import ShopifyClient, ShopifyUnavailable
from tradelane.merchant.shopify.sandbox import ShopifySandboxServer, ShopifySandboxState

CREDENTIALS = {"access_token": ACCESS_TOKEN, "webhook_secret": WEBHOOK_SECRET}


@pytest.fixture
def state(clock: FakeClock) -> ShopifySandboxState:
    shop = ShopifySandboxState(access_token=ACCESS_TOKEN, webhook_secret=WEBHOOK_SECRET, clock=clock)
    seed_shop(shop)
    return shop


@pytest.fixture
def server(state: ShopifySandboxState) -> Iterator[ShopifySandboxServer]:
    with ShopifySandboxServer(state) as running:
        yield running


@pytest.fixture
def system(container, shop, state, server) -> MerchantSystem:
    return register_shopify(container, shop, state, server.url)


def document(
    order_id: int = 41, lines: list[tuple[str, int, str]] | None = None, *, now: datetime
) -> OmsOrder:
    address = OmsAddress(
        first_name="Ada",
        last_name="Lovelace",
        street1="1 Rue de Rivoli",
        zip_code="75001",
        city="Paris",
        country="FRA",
        email="ada@example.org",
    )
    items = [
        OmsOrderLine(
            line_id=f"M-{order_id}-{i}",
            sku=sku,
            marketplace_sku=sku,
            offer_sku=f"offer-{sku}",
            title=f"Product {sku}",
            quantity=quantity,
            unit_price=price,
            line_total=format(Decimal(price) * quantity, "f"),
            currency="EUR",
            type="textual",
        )
        for i, (sku, quantity, price) in enumerate(lines or [("A", 2, "11.90"), ("B", 1, "3.50")], start=1)
    ]
    return OmsOrder(
        id=order_id,
        ref=f"shop-fr:M-{order_id}",
        channel="shop-fr",
        marketplace_order_id=f"M-{order_id}",
        state="SHIPPING",
        currency="EUR",
        total_price=format(sum(Decimal(i.line_total) for i in items), "f"),
        attributes={"tags": "marketplace, shop-fr", "gift": "yes"},
        customer_message="leave at the door",
        shipping_address=address,
        billing_address=address,
        lines=items,
        created_at=now - timedelta(hours=1),
    )


def deliver(system: MerchantSystem, doc: OmsOrder, now: datetime, credentials: dict | None = None):
    adapter = ShopifyAdapter(system, credentials or CREDENTIALS)
    try:
        return adapter.deliver_order(doc, idempotency_key=f"order-{doc.id}", now=now)
    finally:
        adapter.close()


def posts(state: ShopifySandboxState) -> list[int]:
    return [c.status for c in state.calls if c.method == "POST" and c.path.endswith("/orders.json")]


def test_an_order_is_created_with_its_tradelane_identity(system, state, now):
    outcome = deliver(system, document(now=now), now)
    assert outcome.kind is OutcomeKind.DELIVERED, outcome.reason
    [order] = state.orders_tagged("tradelane-order-41")
    assert outcome.external_ref == str(order["id"]) and order["name"] in outcome.reason
    variants = {sku: state.variant(sku).id for sku in ("A", "B")}
    assert [(li["variant_id"], li["quantity"], li["price"]) for li in order["line_items"]] == [
        (variants["A"], 2, "11.90"),
        (variants["B"], 1, "3.50"),
    ]
    assert [li["properties"] for li in order["line_items"]] == [
        [{"name": "_tradelane_line_id", "value": "M-41-1"}],
        [{"name": "_tradelane_line_id", "value": "M-41-2"}],
    ]
    assert order["tags"] == "tradelane, tradelane-order-41, marketplace, shop-fr"
    notes = {n["name"]: n["value"] for n in order["note_attributes"]}
    assert notes == {
        "tradelane_order_id": "41",
        "tradelane_ref": "shop-fr:M-41",
        "channel": "shop-fr",
        "marketplace_order_id": "M-41",
        "gift": "yes",
    }
    assert order["shipping_address"]["country_code"] == "FR" and order["email"] == "ada@example.org"
    assert order["financial_status"] == "paid" and order["source_identifier"] == "shop-fr:M-41"
    assert order["total_price"] == "27.30" and order["note"] == "leave at the door"
    # decrement_ignoring_policy (the default): Shopify's stock follows the order
    assert state.catalog.available(state.variant("A").inventory_item_id) == 8
    assert "shpat_" not in outcome.request  # the access token never lands in kept exchanges


def test_a_second_delivery_finds_the_order_instead_of_creating_it_again(system, state, now):
    first = deliver(system, document(now=now), now)
    second = deliver(system, document(now=now), now)
    assert first.kind is second.kind is OutcomeKind.DELIVERED
    assert second.external_ref == first.external_ref and second.reason.startswith("already in Shopify")
    assert len(state.orders_tagged("tradelane-order-41")) == 1 and posts(state) == [201]


def test_an_answer_lost_after_shopify_created_the_order_is_retried_without_a_duplicate(
    container, shop, state, server, now
):
    system = register_shopify(container, shop, state, server.url, name="slow-shop")
    settings = {**system.settings, "timeout_seconds": 0.3}
    impatient = MerchantSystem(system.id, system.tenant_id, system.name, system.kind, settings, True)
    state.slow_down(1, 0.8, method="POST")  # the order is created, its answer comes too late
    lost = deliver(impatient, document(now=now), now)
    retried = deliver(impatient, document(now=now), now)
    assert lost.kind is OutcomeKind.RETRY and "timed out" in lost.reason
    assert retried.kind is OutcomeKind.DELIVERED and retried.reason.startswith("already in Shopify")
    [order] = state.orders_tagged("tradelane-order-41")
    assert retried.external_ref == str(order["id"]) and len(posts(state)) == 1


def test_an_unknown_variant_sku_is_rejected_with_the_skus_named(system, state, now):
    outcome = deliver(
        system, document(lines=[("A", 1, "1"), ("NOPE", 1, "1"), ("ZZ-9", 2, "1")], now=now), now
    )
    assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.reason == "unknown variant SKU(s) in Shopify: NOPE, ZZ-9"
    assert outcome.response_body["unknown_skus"] == ["NOPE", "ZZ-9"]
    assert posts(state) == [] and state.orders == {}


def test_a_sku_carried_by_two_variants_is_rejected(system, state, now):
    state.add_product("Alpha again", [{"sku": "A", "price": "1", "quantity": 1}])
    outcome = deliver(system, document(now=now), now)
    assert outcome.kind is OutcomeKind.REJECTED and "several Shopify variants" in outcome.reason
    assert "A (variants" in outcome.reason and posts(state) == []


def test_the_catalog_scan_follows_pages_and_is_bounded(container, shop, clock, now):
    state = ShopifySandboxState(access_token=ACCESS_TOKEN, webhook_secret=WEBHOOK_SECRET, clock=clock)
    for i in range(250):
        state.add_product(f"Filler {i}", [{"sku": f"F-{i}", "price": "1", "quantity": 1}])
    seed_shop(state)  # A and B land on the second page of 250
    with ShopifySandboxServer(state) as server:
        bounded = register_shopify(container, shop, state, server.url, name="bounded")
        settings = {**bounded.settings, "catalog_max_pages": 1}
        one_page = MerchantSystem(bounded.id, bounded.tenant_id, bounded.name, bounded.kind, settings, True)
        refused = deliver(one_page, document(now=now), now)
        assert refused.kind is OutcomeKind.REJECTED
        assert (
            refused.reason == "unknown variant SKU(s) in the first 1 pages of Shopify products "
            "(catalog_max_pages): A, B"
        )
        delivered = deliver(bounded, document(now=now), now)
    assert delivered.kind is OutcomeKind.DELIVERED, delivered.reason
    product_pages = [c for c in state.calls if c.path.endswith("/products.json")]
    assert len(product_pages) == 3  # 1 (bounded) + 2 (followed the Link cursor)


def test_shopify_422_is_rejected_with_its_errors(container, shop, state, server, now):
    strict = register_shopify(
        container, shop, state, server.url, name="strict", inventory_behaviour="decrement_obeying_policy"
    )
    outcome = deliver(strict, document(lines=[("B-RED", 1, "4.50")], now=now), now)
    assert outcome.kind is OutcomeKind.REJECTED and outcome.status_code == 422
    assert (
        outcome.reason == "Shopify rejected the order with HTTP 422: line_items: Beta - Red is out of stock"
    )
    assert outcome.response_body == {"errors": {"line_items": ["Beta - Red is out of stock"]}}
    assert outcome.response.startswith("HTTP 422\n") and state.orders == {}


def test_429_is_a_retry_with_shopifys_retry_after(system, state, now):
    state.inject_faults(1, status=429, retry_after=7)
    outcome = deliver(system, document(now=now), now)
    assert outcome.kind is OutcomeKind.RETRY and outcome.status_code == 429
    assert outcome.retry_after == 7.0 and "Exceeded 2 calls per second" in outcome.reason
    assert state.orders == {}


def test_a_full_bucket_answers_429_with_retry_after(container, shop, clock, now):
    state = ShopifySandboxState(
        access_token=ACCESS_TOKEN, webhook_secret=WEBHOOK_SECRET, clock=clock, bucket_size=4
    )
    seed_shop(state)
    with ShopifySandboxServer(state) as server:
        url = f"{server.url}/admin/api/2025-10/shop.json"
        headers = {"X-Shopify-Access-Token": ACCESS_TOKEN}
        answers = [httpx.get(url, headers=headers) for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
        assert [a.headers["X-Shopify-Shop-Api-Call-Limit"] for a in answers] == [
            "1/4",
            "2/4",
            "3/4",
            "4/4",
            "4/4",
        ]
        assert answers[-1].headers["Retry-After"] == "5.0"  # one call leaks in 1 / (4/20) s
        outcome = deliver(register_shopify(container, shop, state, server.url), document(now=now), now)
        assert outcome.kind is OutcomeKind.RETRY and outcome.retry_after == 5.0
        clock.advance(20)  # the bucket drains
        assert (
            deliver(
                register_shopify(container, shop, state, server.url, name="later"), document(now=now), now
            ).kind
            is OutcomeKind.DELIVERED
        )


def test_the_client_slows_a_burst_down_instead_of_hitting_429(clock):
    state = ShopifySandboxState(
        access_token=ACCESS_TOKEN, webhook_secret=WEBHOOK_SECRET, clock=clock, bucket_size=4
    )
    waited: list[float] = []
    elapsed = [0.0]

    def sleep(seconds: float) -> None:  # time passes for the client and the shop alike
        waited.append(seconds)
        elapsed[0] += seconds
        clock.advance(seconds)

    with ShopifySandboxServer(state) as server:
        client = ShopifyClient(
            server.url,
            ACCESS_TOKEN,
            api_version="2025-10",
            monotonic=lambda: elapsed[0],
            sleep=sleep,
            max_wait=10,
        )
        statuses = [client.get("shop").status for _ in range(6)]
        impatient = ShopifyClient(
            server.url,
            ACCESS_TOKEN,
            api_version="2025-10",
            monotonic=lambda: elapsed[0],
            sleep=sleep,
            max_wait=1,
        )
        impatient.get("shop")
        with pytest.raises(ShopifyUnavailable) as raised:
            impatient.get("shop")
        client.close()
        impatient.close()
    assert statuses == [200] * 6 and [c.status for c in state.calls] == [200] * 7
    assert waited == [5.0, 5.0, 5.0]  # calls 4-6 each waited for one slot to leak (0.2 calls/s)
    # the impatient client saw "4/4": two calls must leak (10 s) before one more leaves a slot free
    assert raised.value.retry_after == pytest.approx(10.0)


def test_5xx_and_unreachable_shops_are_retries(system, state, container, shop, now):
    state.inject_faults(1, status=503)
    outcome = deliver(system, document(now=now), now)
    assert outcome.kind is OutcomeKind.RETRY and outcome.status_code == 503 and outcome.retry_after is None
    nowhere = register_shopify(container, shop, state, "http://127.0.0.1:9", name="nowhere")
    unreachable = deliver(nowhere, document(now=now), now)
    assert unreachable.kind is OutcomeKind.RETRY and "unreachable" in unreachable.reason


def test_a_wrong_access_token_is_rejected(system, now):
    outcome = deliver(system, document(now=now), now, {**CREDENTIALS, "access_token": "shpat_wrong"})
    assert outcome.kind is OutcomeKind.REJECTED and outcome.status_code == 401
    assert "Invalid API key or access token" in outcome.reason


def test_incomplete_configuration_is_a_value_error(system):
    with pytest.raises(ValueError, match="no access token"):
        ShopifyAdapter(system, {"webhook_secret": WEBHOOK_SECRET})
    broken = MerchantSystem(system.id, system.tenant_id, system.name, system.kind, {}, True)
    with pytest.raises(ValueError, match="no shop_domain"):
        ShopifyAdapter(broken, CREDENTIALS)
