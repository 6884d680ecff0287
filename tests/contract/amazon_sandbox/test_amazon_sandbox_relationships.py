"""Listings ``relationships`` (includedData): a variation child names its parent SKU (attribute
``child_parent_sku_relationship``), a listing without one has no relationship; checked against the
Listings Items 2021-08-01 contract, and read by the connector's mapping as ``group_key``."""

from __future__ import annotations

from decimal import Decimal

from amazon_sandbox_helpers import DE, eu_seller
from amazon_sandbox_spec import assert_response
from starlette.testclient import TestClient

from tradelane.connectors.amazon.mapping import listed_offer
from tradelane.connectors.amazon.sandbox import AmazonSandboxState

MODEL = "listingsItems_2021-08-01"


def test_search_lists_variation_relationships(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    seller = eu_seller(state)
    asins = list(state.catalog)
    state.add_offer(seller, "CHILD-1", asins[0], Decimal("5"), 2, parent_sku="PARENT-1")
    state.add_offer(seller, "ALONE", asins[1], Decimal("6"), 2)
    response = client.get(
        f"/listings/2021-08-01/items/{seller}",
        params={"marketplaceIds": DE, "includedData": "summaries,offers,relationships", "sortBy": "sku"},
        headers=auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_response(MODEL, "searchListingsItems", 200, body)
    items = {item["sku"]: item for item in body["items"]}
    assert items["CHILD-1"]["relationships"] == [
        {"marketplaceId": DE, "relationships": [{"type": "VARIATION", "parentSkus": ["PARENT-1"]}]}
    ]
    assert items["ALONE"]["relationships"] == [{"marketplaceId": DE, "relationships": []}]
    assert listed_offer(items["CHILD-1"], DE).group_key == "PARENT-1"
    assert listed_offer(items["ALONE"], DE).group_key is None
