"""Orders: the seller-view state machine (OR21 / OR23 / OR24 / OR28 / OR29), OR11 filters and paging,
payment delay, acceptance deadline, multi-currency orders with customer messages."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SHOP_ID, accept_all, get_order, seed_offers
from mirakl_sandbox_spec import assert_request, assert_response

from tradelane.connectors.mirakl.sandbox import OrderLineSpec, OrderState, SandboxState


def _order(state: SandboxState, *lines: tuple[str, int], **kwargs: Any) -> str:
    return state.create_order(SHOP_ID, [OrderLineSpec(sku, qty) for sku, qty in lines], **kwargs)


def _list(client: TestClient, auth: dict[str, str], **params: str | int) -> dict[str, Any]:
    response = client.get("/api/orders", params=params, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_response("OR11", 200, body)
    return body


def _to_shipping(client: TestClient, auth: dict[str, str], state: SandboxState, order_id: str) -> None:
    accept_all(client, auth, order_id, state)
    state.advance(state.config.payment_delay.total_seconds())
    assert state.order(order_id).state is OrderState.SHIPPING


def test_new_order_awaits_acceptance_without_addresses(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 2, quantity=5)
    order_id = _order(state, ("OFFER-1", 2), ("OFFER-2", 1))
    body = _list(client, auth)
    [order] = body["orders"]
    assert order["order_id"] == order_id
    assert order["order_state"] == "WAITING_ACCEPTANCE"
    assert order["customer"]["shipping_address"] is None
    assert order["customer"]["billing_address"] is None
    assert [line["order_line_state"] for line in order["order_lines"]] == ["WAITING_ACCEPTANCE"] * 2
    assert Decimal(str(order["price"])) == Decimal("11.00") * 2 + Decimal("12.00")
    # Ordered quantities are reserved on the offers.
    offer = state.offer(SHOP_ID, "OFFER-1")
    assert offer is not None and offer.quantity == 3


def test_acceptance_then_payment_delay_reaches_shipping_with_addresses(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1)
    order_id = _order(state, ("OFFER-1", 1))
    lines = [{"id": f"{order_id}-1", "accepted": True}]
    assert_request("OR21", {"order_lines": lines})
    assert (
        client.put(f"/api/orders/{order_id}/accept", json={"order_lines": lines}, headers=auth).status_code
        == 204
    )
    order = get_order(client, auth, order_id)
    assert order["order_state"] == "WAITING_DEBIT"
    assert order["acceptance_decision_date"] == order["last_updated_date"]
    assert order["customer"]["shipping_address"] is None

    delay = state.config.payment_delay.total_seconds()
    state.advance(delay / 2)
    assert get_order(client, auth, order_id)["order_state"] == "WAITING_DEBIT_PAYMENT"
    state.advance(delay / 2 - 1)
    assert get_order(client, auth, order_id)["order_state"] == "WAITING_DEBIT_PAYMENT"
    state.advance(1)
    shipping = get_order(client, auth, order_id)
    assert shipping["order_state"] == "SHIPPING"
    assert shipping["can_shop_ship"] is True
    assert shipping["customer"]["shipping_address"]["city"]
    assert shipping["customer"]["billing_address"]["lastname"]
    assert shipping["customer_debited_date"] == shipping["last_updated_date"]


def test_or21_is_refused_a_second_time_and_needs_every_line(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 2)
    order_id = _order(state, ("OFFER-1", 1), ("OFFER-2", 1))
    url = f"/api/orders/{order_id}/accept"
    partial = client.put(url, json={"order_lines": [{"id": f"{order_id}-1", "accepted": True}]}, headers=auth)
    assert partial.status_code == 400
    assert partial.json()["code"] == "ORDER_LINE_ACCEPTANCE_DECISION_MISSING"
    dup = [{"id": f"{order_id}-1", "accepted": True}, {"id": f"{order_id}-1", "accepted": True}]
    assert (
        client.put(url, json={"order_lines": dup}, headers=auth).json()["code"] == "ORDER_LINE_DUPLICATE_ID"
    )
    unknown = [{"id": "nope", "accepted": True}]
    assert (
        client.put(url, json={"order_lines": unknown}, headers=auth).json()["code"] == "ORDER_LINE_NOT_FOUND"
    )
    assert (
        client.put(url, json={"order_lines": [None]}, headers=auth).json()["code"]
        == "ORDER_LINE_NULL_ELEMENT"
    )
    assert client.put(url, json={}, headers=auth).status_code == 400
    missing = client.put("/api/orders/999-A/accept", json={"order_lines": []}, headers=auth)
    assert (missing.status_code, missing.json()["code"]) == (404, "ORDER_NOT_FOUND")

    accept_all(client, auth, order_id, state)
    again = client.put(
        url,
        json={
            "order_lines": [
                {"id": f"{order_id}-1", "accepted": True},
                {"id": f"{order_id}-2", "accepted": True},
            ]
        },
        headers=auth,
    )
    assert again.status_code == 400
    assert again.json() == {"status": 400, "message": again.json()["message"], "code": "ORDER_INVALID_STATE"}


def test_refusing_every_line_refuses_the_order_and_frees_stock(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 2, quantity=4)
    order_id = _order(state, ("OFFER-1", 3), ("OFFER-2", 1))
    lines = [{"id": f"{order_id}-1", "accepted": False}, {"id": f"{order_id}-2", "accepted": False}]
    assert (
        client.put(f"/api/orders/{order_id}/accept", json={"order_lines": lines}, headers=auth).status_code
        == 204
    )
    order = get_order(client, auth, order_id)
    assert order["order_state"] == "REFUSED"
    assert {line["order_line_state"] for line in order["order_lines"]} == {"REFUSED"}
    assert [o.quantity for o in state.offers] == [4, 4]


def test_partial_acceptance_keeps_the_accepted_line(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 2, quantity=4)
    order_id = _order(state, ("OFFER-1", 1), ("OFFER-2", 2))
    lines = [{"id": f"{order_id}-1", "accepted": True}, {"id": f"{order_id}-2", "accepted": False}]
    assert (
        client.put(f"/api/orders/{order_id}/accept", json={"order_lines": lines}, headers=auth).status_code
        == 204
    )
    order = get_order(client, auth, order_id)
    assert order["order_state"] == "WAITING_DEBIT"
    assert [line["order_line_state"] for line in order["order_lines"]] == ["WAITING_DEBIT", "REFUSED"]
    state.shops[SHOP_ID].partial_acceptance = False
    other = _order(state, ("OFFER-1", 1), ("OFFER-2", 1))
    mixed = [{"id": f"{other}-1", "accepted": True}, {"id": f"{other}-2", "accepted": False}]
    refused = client.put(f"/api/orders/{other}/accept", json={"order_lines": mixed}, headers=auth)
    assert refused.json()["code"] == "ORDER_PARTIAL_ACCEPTANCE_DISABLED"


def test_unaccepted_order_is_canceled_at_its_deadline(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1, quantity=2)
    deadline = state.now() + timedelta(hours=2)
    order_id = _order(state, ("OFFER-1", 2), acceptance_deadline=deadline)
    state.advance(2 * 3600 - 1)
    assert get_order(client, auth, order_id)["order_state"] == "WAITING_ACCEPTANCE"
    state.advance(3600)
    order = get_order(client, auth, order_id)
    assert order["order_state"] == "CANCELED"
    assert order["order_state_reason_code"]
    assert order["last_updated_date"] == deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "acceptance_decision_date" not in order
    assert state.offers[0].quantity == 2
    lines = [{"id": f"{order_id}-1", "accepted": True}]
    late = client.put(f"/api/orders/{order_id}/accept", json={"order_lines": lines}, headers=auth)
    assert late.json()["code"] == "ORDER_INVALID_STATE"


def test_ship_is_refused_before_shipping_and_works_after(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1)
    order_id = _order(state, ("OFFER-1", 1))
    early = client.put(f"/api/orders/{order_id}/ship", headers=auth)
    assert early.status_code == 400
    assert early.json()["status"] == 400
    accept_all(client, auth, order_id, state)
    assert client.put(f"/api/orders/{order_id}/ship", headers=auth).status_code == 400
    assert (
        client.put(f"/api/orders/{order_id}/tracking", json={"carrier_code": "UPS"}, headers=auth).status_code
        == 400
    )
    state.advance(state.config.payment_delay.total_seconds())
    tracking = {"carrier_code": "UPS", "tracking_number": "1Z999"}
    assert_request("OR23", tracking)
    assert client.put(f"/api/orders/{order_id}/tracking", json=tracking, headers=auth).status_code == 204
    assert client.put(f"/api/orders/{order_id}/ship", headers=auth).status_code == 204
    order = get_order(client, auth, order_id)
    assert order["order_state"] == "SHIPPED"
    assert order["shipping_carrier_code"] == "UPS"
    assert order["shipping_tracking"] == "1Z999"
    assert "1Z999" in order["shipping_tracking_url"]
    assert order["order_lines"][0]["shipped_date"]
    assert client.put(f"/api/orders/{order_id}/ship", headers=auth).status_code == 400


def test_tracking_validation(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    seed_offers(state, 1)
    order_id = _order(state, ("OFFER-1", 1))
    _to_shipping(client, auth, state, order_id)
    url = f"/api/orders/{order_id}/tracking"
    assert (
        client.put(url, json={"carrier_code": "NOPE", "tracking_number": "1"}, headers=auth).status_code
        == 400
    )
    assert client.put(url, json={"carrier_code": "DHL"}, headers=auth).status_code == 400  # number required
    assert (
        client.put(url, json={"tracking_number": "1"}, headers=auth).status_code == 400
    )  # no carrier at all
    free = {
        "carrier_name": "Bike courier",
        "carrier_url": "https://courier.example/t/42",
        "tracking_number": "42",
    }
    assert client.put(url, json=free, headers=auth).status_code == 204
    order = get_order(client, auth, order_id)
    assert order["shipping_company"] == "Bike courier"
    assert order["shipping_tracking_url"] == "https://courier.example/t/42"
    assert "shipping_carrier_code" not in order


def test_cancel_whole_order_in_shipping(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1, quantity=3)
    order_id = _order(state, ("OFFER-1", 2))
    assert client.put(f"/api/orders/{order_id}/cancel", headers=auth).status_code == 400
    _to_shipping(client, auth, state, order_id)
    assert get_order(client, auth, order_id)["can_cancel"] is True
    assert client.put(f"/api/orders/{order_id}/cancel", headers=auth).status_code == 204
    order = get_order(client, auth, order_id)
    assert order["order_state"] == "CANCELED"
    [line] = order["order_lines"]
    assert line["order_line_state"] == "CANCELED"
    assert Decimal(str(line["cancelations"][0]["amount"])) == Decimal("22.00")
    assert state.offers[0].quantity == 3
    assert client.put(f"/api/orders/{order_id}/cancel", headers=auth).status_code == 400


def test_refunds_after_shipment(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    seed_offers(state, 1)
    order_id = _order(state, ("OFFER-1", 2))
    _to_shipping(client, auth, state, order_id)
    line_id = f"{order_id}-1"
    refund = {
        "refunds": [
            {
                "order_line_id": line_id,
                "amount": 5,
                "shipping_amount": 0,
                "reason_code": "REFUND_GOODWILL",
                "quantity": 1,
            }
        ]
    }
    assert_request("OR28", refund)
    assert client.put("/api/orders/refund", json=refund, headers=auth).status_code == 400  # not shipped yet
    assert client.put(f"/api/orders/{order_id}/ship", headers=auth).status_code == 204
    response = client.put("/api/orders/refund", json=refund, headers=auth)
    assert response.status_code == 200, response.text
    assert_response("OR28", 200, response.json())
    [created] = response.json()["refunds"]
    assert created["order_line_id"] == line_id
    assert Decimal(str(created["amount"])) == Decimal(5)

    [line] = get_order(client, auth, order_id)["order_lines"]
    assert line["refunds"][0]["refund_state"] == "WAITING_REFUND"
    assert line["can_refund"] is False
    state.advance(state.config.refund_delay.total_seconds())
    assert get_order(client, auth, order_id)["order_lines"][0]["refunds"][0]["refund_state"] == "REFUNDED"

    too_much = {
        "refunds": [
            {"order_line_id": line_id, "amount": 100, "shipping_amount": 0, "reason_code": "REFUND_GOODWILL"}
        ]
    }
    assert client.put("/api/orders/refund", json=too_much, headers=auth).status_code == 400
    bad_reason = {
        "refunds": [{"order_line_id": line_id, "amount": 1, "shipping_amount": 0, "reason_code": "WHIM"}]
    }
    assert client.put("/api/orders/refund", json=bad_reason, headers=auth).status_code == 400
    missing = {"refunds": [{"order_line_id": line_id, "amount": 1, "reason_code": "REFUND_GOODWILL"}]}
    assert client.put("/api/orders/refund", json=missing, headers=auth).status_code == 400
    rest = {
        "refunds": [
            {
                "order_line_id": line_id,
                "amount": "17.00",
                "shipping_amount": 0,
                "reason_code": "REFUND_GOODWILL",
            }
        ]
    }
    assert client.put("/api/orders/refund", json=rest, headers=auth).status_code == 200
    order = get_order(client, auth, order_id)
    assert order["fully_refunded"] is True
    assert order["order_lines"][0]["order_line_state"] == "REFUNDED"


def test_multi_currency_orders_with_customer_messages(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 2)
    eur = _order(
        state,
        ("OFFER-1", 1),
        customer_message="Please gift wrap it",
        additional_fields={"gift-message": "Happy birthday!"},
    )
    gbp = state.create_order(
        SHOP_ID,
        [OrderLineSpec("OFFER-2", 2, unit_price=Decimal("9.99"), additional_fields={"engraving": "A&B"})],
        currency="GBP",
    )
    orders = {o["order_id"]: o for o in _list(client, auth)["orders"]}
    assert orders[eur]["currency_iso_code"] == "EUR"
    assert orders[gbp]["currency_iso_code"] == "GBP"
    assert Decimal(str(orders[gbp]["price"])) == Decimal("19.98")
    assert orders[eur]["has_customer_message"] is True
    assert orders[gbp]["has_customer_message"] is False
    assert orders[eur]["order_additional_fields"] == [
        {"code": "gift-message", "type": "STRING", "value": "Happy birthday!"}
    ]
    assert orders[gbp]["order_lines"][0]["order_line_additional_fields"][0]["value"] == "A&B"

    messages = client.get("/api/messages", headers=auth).json()
    assert_response("M01", 200, messages)
    assert [(m["order_id"], m["body"], m["from_type"]) for m in messages["messages"]] == [
        (eur, "Please gift wrap it", "CUSTOMER")
    ]
    assert client.get("/api/messages", params={"order_id": gbp}, headers=auth).json()["total_count"] == 0
    with pytest.raises(ValueError, match="unit_price"):
        state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 1)], currency="GBP")


def test_refund_of_a_foreign_currency_order_needs_its_currency(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1)
    order_id = state.create_order(
        SHOP_ID, [OrderLineSpec("OFFER-1", 1, unit_price=Decimal("9.00"))], currency="GBP"
    )
    _to_shipping(client, auth, state, order_id)
    client.put(f"/api/orders/{order_id}/ship", headers=auth)
    entry = {
        "order_line_id": f"{order_id}-1",
        "amount": 1,
        "shipping_amount": 0,
        "reason_code": "REFUND_GOODWILL",
    }
    assert client.put("/api/orders/refund", json={"refunds": [entry]}, headers=auth).status_code == 400
    wrong = {**entry, "currency_iso_code": "EUR"}
    assert client.put("/api/orders/refund", json={"refunds": [wrong]}, headers=auth).status_code == 400
    right = {**entry, "currency_iso_code": "GBP"}
    response = client.put("/api/orders/refund", json={"refunds": [right]}, headers=auth)
    assert response.status_code == 200
    assert response.json()["refunds"][0]["currency_iso_code"] == "GBP"


def test_or11_filters_sorting_and_update_dates(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1, quantity=50)
    ids = []
    for _ in range(3):
        ids.append(_order(state, ("OFFER-1", 1)))
        state.advance(600)
    assert [o["order_id"] for o in _list(client, auth)["orders"]] == ids
    assert [o["order_id"] for o in _list(client, auth, order="desc")["orders"]] == ids[::-1]
    assert client.get("/api/orders", params={"sort": "price"}, headers=auth).status_code == 400

    accept_all(client, auth, ids[0], state)
    since = state.now()
    state.advance(3600)
    accept_all(client, auth, ids[1], state)
    changed = _list(client, auth, start_update_date=since.isoformat())
    # ids[0] reached SHIPPING (payment delay) after `since`; ids[1] was accepted after it.
    assert {o["order_id"] for o in changed["orders"]} == {ids[0], ids[1]}
    assert changed["total_count"] == 2
    waiting = _list(client, auth, order_state_codes="WAITING_ACCEPTANCE")
    assert [o["order_id"] for o in waiting["orders"]] == [ids[2]]
    both = _list(client, auth, order_state_codes="WAITING_ACCEPTANCE,WAITING_DEBIT")
    assert {o["order_id"] for o in both["orders"]} == {ids[1], ids[2]}
    assert _list(client, auth, order_ids=f"{ids[0]},{ids[2]}")["total_count"] == 2
    assert client.get("/api/orders", params={"order_state_codes": "SHIPING"}, headers=auth).status_code == 400
    assert (
        client.get("/api/orders", params={"start_update_date": "yesterday"}, headers=auth).status_code == 400
    )
    naive = client.get("/api/orders", params={"start_update_date": "2025-01-06T09:00:00"}, headers=auth)
    assert naive.status_code == 400
    excluded = _list(client, auth, order_tax_mode="TAX_EXCLUDED")["orders"]
    assert {o["order_tax_mode"] for o in excluded} == {"TAX_EXCLUDED"}
    assert client.get("/api/orders", params={"order_tax_mode": "NET"}, headers=auth).status_code == 400
    assert _list(client, auth, payment_workflow="PAY_ON_DELIVERY")["total_count"] == 0
    too_many = ",".join(f"{i}-A" for i in range(101))
    assert client.get("/api/orders", params={"order_ids": too_many}, headers=auth).status_code == 400


def test_or11_start_update_date_looks_back_by_the_documented_delta(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1)
    order_id = _order(state, ("OFFER-1", 1))
    slack = state.config.update_date_slack
    state.advance(slack.total_seconds() / 2)
    assert _list(client, auth, start_update_date=state.now().isoformat())["orders"][0]["order_id"] == order_id
    state.advance(slack.total_seconds())
    assert _list(client, auth, start_update_date=state.now().isoformat())["total_count"] == 0


def test_or11_paging(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    seed_offers(state, 1, quantity=30)
    ids = []
    for _ in range(12):
        ids.append(_order(state, ("OFFER-1", 1)))
        state.advance(1)
    pages = [_list(client, auth, max=5, offset=offset) for offset in (0, 5, 10)]
    assert [o["order_id"] for page in pages for o in page["orders"]] == ids
    assert {page["total_count"] for page in pages} == {12}
    assert len(_list(client, auth)["orders"]) == 10
    assert client.get("/api/orders", params={"max": 101}, headers=auth).status_code == 400
    assert len(_list(client, auth, paginate="false")["orders"]) == 12


def test_operator_side_transitions_after_shipment(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1)
    order_id = _order(state, ("OFFER-1", 1))
    _to_shipping(client, auth, state, order_id)
    with pytest.raises(ValueError):
        state.transition_order(order_id, "RECEIVED")
    client.put(f"/api/orders/{order_id}/ship", headers=auth)
    state.transition_order(order_id, OrderState.RECEIVED)
    order = get_order(client, auth, order_id)
    assert order["order_state"] == "RECEIVED"
    assert order["order_lines"][0]["received_date"]
    state.transition_order(order_id, "CLOSED")
    assert get_order(client, auth, order_id)["order_state"] == "CLOSED"


def test_payment_refused_cancels_the_order(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1, quantity=1)
    order_id = _order(state, ("OFFER-1", 1), payment_refused=True)
    accept_all(client, auth, order_id, state)
    state.advance(state.config.payment_delay.total_seconds())
    order = get_order(client, auth, order_id)
    assert (order["order_state"], order["order_state_reason_code"]) == ("CANCELED", "PAYMENT_REFUSED")
    assert order["customer"]["shipping_address"] is None
    assert state.offers[0].quantity == 1


def test_orders_of_another_shop_are_invisible(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    from tradelane.connectors.mirakl.sandbox import Shop

    state.add_shop(Shop(3000, "Other", "other-key"))
    product = next(iter(state.catalog.values()))
    state.add_offer(3000, "THEIRS", product.sku, Decimal("5.00"), 3)
    theirs = state.create_order(3000, [OrderLineSpec("THEIRS", 1)])
    assert _list(client, auth)["total_count"] == 0
    assert client.put(f"/api/orders/{theirs}/ship", headers=auth).status_code == 404


def test_factory_refuses_impossible_orders(state: SandboxState) -> None:
    seed_offers(state, 1, quantity=2)
    with pytest.raises(ValueError, match="stock"):
        state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 3)])
    with pytest.raises(ValueError, match="no offer"):
        state.create_order(SHOP_ID, [OrderLineSpec("MISSING", 1)])
    with pytest.raises(ValueError):
        state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 1, unit_price=Decimal("1.001"))])
    order_id = state.create_order(SHOP_ID, [{"offer_sku": "OFFER-1", "quantity": 2, "unit_price": "3.50"}])
    assert state.order(order_id).lines[0].unit_price == Decimal("3.50")
