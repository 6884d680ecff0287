"""Channel set-up, offers and SKU mappings through the API, against the Mirakl sandbox."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mirakl_world import API_KEY, SHOP_ID, sandbox_catalog
from tradelane.bootstrap import build
from tradelane.config import Settings
from tradelane.connectors.mirakl.sandbox import SandboxServer, SandboxState, Shop
from tradelane.security.crypto import generate_key
from tradelane.services.tenants import create_tenant
from tradelane.web.app import create_app


@pytest.fixture
def api(db_url, now):
    container = build(
        Settings(database_url=db_url, secret_keys=generate_key(), log_level="WARNING"), configure_logs=False
    )
    state = SandboxState(
        1, shops=[Shop(SHOP_ID, "Shop", API_KEY)], products=sandbox_catalog(2), rate_limits={}, start=now
    )
    with container.engine.begin() as conn:
        _a, token_a = create_tenant(conn, "a", now=now)
        _b, token_b = create_tenant(conn, "b", now=now)
    with SandboxServer(state) as server, TestClient(create_app(container)) as client:
        yield (
            client,
            server.url,
            {"Authorization": f"Bearer {token_a}"},
            {"Authorization": f"Bearer {token_b}"},
        )
    container.close()


def test_add_check_sync_and_state(api):
    client, url, auth, other = api
    body = {
        "connector": "mirakl",
        "name": "shop",
        "hostname": url,
        "shop_id": str(SHOP_ID),
        "api_key": API_KEY,
    }
    created = client.post("/api/v1/channels", json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert client.post("/api/v1/channels", json=body, headers=auth).status_code == 409
    assert "api_key" not in created.text and API_KEY not in created.text
    check = client.post("/api/v1/channels/shop/check", headers=auth).json()
    assert check == {"ok": True, "problem": None, "message": check["message"]}
    client.post("/api/v1/channels", json={**body, "name": "bad", "api_key": "nope"}, headers=auth)
    assert client.post("/api/v1/channels/bad/check", headers=auth).json()["problem"] == "wrong_key"
    sync = client.post("/api/v1/channels/shop/sync", json={"flow": "offers", "full": True}, headers=auth)
    assert sync.status_code == 202 and sync.json()["kind"] == "offers.full"
    again = client.post(
        "/api/v1/channels/shop/sync", json={"flow": "offers", "full": True}, headers=auth
    ).json()
    assert again["job_id"] == sync.json()["job_id"] and again["created"] is False
    assert (
        client.put("/api/v1/channels/shop/state", json={"state": "testing"}, headers=auth).json()[
            "lifecycle_state"
        ]
        == "testing"
    )
    # another tenant sees nothing of it
    assert client.post("/api/v1/channels/shop/check", headers=other).status_code == 404
    assert (
        client.post("/api/v1/channels/shop/sync", json={"flow": "orders"}, headers=other).status_code == 404
    )


def test_bad_channel_settings_are_422(api):
    client, _url, auth, _other = api
    body = {"connector": "mirakl", "name": "x", "hostname": "not a host", "shop_id": "1", "api_key": "k"}
    response = client.post("/api/v1/channels", json=body, headers=auth)
    assert response.status_code == 422 and response.headers["content-type"].startswith(
        "application/problem+json"
    )


def test_offers_list_and_republish_and_sku_mapping(api):
    client, url, auth, other = api
    client.post(
        "/api/v1/channels",
        json={
            "connector": "mirakl",
            "name": "shop",
            "hostname": url,
            "shop_id": str(SHOP_ID),
            "api_key": API_KEY,
        },
        headers=auth,
    )
    assert client.get("/api/v1/offers", headers=auth).json() == {"items": []}
    assert client.post("/api/v1/offers/republish", json={"channel": "shop"}, headers=auth).status_code == 422
    assert client.post(
        "/api/v1/offers/republish", json={"channel": "shop", "failed": True}, headers=auth
    ).json() == {"queued": 0}
    assert (
        client.post(
            "/api/v1/offers/republish", json={"channel": "shop", "failed": True}, headers=other
        ).status_code
        == 404
    )
    mapped = client.post(
        "/api/v1/sku-mappings",
        json={"marketplace_sku": "OLD-1", "merchant_sku": "NEW-1", "merchant_only": True},
        headers=auth,
    )
    assert mapped.status_code == 201 and mapped.json()["released_orders"] == 0
    assert mapped.json()["merchant_only"] is True
    assert (
        client.post(
            "/api/v1/sku-mappings",
            json={"marketplace_sku": "OLD-1", "merchant_sku": "NEW-1", "channel": "shop"},
            headers=other,
        ).status_code
        == 404
    )
