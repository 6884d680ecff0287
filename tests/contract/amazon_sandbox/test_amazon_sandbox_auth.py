"""Login with Amazon and the access token every SP-API call needs."""

from __future__ import annotations

from amazon_sandbox_helpers import ORDERS, SINCE, eu_seller, token
from amazon_sandbox_spec import assert_response
from starlette.testclient import TestClient

from tradelane.connectors.amazon.sandbox import AmazonSandboxState

ORDERS_2026 = "orders_2026-01-01"


def _grant(state: AmazonSandboxState, **overrides: str) -> dict[str, str]:
    app = state.application
    form = {
        "grant_type": "refresh_token",
        "refresh_token": state.accounts[eu_seller(state)].refresh_token,
        "client_id": app.client_id,
        "client_secret": app.client_secret,
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v != ""}


def test_refresh_token_grant_returns_a_bearer_token(client: TestClient, state: AmazonSandboxState) -> None:
    response = client.post("/auth/o2/token", data=_grant(state))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["access_token"].startswith("Atza|")
    as_json = client.post("/auth/o2/token", json=_grant(state))
    assert as_json.status_code == 200 and as_json.json()["access_token"] != body["access_token"]


def test_lwa_errors_tell_bad_client_from_bad_refresh_token(
    client: TestClient, state: AmazonSandboxState
) -> None:
    bad_secret = client.post("/auth/o2/token", data=_grant(state, client_secret="wrong"))
    assert (bad_secret.status_code, bad_secret.json()["error"]) == (401, "invalid_client")
    bad_client = client.post("/auth/o2/token", data=_grant(state, client_id="amzn1.application-oa2-client.x"))
    assert (bad_client.status_code, bad_client.json()["error"]) == (401, "invalid_client")
    bad_grant = client.post("/auth/o2/token", data=_grant(state, refresh_token="Atzr|nope"))
    assert (bad_grant.status_code, bad_grant.json()["error"]) == (400, "invalid_grant")
    missing = client.post("/auth/o2/token", data=_grant(state, refresh_token=""))
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    wrong_type = client.post("/auth/o2/token", data=_grant(state, grant_type="client_credentials"))
    assert (wrong_type.status_code, wrong_type.json()["error"]) == (400, "unsupported_grant_type")
    assert "error_description" in wrong_type.json()


def test_sp_api_calls_need_a_live_access_token(client: TestClient, state: AmazonSandboxState) -> None:
    params = {"lastUpdatedAfter": SINCE}
    for headers, detail in (({}, "missing"), ({"x-amz-access-token": "Atza|forged"}, "invalid")):
        response = client.get(ORDERS, params=params, headers=headers)
        assert response.status_code == 403
        assert_response(ORDERS_2026, "searchOrders", 403, response.json())
        error = response.json()["errors"][0]
        assert error["code"] == "Unauthorized" and detail in error["details"]
    auth = token(client, state)
    assert client.get(ORDERS, params=params, headers=auth).status_code == 200
    state.advance(3600)
    expired = client.get(ORDERS, params=params, headers=auth)
    assert expired.status_code == 403 and "expired" in expired.json()["errors"][0]["details"]
    assert client.get(ORDERS, params=params, headers=token(client, state)).status_code == 200


def test_expire_control_and_configurable_lifetime(client: TestClient, state: AmazonSandboxState) -> None:
    state.with_settings(token_ttl=60)
    auth = token(client, state)
    assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 200
    assert client.post("/_sandbox/tokens/expire").json()["expired"] >= 1
    assert client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth).status_code == 403


def test_a_seller_of_another_region_is_refused(client: TestClient, state: AmazonSandboxState) -> None:
    na = next(a.seller_id for a in state.accounts.values() if a.region == "na")
    response = client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=token(client, state, na))
    assert response.status_code == 403
    assert "region" in response.json()["errors"][0]["details"]


def test_marketplaces_unknown_is_400_and_not_the_sellers_is_403(
    client: TestClient, auth: dict[str, str]
) -> None:
    unknown = client.get(ORDERS, params={"lastUpdatedAfter": SINCE, "marketplaceIds": "XXXX"}, headers=auth)
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["code"] == "InvalidInput"
    assert_response(ORDERS_2026, "searchOrders", 400, unknown.json())
    foreign = client.get(
        ORDERS, params={"lastUpdatedAfter": SINCE, "marketplaceIds": "ATVPDKIKX0DER"}, headers=auth
    )
    assert foreign.status_code == 403


def test_every_sp_api_answer_carries_request_id_and_rate_limit(
    client: TestClient, auth: dict[str, str]
) -> None:
    for response in (
        client.get(ORDERS, params={"lastUpdatedAfter": SINCE}, headers=auth),
        client.get(ORDERS, params={}, headers=auth),
        client.get(f"{ORDERS}/000-0000000-0000000", headers=auth),
        client.get(ORDERS, params={"lastUpdatedAfter": SINCE}),
    ):
        assert response.headers["x-amzn-RequestId"]
        assert response.headers["x-amzn-RateLimit-Limit"] == "1000"
    unknown = client.get("/nothing/here", headers=auth)
    assert unknown.status_code == 404 and unknown.headers["x-amzn-RequestId"]
    assert "x-amzn-RateLimit-Limit" not in unknown.headers
