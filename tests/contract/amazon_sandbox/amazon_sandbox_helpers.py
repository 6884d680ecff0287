"""Helpers shared by the Amazon sandbox contract tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient

from tradelane.connectors.amazon.sandbox import AmazonSandboxState

SEED = 7
DE = "A1PA6795UKMFR9"
FR = "A13V1IB3VIYZZH"
US = "ATVPDKIKX0DER"
ORDERS = "/orders/2026-01-01/orders"
SINCE = "2020-01-01T00:00:00Z"


def eu_seller(state: AmazonSandboxState) -> str:
    return next(a.seller_id for a in state.accounts.values() if a.region == "eu")


def token(client: TestClient, state: AmazonSandboxState, seller_id: str | None = None) -> dict[str, str]:
    """``x-amz-access-token`` headers for ``seller_id`` (default: the EU seller), through LWA."""
    account = state.accounts[seller_id or eu_seller(state)]
    app = state.application
    response = client.post(
        "/auth/o2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": account.refresh_token,
            "client_id": app.client_id,
            "client_secret": app.client_secret,
        },
    )
    assert response.status_code == 200, response.text
    return {"x-amz-access-token": response.json()["access_token"]}


def listed(state: AmazonSandboxState, count: int = 3, quantity: int = 10) -> list[str]:
    """``count`` offers SKU-1..n of the EU seller on the first ASINs, 10.00 + i EUR."""
    seller = eu_seller(state)
    skus = []
    for i, asin in enumerate(list(state.catalog)[:count], start=1):
        state.add_offer(seller, f"SKU-{i}", asin, Decimal("10.00") + i, quantity)
        skus.append(f"SKU-{i}")
    return skus


def offer_body(asin: str, price: Any = 19.99, quantity: Any = 5, marketplace: str = DE) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "merchant_suggested_asin": [{"value": asin, "marketplace_id": marketplace}],
        "condition_type": [{"value": "new_new", "marketplace_id": marketplace}],
        "purchasable_offer": [
            {
                "marketplace_id": marketplace,
                "currency": "EUR",
                "our_price": [{"schedule": [{"value_with_tax": price}]}],
            }
        ],
        "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}],
    }
    if quantity is None:
        del attributes["fulfillment_availability"][0]["quantity"]
    return {"productType": "PRODUCT", "requirements": "LISTING_OFFER_ONLY", "attributes": attributes}
