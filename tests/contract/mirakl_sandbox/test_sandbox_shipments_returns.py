"""ST01 split / partial shipments (multi-shipment shops only), RT11 returns, OR72-OR74 documents."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SHOP_ID, accept_all, get_order, seed_offers
from mirakl_sandbox_spec import assert_request, assert_response

from tradelane.connectors.mirakl.sandbox import OrderLineSpec, SandboxState


def _shipping_order(client: TestClient, auth: dict[str, str], state: SandboxState) -> str:
    seed_offers(state, 2, quantity=10)
    order_id = state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 3), OrderLineSpec("OFFER-2", 1)])
    accept_all(client, auth, order_id, state)
    state.advance(state.config.payment_delay.total_seconds())
    return order_id


def test_st01_needs_multi_shipment(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    order_id = _shipping_order(client, auth, state)
    body = {
        "shipments": [
            {"order_id": order_id, "shipment_lines": [{"order_line_id": f"{order_id}-1", "quantity": 1}]}
        ]
    }
    assert_request("ST01", body)
    refused = client.post("/api/shipments", json=body, headers=auth)
    assert refused.status_code == 400
    assert refused.json()["status"] == 400


def test_split_shipment_ships_the_order_when_everything_left(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    order_id = _shipping_order(client, auth, state)
    state.set_multi_shipment(SHOP_ID, True)
    first = {
        "shipments": [
            {
                "order_id": order_id,
                "shipment_lines": [{"order_line_id": f"{order_id}-1", "quantity": 2}],
                "tracking": {"carrier_code": "DPD", "tracking_number": "DPD-1"},
                "shipped": True,
            }
        ]
    }
    response = client.post("/api/shipments", json=first, headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert_response("ST01", 201, body)
    assert body["shipment_errors"] == []
    [shipment] = body["shipment_success"]
    assert (shipment["status"], shipment["tracking"]["tracking_number"]) == ("SHIPPED", "DPD-1")
    assert get_order(client, auth, order_id)["order_state"] == "SHIPPING"  # 1 + 1 items still to ship

    rest = {
        "shipments": [
            {
                "order_id": order_id,
                "shipment_lines": [
                    {"order_line_id": f"{order_id}-1", "quantity": 2},  # only 1 left: refused
                ],
                "shipped": True,
            },
            {
                "order_id": order_id,
                "shipment_lines": [
                    {"order_line_id": f"{order_id}-1", "quantity": 1},
                    {"order_line_id": f"{order_id}-2", "quantity": 1},
                ],
                "tracking": {"carrier_name": "Bike courier", "tracking_url": "https://c.example/9"},
                "shipped": True,
            },
            {"order_id": "404-A", "shipment_lines": [{"order_line_id": "404-A-1", "quantity": 1}]},
        ]
    }
    second = client.post("/api/shipments", json=rest, headers=auth).json()
    assert_response("ST01", 201, second)
    assert len(second["shipment_success"]) == 1
    assert [e["order_id"] for e in second["shipment_errors"]] == [order_id, "404-A"]
    order = get_order(client, auth, order_id)
    assert order["order_state"] == "SHIPPED"
    assert {line["order_line_state"] for line in order["order_lines"]} == {"SHIPPED"}


def test_unshipped_shipment_is_shipped_by_or24(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    order_id = _shipping_order(client, auth, state)
    state.set_multi_shipment(SHOP_ID, True)
    body = {
        "shipments": [
            {"order_id": order_id, "shipment_lines": [{"order_line_id": f"{order_id}-2", "quantity": 1}]}
        ]
    }
    [shipment] = client.post("/api/shipments", json=body, headers=auth).json()["shipment_success"]
    assert shipment["status"] == "SHIPPING"
    assert client.put(f"/api/orders/{order_id}/ship", headers=auth).status_code == 204
    assert state.shipments[shipment["id"]].status.value == "SHIPPED"


def test_st01_structural_errors_are_400(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    state.set_multi_shipment(SHOP_ID, True)
    bodies: list[dict[str, Any]] = [
        {"shipments": []},
        {"shipments": [{"order_id": "x-A", "shipment_lines": []}]},
        {"shipments": [{"order_id": "x-A", "shipment_lines": [{"order_line_id": "x-A-1", "quantity": 0}]}]},
        {"shipments": [{"shipment_lines": [{"order_line_id": "x-A-1", "quantity": 1}]}]},
    ]
    for body in bodies:
        assert client.post("/api/shipments", json=body, headers=auth).status_code == 400, body


def test_returns_listing_with_seek_pagination(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1, quantity=10)
    returns = []
    for _ in range(3):
        order_id = state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 2)])
        accept_all(client, auth, order_id, state)
        state.advance(state.config.payment_delay.total_seconds())
        client.put(f"/api/orders/{order_id}/ship", headers=auth)
        returns.append(state.create_return(order_id, [(f"{order_id}-1", 1, "RETURN_CHANGED_MIND")]))
        state.advance(1)
    first = client.get("/api/returns", params={"limit": 2}, headers=auth).json()
    assert_response("RT11", 200, first)
    assert [r["id"] for r in first["data"]] == returns[:2]
    second = client.get(
        "/api/returns", params={"limit": 2, "page_token": first["next_page_token"]}, headers=auth
    ).json()
    assert_response("RT11", 200, second)
    assert [r["id"] for r in second["data"]] == returns[2:]
    assert "next_page_token" not in second
    waiting = client.get("/api/returns", params={"return_state": "WAITING_ACCEPTANCE"}, headers=auth).json()
    assert len(waiting["data"]) == 3
    assert client.get("/api/returns", params={"return_state": "LOST"}, headers=auth).status_code == 400
    assert client.get("/api/returns", params={"page_token": "%%%"}, headers=auth).status_code == 400
    assert client.get("/api/returns", params={"limit": 101}, headers=auth).status_code == 400


def test_order_documents_round_trip(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    seed_offers(state, 1)
    order_id = state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 1)])
    meta = (
        '{"order_documents": [{"file_name": "invoice.pdf", "type_code": "CUSTOMER_INVOICE"},'
        ' {"file_name": "label.exe", "type_code": "SHIPPING_LABEL"}]}'
    )
    upload = client.post(
        f"/api/orders/{order_id}/documents",
        files=[("files", ("invoice.pdf", b"%PDF-1.4 sandbox")), ("files", ("label.exe", b"MZ"))],
        data={"order_documents": meta},
        headers=auth,
    )
    assert upload.status_code == 200, upload.text
    body = upload.json()
    assert_response("OR74", 200, body)
    assert body["errors_count"] == 1
    assert body["order_documents"][0]["input"]["file_name"] == "label.exe"

    listed = client.get("/api/orders/documents", params={"order_ids": order_id}, headers=auth).json()
    assert_response("OR72", 200, listed)
    [doc] = listed["order_documents"]
    assert (doc["file_name"], doc["type"], doc["file_size"]) == ("invoice.pdf", "CUSTOMER_INVOICE", 16)
    single = client.get("/api/orders/documents/download", params={"document_ids": doc["id"]}, headers=auth)
    assert single.content == b"%PDF-1.4 sandbox"
    archive = client.get("/api/orders/documents/download", params={"order_ids": order_id}, headers=auth)
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert names == [f"{order_id}/invoice.pdf"]
    assert get_order(client, auth, order_id)["has_invoice"] is True
    assert (
        client.get("/api/orders/documents/download", params={"document_ids": "999"}, headers=auth).status_code
        == 404
    )
    assert client.get("/api/orders/documents", headers=auth).status_code == 400
    assert Decimal(str(get_order(client, auth, order_id)["total_price"])) == Decimal("11.00")
