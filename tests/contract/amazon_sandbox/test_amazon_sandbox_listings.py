"""Listings Items 2021-08-01: LISTING_OFFER_ONLY submissions, issues per SKU, patches, deletes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from amazon_sandbox_helpers import DE, eu_seller, offer_body
from amazon_sandbox_spec import assert_request, assert_response
from starlette.testclient import TestClient

from tradelane.connectors.amazon.sandbox import AmazonSandboxState

MODEL = "listingsItems_2021-08-01"


def _url(state: AmazonSandboxState, sku: str, seller: str | None = None) -> str:
    return f"/listings/2021-08-01/items/{seller or eu_seller(state)}/{quote(sku, safe='')}"


def _call(
    client: TestClient,
    method: str,
    url: str,
    auth: dict[str, str],
    op: str,
    body: Any = None,
    status: int = 200,
    **params: str,
) -> dict[str, Any]:
    params.setdefault("marketplaceIds", DE)
    if body is not None:
        assert_request(MODEL, op, body)
    response = client.request(method, url, params=params, json=body, headers=auth)
    assert response.status_code == status, response.text
    data: dict[str, Any] = response.json()
    assert_response(MODEL, op, status, data)
    return data


def _asin(state: AmazonSandboxState, index: int = 0) -> str:
    return list(state.catalog)[index]


def test_offer_only_put_is_accepted_and_readable(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    url = _url(state, "MY-SKU/1")
    put = _call(
        client,
        "PUT",
        url,
        auth,
        "putListingsItem",
        offer_body(_asin(state)),
        includedData="issues,identifiers",
    )
    assert put["status"] == "ACCEPTED" and put["sku"] == "MY-SKU/1" and put["issues"] == []
    assert put["identifiers"] == [{"marketplaceId": DE, "asin": _asin(state)}]
    item = _call(
        client,
        "GET",
        url,
        auth,
        "getListingsItem",
        includedData="summaries,offers,fulfillmentAvailability,issues,attributes",
    )
    summary = item["summaries"][0]
    assert (summary["asin"], summary["conditionType"], summary["status"]) == (
        _asin(state),
        "new_new",
        ["BUYABLE", "DISCOVERABLE"],
    )
    assert item["offers"] == [
        {"marketplaceId": DE, "offerType": "B2C", "price": {"currencyCode": "EUR", "amount": "19.99"}}
    ]
    assert item["fulfillmentAvailability"] == [{"fulfillmentChannelCode": "DEFAULT", "quantity": 5}]
    assert set(_call(client, "GET", url, auth, "getListingsItem")) == {"sku", "summaries"}


@pytest.mark.parametrize(
    ("body", "code", "attribute"),
    [
        (lambda s: offer_body("B0NOTEXIST"), "8541", "merchant_suggested_asin"),
        (lambda s: offer_body(next(iter(s.catalog)), price=-3), "8026", "purchasable_offer.our_price"),
        (lambda s: offer_body(next(iter(s.catalog)), price="abc"), "8026", "purchasable_offer.our_price"),
        (
            lambda s: offer_body(next(iter(s.catalog)), quantity=None),
            "90220",
            "fulfillment_availability.quantity",
        ),
        (
            lambda s: offer_body(next(iter(s.catalog)), quantity=-1),
            "4000006",
            "fulfillment_availability.quantity",
        ),
    ],
)
def test_invalid_offers_come_back_with_issues(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str], body: Any, code: str, attribute: str
) -> None:
    url = _url(state, "BAD-1")
    put = _call(client, "PUT", url, auth, "putListingsItem", body(state))
    assert put["status"] == "INVALID"
    assert any(
        i["code"] == code and i["attributeNames"] == [attribute] and i["severity"] == "ERROR"
        for i in put["issues"]
    )
    assert all(i["marketplaceIds"] == [DE] for i in put["issues"])
    _call(client, "GET", url, auth, "getListingsItem", status=404)


def test_missing_required_attributes_and_bad_currency(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    body = offer_body(_asin(state))
    del body["attributes"]["condition_type"]
    body["attributes"]["purchasable_offer"][0]["currency"] = "USD"
    put = _call(client, "PUT", _url(state, "X"), auth, "putListingsItem", body)
    codes = {(i["code"], tuple(i.get("attributeNames", []))) for i in put["issues"]}
    assert ("90220", ("condition_type",)) in codes and ("4000004", ("purchasable_offer.currency",)) in codes


def test_validation_preview_stores_nothing(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    put = _call(
        client,
        "PUT",
        _url(state, "P"),
        auth,
        "putListingsItem",
        offer_body(_asin(state)),
        mode="VALIDATION_PREVIEW",
    )
    assert put["status"] == "VALID"
    _call(client, "GET", _url(state, "P"), auth, "getListingsItem", status=404)


def test_patch_price_and_quantity(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    url = _url(state, "PATCH-ME")
    _call(client, "PUT", url, auth, "putListingsItem", offer_body(_asin(state)))
    patch = {
        "productType": "PRODUCT",
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/purchasable_offer",
                "value": [
                    {
                        "marketplace_id": DE,
                        "currency": "EUR",
                        "our_price": [{"schedule": [{"value_with_tax": 7.5}]}],
                    }
                ],
            },
            {
                "op": "merge",
                "path": "/attributes/fulfillment_availability",
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 0}],
            },
        ],
    }
    assert _call(client, "PATCH", url, auth, "patchListingsItem", patch)["status"] == "ACCEPTED"
    item = _call(
        client, "GET", url, auth, "getListingsItem", includedData="offers,fulfillmentAvailability,summaries"
    )
    assert item["offers"][0]["price"]["amount"] == "7.5"
    assert item["fulfillmentAvailability"] == [{"fulfillmentChannelCode": "DEFAULT", "quantity": 0}]
    assert item["summaries"][0]["status"] == ["DISCOVERABLE"]
    bad = {
        "productType": "PRODUCT",
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/purchasable_offer",
                "value": [
                    {
                        "marketplace_id": DE,
                        "currency": "EUR",
                        "our_price": [{"schedule": [{"value_with_tax": 0}]}],
                    }
                ],
            }
        ],
    }
    assert _call(client, "PATCH", url, auth, "patchListingsItem", bad)["status"] == "INVALID"
    assert (
        _call(client, "GET", url, auth, "getListingsItem", includedData="offers")["offers"][0]["price"][
            "amount"
        ]
        == "7.5"
    )


def test_patch_of_an_unknown_sku_is_invalid(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    patch = {"productType": "PRODUCT", "patches": [{"op": "delete", "path": "/attributes/purchasable_offer"}]}
    assert (
        _call(client, "PATCH", _url(state, "GHOST"), auth, "patchListingsItem", patch)["status"] == "INVALID"
    )


def test_delete_removes_the_listing(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    url = _url(state, "GONE")
    _call(client, "PUT", url, auth, "putListingsItem", offer_body(_asin(state)))
    assert _call(client, "DELETE", url, auth, "deleteListingsItem")["status"] == "ACCEPTED"
    _call(client, "GET", url, auth, "getListingsItem", status=404)


def test_request_errors(client: TestClient, state: AmazonSandboxState, auth: dict[str, str]) -> None:
    url = _url(state, "E")
    no_mp = client.put(url, json=offer_body(_asin(state)), headers=auth)
    assert no_mp.status_code == 400 and no_mp.json()["errors"][0]["code"] == "InvalidInput"
    other = _url(state, "E", seller="A2OTHERSELLER")
    assert (
        client.put(
            other, params={"marketplaceIds": DE}, json=offer_body(_asin(state)), headers=auth
        ).status_code
        == 403
    )
    no_type = client.put(url, params={"marketplaceIds": DE}, json={"attributes": {}}, headers=auth)
    assert no_type.status_code == 400
    text = client.put(
        url, params={"marketplaceIds": DE}, content=b"x", headers={**auth, "content-type": "text/plain"}
    )
    assert text.status_code == 415
    assert (
        client.get(url, params={"marketplaceIds": DE, "includedData": "everything"}, headers=auth).status_code
        == 400
    )


def test_search_listings_pages_and_filters(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    seller = eu_seller(state)
    asins = list(state.catalog)
    for i in range(12):
        state.add_offer(seller, f"S-{i:02d}", asins[i], Decimal("5") + i, 0 if i == 3 else 2)
        state.advance(1)
    url = f"/listings/2021-08-01/items/{seller}"
    first = _call(client, "GET", url, auth, "searchListingsItems", includedData="summaries,offers")
    assert first["numberOfResults"] == 12 and len(first["items"]) == 10
    assert first["items"][0]["sku"] == "S-11", "default order: lastUpdatedDate DESC"
    rest = _call(client, "GET", url, auth, "searchListingsItems", pageToken=first["pagination"]["nextToken"])
    assert [i["sku"] for i in rest["items"]] == ["S-01", "S-00"] and "nextToken" not in rest["pagination"]
    by_sku = _call(
        client, "GET", url, auth, "searchListingsItems", sortBy="sku", sortOrder="ASC", pageSize="20"
    )
    assert [i["sku"] for i in by_sku["items"]] == [f"S-{i:02d}" for i in range(12)]
    asin = _call(
        client, "GET", url, auth, "searchListingsItems", identifiers=asins[4], identifiersType="ASIN"
    )
    assert [i["sku"] for i in asin["items"]] == ["S-04"]
    unbuyable = _call(client, "GET", url, auth, "searchListingsItems", withoutStatus="BUYABLE")
    assert [i["sku"] for i in unbuyable["items"]] == ["S-03"]
    for bad in ({"pageSize": "21"}, {"identifiers": "S-01"}, {"pageToken": "%%%"}, {"sortBy": "price"}):
        _call(client, "GET", url, auth, "searchListingsItems", status=400, **bad)
    _call(client, "GET", "/listings/2021-08-01/items/A2OTHER", auth, "searchListingsItems", status=403)


def test_an_offer_can_name_its_product_by_gtin(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    item = list(state.catalog.values())[2]
    body = offer_body(item.asin)
    del body["attributes"]["merchant_suggested_asin"]
    body["attributes"]["externally_assigned_product_identifier"] = [
        {"type": "ean", "value": item.gtin, "marketplace_id": DE}
    ]
    put = _call(
        client,
        "PUT",
        _url(state, "BY-GTIN"),
        auth,
        "putListingsItem",
        body,
        includedData="identifiers,issues",
    )
    assert put["status"] == "ACCEPTED" and put["identifiers"][0]["asin"] == item.asin
    body["attributes"]["externally_assigned_product_identifier"][0]["value"] = "4000000000000"
    unknown = _call(client, "PUT", _url(state, "BY-GTIN-2"), auth, "putListingsItem", body)
    assert unknown["status"] == "INVALID" and unknown["issues"][0]["code"] == "8566"


@pytest.mark.parametrize(
    "our_price", ["19.99", [{"schedule": [{"value_with_tax": 5}]}, "junk"], [{"schedule": "x"}]]
)
def test_malformed_price_structures_are_invalid(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str], our_price: Any
) -> None:
    body = offer_body(_asin(state))
    body["attributes"]["purchasable_offer"][0]["our_price"] = our_price
    put = _call(client, "PUT", _url(state, "MALFORMED"), auth, "putListingsItem", body)
    assert put["status"] == "INVALID" and put["issues"][0]["attributeNames"] == [
        "purchasable_offer.our_price"
    ]


@pytest.mark.parametrize("value", [["new_new"], {"a": 1}, "brand_new"])
def test_a_condition_outside_the_enum_is_invalid(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str], value: Any
) -> None:
    body = offer_body(_asin(state))
    body["attributes"]["condition_type"][0]["value"] = value
    put = _call(client, "PUT", _url(state, "COND"), auth, "putListingsItem", body)
    assert put["status"] == "INVALID" and put["issues"][0]["attributeNames"] == ["condition_type"]
