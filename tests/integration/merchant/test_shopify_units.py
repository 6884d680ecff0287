"""The pure parts of the Shopify adapter: call-limit tracking, header parsing, mappings, signatures and
settings validation."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tradelane.domain.errors import ValidationError
from tradelane.http_edge import parse_retry_after
from tradelane.merchant.schema import OmsAddress, OmsOrder, OmsOrderLine
from tradelane.merchant.shopify.client import describe_errors, next_page_info
from tradelane.merchant.shopify.countries import alpha2
from tradelane.merchant.shopify.mapping import (
    order_payload,
    shipment_from_fulfillment,
    tradelane_order_id,
    variants_of_product,
)
from tradelane.merchant.shopify.ratelimit import CallLimit, parse_call_limit
from tradelane.merchant.shopify.sandbox import sign_webhook
from tradelane.merchant.shopify.settings import ShopifySettings
from tradelane.merchant.shopify.webhook_protocol import (
    BadSignature,
    compute_hmac,
    payload_fits_topic,
    verify_hmac,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_call_limit_header_and_retry_after_parsing():
    assert parse_call_limit("32/40") == (32, 40) and parse_call_limit(" 1 / 400 ") == (1, 400)
    assert [parse_call_limit(v) for v in (None, "", "41/40", "x/40", "3/0")] == [None] * 5
    assert parse_retry_after("2.0", now=NOW) == 2.0 and parse_retry_after("7", now=NOW) == 7.0
    assert [parse_retry_after(v, now=NOW) for v in (None, "soon", "-1", "nan", "inf")] == [None] * 5


def test_call_limit_leaks_and_says_how_long_to_wait():
    limit = CallLimit()
    assert limit.wait_before_call(0.0) == 0.0  # nothing known yet
    limit.observe("38/40", at=10.0)
    assert limit.wait_before_call(10.0) == 0.0  # 38 + 1 leaves one call free
    limit.observe("39/40", at=10.0)
    assert limit.wait_before_call(10.0) == pytest.approx(0.5)  # one call leaks in 0.5 s at 2/s
    assert limit.wait_before_call(10.5) == 0.0
    limit.observe("garbage", at=11.0)  # ignored
    assert limit.level(11.0) == pytest.approx(37.0)
    plus = CallLimit()
    plus.observe("400/400", at=0.0)
    assert plus.leak_rate == 20.0 and plus.wait_before_call(0.0) == pytest.approx(0.1)
    limit.throttled(2.0, at=20.0)
    assert limit.wait_before_call(20.0) == pytest.approx(2.0)


def test_link_header_cursor_and_error_descriptions():
    base = "https://s.myshopify.com/admin/api/2025-10/products.json?limit=250"
    link = f'<{base}&page_info=prev1>; rel="previous", <{base}&page_info=nxt2>; rel="next"'
    assert next_page_info(link) == "nxt2"
    assert next_page_info(link.split(", ")[0]) is None and next_page_info(None) is None
    assert (
        describe_errors({"errors": {"line_items": ["a", "b"], "email": "bad"}})
        == "line_items: a; b, email: bad"
    )
    assert describe_errors({"errors": "Not Found"}) == "Not Found"
    assert describe_errors({"errors": ["x", "y"]}) == "x; y"


def test_country_codes():
    assert [alpha2(v) for v in ("FRA", "fr", "DEU", "GBR", "XKX", "France", None, "")] == [
        "FR",
        "FR",
        "DE",
        "GB",
        "XK",
        None,
        None,
        None,
    ]


def _document(**changes) -> OmsOrder:
    line = OmsOrderLine(
        line_id="L1",
        sku="A",
        marketplace_sku="mA",
        offer_sku="oA",
        quantity=3,
        unit_price="2.10",
        line_total="6.30",
        currency="EUR",
        type="textual",
    )
    fields = {
        "id": 7,
        "ref": "shop-fr:M7",
        "channel": "shop-fr",
        "marketplace_order_id": "M7",
        "state": "SHIPPING",
        "currency": "EUR",
        "total_price": "6.30",
        "attributes": {},
        "lines": [line],
        "created_at": NOW,
        **changes,
    }
    return OmsOrder(**fields)


def test_order_payload_tags_addresses_and_totals():
    long_tag = "x" * 41
    doc = _document(
        attributes={"tags": f"Gift, gift, {long_tag},  ,VIP", "tradelane_order_id": "spoof", "note": "n"},
        shipping_address=OmsAddress(first_name="Ada", country="Deutschland"),
        billing_address=OmsAddress(last_name="L", country="ITA", email="bill@example.org"),
    )
    order = order_payload(doc, {"A": 99}, inventory_behaviour="bypass")["order"]
    assert order["tags"] == "tradelane, tradelane-order-7, Gift, VIP"
    names = [n["name"] for n in order["note_attributes"]]
    assert names == ["tradelane_order_id", "tradelane_ref", "channel", "marketplace_order_id", "note"]
    assert order["note_attributes"][0]["value"] == "7"  # an attribute cannot override tradelane's identity
    assert order["shipping_address"] == {"first_name": "Ada", "country": "Deutschland"}
    assert order["billing_address"] == {"last_name": "L", "country_code": "IT"}
    assert order["email"] == "bill@example.org" and "note" not in order
    assert order["line_items"] == [
        {
            "variant_id": 99,
            "quantity": 3,
            "price": "2.10",
            "properties": [{"name": "_tradelane_line_id", "value": "L1"}],
        }
    ]
    assert order["transactions"][0]["amount"] == "6.30" and order["inventory_behaviour"] == "bypass"
    assert order["processed_at"] == "2026-11-25T12:00:00+00:00"
    assert (
        "shipping_address" not in order_payload(_document(), {"A": 1}, inventory_behaviour="bypass")["order"]
    )


def test_tradelane_identity_is_read_back_from_note_attributes_or_tags():
    assert tradelane_order_id({"note_attributes": [{"name": "tradelane_order_id", "value": "12"}]}) == 12
    assert tradelane_order_id({"tags": "vip, Tradelane-Order-34"}) == 34
    assert tradelane_order_id({"tags": "tradelane-order-x"}) is None
    assert tradelane_order_id({"note_attributes": [{"name": "tradelane_order_id", "value": "-1"}]}) is None
    assert tradelane_order_id({}) is None


def test_fulfillments_become_shipments():
    fulfillment = {
        "id": 5,
        "order_id": 9,
        "status": "success",
        "tracking_company": "DHL Express",
        "tracking_numbers": ["JD01"],
        "tracking_urls": ["javascript:alert(1)"],
        "line_items": [
            {"sku": "A", "quantity": 2, "properties": [{"name": "_tradelane_line_id", "value": "L1"}]},
            {"sku": "B", "quantity": 1, "properties": []},
            {"sku": "C", "quantity": 0},
        ],
    }
    shipment = shipment_from_fulfillment(fulfillment)
    assert shipment is not None and shipment.external_id == "shopify-fulfillment-5"
    assert (shipment.shopify_order_id, shipment.carrier, shipment.tracking_number) == (
        9,
        "DHL Express",
        "JD01",
    )
    assert shipment.tracking_url is None  # only http(s) URLs pass
    assert [(ln.line_id, ln.sku, ln.quantity) for ln in shipment.lines] == [("L1", "A", 2), (None, "B", 1)]
    assert shipment_from_fulfillment({**fulfillment, "status": "cancelled"}) is None
    assert shipment_from_fulfillment({**fulfillment, "id": None}) is None


def test_product_variants_become_catalog_fields():
    product = {
        "title": "Shirt",
        "vendor": "Acme",
        "variants": [
            {
                "sku": "S-1",
                "title": "Default Title",
                "price": "10.00",
                "inventory_quantity": -2,
                "barcode": "4006381333931",
            },
            {"sku": "S-2", "title": "XL", "price": "ten", "inventory_quantity": 3, "barcode": "123"},
            {"sku": "S-1", "title": "dup", "price": "1"},
            {"sku": " ", "price": "1"},
            {"sku": "S-3", "price": "1.5"},
        ],
    }
    fields = variants_of_product(product)
    assert [(f.sku, f.title, f.price, f.quantity, f.gtin) for f in fields] == [
        ("S-1", "Shirt", Decimal("10.00"), 0, "4006381333931"),
        ("S-2", "Shirt - XL", None, 3, None),
        ("S-3", "Shirt", Decimal("1.5"), None, None),
    ]
    assert {f.brand for f in fields} == {"Acme"}


def test_webhook_signatures_are_verified_in_constant_time_against_the_raw_body():
    # RFC-style known vector: HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog")
    digest = bytes.fromhex("f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
    body = b"The quick brown fox jumps over the lazy dog"
    assert compute_hmac("key", body) == base64.b64encode(digest).decode() == sign_webhook("key", body)
    verify_hmac("key", body, base64.b64encode(digest).decode())
    for header, reason in [
        (None, "missing_signature"),
        ("  ", "missing_signature"),
        ("not base64!", "malformed_signature"),
        ("é", "malformed_signature"),
        (compute_hmac("key", body + b"."), "bad_signature"),
        (compute_hmac("other", body), "bad_signature"),
    ]:
        with pytest.raises(BadSignature) as raised:
            verify_hmac("key", body, header)
        assert raised.value.reason == reason


def test_settings_validation():
    settings = ShopifySettings.from_settings({"shop_domain": "My-Shop.myshopify.com"})
    assert (
        settings.shop_domain == "my-shop.myshopify.com"
        and settings.api_url == "https://my-shop.myshopify.com"
    )
    for bad, message in [
        ({}, "no shop_domain"),
        ({"shop_domain": "https://x.myshopify.com/admin"}, "host name"),
        ({"shop_domain": "x.myshopify.com", "api_version": "2025-02"}, "api version"),
        ({"shop_domain": "x.myshopify.com", "currency": "EURO"}, "unknown currency"),
        ({"shop_domain": "x.myshopify.com", "inventory_behaviour": "take"}, "inventory behaviour"),
        ({"shop_domain": "x.myshopify.com", "api_url": "ftp://x"}, "api url"),
        ({"shop_domain": "x.myshopify.com", "lookup_max_pages": "many"}, "invalid Shopify settings"),
    ]:
        with pytest.raises(ValidationError, match=message):
            ShopifySettings.from_settings(bad)


def test_the_unsigned_topic_must_fit_the_signed_body():
    order = {"id": 1, "fulfillment_status": "fulfilled", "cancelled_at": None, "fulfillments": []}
    cases = [
        ("orders/fulfilled", order, True),
        ("orders/cancelled", order, False),
        ("orders/cancelled", {**order, "cancelled_at": "2026-11-25T12:00:00Z"}, True),
        ("fulfillments/create", {"id": 2, "order_id": 1, "line_items": []}, True),
        ("fulfillments/create", order, False),
        ("orders/fulfilled", {"id": 2, "order_id": 1, "fulfillment_status": "fulfilled"}, False),
        ("products/update", {"id": 3, "variants": []}, True),
        ("products/update", order, False),
        ("inventory_levels/update", {"inventory_item_id": 4, "location_id": 5, "available": 1}, True),
        ("inventory_levels/update", {"inventory_item_id": 4}, False),
        ("customers/create", {"id": 6}, True),  # not handled: ignored later
        ("products/create", None, False),
    ]
    assert [payload_fits_topic(topic, payload) for topic, payload, _ in cases] == [ok for _, _, ok in cases]
