"""Each operation: method, path, query and body (validated against the spec), and its typed result."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from mirakl_client_fixtures import (
    SHOP_ID,
    FakeMirakl,
    decoded,
    import_status,
    json_response,
    offer,
    order,
    orders_page,
    shipping_order,
    validate,
)

from tradelane.connectors.mirakl.client import MiraklBadResponse, MiraklSchemaError
from tradelane.connectors.mirakl.mapping import (
    MiraklOfferSettings,
    MiraklOrderState,
    OfferImportMode,
    error_report_rows_to_offer_errors,
    offer_update_json,
)
from tradelane.connectors.mirakl.models import (
    DocumentUpload,
    OfferImportState,
    RefundRequest,
    ShipmentLine,
    ShipmentRequest,
    TaxAmount,
)
from tradelane.domain.catalog import Product
from tradelane.domain.orders import OrderState


def multipart_fields(request: httpx.Request) -> dict[str, list[tuple[str | None, bytes, str | None]]]:
    """Parse a multipart body into name → [(filename, content, content-type)] (test-side decoder)."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    fields: dict[str, list[tuple[str | None, bytes, str | None]]] = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        assert part.startswith(b"\r\n") and part.endswith(b"\r\n")
        head, _, body = part[2:-2].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n") if ": " in line)
        disposition = headers["Content-Disposition"]
        name = disposition.split('name="')[1].split('"')[0]
        filename = disposition.split('filename="')[1].split('"')[0] if 'filename="' in disposition else None
        fields.setdefault(name, []).append((filename, body, headers.get("Content-Type")))
    return fields


# ----------------------------------------------------------------------------------------------- offers


def test_import_offers_posts_the_file_as_multipart() -> None:
    fake = FakeMirakl().on("POST", "/api/offers/imports", json_response(201, {"import_id": 77}))
    csv_bytes = (
        b"sku;product-id;product-id-type;price;quantity;state;update-delete\nA;1;EAN;1.00;1;11;update\n"
    )
    import_id = fake.client().import_offers(csv_bytes, OfferImportMode.REPLACE)
    assert import_id == 77
    request = fake.requests[-1]
    assert request.url.params["shop_id"] == SHOP_ID
    fields = multipart_fields(request)
    assert fields["file"] == [("offers.csv", csv_bytes, "text/csv")]
    assert fields["import_mode"][0][1] == b"REPLACE"
    assert fields["with_products"][0][1] == b"false"
    validate("OF01", "201", {"import_id": 77})


def test_import_offers_rejects_unknown_mode_and_empty_file() -> None:
    fake = FakeMirakl()
    with pytest.raises(ValueError):
        fake.client().import_offers(b"x", "SOMETIMES")
    with pytest.raises(ValueError):
        fake.client().import_offers(b"", "NORMAL")
    assert fake.requests == []


def test_offer_import_status_is_typed() -> None:
    body = import_status(42, status="RUNNING", has_error_report=False, lines_in_pending=3)
    validate("OF02", "200", decoded(body))
    fake = FakeMirakl().on("GET", "/api/offers/imports/42", json_response(200, body))
    status = fake.client().offer_import_status(42)
    assert status.status is OfferImportState.RUNNING
    assert not status.finished and not status.has_error_report
    assert (status.lines_read, status.lines_in_pending) == (3, 3)
    assert status.date_created == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_offer_import_status_unknown_status_is_a_schema_error() -> None:
    fake = FakeMirakl().on(
        "GET", "/api/offers/imports/42", json_response(200, import_status(status="PAUSED"))
    )
    with pytest.raises(MiraklSchemaError) as info:
        fake.client().offer_import_status(42)
    assert info.value.field_path == "status"
    assert info.value.op == "OF02"


ERROR_REPORT = (
    '\ufeff"sku";"product-id";"product-id-type";"price";"quantity";"state";"update-delete";"error-line";"error-message"\n'
    '"ACME-SKU-1";"4000000000001";"EAN";"29.99";"7";"11";"update";"2";"The product does not exist"\n'
    '"ACME-SKU-2";"4000000000002";"EAN";"-1";"7";"11";"update";"3";"The price is invalid; must be > 0"\n'
    "\n"
    '"ACME-SKU-2";"4000000000002";"EAN";"-1";"7";"11";"update";"3";"Quantity ""7"" exceeds the limit"\n'
)


def test_error_report_is_parsed_into_rows_and_offer_errors() -> None:
    fake = FakeMirakl().on(
        "GET",
        "/api/offers/imports/42/error_report",
        httpx.Response(
            200, content=ERROR_REPORT.encode("utf-8"), headers={"content-type": "application/octet-stream"}
        ),
    )
    rows = fake.client().offer_import_error_report(42)
    assert len(rows) == 3
    assert rows[0]["sku"] == "ACME-SKU-1" and rows[0]["error-message"] == "The product does not exist"
    assert error_report_rows_to_offer_errors(rows) == {
        "ACME-SKU-1": ["line 2: The product does not exist"],
        "ACME-SKU-2": ["line 3: The price is invalid; must be > 0", 'line 3: Quantity "7" exceeds the limit'],
    }


def test_error_report_without_error_message_column_is_a_schema_error() -> None:
    fake = FakeMirakl().on(
        "GET", "/api/offers/imports/42/error_report", httpx.Response(200, content=b"sku;price\nA;1\n")
    )
    with pytest.raises(MiraklSchemaError) as info:
        fake.client().offer_import_error_report(42)
    assert "error-message" in info.value.reason


def test_error_report_html_is_retryable() -> None:
    fake = FakeMirakl().on(
        "GET",
        "/api/offers/imports/42/error_report",
        httpx.Response(200, text="<html>gateway</html>", headers={"content-type": "text/html"}),
    )
    with pytest.raises(MiraklBadResponse):
        fake.client().offer_import_error_report(42)


def test_list_offers_is_typed_and_exact() -> None:
    body = {"offers": [offer(1), offer(2, active=False, price=Decimal("0.10"))], "total_count": 2}
    validate("OF21", "200", decoded(body))
    fake = FakeMirakl().on("GET", "/api/offers", json_response(200, body))
    page = fake.client().list_offers(0, 50, sku="ACME-SKU-1")
    assert fake.last_query() == {"offset": ["0"], "max": ["50"], "sku": ["ACME-SKU-1"], "shop_id": [SHOP_ID]}
    assert page.total_count == 2
    first, second = page.offers
    assert (first.offer_id, first.shop_sku, first.quantity, first.price) == (
        5001,
        "ACME-SKU-1",
        7,
        Decimal("29.99"),
    )
    assert first.product_references == (("EAN", "4000000000001"),)
    assert second.price == Decimal("0.10") and not second.active


def test_update_offers_sends_a_spec_valid_body_with_exact_prices() -> None:
    products = [
        Product(sku="SKU-1", gtin="4000000000001", price=Decimal("19.90"), currency="EUR", quantity=3),
        Product(sku="SKU-2", price=Decimal("1234567890.123456789"), currency="EUR", quantity=0),
    ]
    offers = offer_update_json(products, MiraklOfferSettings(sku_template="ACME-{sku}"))
    fake = FakeMirakl().on("POST", "/api/offers", json_response(201, {"import_id": 9}))
    assert fake.client().update_offers(offers) == 9
    sent = fake.last_json()
    validate("OF24", "request", sent)
    assert fake.requests[-1].headers["content-type"] == "application/json"
    assert b'"price":1234567890.123456789' in fake.requests[-1].content
    assert sent["offers"][0]["price"] == Decimal("19.90")


# ----------------------------------------------------------------------------------------------- orders


def test_list_orders_sends_filters_and_maps_orders() -> None:
    body = orders_page([order(), shipping_order()], 2)
    validate("OR11", "200", decoded(body))
    fake = FakeMirakl().on("GET", "/api/orders", json_response(200, body))
    start = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    page = fake.client().list_orders(
        states=[MiraklOrderState.SHIPPING],
        start_update_date=start,
        end_update_date=datetime(2024, 5, 2, tzinfo=UTC),
        offset=0,
        max=10,
        order_ids=["ORD-1001-A", "ORD-1002-A"],
    )
    assert fake.last_query() == {
        "order_state_codes": ["SHIPPING"],
        "start_update_date": ["2024-05-01T10:00:00.123Z"],
        "end_update_date": ["2024-05-02T00:00:00.000Z"],
        "order_ids": ["ORD-1001-A,ORD-1002-A"],
        "offset": ["0"],
        "max": ["10"],
        "paginate": ["true"],
        "shop_id": [SHOP_ID],
    }
    assert page.total_count == 2
    assert [(o.state, o.raw_state) for o in page.orders] == [
        (OrderState.AWAITING_ACCEPTANCE, "WAITING_ACCEPTANCE"),
        (OrderState.TO_SHIP, "SHIPPING"),
    ]
    assert page.orders[1].shipping_address is not None


def test_list_orders_rejects_naive_dates_and_unknown_states() -> None:
    fake = FakeMirakl()
    with pytest.raises(ValueError):
        fake.client().list_orders(start_update_date=datetime(2024, 5, 1))
    with pytest.raises(ValueError):
        fake.client().list_orders(states=["LOST"])
    with pytest.raises(ValueError):
        fake.client().list_orders(order_ids=[f"O-{i}" for i in range(101)])
    assert fake.requests == []


def test_accept_lines() -> None:
    fake = FakeMirakl().on("PUT", "/api/orders/ORD-1001-A/accept", httpx.Response(204))
    fake.client().accept_lines("ORD-1001-A", {"ORD-1001-A-1": True, "ORD-1001-A-2": False})
    sent = fake.last_json()
    validate("OR21", "request", sent)
    assert sent == {
        "order_lines": [{"id": "ORD-1001-A-1", "accepted": True}, {"id": "ORD-1001-A-2", "accepted": False}]
    }


def test_order_id_is_escaped_in_the_path() -> None:
    fake = FakeMirakl().on("PUT", "/api/orders/A%2FB/ship", httpx.Response(204))
    fake.client().ship("A/B")
    assert fake.requests[-1].url.raw_path.startswith(b"/api/orders/A%2FB/ship")


def test_update_tracking_sends_only_given_fields() -> None:
    fake = FakeMirakl().on("PUT", "/api/orders/ORD-1/tracking", httpx.Response(204))
    fake.client().update_tracking("ORD-1", carrier_code="DHL", tracking_number="00340434161094042557")
    sent = fake.last_json()
    validate("OR23", "request", sent)
    assert sent == {"carrier_code": "DHL", "tracking_number": "00340434161094042557"}
    with pytest.raises(ValueError):
        fake.client().update_tracking("ORD-1", tracking_number="123")


@pytest.mark.parametrize(("method_name", "suffix"), [("ship", "ship"), ("cancel", "cancel")])
def test_ship_and_cancel_put_without_body(method_name: str, suffix: str) -> None:
    fake = FakeMirakl().on("PUT", f"/api/orders/ORD-1/{suffix}", httpx.Response(204))
    getattr(fake.client(), method_name)("ORD-1")
    assert fake.requests[-1].method == "PUT"
    assert fake.requests[-1].content == b""


def test_refund_request_and_result() -> None:
    response = {
        "order_tax_mode": "TAX_INCLUDED",
        "refunds": [
            {
                "amount": Decimal("29.99"),
                "order_line_id": "ORD-1-A-1",
                "order_refund_id": "grp-1",
                "quantity": 1,
                "reason_code": "12",
                "refund_id": "rf-1",
                "shipping_amount": Decimal("4.90"),
            }
        ],
    }
    validate("OR28", "200", decoded(response))
    fake = FakeMirakl().on("PUT", "/api/orders/refund", json_response(200, response))
    refunds = fake.client().refund(
        [
            RefundRequest(
                order_line_id="ORD-1-A-1",
                amount=Decimal("29.99"),
                reason_code="12",
                shipping_amount=Decimal("4.90"),
                quantity=1,
                taxes=(TaxAmount("VAT", Decimal("4.79")),),
            )
        ]
    )
    sent = fake.last_json()
    validate("OR28", "request", sent)
    assert sent["refunds"][0]["taxes"] == [{"code": "VAT", "amount": Decimal("4.79")}]
    assert refunds[0].refund_id == "rf-1" and refunds[0].amount == Decimal("29.99")


def test_carriers() -> None:
    body = {"carriers": [{"code": "DHL", "label": "DHL", "tracking_url": "https://dhl.example/{trackingId}"}]}
    validate("SH21", "200", body)
    fake = FakeMirakl().on("GET", "/api/shipping/carriers", json_response(200, body))
    (carrier,) = fake.client().carriers()
    assert (carrier.code, carrier.label, carrier.standard_code) == ("DHL", "DHL", None)


def test_create_shipments_partial_success() -> None:
    response = {
        "shipment_errors": [{"order_id": "ORD-2-A", "message": "Order is not shippable"}],
        "shipment_success": [
            {
                "created_date": "2024-05-02T10:00:00Z",
                "id": "shp-1",
                "last_updated_date": "2024-05-02T10:00:00Z",
                "order_id": "ORD-1-A",
                "status": "SHIPPED",
                "status_customer_debit": "NO_DEBIT",
            }
        ],
    }
    validate("ST01", "201", response)
    fake = FakeMirakl().on("POST", "/api/shipments", json_response(201, response))
    result = fake.client().create_shipments(
        [
            ShipmentRequest(
                order_id="ORD-1-A",
                lines=(ShipmentLine("ORD-1-A-1", 1, package_reference="PKG-1"),),
                carrier_code="DHL",
                tracking_number="123",
                warehouse_code="WH1",
            ),
            ShipmentRequest(
                order_id="ORD-2-A", lines=(ShipmentLine("ORD-2-A-1", 2),), carrier_name="Bike courier"
            ),
        ]
    )
    sent = fake.last_json()
    validate("ST01", "request", sent)
    assert sent["shipments"][0]["tracking"] == {"carrier_code": "DHL", "tracking_number": "123"}
    assert sent["shipments"][0]["shipping_from"] == {"warehouse": {"code": "WH1"}}
    assert [s.shipment_id for s in result.created] == ["shp-1"]
    assert result.errors[0].order_id == "ORD-2-A" and "not shippable" in result.errors[0].message


def test_create_shipments_validates_input() -> None:
    fake = FakeMirakl()
    with pytest.raises(ValueError):
        fake.client().create_shipments([ShipmentRequest(order_id="O", lines=())])
    with pytest.raises(ValueError):
        fake.client().create_shipments([ShipmentRequest(order_id="O", lines=(ShipmentLine("L", 0),))])
    assert fake.requests == []


def test_list_messages() -> None:
    body = {
        "messages": [
            {
                "body": "Can you gift-wrap it?",
                "commercial_id": "ORD-1",
                "date_created": "2024-05-01T11:00:00Z",
                "from_id": "C-77",
                "from_name": "Anna S.",
                "from_type": "CUSTOMER",
                "id": 31,
                "order_id": "ORD-1-A",
                "subject": "Gift",
                "to_customer_archived": False,
                "to_customer_id": "",
                "to_customer_name": "",
                "to_operator": False,
                "to_operator_archived": False,
                "to_shop_archived": False,
                "to_shop_id": 2001,
                "to_shop_name": "ACME Outdoor",
            }
        ],
        "total_count": 1,
    }
    validate("M01", "200", body)
    fake = FakeMirakl().on("GET", "/api/messages", json_response(200, body))
    page = fake.client().list_messages(order_id="ORD-1-A", received="ALL")
    assert fake.last_query()["received"] == ["ALL"]
    message = page.messages[0]
    assert (message.message_id, message.from_type, message.body) == (31, "CUSTOMER", "Can you gift-wrap it?")


# --------------------------------------------------------------------------------------------- documents


def test_upload_order_documents_multipart_and_errors() -> None:
    response = {
        "errors_count": 1,
        "order_documents": [
            {
                "errors": [
                    {"code": "DOCUMENT_TYPE_UNKNOWN", "field": "type_code", "message": "Unknown type"}
                ],
                "input": {"file_name": "label.pdf", "type_code": "NOPE"},
            }
        ],
    }
    validate("OR74", "200", response)
    fake = FakeMirakl().on("POST", "/api/orders/ORD-1-A/documents", json_response(200, response))
    errors = fake.client().upload_order_documents(
        "ORD-1-A",
        [
            DocumentUpload("invoice.pdf", "CUSTOMER_INVOICE", b"%PDF-1.4 inv", "application/pdf"),
            DocumentUpload("label.pdf", "NOPE", b"%PDF-1.4 lbl", "application/pdf"),
        ],
    )
    fields = multipart_fields(fake.requests[-1])
    assert [(f[0], f[1]) for f in fields["files"]] == [
        ("invoice.pdf", b"%PDF-1.4 inv"),
        ("label.pdf", b"%PDF-1.4 lbl"),
    ]
    (details,) = fields["order_documents"]
    assert details[0] is None and details[2] == "application/json"
    assert json.loads(details[1]) == {
        "order_documents": [
            {"file_name": "invoice.pdf", "type_code": "CUSTOMER_INVOICE"},
            {"file_name": "label.pdf", "type_code": "NOPE"},
        ]
    }
    assert len(errors) == 1
    assert errors[0].file_name == "label.pdf" and errors[0].errors == ("DOCUMENT_TYPE_UNKNOWN: Unknown type",)


@pytest.mark.parametrize(
    "files",
    [
        [],
        [DocumentUpload("a.pdf", "T", b"1"), DocumentUpload("a.pdf", "T", b"2")],
        [DocumentUpload("rechnung-ä.pdf", "T", b"1")],
        [DocumentUpload(f"d{i}.pdf", "T", b"1") for i in range(51)],
    ],
)
def test_upload_order_documents_validates_files(files: list[DocumentUpload]) -> None:
    fake = FakeMirakl()
    with pytest.raises(ValueError):
        fake.client().upload_order_documents("ORD-1-A", files)
    assert fake.requests == []


def test_list_and_download_order_documents() -> None:
    listing = {
        "order_documents": [
            {
                "date_uploaded": "2024-05-02T09:00:00Z",
                "file_name": "label.pdf",
                "file_size": 1024,
                "id": 7,
                "order_id": "ORD-1-A",
                "type": "SYSTEM_DELIVERY_BILL",
            }
        ],
        "total_count": 1,
    }
    validate("OR72", "200", listing)
    fake = FakeMirakl().on("GET", "/api/orders/documents", json_response(200, listing))
    fake.on(
        "GET",
        "/api/orders/documents/download",
        httpx.Response(
            200,
            content=b"%PDF-1.4 label",
            headers={
                "content-type": "application/pdf",
                "content-disposition": 'attachment; filename="label.pdf"',
            },
        ),
    )
    client = fake.client()
    (document,) = client.list_order_documents(["ORD-1-A"])
    assert (document.document_id, document.type_code, document.file_size) == (7, "SYSTEM_DELIVERY_BILL", 1024)
    downloaded = client.download_order_documents(document_ids=[document.document_id])
    assert fake.last_query()["document_ids"] == ["7"]
    assert downloaded.content == b"%PDF-1.4 label"
    assert (downloaded.file_name, downloaded.content_type) == ("label.pdf", "application/pdf")


def test_every_implemented_op_goes_to_its_spec_path() -> None:
    """Guard against typos: each (op, method, path) the client uses exists in the spec."""
    from mirakl_client_fixtures import spec

    used: dict[str, tuple[str, str]] = {
        "A01": ("get", "/api/account"),
        "OF01": ("post", "/api/offers/imports"),
        "OF02": ("get", "/api/offers/imports/{import}"),
        "OF03": ("get", "/api/offers/imports/{import}/error_report"),
        "OF21": ("get", "/api/offers"),
        "OF24": ("post", "/api/offers"),
        "OR11": ("get", "/api/orders"),
        "OR21": ("put", "/api/orders/{order_id}/accept"),
        "OR23": ("put", "/api/orders/{order_id}/tracking"),
        "OR24": ("put", "/api/orders/{order_id}/ship"),
        "OR28": ("put", "/api/orders/refund"),
        "OR29": ("put", "/api/orders/{order_id}/cancel"),
        "OR72": ("get", "/api/orders/documents"),
        "OR73": ("get", "/api/orders/documents/download"),
        "OR74": ("post", "/api/orders/{order_id}/documents"),
        "SH21": ("get", "/api/shipping/carriers"),
        "ST01": ("post", "/api/shipments"),
        "RT11": ("get", "/api/returns"),
        "M01": ("get", "/api/messages"),
    }
    paths: dict[str, Any] = spec()["paths"]
    for op, (method, path) in used.items():
        assert paths[path][method]["operationId"] == op
