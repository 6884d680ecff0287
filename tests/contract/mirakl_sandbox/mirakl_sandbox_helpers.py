"""Helpers shared by the Mirakl sandbox contract tests (set-up through the programmatic controls,
reads through the seller API)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from tradelane.connectors.mirakl.sandbox import SandboxState

SEED = 7
SHOP_ID = 2000


def seed_offers(state: SandboxState, count: int = 3, quantity: int = 10) -> list[str]:
    """``count`` offers (OFFER-1..n) on the first catalog products, 10.00 + i EUR each."""
    products = list(state.catalog.values())
    skus = []
    for i in range(1, count + 1):
        sku = f"OFFER-{i}"
        state.add_offer(SHOP_ID, sku, products[i - 1].sku, Decimal("10.00") + i, quantity)
        skus.append(sku)
    return skus


def accept_all(client: TestClient, auth: dict[str, str], order_id: str, state: SandboxState) -> None:
    lines = [{"id": line.line_id, "accepted": True} for line in state.order(order_id).lines]
    response = client.put(f"/api/orders/{order_id}/accept", json={"order_lines": lines}, headers=auth)
    assert response.status_code == 204, response.text


def get_order(client: TestClient, auth: dict[str, str], order_id: str) -> dict[str, Any]:
    response = client.get("/api/orders", params={"order_ids": order_id}, headers=auth)
    assert response.status_code == 200, response.text
    orders = response.json()["orders"]
    assert len(orders) == 1
    return orders[0]
