"""API: POST /api/v1/channels/{name}/test-orders and GET /api/v1/orders/{ref}/test-report — the created
order is marked is_test in every read, refusals are precise problems, and tenants see only their own."""

from __future__ import annotations


def test_create_a_test_order_and_read_its_report(client, world):
    acme, globex = world.acme, world.globex
    created = client.post("/api/v1/channels/shop-fr/test-orders", headers=acme.auth)
    assert created.status_code == 201, created.text
    order = created.json()
    assert (order["marketplace_order_id"], order["is_test"], order["state"]) == (
        "TEST-shop-fr-1",
        True,
        "to_ship",
    )
    assert [(ln["sku"], ln["quantity"]) for ln in order["lines"]] == [("A-1", 1)]  # first SKU with stock

    two = client.post(
        "/api/v1/channels/shop-fr/test-orders",
        headers=acme.auth,
        json={"lines": [{"sku": "A-2", "quantity": 3}, {"sku": "A/3"}]},
    )
    assert two.status_code == 201 and two.json()["marketplace_order_id"] == "TEST-shop-fr-2"
    assert [(ln["sku"], ln["quantity"]) for ln in two.json()["lines"]] == [("A-2", 3), ("A/3", 1)]

    listed = client.get("/api/v1/orders", headers=acme.auth).json()["items"]
    assert [(o["marketplace_order_id"], o["is_test"]) for o in listed] == [
        ("TEST-shop-fr-2", True),
        ("TEST-shop-fr-1", True),
    ]
    report = client.get("/api/v1/orders/shop-fr:TEST-shop-fr-1/test-report", headers=acme.auth)
    assert report.status_code == 200
    body = report.json()
    assert (body["order"], body["ok"], body["delivered"], body["updates"]) == (
        "shop-fr:TEST-shop-fr-1",
        False,
        [],
        [],
    )
    assert body["problems"][0].startswith("not delivered to a merchant system yet")

    assert client.get(f"/api/v1/orders/{order['id']}/test-report", headers=globex.auth).status_code == 404
    assert "TEST-" not in client.get("/api/v1/orders", headers=globex.auth).text


def test_refusals_are_precise_problems(client, world):
    acme = world.acme
    foreign = client.post(
        "/api/v1/channels/shop-fr/test-orders", headers=acme.auth, json={"lines": [{"sku": "G-1"}]}
    )
    assert foreign.status_code == 422 and foreign.json()["detail"] == "SKU 'G-1' is not in the catalog"
    zero = client.post(
        "/api/v1/channels/shop-fr/test-orders",
        headers=acme.auth,
        json={"lines": [{"sku": "A-1", "quantity": 0}]},
    )
    assert zero.status_code == 422
    missing = client.post("/api/v1/channels/nope/test-orders", headers=acme.auth)
    assert missing.status_code == 404
    assert client.post("/api/v1/channels/shop-fr/test-orders").status_code == 401
    real = client.get("/api/v1/orders/999999/test-report", headers=acme.auth)
    assert real.status_code == 404
