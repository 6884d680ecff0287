"""The sandbox's customer cancellation control (``SandboxState.cancel_by_customer``): what OR11 then
shows matches the spec, lines cancelled one by one leave the order SHIPPING until none is left, stock
comes back, and an order that shipped (or a line it does not have) cannot be cancelled."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SHOP_ID, accept_all, seed_offers
from mirakl_sandbox_spec import assert_response

from tradelane.connectors.mirakl.sandbox import OrderLineSpec, OrderState, SandboxState


def _shipping_order(client: TestClient, auth: dict[str, str], state: SandboxState) -> str:
    if not state.offers:
        seed_offers(state, 2, quantity=5)
    order_id = state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 2), OrderLineSpec("OFFER-2", 1)])
    accept_all(client, auth, order_id, state)
    state.advance(state.config.payment_delay.total_seconds())
    assert state.order(order_id).state is OrderState.SHIPPING
    return order_id


def _or11(client: TestClient, auth: dict[str, str], order_id: str) -> dict:
    response = client.get("/api/orders", params={"order_ids": order_id}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_response("OR11", 200, body)
    [order] = body["orders"]
    return order


def test_lines_cancelled_by_the_customer_then_the_whole_order(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    order_id = _shipping_order(client, auth, state)
    before = _or11(client, auth, order_id)["last_updated_date"]
    state.advance(60)
    state.cancel_by_customer(order_id, [f"{order_id}-1"])

    order = _or11(client, auth, order_id)
    assert order["order_state"] == "SHIPPING" and order["last_updated_date"] > before
    first, second = order["order_lines"]
    assert first["order_line_state"] == "CANCELED" and second["order_line_state"] == "SHIPPING"
    [cancelation] = first["cancelations"]
    assert cancelation["reason_code"] == "CANCEL_CUSTOMER_REQUEST" and cancelation["quantity"] == 2
    assert Decimal(str(cancelation["amount"])) == Decimal("22.00")
    assert state.offer(SHOP_ID, "OFFER-1").quantity == 5  # reserved stock given back
    assert state.offer(SHOP_ID, "OFFER-2").quantity == 4

    state.advance(60)
    state.cancel_by_customer(order_id, [f"{order_id}-2"])
    order = _or11(client, auth, order_id)
    assert order["order_state"] == "CANCELED"
    assert [ln["order_line_state"] for ln in order["order_lines"]] == ["CANCELED", "CANCELED"]
    assert state.offer(SHOP_ID, "OFFER-2").quantity == 5
    with pytest.raises(ValueError, match="cannot be canceled"):
        state.cancel_by_customer(order_id)


def test_a_whole_order_and_the_refusals(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    order_id = _shipping_order(client, auth, state)
    with pytest.raises(ValueError, match="No active line"):
        state.cancel_by_customer(order_id, [f"{order_id}-9"])
    state.cancel_by_customer(order_id)
    assert _or11(client, auth, order_id)["order_state"] == "CANCELED"

    shipped = _shipping_order(client, auth, state)
    assert client.put(f"/api/orders/{shipped}/ship", headers=auth).status_code == 204
    state.advance(timedelta(minutes=1).total_seconds())
    with pytest.raises(ValueError, match="cannot be canceled by the customer in state SHIPPED"):
        state.cancel_by_customer(shipped)
