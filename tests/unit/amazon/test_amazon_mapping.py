"""Pure mapping: orders (state table, Pending withheld, prices, address), offers → feed messages and
patches (chunked), processing reports → outcomes per SKU, listings → listed offers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from amazon_fakes import MARKETPLACE, SELLER, order, settings

from tradelane.connectors.amazon import mapping
from tradelane.connectors.amazon.errors import AmazonSchemaError
from tradelane.connectors.base import OfferUpdate, Shipment
from tradelane.domain.orders import OrderState


def test_order_maps_lines_prices_address_and_keeps_raw() -> None:
    payload = order()
    mapped = mapping.order_from_amazon(payload)
    assert mapped.marketplace_order_id == "302-0000001-0000001"
    assert mapped.state is OrderState.TO_SHIP and mapped.raw_state == "UNSHIPPED"
    assert mapped.currency == "EUR"
    assert mapped.updated_at == datetime(2025, 3, 1, 11, 0, tzinfo=UTC)
    (line,) = mapped.lines
    assert (line.line_id, line.offer_sku, line.quantity, line.unit_price, line.currency) == (
        "11111",
        "SKU-1",
        2,
        Decimal("19.99"),
        "EUR",
    )
    assert line.title == "Blue Mug"
    address = mapped.shipping_address
    assert address is not None
    assert (address.first_name, address.last_name, address.street1, address.street2) == (
        "Erika",
        "Mustermann",
        "Heidestr. 17",
        "Hinterhaus",
    )
    assert (address.zip_code, address.city, address.country, address.email) == (
        "51147",
        "Köln",
        "DE",
        "erika@marketplace.amazon.de",
    )
    assert mapped.attributes["amazon_status"] == "UNSHIPPED"
    assert mapped.attributes["ship_by"] == "2025-03-03T10:00:00Z"
    assert mapped.raw == payload


@pytest.mark.parametrize(
    ("status", "state", "held"),
    [
        ("PENDING_AVAILABILITY", OrderState.AWAITING_PAYMENT, True),
        ("PENDING", OrderState.AWAITING_PAYMENT, True),
        ("UNSHIPPED", OrderState.TO_SHIP, False),
        ("PARTIALLY_SHIPPED", OrderState.PARTIALLY_SHIPPED, False),
        ("SHIPPED", OrderState.SHIPPED, False),
        ("CANCELLED", OrderState.CANCELLED, False),
        ("UNFULFILLABLE", OrderState.CANCELLED, False),
    ],
)
def test_state_table(status: str, state: OrderState, held: bool) -> None:
    payload = order(status=status)
    assert mapping.withheld(payload) is held
    mapped = mapping.order_from_amazon(payload)
    assert mapped.state is state
    assert mapped.raw_state == status  # Amazon's own name is kept beside the neutral state


def test_every_amazon_status_is_in_the_table() -> None:
    from amazon_contracts import fulfillment_statuses

    assert set(mapping.ORDER_STATES) == set(fulfillment_statuses())


def test_a_cancelled_order_may_lack_prices() -> None:
    item = {"orderItemId": "1", "quantityOrdered": 1, "product": {"sellerSku": "S"}}
    mapped = mapping.order_from_amazon(order(status="CANCELLED", items=[item]))
    assert mapped.lines[0].unit_price == 0


def test_needs_details_when_an_order_to_ship_has_no_address() -> None:
    assert mapping.needs_details(order(address=False))
    assert not mapping.needs_details(order())
    assert not mapping.needs_details(order(status="SHIPPED", address=False))


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda o: o.pop("orderId"), "$.orderId"),
        (lambda o: o["fulfillment"].pop("fulfillmentStatus"), "$.fulfillment.fulfillmentStatus"),
        (lambda o: o["fulfillment"].update(fulfillmentStatus="LOST"), "$.fulfillment.fulfillmentStatus"),
        (lambda o: o.update(orderItems="x"), "$.orderItems"),
        (lambda o: o["orderItems"][0].update(quantityOrdered="2"), "$.orderItems[0].quantityOrdered"),
        (lambda o: o["orderItems"][0]["product"].pop("sellerSku"), "$.orderItems[0].product.sellerSku"),
        (lambda o: o["orderItems"][0]["product"].pop("price"), "$.orderItems[0].product.price.unitPrice"),
        (
            lambda o: o["orderItems"][0]["product"]["price"]["unitPrice"].update(amount="12,5"),
            "$.orderItems[0].product.price.unitPrice.amount",
        ),
        (lambda o: o.update(lastUpdatedTime="yesterday"), "$.lastUpdatedTime"),
    ],
)
def test_model_breaks_are_schema_errors_with_the_path(mutate: object, path: str) -> None:
    payload = order()
    mutate(payload)  # type: ignore[operator]
    with pytest.raises(AmazonSchemaError) as info:
        mapping.order_from_amazon(payload)
    assert info.value.path == path


def offer(sku: str = "SKU-1", **kwargs: object) -> OfferUpdate:
    data: dict[str, object] = {"price": Decimal("19.90"), "currency": "EUR", "quantity": 7}
    data.update(kwargs)
    return OfferUpdate(sku=sku, **data)  # type: ignore[arg-type]


def test_offer_only_message_on_the_asin() -> None:
    message = mapping.feed_message(offer(attributes={"attr:asin": "B0TEST0001"}), 1, settings())
    assert message == {
        "messageId": 1,
        "sku": "SKU-1",
        "operationType": "UPDATE",
        "productType": "PRODUCT",
        "requirements": "LISTING_OFFER_ONLY",
        "attributes": {
            "merchant_suggested_asin": [{"value": "B0TEST0001", "marketplace_id": MARKETPLACE}],
            "condition_type": [{"value": "new_new", "marketplace_id": MARKETPLACE}],
            "purchasable_offer": [
                {
                    "marketplace_id": MARKETPLACE,
                    "currency": "EUR",
                    "our_price": [{"schedule": [{"value_with_tax": Decimal("19.90")}]}],
                }
            ],
            "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 7}],
        },
    }


def test_offer_on_the_gtin_when_no_asin_and_deletions() -> None:
    attrs = mapping.feed_message(offer(gtin="4006381333931"), 1, settings())["attributes"]
    assert attrs["externally_assigned_product_identifier"] == [
        {"type": "ean", "value": "4006381333931", "marketplace_id": MARKETPLACE}
    ]
    assert "merchant_suggested_asin" not in attrs
    assert mapping.feed_message(offer(delete=True), 3, settings()) == {
        "messageId": 3,
        "sku": "SKU-1",
        "operationType": "DELETE",
    }


def test_product_type_mapping_makes_a_full_listing() -> None:
    s = settings(product_types={"mugs": "KITCHEN"})
    message = mapping.feed_message(
        offer(
            title="Blue Mug",
            attributes={
                "amazon_product_type": "mugs",
                ":brand": "Acme",
                "amazon:color": "blue",
                "attr:asin": "B0X",
            },
        ),
        1,
        s,
    )
    assert (message["productType"], message["requirements"]) == ("KITCHEN", "LISTING")
    assert message["attributes"]["item_name"] == [{"value": "Blue Mug", "marketplace_id": MARKETPLACE}]
    assert message["attributes"]["brand"] == [{"value": "Acme", "marketplace_id": MARKETPLACE}]
    assert message["attributes"]["color"] == [{"value": "blue", "marketplace_id": MARKETPLACE}]


def test_feed_documents_are_valid_json_with_a_header() -> None:
    (chunk,) = mapping.feed_documents([offer("A"), offer("B", delete=True)], settings())
    document = json.loads(chunk.content)
    assert document["header"]["sellerId"] == SELLER and document["header"]["version"] == "2.0"
    assert [m["messageId"] for m in document["messages"]] == [1, 2]
    assert document["messages"][0]["attributes"]["purchasable_offer"][0]["our_price"][0]["schedule"][0] == {
        "value_with_tax": 19.90
    }
    assert b'"value_with_tax":19.90' in chunk.content  # the exact decimal, not a float rendering
    assert chunk.skus == ("A", "B")


def test_feed_documents_chunk_by_messages_and_bytes() -> None:
    offers = [offer(f"SKU-{i:03d}") for i in range(7)]
    chunks = mapping.feed_documents(offers, settings(), max_messages=3)
    assert [len(c.skus) for c in chunks] == [3, 3, 1]
    for chunk in chunks:
        assert [m["messageId"] for m in json.loads(chunk.content)["messages"]] == list(
            range(1, len(chunk.skus) + 1)
        )
    one = len(mapping.feed_documents(offers[:1], settings())[0].content)
    limit = one * 2
    chunks = mapping.feed_documents(offers, settings(), max_bytes=limit)
    assert all(len(c.content) <= limit for c in chunks)
    assert [s for c in chunks for s in c.skus] == [o.sku for o in offers]
    with pytest.raises(ValueError, match="alone exceeds"):
        mapping.feed_documents(offers, settings(), max_bytes=one - 1)


def test_patch_request_replaces_price_and_quantity() -> None:
    body = mapping.patch_request(offer(quantity=0), settings())
    assert body["productType"] == "PRODUCT"
    assert [(p["op"], p["path"]) for p in body["patches"]] == [
        ("replace", "/attributes/purchasable_offer"),
        ("replace", "/attributes/fulfillment_availability"),
    ]
    assert body["patches"][1]["value"] == [{"fulfillment_channel_code": "DEFAULT", "quantity": 0}]


def test_processing_report_outcomes_per_sku() -> None:
    report = {
        "header": {"sellerId": SELLER, "version": "2.0", "feedId": "1"},
        "issues": [
            {
                "messageId": 1,
                "sku": "A",
                "code": "90220",
                "severity": "ERROR",
                "message": "'[brand]' is required",
            },
            {
                "messageId": 1,
                "sku": "A",
                "code": "99022",
                "severity": "ERROR",
                "message": "price missing",
                "attributeName": "purchasable_offer.our_price",
            },
            {"messageId": 2, "code": "18448", "severity": "WARNING", "message": "incomplete"},
            {"code": "5000", "severity": "ERROR", "message": "feed-level problem"},
        ],
        "summary": {"messagesProcessed": 3, "messagesAccepted": 2, "messagesInvalid": 1},
    }
    outcomes = mapping.report_outcomes(report, skus=("A", "B", "C"))
    assert [(o.sku, o.ok) for o in outcomes] == [("A", False), ("B", True)]
    assert outcomes[0].errors == (
        "90220: '[brand]' is required",
        "99022: price missing [purchasable_offer.our_price]",
    )
    assert outcomes[1].warnings == ("18448: incomplete",)
    assert mapping.report_summary(report) == (
        "3 processed, 2 accepted, 1 invalid; feed issues: 5000: feed-level problem"
    )
    with pytest.raises(AmazonSchemaError):
        mapping.report_outcomes({"issues": [{"sku": "A", "severity": "FATAL", "message": "x"}]})


def test_submission_outcome() -> None:
    ok = mapping.submission_outcome(
        "A", {"sku": "A", "status": "ACCEPTED", "submissionId": "1", "issues": []}
    )
    assert ok.ok
    bad = mapping.submission_outcome(
        "A",
        {
            "status": "INVALID",
            "issues": [
                {
                    "code": "8541",
                    "message": "no ASIN",
                    "severity": "ERROR",
                    "attributeNames": ["merchant_suggested_asin"],
                }
            ],
        },
    )
    assert not bad.ok and bad.errors == ("8541: no ASIN [merchant_suggested_asin]",)
    assert not mapping.submission_outcome("A", {"status": "INVALID"}).ok


def test_listed_offer() -> None:
    item = {
        "sku": "A",
        "summaries": [{"marketplaceId": MARKETPLACE, "asin": "B0X", "productType": "PRODUCT"}],
        "offers": [
            {
                "marketplaceId": MARKETPLACE,
                "offerType": "B2C",
                "price": {"currencyCode": "EUR", "amount": "30.0"},
            }
        ],
        "fulfillmentAvailability": [{"fulfillmentChannelCode": "DEFAULT", "quantity": 10}],
    }
    listed = mapping.listed_offer(item, MARKETPLACE)
    assert (listed.sku, listed.price, listed.currency, listed.quantity, listed.product_id) == (
        "A",
        Decimal("30.0"),
        "EUR",
        10,
        "B0X",
    )


def test_package_detail() -> None:
    shipment = Shipment(order_id="302-1", lines=None, tracking_number="1Z999")
    when = datetime(2025, 3, 2, 9, 30, tzinfo=UTC)
    detail = mapping.package_detail(
        shipment, {"11111": 2}, carrier_code="Other", carrier_name="Kurier", ship_date=when
    )
    assert detail["carrierCode"] == "Other" and detail["carrierName"] == "Kurier"
    assert detail["trackingNumber"] == "1Z999" and detail["shipDate"] == "2025-03-02T09:30:00Z"
    assert detail["orderItems"] == [{"orderItemId": "11111", "quantity": 2}]
    assert detail["packageReferenceId"].isdigit() and int(detail["packageReferenceId"]) > 0
    again = mapping.package_detail(
        shipment, {"11111": 2}, carrier_code="UPS", carrier_name=None, ship_date=when
    )
    assert again["packageReferenceId"] == detail["packageReferenceId"]  # same package, same reference
    assert "carrierName" not in again
