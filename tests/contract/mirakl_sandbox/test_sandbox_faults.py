"""Rate limits (429 + Retry-After on the sandbox clock), the request log, and every injectable fault."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal

import httpx
import pytest
from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SHOP_ID, seed_offers

from tradelane.connectors.mirakl.sandbox import (
    FaultKind,
    OrderLineSpec,
    SandboxServer,
    SandboxState,
    create_app,
)


def test_default_budgets_follow_the_published_guidance() -> None:
    state = SandboxState(1)  # rate_limits=None: MANIFEST guidance
    client = TestClient(create_app(state))
    auth = {"Authorization": state.shops[SHOP_ID].api_key}
    assert client.get("/api/orders", headers=auth).status_code == 200
    second = client.get("/api/orders", headers=auth)
    assert second.status_code == 429
    assert second.json()["status"] == 429
    assert int(second.headers["Retry-After"]) == 60
    assert client.get("/api/account", headers=auth).status_code == 200  # A01 has no budget


def test_429_above_the_rate_then_allowed_after_retry_after(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    state.set_rate_limit("OR11", 2, 60)
    assert [client.get("/api/orders", headers=auth).status_code for _ in range(2)] == [200, 200]
    state.advance(20)
    refused = client.get("/api/orders", headers=auth)
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert wait == 40
    state.advance(wait - 1)
    assert client.get("/api/orders", headers=auth).status_code == 429
    state.advance(1)
    assert client.get("/api/orders", headers=auth).status_code == 200


def test_request_log_shows_no_admitted_call_above_the_rate(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    state.set_rate_limit("OR11", 1, 60)
    for _ in range(5):
        client.get("/api/orders", headers=auth)
        state.advance(25)
    calls = state.calls("OR11")
    assert [c.status for c in calls] == [200, 429, 429, 200, 429]
    admitted = [c.at for c in calls if c.status == 200]
    assert all((b - a).total_seconds() >= 60 for a, b in itertools.pairwise(admitted))
    assert {(c.method, c.path, c.shop_id) for c in calls} == {("GET", "/api/orders", SHOP_ID)}


def test_server_error_fault(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    state.inject("OR11", FaultKind.SERVER_ERROR, count=2, status=503)
    assert [client.get("/api/orders", headers=auth).status_code for _ in range(3)] == [503, 503, 200]
    assert client.get("/api/account", headers=auth).status_code == 200
    assert [r.fault for r in state.calls("OR11")] == [FaultKind.SERVER_ERROR, FaultKind.SERVER_ERROR, None]


def test_rate_limit_fault_carries_retry_after(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    state.inject("OF21", "rate_limit", retry_after=17)
    response = client.get("/api/offers", headers=auth)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "17")


def test_html_error_page_fault(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    state.inject("*", "html_error")
    response = client.get("/api/account", headers=auth)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_truncated_json_fault(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    state.inject("A01", "truncated_json")
    response = client.get("/api/account", headers=auth)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert client.get("/api/account", headers=auth).json()["shop_id"] == SHOP_ID


def test_duplicate_page_fault_serves_the_previous_page_again(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1, quantity=20)
    for _ in range(6):
        state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 1)])
        state.advance(1)
    first = client.get("/api/orders", params={"max": 3}, headers=auth).json()
    state.inject("OR11", "duplicate_page")
    second = client.get("/api/orders", params={"max": 3, "offset": 3}, headers=auth).json()
    assert [o["order_id"] for o in second["orders"]] == [o["order_id"] for o in first["orders"]]
    again = client.get("/api/orders", params={"max": 3, "offset": 3}, headers=auth).json()
    assert {o["order_id"] for o in again["orders"]}.isdisjoint({o["order_id"] for o in first["orders"]})
    with pytest.raises(ValueError):
        state.inject("A01", "duplicate_page")


def test_fault_arguments_are_checked(state: SandboxState) -> None:
    with pytest.raises(ValueError):
        state.inject("OR11", "server_error", status=404)
    with pytest.raises(ValueError):
        state.inject("OR11", "timeout", delay=3600)
    with pytest.raises(ValueError):
        state.inject("OR11", "meteor_strike")
    with pytest.raises(ValueError):
        state.inject("OR11", "server_error", count=0)


def test_timeout_fault_trips_a_client_timeout_over_real_http(state: SandboxState) -> None:
    seed_offers(state, 1)
    order_id = state.create_order(SHOP_ID, [OrderLineSpec("OFFER-1", 1)])
    auth = {"Authorization": state.shops[SHOP_ID].api_key}
    lines = {"order_lines": [{"id": f"{order_id}-1", "accepted": True}]}
    with SandboxServer(state) as server, httpx.Client(base_url=server.url, timeout=0.3) as http:
        state.inject("OR21", "timeout", delay=1.0)
        with pytest.raises(httpx.TimeoutException):
            http.put(f"/api/orders/{order_id}/accept", json=lines, headers=auth)
        # The slow call still took effect: retrying blindly now hits Mirakl's state check.
        retry = http.put(f"/api/orders/{order_id}/accept", json=lines, headers=auth)
        assert retry.status_code == 400
        assert retry.json()["code"] == "ORDER_INVALID_STATE"
    assert state.order(order_id).state.value == "WAITING_DEBIT"


def test_faults_and_limits_over_the_control_endpoints(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    assert client.post("/_sandbox/faults", json={"op_id": "SH21", "fault": "server_error"}).status_code == 201
    assert client.get("/api/shipping/carriers", headers=auth).status_code == 500
    assert client.post("/_sandbox/faults", json={"op_id": "SH21", "fault": "bogus"}).status_code == 400
    client.post("/_sandbox/faults", json={"op_id": "SH21", "fault": "server_error", "count": 3})
    assert client.delete("/_sandbox/faults").status_code == 204
    assert client.get("/api/shipping/carriers", headers=auth).status_code == 200

    assert client.put("/_sandbox/rate-limits/SH21", json={"calls": 1, "per_seconds": 30}).status_code == 204
    client.get("/api/shipping/carriers", headers=auth)
    assert client.get("/api/shipping/carriers", headers=auth).status_code == 429
    assert client.post("/_sandbox/clock/advance", json={"seconds": 30}).status_code == 200
    assert client.get("/api/shipping/carriers", headers=auth).status_code == 200
    assert client.delete("/_sandbox/rate-limits/SH21").status_code == 204

    log = client.get("/_sandbox/requests").json()["requests"]
    assert [r["status"] for r in log if r["op_id"] == "SH21"] == [500, 200, 200, 429, 200]
    assert all(not r["path"].startswith("/_sandbox") for r in log)


def test_control_order_factory_and_clock(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1)
    created = client.post(
        "/_sandbox/orders",
        json={
            "lines": [{"offer_sku": "OFFER-1", "quantity": 2, "unit_price": "8.25"}],
            "currency": "EUR",
            "customer_message": "Leave at the door",
            "acceptance_delay_seconds": 120,
        },
    )
    assert created.status_code == 201, created.text
    order_id = created.json()["order_id"]
    detail = client.get(f"/_sandbox/orders/{order_id}").json()
    assert detail["order"]["order_state"] == "WAITING_ACCEPTANCE"
    assert Decimal(str(detail["order"]["price"])) == Decimal("16.50")
    assert client.post("/_sandbox/clock/advance", json={"seconds": 121}).status_code == 200
    assert client.get(f"/_sandbox/orders/{order_id}").json()["order"]["order_state"] == "CANCELED"
    assert client.post("/_sandbox/orders", json={"lines": [{"offer_sku": "NOPE"}]}).status_code == 400
    assert client.post("/_sandbox/clock/set", json={"now": "2001-01-01T00:00:00Z"}).status_code == 400
    shops = client.get("/_sandbox/shops").json()["shops"]
    assert shops[0]["api_key"] == auth["Authorization"]
