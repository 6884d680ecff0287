"""Orders 2026-01-01 searchOrders / getOrder and the order lifecycle, validated against the model."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from amazon_sandbox_helpers import DE, FR, ORDERS, SINCE, eu_seller, listed
from amazon_sandbox_spec import assert_response
from starlette.testclient import TestClient

from tradelane.connectors.amazon.sandbox import AmazonSandboxState

MODEL = "orders_2026-01-01"


def _search(client: TestClient, auth: dict[str, str], status: int = 200, **params: Any) -> dict[str, Any]:
    response = client.get(ORDERS, params=params, headers=auth)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert_response(MODEL, "searchOrders", status, body)
    return body


def test_pending_order_has_no_buyer_or_address_until_paid(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    listed(state)
    order = state.create_order(eu_seller(state), [("SKU-1", 2), ("SKU-2", 1)])
    body = _search(client, auth, lastUpdatedAfter=SINCE, includedData="BUYER,RECIPIENT,FULFILLMENT,PROCEEDS")
    (found,) = body["orders"]
    assert found["orderId"] == order.order_id
    assert found["fulfillment"]["fulfillmentStatus"] == "PENDING"
    assert "buyer" not in found and "recipient" not in found
    assert [i["product"]["sellerSku"] for i in found["orderItems"]] == ["SKU-1", "SKU-2"]
    assert found["orderItems"][0]["product"]["price"]["unitPrice"] == {
        "amount": "11.00",
        "currencyCode": "EUR",
    }
    assert found["proceeds"]["grandTotal"] == {"amount": "34.00", "currencyCode": "EUR"}
    assert body["lastUpdatedBefore"]

    state.advance(30)
    state.pay(order.order_id)
    response = client.get(
        f"{ORDERS}/{order.order_id}", params={"includedData": "RECIPIENT,BUYER,FULFILLMENT"}, headers=auth
    )
    assert response.status_code == 200
    assert_response(MODEL, "getOrder", 200, response.json())
    paid = response.json()["order"]
    assert paid["fulfillment"]["fulfillmentStatus"] == "UNSHIPPED"
    assert paid["recipient"]["deliveryAddress"]["countryCode"] == "DE"
    assert paid["buyer"]["buyerName"]
    assert paid["lastUpdatedTime"] > paid["createdTime"]


def test_base_order_carries_only_base_fields(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    listed(state)
    order = state.create_order(eu_seller(state), [("SKU-1", 1)], paid=True)
    body = client.get(f"{ORDERS}/{order.order_id}", headers=auth).json()["order"]
    assert set(body) == {
        "orderId",
        "createdTime",
        "lastUpdatedTime",
        "programs",
        "salesChannel",
        "orderItems",
    }
    assert body["salesChannel"] == {
        "channelName": "AMAZON",
        "marketplaceId": DE,
        "marketplaceName": "Amazon.de",
    }


def ids(body: dict[str, Any]) -> list[str]:
    return [o["orderId"] for o in body["orders"]]


def test_search_filters_by_status_marketplace_and_time(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    listed(state)
    seller = eu_seller(state)
    state.add_offer(seller, "FR-1", next(iter(state.catalog)), Decimal("9.00"), 3, marketplace_id=FR)
    first = state.create_order(seller, [("SKU-1", 1)])
    state.advance(600)
    mark = state.now()
    second = state.create_order(seller, [("SKU-2", 1)], paid=True)
    french = state.create_order(seller, [("FR-1", 1)], marketplace_id=FR, paid=True)
    state.advance(600)
    assert ids(_search(client, auth, createdAfter=SINCE)) == [
        first.order_id,
        second.order_id,
        french.order_id,
    ]
    assert ids(_search(client, auth, createdAfter=mark.isoformat())) == [second.order_id, french.order_id]
    assert ids(_search(client, auth, lastUpdatedAfter=SINCE, fulfillmentStatuses="UNSHIPPED")) == [
        second.order_id,
        french.order_id,
    ]
    assert ids(_search(client, auth, lastUpdatedAfter=SINCE, marketplaceIds=FR)) == [french.order_id]
    state.pay(first.order_id)
    assert ids(_search(client, auth, lastUpdatedAfter=(state.now()).isoformat())) == [first.order_id]
    state.cancel(second.order_id)
    cancelled = _search(
        client, auth, lastUpdatedAfter=SINCE, fulfillmentStatuses="CANCELLED", includedData="FULFILLMENT"
    )
    assert ids(cancelled) == [second.order_id]
    assert cancelled["orders"][0]["fulfillment"]["fulfillmentStatus"] == "CANCELLED"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"createdAfter": SINCE, "lastUpdatedAfter": SINCE},
        {"createdAfter": SINCE, "lastUpdatedBefore": "2021-01-01T00:00:00Z"},
        {"lastUpdatedAfter": SINCE, "createdBefore": "2021-01-01T00:00:00Z"},
        {"lastUpdatedAfter": "yesterday"},
        {"lastUpdatedAfter": SINCE, "lastUpdatedBefore": "2019-01-01T00:00:00Z"},
        {"lastUpdatedAfter": SINCE, "maxResultsPerPage": "0"},
        {"lastUpdatedAfter": SINCE, "maxResultsPerPage": "101"},
        {"lastUpdatedAfter": SINCE, "fulfillmentStatuses": "Unshipped"},
        {"lastUpdatedAfter": SINCE, "includedData": "EVERYTHING"},
        {"paginationToken": "not-a-token"},
    ],
)
def test_search_rejects_what_amazon_rejects(
    client: TestClient, auth: dict[str, str], params: dict[str, str]
) -> None:
    body = _search(client, auth, 400, **params)
    assert body["errors"][0]["code"] == "InvalidInput"


def test_before_bound_must_be_two_minutes_old(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    now = state.now()
    recent = (now.replace(microsecond=0)).isoformat()
    _search(client, auth, 400, lastUpdatedAfter=SINCE, lastUpdatedBefore=recent)
    body = _search(client, auth, lastUpdatedAfter=SINCE, lastUpdatedBefore="2024-01-01T00:00:00Z")
    assert body["lastUpdatedBefore"] == "2024-01-01T00:00:00Z"


def test_pagination_walks_every_order_once(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    listed(state)
    made = [state.create_order(eu_seller(state), [("SKU-1", 1)], paid=True).order_id for _ in range(7)]
    seen: list[str] = []
    body = _search(client, auth, lastUpdatedAfter=SINCE, maxResultsPerPage="3")
    pages = 1
    while True:
        seen += [o["orderId"] for o in body["orders"]]
        token = body.get("pagination", {}).get("nextToken")
        if token is None:
            break
        body = _search(client, auth, paginationToken=token)
        pages += 1
    assert (seen, pages) == (made, 3)


def test_get_order_of_another_seller_or_unknown_is_404(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    response = client.get(f"{ORDERS}/028-0000000-0000000", headers=auth)
    assert response.status_code == 404
    assert_response(MODEL, "getOrder", 404, response.json())


def test_controls_refuse_impossible_transitions(state: AmazonSandboxState) -> None:
    listed(state)
    order = state.create_order(eu_seller(state), [("SKU-1", 1)])
    state.pay(order.order_id)
    with pytest.raises(ValueError, match="not PENDING"):
        state.pay(order.order_id)
    with pytest.raises(ValueError, match="no listing"):
        state.create_order(eu_seller(state), [("NOPE", 1)])


def test_control_endpoints_create_pay_and_cancel(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    listed(state)
    made = client.post(
        "/_sandbox/orders", json={"seller_id": eu_seller(state), "lines": [{"sku": "SKU-1", "quantity": 2}]}
    )
    assert made.status_code == 201 and made.json()["status"] == "PENDING"
    order_id = made.json()["orderId"]
    assert client.post(f"/_sandbox/orders/{order_id}/pay").json()["status"] == "UNSHIPPED"
    assert client.post(f"/_sandbox/orders/{order_id}/pay").status_code == 400
    assert (
        client.post(f"/_sandbox/orders/{order_id}/cancel", json={"reason": "NoInventory"}).json()["status"]
        == "CANCELLED"
    )
    assert client.get("/_sandbox/orders/nope").status_code == 404
    body = _search(client, auth, lastUpdatedAfter=SINCE, includedData="CANCELLATION")
    assert (
        body["orders"][0]["orderItems"][0]["cancellation"]["cancellationRequest"]["cancelReason"]
        == "NoInventory"
    )


def test_the_validator_catches_a_misspelt_field() -> None:
    """The strict model check these tests rely on fails on an undeclared property and a bad time."""
    from amazon_sandbox_spec import response_errors

    bad = {
        "orders": [
            {
                "orderId": "1",
                "createdTime": "yesterday",
                "lastUpdatedTime": "2025-01-01T00:00:00Z",
                "salesChannel": {"channelName": "AMAZON"},
                "orderItems": [],
                "orderStatus": "Unshipped",
            }
        ]
    }
    errors = response_errors(MODEL, "searchOrders", 200, bad)
    assert any("orderStatus" in e for e in errors) and any("date-time" in e for e in errors)


@pytest.mark.parametrize(
    "forged",
    [
        {
            "by": "created",
            "after": "2020-01-01T00:00:00",
            "before": "2030-01-01T00:00:00+00:00",
            "n": 10,
            "o": 0,
        },
        {
            "by": "updated",
            "after": "2020-01-01T00:00:00+00:00",
            "before": "2030-01-01T00:00:00+00:00",
            "n": 0,
            "o": 0,
        },
        {
            "by": "whenever",
            "after": "2020-01-01T00:00:00+00:00",
            "before": "2030-01-01T00:00:00+00:00",
            "n": 5,
            "o": 0,
        },
        {
            "by": "updated",
            "after": "2020-01-01T00:00:00+00:00",
            "before": "2030-01-01T00:00:00+00:00",
            "n": 5,
            "o": -5,
        },
    ],
)
def test_forged_pagination_tokens_are_400(
    client: TestClient, auth: dict[str, str], forged: dict[str, Any]
) -> None:
    import base64
    import json

    raw = json.dumps({**forged, "st": [], "mp": [DE], "fb": []}).encode()
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    _search(client, auth, 400, paginationToken=token)
