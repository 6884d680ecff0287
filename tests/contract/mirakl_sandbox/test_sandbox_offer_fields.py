"""Offer custom fields (the operator's ``offer_additional_fields``): OF24 and OF01 (a column named by
the field's code) store the operator's fields, other codes are ignored, a partial update not naming a
field keeps it, and OF21 lists them (``{code, type, value}``) — every body checked against the spec."""

from __future__ import annotations

from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SHOP_ID
from mirakl_sandbox_spec import assert_request, assert_response

from tradelane.connectors.mirakl.sandbox import SandboxState

FIELD = "variant-group"


def _ean(state: SandboxState, index: int) -> str:
    return dict(list(state.catalog.values())[index].references)["EAN"]


def _listed(client: TestClient, auth: dict[str, str]) -> dict[str, list[dict[str, object]]]:
    body = client.get("/api/offers", headers=auth).json()
    assert_response("OF21", 200, body)
    return {o["shop_sku"]: o["offer_additional_fields"] for o in body["offers"]}


def test_of24_and_of01_custom_fields_are_listed_by_of21(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    state.config.offer_fields = frozenset({FIELD})
    wire = {
        "offers": [
            {
                "shop_sku": "A", "product_id": _ean(state, 0), "product_id_type": "EAN", "price": 10.5,
                "quantity": 1, "state_code": "11", "update_delete": "update",
                "offer_additional_fields": [
                    {"code": FIELD, "value": "G-1"}, {"code": "not-ours", "value": "x"},
                ],
            }
        ]
    }  # fmt: skip
    assert_request("OF24", wire)
    assert client.post("/api/offers", json=wire, headers=auth).status_code == 201
    header = "sku;product-id;product-id-type;price;quantity;state;variant-group"
    content = f"{header}\nB;{_ean(state, 1)};EAN;9.90;2;11;G-2\nC;{_ean(state, 2)};EAN;9.90;2;11;\n".encode()
    upload = client.post(
        "/api/offers/imports",
        files={"file": ("offers.csv", content, "text/csv")},
        data={"import_mode": "NORMAL"},
        headers=auth,
    )
    assert upload.status_code == 201, upload.text
    state.advance(61)
    assert _listed(client, auth) == {
        "A": [{"code": FIELD, "type": "STRING", "value": "G-1"}],
        "B": [{"code": FIELD, "type": "STRING", "value": "G-2"}],
        "C": [],
    }

    partial = b"sku;price\nB;11.00\n"
    client.post(
        "/api/offers/imports",
        files={"file": ("offers.csv", partial, "text/csv")},
        data={"import_mode": "PARTIAL_UPDATE"},
        headers=auth,
    )
    full = {"offers": [{**wire["offers"][0], "offer_additional_fields": []}]}
    client.post("/api/offers", json=full, headers=auth)  # OF24 resets fields not sent
    state.advance(61)
    listed = _listed(client, auth)
    assert listed["B"] == [{"code": FIELD, "type": "STRING", "value": "G-2"}] and listed["A"] == []
    assert state.offer(SHOP_ID, "B") is not None


def test_an_operator_without_offer_fields_stores_none(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    wire = {
        "offers": [
            {
                "shop_sku": "A", "product_id": _ean(state, 0), "product_id_type": "EAN", "price": 10.5,
                "quantity": 1, "state_code": "11", "update_delete": "update",
                "offer_additional_fields": [{"code": FIELD, "value": "G-1"}],
            }
        ]
    }  # fmt: skip
    assert client.post("/api/offers", json=wire, headers=auth).status_code == 201
    state.advance(61)
    assert _listed(client, auth) == {"A": []}
