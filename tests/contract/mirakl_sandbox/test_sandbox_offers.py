"""Offers: OF01 file import -> OF02 status -> OF03 error report, OF24 JSON updates, OF21 listing."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

from fastapi.testclient import TestClient
from mirakl_sandbox_helpers import SHOP_ID, seed_offers
from mirakl_sandbox_spec import assert_request, assert_response

from tradelane.connectors.mirakl.sandbox import SandboxConfig, SandboxState, create_app

COLUMNS = ("sku", "product-id", "product-id-type", "description", "price", "quantity", "state")
HEADER = ";".join((*COLUMNS, "logistic-class", "leadtime-to-ship", "update-delete"))


def _csv(state: SandboxState, *lines: str) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


def _ean(state: SandboxState, index: int) -> str:
    product = list(state.catalog.values())[index]
    return dict(product.references)["EAN"]


def _upload(client: TestClient, auth: dict[str, str], content: bytes, mode: str = "NORMAL") -> int:
    response = client.post(
        "/api/offers/imports",
        files={"file": ("offers.csv", content, "text/csv")},
        data={"import_mode": mode},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    assert_response("OF01", 201, response.json())
    import_id = response.json()["import_id"]
    assert response.headers["location"].endswith(f"/api/offers/imports/{import_id}")
    return int(import_id)


def _poll(client: TestClient, auth: dict[str, str], import_id: int) -> dict[str, object]:
    response = client.get(f"/api/offers/imports/{import_id}", headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_response("OF02", 200, body)
    return body


def test_file_import_progresses_and_reports_the_bad_line(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    content = _csv(
        state,
        f"SKU-A;{_ean(state, 0)};EAN;Blue lamp;19.90;5;11;S;3;",
        f"SKU-B;{_ean(state, 1)};EAN;Red mug;abc;5;11;;;",  # bad price
        f"SKU-C;{_ean(state, 2)};EAN;Green scarf;7.50;0;11;;;update",
    )
    import_id = _upload(client, auth, content)
    statuses = [_poll(client, auth, import_id)["status"] for _ in range(3)]
    assert statuses == ["WAITING", "RUNNING", "COMPLETE"]
    final = _poll(client, auth, import_id)
    assert (final["lines_read"], final["lines_in_success"], final["lines_in_error"]) == (3, 2, 1)
    assert (final["offer_inserted"], final["offer_updated"], final["has_error_report"]) == (2, 0, True)

    report = client.get(f"/api/offers/imports/{import_id}/error_report", headers=auth)
    assert report.status_code == 200
    rows = list(csv.DictReader(io.StringIO(report.content.decode()), delimiter=";"))
    assert [r["sku"] for r in rows] == ["SKU-B"]
    assert rows[0]["price"] == "abc"
    assert rows[0]["error-line"] == "3"
    assert "price" in rows[0]["error-message"]

    offers = {o["shop_sku"]: o for o in client.get("/api/offers", headers=auth).json()["offers"]}
    assert set(offers) == {"SKU-A", "SKU-C"}
    assert Decimal(str(offers["SKU-A"]["price"])) == Decimal("19.90")
    assert offers["SKU-A"]["logistic_class"]["code"] == "S"
    assert offers["SKU-A"]["leadtime_to_ship"] == 3
    assert offers["SKU-C"]["active"] is False
    assert offers["SKU-C"]["inactivity_reasons"] == ["ZERO_QUANTITY"]


def test_offers_are_not_visible_before_the_import_completes(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    _upload(client, auth, _csv(state, f"SKU-A;{_ean(state, 0)};EAN;;19.90;5;11;;;"))
    assert client.get("/api/offers", headers=auth).json()["total_count"] == 0
    state.advance(61)  # the default import_delay completes imports nobody polls
    assert client.get("/api/offers", headers=auth).json()["total_count"] == 1


def test_no_error_report_is_404(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    import_id = _upload(client, auth, _csv(state, f"SKU-A;{_ean(state, 0)};EAN;;19.90;5;11;;;"))
    assert client.get(f"/api/offers/imports/{import_id}/error_report", headers=auth).status_code == 404
    for _ in range(3):
        _poll(client, auth, import_id)
    missing = client.get(f"/api/offers/imports/{import_id}/error_report", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["status"] == 404
    assert client.get("/api/offers/imports/999999", headers=auth).status_code == 404


def test_a_file_without_mandatory_columns_fails(client: TestClient, auth: dict[str, str]) -> None:
    import_id = _upload(client, auth, b"sku,price\nA,1\n")  # comma separated: one unknown column
    body = {}
    for _ in range(3):
        body = _poll(client, auth, import_id)
    assert body["status"] == "FAILED"
    assert "Missing mandatory column" in str(body["reason_status"])


def test_import_request_validation(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    content = _csv(state, f"SKU-A;{_ean(state, 0)};EAN;;19.90;5;11;;;")
    no_mode = client.post("/api/offers/imports", files={"file": ("o.csv", content)}, headers=auth)
    assert no_mode.status_code == 400
    bad_mode = client.post(
        "/api/offers/imports", files={"file": ("o.csv", content)}, data={"import_mode": "MERGE"}, headers=auth
    )
    assert bad_mode.status_code == 400
    no_file = client.post("/api/offers/imports", data={"import_mode": "NORMAL"}, headers=auth)
    assert no_file.status_code in (400, 415)
    assert client.post("/api/offers/imports", json={"import_mode": "NORMAL"}, headers=auth).status_code == 415


def test_replace_mode_deletes_offers_missing_from_the_file(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 3)
    import_id = _upload(client, auth, _csv(state, f"OFFER-1;{_ean(state, 0)};EAN;;30.00;4;11;;;"), "REPLACE")
    for _ in range(3):
        body = _poll(client, auth, import_id)
    assert (body["offer_updated"], body["offer_deleted"]) == (1, 2)
    assert [o.shop_sku for o in state.offers] == ["OFFER-1"]
    assert state.offers[0].price == Decimal("30.00")


def test_unknown_product_and_bad_values_are_line_errors(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    content = _csv(
        state,
        "SKU-1;0000000000000;EAN;;10.00;1;11;;;",
        f"SKU-2;{_ean(state, 0)};GTIN;;10.00;1;11;;;",
        f"SKU-3;{_ean(state, 0)};EAN;;10.001;1;11;;;",
        f"SKU-4;{_ean(state, 0)};EAN;;10.00;-1;11;;;",
        f"SKU-5;{_ean(state, 0)};EAN;;10.00;1;99;;;",
        f"SKU-6;{_ean(state, 0)};EAN;;10.00;1;11;HUGE;;",
        f"SKU-7;{_ean(state, 0)};EAN;;10.00;1;11;;;delete",
        f"SKU-8;{_ean(state, 0)};EAN;;10.00;1;11;;;",
        f"SKU-8;{_ean(state, 0)};EAN;;12.00;1;11;;;",
    )
    import_id = _upload(client, auth, content)
    for _ in range(3):
        body = _poll(client, auth, import_id)
    assert (body["lines_in_error"], body["lines_in_success"]) == (8, 1)
    report = client.get(f"/api/offers/imports/{import_id}/error_report", headers=auth).content.decode()
    errors = {r["sku"]: r["error-message"] for r in csv.DictReader(io.StringIO(report), delimiter=";")}
    assert set(errors) == {f"SKU-{i}" for i in range(1, 9)}
    assert "does not exist" in errors["SKU-1"]
    assert "unknown" in errors["SKU-2"]
    assert "decimals" in errors["SKU-3"]


def test_of24_updates_price_and_quantity_visible_in_of21(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 2)
    product = state.offer(SHOP_ID, "OFFER-1")
    assert product is not None
    payload = {
        "offers": [
            {
                "shop_sku": "OFFER-1",
                "product_id": product.product.sku,
                "product_id_type": "SKU",
                "price": Decimal("42.10"),
                "quantity": 7,
                "state_code": "11",
                "update_delete": "update",
            }
        ]
    }
    wire = {"offers": [{**payload["offers"][0], "price": 42.10}]}
    assert_request("OF24", wire)
    response = client.post("/api/offers", json=wire, headers=auth)
    assert response.status_code == 201, response.text
    assert_response("OF24", 201, response.json())
    import_id = response.json()["import_id"]
    for _ in range(3):
        status = _poll(client, auth, import_id)
    assert (status["status"], status["offer_updated"], status["lines_in_error"]) == ("COMPLETE", 1, 0)
    listed = client.get("/api/offers", params={"sku": "OFFER-1"}, headers=auth).json()
    assert_response("OF21", 200, listed)
    [offer] = listed["offers"]
    assert Decimal(str(offer["price"])) == Decimal("42.10")
    assert offer["quantity"] == 7


def test_of24_business_errors_are_reported_through_the_import(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1)
    offers = [
        {"shop_sku": "OFFER-1", "price": 5, "state_code": "11", "update_delete": "", "quantity": "3"},
        {
            "shop_sku": "NEW-1",
            "product_id": "nope",
            "product_id_type": "EAN",
            "price": 5,
            "state_code": "11",
            "update_delete": "",
        },
        {"shop_sku": "GONE", "price": 5, "state_code": "11", "update_delete": "delete"},
    ]
    response = client.post("/api/offers", json={"offers": offers}, headers=auth)
    assert response.status_code == 201
    import_id = response.json()["import_id"]
    for _ in range(3):
        status = _poll(client, auth, import_id)
    assert (status["lines_in_success"], status["lines_in_error"]) == (1, 2)
    report = client.get(f"/api/offers/imports/{import_id}/error_report", headers=auth).content.decode()
    errors = {r["sku"]: r["error-message"] for r in csv.DictReader(io.StringIO(report), delimiter=";")}
    assert set(errors) == {"NEW-1", "GONE"}
    offer = state.offer(SHOP_ID, "OFFER-1")
    assert offer is not None and offer.quantity == 3 and offer.price == Decimal(5)


def test_of24_structural_errors_are_400(client: TestClient, auth: dict[str, str]) -> None:
    bad_bodies = [
        {},
        {"offers": []},
        {"offers": [{"shop_sku": "A", "state_code": "11", "update_delete": ""}]},  # no price
        {"offers": [{"shop_sku": "A", "price": "x", "state_code": "11", "update_delete": ""}]},
        {"offers": [{"shop_sku": "A", "price": 1, "state_code": "11", "update_delete": "", "quantity": 1.5}]},
    ]
    for body in bad_bodies:
        response = client.post("/api/offers", json=body, headers=auth)
        assert response.status_code == 400, body
        assert response.json()["status"] == 400
    raw = client.post(
        "/api/offers", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert raw.status_code == 400


def test_of21_paging_and_limits(client: TestClient, auth: dict[str, str], state: SandboxState) -> None:
    seed_offers(state, 12)
    first = client.get("/api/offers", params={"max": 5}, headers=auth).json()
    second = client.get("/api/offers", params={"max": 5, "offset": 5}, headers=auth).json()
    last = client.get("/api/offers", params={"max": 5, "offset": 10}, headers=auth).json()
    assert first["total_count"] == second["total_count"] == last["total_count"] == 12
    skus = [o["shop_sku"] for page in (first, second, last) for o in page["offers"]]
    assert sorted(skus) == sorted(f"OFFER-{i}" for i in range(1, 13))
    assert len(client.get("/api/offers", headers=auth).json()["offers"]) == 10  # default max
    for params in ({"max": 101}, {"max": 0}, {"offset": -1}, {"max": "ten"}):
        response = client.get("/api/offers", params=params, headers=auth)
        assert response.status_code == 400, params
    assert len(client.get("/api/offers", params={"max": 100}, headers=auth).json()["offers"]) == 12


def test_import_timing_is_configurable() -> None:
    state = SandboxState(
        1, rate_limits={}, config=SandboxConfig(import_polls=0, import_delay=timedelta(hours=1))
    )
    client = TestClient(create_app(state))
    auth = {"Authorization": state.shops[SHOP_ID].api_key}
    import_id = _upload(client, auth, _csv(state, f"A;{_ean(state, 0)};EAN;;1.00;1;11;;;"))
    assert _poll(client, auth, import_id)["status"] == "COMPLETE"


def test_partial_update_only_touches_given_columns(
    client: TestClient, auth: dict[str, str], state: SandboxState
) -> None:
    seed_offers(state, 1)
    import_id = _upload(client, auth, b"sku;quantity\nOFFER-1;99\n", "PARTIAL_UPDATE")
    for _ in range(3):
        _poll(client, auth, import_id)
    offer = state.offer(SHOP_ID, "OFFER-1")
    assert offer is not None
    assert (offer.quantity, offer.price) == (99, Decimal("11.00"))
