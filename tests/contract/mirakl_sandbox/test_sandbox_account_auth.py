"""A01, SH21, RE01 and authentication: raw key in ``Authorization``, ``shop_id`` access rules."""

from __future__ import annotations

from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SHOP_ID
from mirakl_sandbox_spec import assert_response

from tradelane.connectors.mirakl.sandbox import SandboxState, Shop, create_app


def test_account_matches_the_spec_and_names_the_shop(client: TestClient, auth: dict[str, str]) -> None:
    response = client.get("/api/account", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert_response("A01", 200, body)
    assert body["shop_id"] == SHOP_ID
    assert body["currency_iso_code"] == "EUR"


def test_missing_or_wrong_key_is_401_with_a_mirakl_error_body(
    client: TestClient, auth: dict[str, str]
) -> None:
    for headers in ({}, {"Authorization": "not-a-key"}, {"Authorization": f"Bearer {auth['Authorization']}"}):
        response = client.get("/api/orders", headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["status"] == 401
        assert isinstance(body["message"], str) and body["message"]


def test_shop_id_of_a_shop_the_key_cannot_access_is_403(state: SandboxState) -> None:
    other = state.add_shop(Shop(3000, "Other shop", "other-key", currency="GBP"))
    client = TestClient(create_app(state))
    mine = {"Authorization": state.shops[SHOP_ID].api_key}
    assert client.get("/api/account", params={"shop_id": other.shop_id}, headers=mine).status_code == 403
    assert client.get("/api/account", params={"shop_id": 999999}, headers=mine).status_code == 403
    assert client.get("/api/account", params={"shop_id": "abc"}, headers=mine).status_code == 400
    # The other shop's own key works, and a key granted access to both may pick either.
    assert client.get("/api/account", headers={"Authorization": "other-key"}).json()["shop_id"] == 3000
    state.grant_access(state.shops[SHOP_ID].api_key, 3000)
    picked = client.get("/api/account", params={"shop_id": 3000}, headers=mine)
    assert picked.status_code == 200
    assert picked.json()["currency_iso_code"] == "GBP"
    assert client.get("/api/account", headers=mine).json()["shop_id"] == SHOP_ID


def test_unauthenticated_calls_are_logged_with_their_status(client: TestClient, state: SandboxState) -> None:
    client.get("/api/account")
    [record] = state.requests
    assert (record.op_id, record.status, record.shop_id) == ("A01", 401, None)


def test_carriers_are_sorted_by_label_and_match_the_spec(client: TestClient, auth: dict[str, str]) -> None:
    response = client.get("/api/shipping/carriers", headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert_response("SH21", 200, body)
    labels = [c["label"] for c in body["carriers"]]
    assert labels == sorted(labels, key=str.lower)
    assert "DHL" in {c["code"] for c in body["carriers"]}


def test_reasons_list_refund_reasons(client: TestClient, auth: dict[str, str]) -> None:
    body = client.get("/api/reasons", headers=auth).json()
    assert_response("RE01", 200, body)
    assert any(r["type"] == "REFUND" for r in body["reasons"])
    assert body["total_count"] == len(body["reasons"])


def test_unknown_api_path_is_a_mirakl_style_404(client: TestClient, auth: dict[str, str]) -> None:
    response = client.get("/api/nothing-here", headers=auth)
    assert response.status_code == 404
    assert response.json()["status"] == 404
