"""Mirakl's offers and fulfilment halves of the port (offers_port, fulfilment_port) against a scripted
Mirakl: what goes out for each hub value, and what comes back as hub values."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
from mirakl_client_fixtures import FakeMirakl, import_status, json_response, validate

from tradelane.connectors.base import (
    Cancellation,
    Document,
    ImportRef,
    OfferUpdate,
    Refund,
    RefundLine,
    Shipment,
    ShippedLine,
    SubmitMode,
)
from tradelane.connectors.mirakl import fulfilment_port, offers_port
from tradelane.connectors.mirakl.settings import MiraklSettings
from tradelane.domain.errors import PermanentError

REFUND_CREATED = {
    "refund_id": "R1",
    "order_refund_id": "OR1",
    "order_line_id": "O1-1",
    "amount": "9.90",
    "shipping_amount": "0",
    "quantity": 1,
    "reason_code": "DAMAGED",
}


def settings(**values: object) -> MiraklSettings:
    return MiraklSettings.from_dict({"hostname": "shop.mirakl.test", **values})


def offer(sku: str, **values: object) -> OfferUpdate:
    fields: dict[str, object] = {
        "price": Decimal("12.50"),
        "currency": "EUR",
        "quantity": 4,
        "gtin": "4006381333931",
    }
    fields.update(values)
    return OfferUpdate(sku, **fields)  # type: ignore[arg-type]


def test_delta_goes_as_one_of24_call_and_refusals_come_back_at_once() -> None:
    fake = FakeMirakl().on("POST", "/api/offers", json_response(201, {"import_id": 9}))
    shop = settings(
        offer={"sku_template": "ACME-{sku}", "fallback_id_type": None, "custom_fields": {"brand": ":brand"}}
    )
    ref = offers_port.submit_offers(
        fake.client(),
        shop,
        [offer("A", attributes={":brand": "Acme"}), offer("NOGTIN", gtin=None), offer("B", delete=True)],
        SubmitMode.DELTA,
    )
    assert (ref.reference, ref.mode, ref.submitted) == ("9", SubmitMode.DELTA, 2)
    assert ref.result is not None and not ref.result.done
    assert ref.result.retry_after == offers_port.check_delay(shop)
    [refused] = ref.result.outcomes
    assert refused.sku == "NOGTIN" and not refused.ok and "no GTIN" in refused.errors[0]
    body = fake.last_json()
    validate("OF24", "request", body)
    sent = {o["shop_sku"]: o for o in body["offers"]}
    assert set(sent) == {"ACME-A", "ACME-B"}
    assert sent["ACME-A"]["price"] == Decimal("12.50") and sent["ACME-A"]["update_delete"] == "update"
    assert sent["ACME-A"]["offer_additional_fields"] == [{"code": "brand", "value": "Acme"}]
    assert sent["ACME-B"]["update_delete"] == "delete"


def test_full_goes_as_one_of01_file_and_nothing_sendable_makes_no_call() -> None:
    fake = FakeMirakl().on("POST", "/api/offers/imports", json_response(201, {"import_id": 77}))
    ref = offers_port.submit_offers(fake.client(), settings(), [offer("A"), offer("B")], SubmitMode.FULL)
    assert (ref.reference, ref.submitted) == ("77", 2)
    assert ref.result is not None and not ref.result.done and ref.result.outcomes == ()
    assert (
        b"NORMAL" in fake.requests[-1].content and b"A;4006381333931;EAN;12.50;4" in fake.requests[-1].content
    )

    before = len(fake.requests)
    shop = settings(offer={"currency": "GBP"})
    nothing = offers_port.submit_offers(fake.client(), shop, [offer("A")], SubmitMode.FULL)
    assert (nothing.reference, nothing.submitted) == ("", 0) and len(fake.requests) == before
    assert nothing.result is not None and nothing.result.done
    assert "differs from the shop currency GBP" in nothing.result.outcomes[0].errors[0]


def test_import_result_waits_then_maps_the_error_report_onto_hub_skus() -> None:
    state = {"status": "RUNNING"}
    fake = (
        FakeMirakl()
        .on(
            "GET",
            "/api/offers/imports/42",
            lambda _r: json_response(200, import_status(42, status=state["status"])),
        )
        .on(
            "GET",
            "/api/offers/imports/42/error_report",
            httpx.Response(
                200,
                content=b"sku;error-line;error-message\nACME-B;2;The price is invalid\n",
                headers={"content-type": "text/csv"},
            ),
        )
    )
    shop = settings(offer={"sku_template": "ACME-{sku}"})
    ref = ImportRef("42", SubmitMode.DELTA, 2)
    waiting = offers_port.import_result(fake.client(), shop, ref)
    assert not waiting.done and waiting.retry_after == offers_port.IMPORT_POLL_SECONDS
    assert waiting.summary == "import 42 is RUNNING"
    state["status"] = "COMPLETE"
    done = offers_port.import_result(fake.client(), shop, ref)
    assert done.done and [(o.sku, o.ok, o.errors) for o in done.outcomes] == [
        ("B", False, ("line 2: The price is invalid",))
    ]
    assert json.loads(done.summary or "")[0]["error-message"] == "The price is invalid"


def test_list_offers_reads_every_page() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        offers = [
            {
                "offer_id": i,
                "shop_sku": f"S{i}",
                "product_sku": f"P{i}",
                "product_references": [{"reference_type": "EAN", "reference": f"E{i}"}],
                "quantity": i,
                "price": "1.50",
                "currency_iso_code": "EUR",
                "state_code": "11",
                "active": True,
            }
            for i in range(offset, min(offset + 100, 150))
        ]
        return json_response(200, {"offers": offers, "total_count": 150})

    fake = FakeMirakl().on("GET", "/api/offers", page)
    listed = offers_port.list_offers(fake.client(), settings())
    assert len(listed) == 150 and len(fake.requests) == 2
    assert (listed[3].sku, listed[3].quantity, listed[3].price, listed[3].product_id) == (
        "S3",
        3,
        Decimal("1.50"),
        "E3",
    )
    assert listed[3].group_key is None


def test_list_offers_inverts_the_sku_template_and_reads_the_group_field() -> None:
    def offer(i: int, shop_sku: str, fields: list[dict[str, str]]) -> dict[str, object]:
        return {
            "offer_id": i, "shop_sku": shop_sku, "product_sku": f"P{i}", "product_references": [],
            "quantity": 1, "price": "2.00", "currency_iso_code": "EUR", "state_code": "11", "active": True,
            "offer_additional_fields": fields,
        }  # fmt: skip

    body = {
        "offers": [
            offer(1, "ACME-A", [{"code": "variant-group", "type": "STRING", "value": "G1"}]),
            offer(2, "OTHER-B", [{"code": "colour", "type": "STRING", "value": "red"}]),
        ],
        "total_count": 2,
    }
    fake = FakeMirakl().on("GET", "/api/offers", json_response(200, body))
    shop = settings(offer={"sku_template": "ACME-{sku}", "custom_fields": {"variant-group": ":parent_sku"}})
    listed = offers_port.list_offers(fake.client(), shop)
    assert [(o.sku, o.group_key) for o in listed] == [("A", "G1"), ("OTHER-B", None)]


def test_ship_whole_order_tracking_only_and_partial() -> None:
    fake = (
        FakeMirakl()
        .on("PUT", "/api/orders/O1/tracking", httpx.Response(204))
        .on("PUT", "/api/orders/O1/ship", httpx.Response(204))
        .on("POST", "/api/shipments", json_response(200, {"shipment_errors": [], "shipment_success": []}))
    )
    client = fake.client()
    fulfilment_port.ship(client, settings(), Shipment("O1", None, carrier_code="UPS", tracking_number="1Z"))
    assert [r.url.path for r in fake.requests] == ["/api/orders/O1/tracking", "/api/orders/O1/ship"]
    assert json.loads(fake.requests[0].content) == {"carrier_code": "UPS", "tracking_number": "1Z"}

    fake.requests.clear()
    fulfilment_port.ship(
        client, settings(), Shipment("O1", (), carrier_name="Bob", tracking_url="https://bob.example/1")
    )
    assert [r.url.path for r in fake.requests] == ["/api/orders/O1/tracking"]  # already shipped: no OR24
    assert json.loads(fake.requests[0].content) == {
        "carrier_name": "Bob",
        "carrier_url": "https://bob.example/1",
    }

    partial = Shipment("O1", [ShippedLine("O1-1", 1)], carrier_code="UPS")
    with pytest.raises(PermanentError, match="multi-shipment is off"):
        fulfilment_port.ship(client, settings(), partial)
    fake.requests.clear()
    fulfilment_port.ship(client, settings(multi_shipment=True), partial)
    [request] = fake.requests
    body = json.loads(request.content)
    assert request.url.path == "/api/shipments"
    assert body["shipments"][0]["shipment_lines"] == [{"order_line_id": "O1-1", "quantity": 1}]


def test_cancel_refund_and_documents() -> None:
    fake = (
        FakeMirakl()
        .on("PUT", "/api/orders/O1/cancel", httpx.Response(204))
        .on(
            "PUT",
            "/api/orders/refund",
            json_response(200, {"refunds": [REFUND_CREATED]}),
        )
        .on("GET", "/api/orders/documents", json_response(200, {"order_documents": [], "total_count": 0}))
        .on(
            "POST",
            "/api/orders/O1/documents",
            json_response(
                200,
                {
                    "order_documents": [
                        {
                            "input": {"file_name": "l.pdf", "type_code": "X"},
                            "errors": [{"message": "unknown type X"}],
                        }
                    ]
                },
            ),
        )
    )
    client = fake.client()
    with pytest.raises(PermanentError, match="line-level cancellation is not supported"):
        fulfilment_port.cancel(client, settings(), Cancellation("O1", [ShippedLine("O1-1", 1)], "oos"))
    assert fake.requests == []
    fulfilment_port.cancel(client, settings(), Cancellation("O1", None, "oos"))
    fulfilment_port.refund(
        client, settings(), Refund("O1", [RefundLine("O1-1", 1, Decimal("9.90"), "EUR")], "DAMAGED")
    )
    [refund] = json.loads(fake.requests[-1].content)["refunds"]
    assert (refund["order_line_id"], refund["amount"], refund["reason_code"]) == ("O1-1", 9.9, "DAMAGED")
    document = Document("O1", "l.pdf", b"%PDF-1.4", "application/pdf", "X")
    assert not fulfilment_port.document_present(client, settings(), document)
    with pytest.raises(PermanentError, match=r"refused the label l.pdf \(X\): unknown type X"):
        fulfilment_port.upload_document(client, settings(), document)
