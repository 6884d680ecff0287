"""Orders v0 confirmShipment: packages, partial shipments, carrier codes and rejections."""

from __future__ import annotations

from typing import Any

import pytest
from amazon_sandbox_helpers import DE, FR, ORDERS, eu_seller, listed
from amazon_sandbox_spec import assert_request, assert_response
from starlette.testclient import TestClient

from tradelane.connectors.amazon.sandbox import AmazonSandboxState, FulfillmentStatus
from tradelane.connectors.amazon.sandbox.models import Order

V0 = "ordersV0"


def _body(
    order: Order, ref: str = "1", carrier: str = "DHL", quantity: int | None = None, **extra: Any
) -> dict[str, Any]:
    item = order.items[0]
    detail: dict[str, Any] = {
        "packageReferenceId": ref,
        "carrierCode": carrier,
        "trackingNumber": f"TRK{ref}",
        "shipDate": "2025-01-06T10:00:00Z",
        "orderItems": [{"orderItemId": item.order_item_id, "quantity": quantity or item.quantity}],
    }
    detail.update(extra)
    return {"marketplaceId": order.marketplace_id, "packageDetail": detail}


def _confirm(client: TestClient, auth: dict[str, str], order_id: str, body: Any, status: int = 204) -> Any:
    response = client.post(f"/orders/v0/orders/{order_id}/shipmentConfirmation", json=body, headers=auth)
    assert response.status_code == status, response.text
    if status == 204:
        assert response.content == b""
        return None
    assert_response(V0, "confirmShipment", status, response.json())
    return response.json()["errors"][0]


@pytest.fixture
def order(state: AmazonSandboxState) -> Order:
    listed(state)
    made = state.create_order(eu_seller(state), [("SKU-1", 3), ("SKU-2", 1)], paid=True)
    state.advance(600)
    return made


def test_partial_then_full_shipment(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str], order: Order
) -> None:
    first = _body(order, "1", quantity=2)
    assert_request(V0, "confirmShipment", first)
    _confirm(client, auth, order.order_id, first)
    assert state.order(order.order_id).status is FulfillmentStatus.PARTIALLY_SHIPPED
    rest = _body(order, "2", carrier="Other", carrierName="Kurier Schmidt", shippingMethod="Express")
    rest["packageDetail"]["orderItems"] = [
        {"orderItemId": order.items[0].order_item_id, "quantity": 1},
        {"orderItemId": order.items[1].order_item_id, "quantity": 1},
    ]
    assert_request(V0, "confirmShipment", rest)
    _confirm(client, auth, order.order_id, rest)
    assert state.order(order.order_id).status is FulfillmentStatus.SHIPPED
    response = client.get(
        f"{ORDERS}/{order.order_id}", params={"includedData": "PACKAGES,FULFILLMENT"}, headers=auth
    )
    assert_response("orders_2026-01-01", "getOrder", 200, response.json())
    shipped = response.json()["order"]
    assert shipped["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
    assert [p["packageReferenceId"] for p in shipped["packages"]] == ["1", "2"]
    assert shipped["packages"][1]["carrier"] == "Kurier Schmidt"
    assert shipped["packages"][0]["packageItems"] == [
        {"orderItemId": order.items[0].order_item_id, "quantity": 2}
    ]
    error = _confirm(client, auth, order.order_id, _body(order, "3", quantity=1), 400)
    assert "already been shipped" in error["message"]


def test_a_retried_confirmation_is_accepted_once(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str], order: Order
) -> None:
    body = _body(order, "1", quantity=1)
    _confirm(client, auth, order.order_id, body)
    _confirm(client, auth, order.order_id, body)
    assert order.items[0].shipped == 1 and len(order.packages) == 1
    body["packageDetail"]["trackingNumber"] = "OTHER"
    assert "already confirmed" in _confirm(client, auth, order.order_id, body, 400)["message"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["packageDetail"].update(carrierCode="Pigeon"), "carrierCode"),
        (lambda b: b["packageDetail"].update(carrierCode="Other"), "carrierName"),
        (lambda b: b["packageDetail"].update(packageReferenceId="A1"), "packageReferenceId"),
        (lambda b: b["packageDetail"].pop("trackingNumber"), "trackingNumber"),
        (lambda b: b["packageDetail"].update(shipDate="21/02/2022"), "shipDate"),
        (lambda b: b["packageDetail"]["orderItems"][0].update(quantity=4), "exceeds"),
        (lambda b: b["packageDetail"]["orderItems"][0].update(orderItemId="123"), "orderItemId"),
        (lambda b: b.update(marketplaceId=FR), "marketplaceId"),
        (lambda b: b.pop("marketplaceId"), "marketplaceId"),
    ],
)
def test_invalid_confirmations_are_400(
    client: TestClient, auth: dict[str, str], order: Order, change: Any, message: str
) -> None:
    body = _body(order)
    change(body)
    error = _confirm(client, auth, order.order_id, body, 400)
    assert error["code"] == "InvalidInput" and message in error["message"]
    assert not order.packages


def test_pending_and_cancelled_orders_cannot_ship(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    listed(state)
    pending = state.create_order(eu_seller(state), [("SKU-1", 1)])
    assert "pending" in _confirm(client, auth, pending.order_id, _body(pending), 400)["message"]
    state.cancel(pending.order_id)
    assert "cancelled" in _confirm(client, auth, pending.order_id, _body(pending), 400)["message"]
    assert pending.marketplace_id == DE


def test_unknown_order_is_404(client: TestClient, auth: dict[str, str], order: Order) -> None:
    _confirm(client, auth, "999-9999999-9999999", _body(order), 404)


def test_shipments_control_lists_packages(client: TestClient, auth: dict[str, str], order: Order) -> None:
    _confirm(client, auth, order.order_id, _body(order, "7", quantity=1))
    (entry,) = client.get("/_sandbox/shipments").json()
    assert entry["orderId"] == order.order_id and entry["status"] == "PARTIALLY_SHIPPED"
    assert entry["packages"][0]["trackingNumber"] == "TRK7"


@pytest.mark.parametrize(
    "field", ["carrierCode", "trackingNumber", "packageReferenceId", "carrierName", "shipDate"]
)
@pytest.mark.parametrize("junk", [[1], {"a": 1}, 5])
def test_wrongly_typed_fields_are_400(
    client: TestClient, auth: dict[str, str], order: Order, field: str, junk: Any
) -> None:
    body = _body(order)
    body["packageDetail"][field] = junk
    assert "packageDetail" in _confirm(client, auth, order.order_id, body, 400)["message"]
