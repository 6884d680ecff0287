"""Published usage plans as token buckets (429 QuotaExceeded), injected faults and route overrides."""

from __future__ import annotations

from typing import Any

import pytest
from amazon_sandbox_helpers import DE, ORDERS, SINCE, eu_seller, listed, token
from amazon_sandbox_spec import assert_response
from starlette.testclient import TestClient

from tradelane.connectors.amazon.sandbox import PUBLISHED_PLANS, AmazonSandboxState, create_app

MODEL = "orders_2026-01-01"


@pytest.fixture
def published() -> AmazonSandboxState:
    return AmazonSandboxState(3, rate_limits="published")


def test_published_plans_are_the_models(published: AmazonSandboxState) -> None:
    plans = {op: (p.header(), p.burst) for op, p in PUBLISHED_PLANS.items()}
    assert plans["searchOrders"] == ("0.0056", 20)
    assert plans["getOrder"] == ("0.5", 30)
    assert plans["confirmShipment"] == ("2", 10)
    assert plans["createFeed"] == ("0.0083", 15)
    assert plans["patchListingsItem"] == ("5", 5) and plans["putListingsItem"] == ("5", 10)


def test_search_orders_bursts_20_then_throttles_until_refilled(published: AmazonSandboxState) -> None:
    with TestClient(create_app(published)) as client:
        auth = token(client, published)
        statuses = [client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth) for _ in range(21)]
        assert [r.status_code for r in statuses] == [200] * 20 + [429]
        throttled = statuses[-1]
        assert throttled.headers["x-amzn-RateLimit-Limit"] == "0.0056"
        assert throttled.json()["errors"][0]["code"] == "QuotaExceeded"
        assert_response(MODEL, "searchOrders", 429, throttled.json())
        published.advance(170)
        assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 429
        published.advance(10)  # one token per 1 / 0.0056 = 178.6 s
        assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 200
        assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 429


def test_buckets_are_per_operation(published: AmazonSandboxState) -> None:
    with TestClient(create_app(published)) as client:
        auth = token(client, published)
        seller = eu_seller(published)
        url = f"/listings/2021-08-01/items/{seller}/NOPE"
        codes = [client.get(url, params={"marketplaceIds": DE}, headers=auth).status_code for _ in range(11)]
        assert codes == [404] * 10 + [429]
        assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 200
        published.advance(0.2)
        assert client.get(url, params={"marketplaceIds": DE}, headers=auth).status_code == 404
        assert (
            client.put("/_sandbox/rate-limits", json={"mode": "generous"}).json()["plans"]["searchOrders"]
            == "1000"
        )


def _fault(client: TestClient, **body: Any) -> None:
    response = client.post("/_sandbox/faults", json=body)
    assert response.status_code == 200, response.text


def test_injected_throttle_and_server_errors(client: TestClient, auth: dict[str, str]) -> None:
    _fault(client, operation="searchOrders", kind="throttle")
    _fault(client, operation="searchOrders", kind="server_error", status=503)
    first = client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth)
    assert first.status_code == 429 and first.headers["x-amzn-RateLimit-Limit"]
    second = client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth)
    assert second.status_code == 503
    assert_response(MODEL, "searchOrders", 503, second.json())
    assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 200
    assert (
        client.post("/_sandbox/faults", json={"operation": "getOrder", "kind": "duplicate_page"}).status_code
        == 400
    )
    assert client.post("/_sandbox/faults", json={"kind": "nonsense"}).status_code == 400


def test_injected_throttle_may_carry_retry_after(client: TestClient, auth: dict[str, str]) -> None:
    _fault(client, operation="searchOrders", kind="throttle", retry_after=45)
    _fault(client, operation="searchOrders", kind="throttle")
    first = client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth)
    assert first.status_code == 429 and first.headers["Retry-After"] == "45"
    assert_response(MODEL, "searchOrders", 429, first.json())
    second = client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth)
    assert second.status_code == 429 and "Retry-After" not in second.headers  # Amazon's own 429
    for bad in ({"kind": "server_error", "retry_after": 5}, {"kind": "throttle", "retry_after": -1}):
        assert client.post("/_sandbox/faults", json={"operation": "searchOrders", **bad}).status_code == 400


def test_garbage_and_truncated_bodies(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    listed(state)
    state.create_order(eu_seller(state), [("SKU-1", 1)], paid=True)
    _fault(client, operation="searchOrders", kind="garbage")
    _fault(client, operation="searchOrders", kind="truncated")
    garbage = client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth)
    assert garbage.status_code == 200
    with pytest.raises(ValueError):
        garbage.json()
    truncated = client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth)
    assert truncated.status_code == 200 and truncated.content.startswith(b'{"orders":[{')
    with pytest.raises(ValueError):
        truncated.json()
    assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).json()["orders"]


def test_duplicate_page_repeats_a_page_but_loses_nothing(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    listed(state)
    made = [state.create_order(eu_seller(state), [("SKU-1", 1)], paid=True).order_id for _ in range(4)]
    first = client.get(
        ORDERS, params={"lastUpdatedAfter": SINCE, "maxResultsPerPage": "2"}, headers=auth
    ).json()
    _fault(client, operation="searchOrders", kind="duplicate_page")
    token_ = first["pagination"]["nextToken"]
    again = client.get(ORDERS, params={"paginationToken": token_}, headers=auth).json()
    assert [o["orderId"] for o in again["orders"]] == made[:2]
    following = client.get(
        ORDERS, params={"paginationToken": again["pagination"]["nextToken"]}, headers=auth
    ).json()
    assert [o["orderId"] for o in following["orders"]] == made[2:]


def test_routes_switched_off_or_forbidden(client: TestClient, auth: dict[str, str]) -> None:
    assert client.put("/_sandbox/routes/confirmShipment", json={"mode": "off"}).status_code == 200
    url = "/orders/v0/orders/111-1111111-1111111/shipmentConfirmation"
    off = client.post(url, json={}, headers=auth)
    assert off.status_code == 404 and off.json()["errors"][0]["code"] == "NotFound"
    client.put("/_sandbox/routes/searchOrders", json={"mode": "forbidden"})
    assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 403
    client.put("/_sandbox/routes/searchOrders", json={"mode": "status", "status": 500})
    assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 500
    client.delete("/_sandbox/routes/searchOrders")
    assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 200
    assert client.put("/_sandbox/routes/searchOrders", json={"mode": "status"}).status_code == 400


def test_unknown_paths_and_methods(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get("/orders/v0/orders", headers=auth).status_code == 404
    assert client.post(ORDERS, json={}, headers=auth).status_code == 405


def test_request_log_records_operations(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth)
    log = client.get("/_sandbox/requests").json()
    assert [r["operation"] for r in log] == ["lwaToken", "searchOrders"]
    assert log[1]["sellerId"] == eu_seller(state) and log[1]["status"] == 200
    assert len(state.calls("searchOrders")) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_sandbox/faults", {"operation": "searchOrders", "kind": "server_error", "status": "500"}),
        ("/_sandbox/faults", {"operation": "searchOrders", "kind": "throttle", "count": [1]}),
        ("/_sandbox/faults", {"operation": "searchOrders", "kind": "throttle", "retry_after": "soon"}),
        ("/_sandbox/orders", {"lines": [{"sku": "SKU-1", "quantity": "many"}]}),
        ("/_sandbox/clock/advance", {"seconds": -5}),
    ],
)
def test_control_endpoints_answer_400_to_bad_input(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400 and response.json()["error"]
