"""Channel update (credentials fixed, then checked) and removal through the API, against the sandbox."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mirakl_world import API_KEY, SHOP_ID, sandbox_catalog
from tradelane.bootstrap import build
from tradelane.config import Settings
from tradelane.connectors.mirakl.sandbox import SandboxServer, SandboxState, Shop
from tradelane.persistence.tables import channel_flows
from tradelane.security.crypto import generate_key
from tradelane.services import channels as channel_service
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
        tenant, token = create_tenant(conn, "a", now=now)
    with SandboxServer(state) as server, TestClient(create_app(container)) as client:
        yield client, server.url, {"Authorization": f"Bearer {token}"}, container, tenant.id
    container.close()


def test_update_checks_then_resumes_and_delete_keeps_orders(api, now):
    client, url, auth, container, tenant_id = api
    body = {"connector": "mirakl", "name": "shop", "hostname": url, "shop_id": str(SHOP_ID), "api_key": "bad"}
    assert client.post("/api/v1/channels", json=body, headers=auth).status_code == 201
    with container.engine.begin() as conn:
        channel = channel_service.get_channel(conn, tenant_id, "shop")
        channel_service.credentials_rejected(conn, channel, host=url, reason="HTTP 401", now=now)
    detail = client.get("/api/v1/channels/shop", headers=auth).json()
    assert detail["alert"].startswith(f"shop: credentials rejected by {url}: HTTP 401")
    assert {f["pause_reason"] for f in detail["flows"]} == {"auth"}
    sync = client.post("/api/v1/channels/shop/sync", json={"flow": "orders"}, headers=auth).json()
    assert sync["paused"] is True and "credentials rejected" in sync["message"]

    still = client.patch("/api/v1/channels/shop", json={"api_key": "worse"}, headers=auth)
    assert still.status_code == 200 and still.json()["check"]["problem"] == "wrong_key"
    assert still.json()["resumed_flows"] == [] and not still.json()["alert_resolved"]
    fixed = client.patch("/api/v1/channels/shop", json={"api_key": API_KEY}, headers=auth).json()
    assert fixed["check"]["ok"] and fixed["alert_resolved"]
    assert sorted(fixed["resumed_flows"]) == ["fulfillments", "offers", "orders", "reconciler"]
    assert client.get("/api/v1/channels/shop", headers=auth).json()["alert"] is None
    with container.engine.connect() as conn:
        assert {r.paused for r in conn.execute(sa.select(channel_flows))} == {False}
    assert client.patch("/api/v1/channels/shop", json={"nope": 1}, headers=auth).status_code == 422

    removed = client.delete("/api/v1/channels/shop", headers=auth)
    assert removed.status_code == 200, removed.text
    assert removed.json()["orders_kept"] == 0 and "NOT deleted" in removed.json()["note"]
    assert client.get("/api/v1/channels/shop", headers=auth).status_code == 404
    assert client.delete("/api/v1/channels/shop", headers=auth).status_code == 404
    assert client.post("/api/v1/channels", json=body, headers=auth).status_code == 201  # name free again


@pytest.mark.parametrize("field", ["api_key", "staging_api_key"])
def test_a_key_that_cannot_travel_in_a_header_is_refused_and_the_stored_one_kept(api, field):
    """Found by schemathesis: a non-ASCII key was stored, then the check crashed building the request."""
    client, url, auth, _container, _tenant_id = api
    body = {
        "connector": "mirakl",
        "name": "shop",
        "hostname": url,
        "shop_id": str(SHOP_ID),
        "api_key": API_KEY,
    }
    assert client.post("/api/v1/channels", json=body, headers=auth).status_code == 201
    refused = client.patch("/api/v1/channels/shop", json={field: "clé-Ⱦ"}, headers=auth)
    assert refused.status_code == 422, refused.text
    assert "printable ASCII" in refused.json()["detail"]
    created = client.post("/api/v1/channels", json={**body, "name": "other", field: "ⱦ"}, headers=auth)
    assert created.status_code == 422 and "printable ASCII" in created.json()["detail"]
    check = client.post("/api/v1/channels/shop/check", headers=auth).json()
    assert check["ok"], check
