"""The lifecycle API against the Mirakl sandbox: activate (credentials checked), flow switches, promote,
history (JSON and CSV, actor ``api:<tenant>``), frequency; another tenant sees none of it."""

from __future__ import annotations

import csv
import io

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
        _a, token_a = create_tenant(conn, "acme", now=now)
        _b, token_b = create_tenant(conn, "other", now=now)
    with SandboxServer(state) as server, TestClient(create_app(container)) as client:
        yield (
            client,
            server.url,
            {"Authorization": f"Bearer {token_a}"},
            {"Authorization": f"Bearer {token_b}"},
        )
    container.close()


def test_setup_to_live_through_the_api(api) -> None:
    client, url, auth, other = api
    body = {
        "connector": "mirakl",
        "name": "shop",
        "hostname": url,
        "shop_id": str(SHOP_ID),
        "api_key": API_KEY,
    }
    assert client.post("/api/v1/channels", json=body, headers=auth).status_code == 201
    client.post("/api/v1/channels", json={**body, "name": "bad", "api_key": "nope"}, headers=auth)
    base = "/api/v1/channels/shop"

    lifecycle = client.get(f"{base}/lifecycle", headers=auth).json()
    assert (lifecycle["state"], lifecycle["testing_days"], lifecycle["go_live_blockers"]) == ("setup", 30, [])
    assert lifecycle["flows"] == {"offers": True, "orders": True, "fulfillments": True, "reconciler": False}
    refused = client.post("/api/v1/channels/bad/activate", json={}, headers=auth)
    assert refused.status_code == 422 and "credentials check failed" in refused.text
    assert client.post(f"{base}/promote", json={}, headers=auth).status_code == 409  # activate first

    activated = client.post(f"{base}/activate", json={"testing_days": 7, "reason": "kick-off"}, headers=auth)
    assert activated.status_code == 200, activated.text
    assert activated.json()["state"] == "testing" and activated.json()["testing_days"] == 7
    assert client.post(f"{base}/activate", json={}, headers=auth).status_code == 409
    off = client.put(f"{base}/flows/fulfillments", json={"enabled": False, "reason": "3PL"}, headers=auth)
    assert off.json() == {"flow": "fulfillments", "enabled": False, "changed": True}
    reconciler = client.put(f"{base}/flows/reconciler", json={"enabled": True}, headers=auth)
    assert reconciler.status_code == 422 and "dry run" in reconciler.text
    assert client.put(f"{base}/flows/nope", json={"enabled": True}, headers=auth).status_code == 422

    frequency = client.get(f"{base}/frequency", headers=auth).json()
    assert frequency["skus"] == 0 and frequency["full_sync"]["basis"] == "budget"
    assert frequency["summary"].startswith("a full sync takes 0 s (budget)")
    stock = frequency["stock_change"]  # what the figure is made of, each part with its basis
    assert [p["basis"] for p in stock["parts"]] == ["configured", "budget", "nominal", "declared"]

    assert client.post(f"{base}/promote", json={"reason": "tested"}, headers=auth).json()["state"] == "live"
    unreasoned = client.put(f"{base}/flows/orders", json={"enabled": False}, headers=auth)
    assert unreasoned.status_code == 422 and "needs a reason" in unreasoned.text

    assert client.post(f"{base}/pause", json={"flows": ["orders"]}, headers=auth).status_code == 200
    history = client.get(f"{base}/history", headers=auth).json()
    assert [(e["actor"], e["action"], e["reason"]) for e in history] == [
        ("api:acme", "lifecycle.activate", "kick-off"),
        ("api:acme", "flow.disable", "3PL"),
        ("api:acme", "lifecycle.promote", "tested"),
        ("api:acme", "flow.pause", None),
    ]
    exported = client.get(f"{base}/history", params={"format": "csv"}, headers=auth)
    assert exported.headers["content-type"].startswith("text/csv")
    assert [r["action"] for r in csv.DictReader(io.StringIO(exported.text))] == [e["action"] for e in history]

    for path in ("lifecycle", "history", "frequency"):
        assert client.get(f"{base}/{path}", headers=other).status_code == 404
    assert client.post(f"{base}/promote", json={}, headers=other).status_code == 404


def test_testing_period_and_removal_of_a_live_channel_through_the_api(api) -> None:
    client, url, auth, other = api
    body = {
        "connector": "mirakl",
        "name": "shop",
        "hostname": url,
        "shop_id": str(SHOP_ID),
        "api_key": API_KEY,
    }
    assert client.post("/api/v1/channels", json=body, headers=auth).status_code == 201
    base = "/api/v1/channels/shop"
    change = {"testing_days": 5, "reason": "merchant is ready"}
    assert client.put(f"{base}/testing-period", json=change, headers=auth).status_code == 409  # in setup
    activated = client.post(f"{base}/activate", json={"testing_days": 30}, headers=auth).json()
    assert client.put(f"{base}/testing-period", json={"testing_days": 5}, headers=auth).status_code == 422
    assert client.put(f"{base}/testing-period", json=change, headers=other).status_code == 404
    changed = client.put(f"{base}/testing-period", json=change, headers=auth)
    assert changed.status_code == 200, changed.text
    view = changed.json()
    assert view["testing_days"] == 5 and view["testing_started_at"] == activated["testing_started_at"]
    assert view["testing_ends_at"] < activated["testing_ends_at"]
    [event] = [
        e
        for e in client.get(f"{base}/history", headers=auth).json()
        if e["action"] == "lifecycle.testing_period"
    ]
    assert (event["actor"], event["reason"]) == ("api:acme", "merchant is ready")

    assert client.post(f"{base}/promote", json={}, headers=auth).status_code == 200
    refused = client.delete(base, headers=auth)
    assert refused.status_code == 422 and "needs a reason" in refused.text
    assert client.get(f"{base}/lifecycle", headers=auth).json()["state"] == "live"
    removed = client.delete(base, params={"reason": "merchant left"}, headers=auth)
    assert removed.status_code == 200, removed.text
