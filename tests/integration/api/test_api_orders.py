"""Orders and merchant-side updates through the API (bearer token of one tenant), checked against the
database: listing, detail with payload versions, shipments/cancellations/refunds/returns with their
idempotency, and labels (JSON base64 or multipart, HTML rendered to PDF, delivered as PDF or base64)."""

from __future__ import annotations

import base64
import os
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pypdfium2
import pytest
import sqlalchemy as sa
from apitest_support import CHANNEL
from fastapi.testclient import TestClient

from order_updates_support import make_order, tiny_pdf
from tradelane.connectors.mirakl.mapping import MiraklOrderState
from tradelane.persistence.tables import jobs, order_documents, order_updates


@pytest.fixture
def orders(container, world, now) -> dict[str, int]:
    engine = container.engine
    ids = {
        "A-1": make_order(engine, world.acme.id, world.acme.channel_id, "A-1", now),
        "A-2": make_order(
            engine,
            world.acme.id,
            world.acme.channel_id,
            "A-2",
            now,
            state=MiraklOrderState.WAITING_ACCEPTANCE,
        ),
        "G-1": make_order(engine, world.globex.id, world.globex.channel_id, "G-1", now),
    }
    # A second version of A-1 (so the detail shows two raw payloads).
    make_order(
        engine,
        world.acme.id,
        world.acme.channel_id,
        "A-1",
        now,
        updated=timedelta(minutes=1),
        attributes={"tags": "vip"},
    )
    return ids


def _jobs(container, kind: str) -> list[sa.Row]:
    with container.engine.connect() as conn:
        return list(conn.execute(sa.select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.id)).all())


def test_list_orders_shape_filters_and_isolation(client: TestClient, world, orders):
    body = client.get("/api/v1/orders", headers=world.acme.auth).json()
    assert [o["marketplace_order_id"] for o in body["items"]] == ["A-2", "A-1"]
    assert body["next_offset"] is None
    order = body["items"][1]
    assert {
        "id",
        "channel",
        "marketplace_order_id",
        "state",
        "attributes",
        "shipping_address",
        "lines",
    } <= set(order)
    assert order["channel"] == CHANNEL and order["attributes"] == {"tags": "vip"}
    assert (order["state"], order["marketplace_state"]) == ("to_ship", "SHIPPING")
    assert order["shipping_address"]["city"] == "Paris"
    line = order["lines"][0]
    assert isinstance(line["unit_price"], str) and Decimal(line["unit_price"]) == Decimal("19.90")
    assert {**line, "unit_price": "19.90"} == {
        "line_id": "A-1-L1",
        "sku": "SKU-1",
        "offer_sku": "OFFER-SKU-1",
        "title": "Product SKU-1",
        "quantity": 2,
        "unit_price": "19.90",
        "currency": "EUR",
        "type": "textual",
        "state": "SHIPPING",
        "refusal_reason": None,
    }
    shipping = client.get("/api/v1/orders", headers=world.acme.auth, params={"state": "to_ship"}).json()
    assert [o["marketplace_order_id"] for o in shipping["items"]] == ["A-1"]
    # the filter takes the neutral states only: a marketplace's own name is a 422 listing them
    raw = client.get("/api/v1/orders", headers=world.acme.auth, params={"state": "SHIPPING"})
    assert raw.status_code == 422 and "awaiting_acceptance" in raw.text, raw.text
    page = client.get("/api/v1/orders", headers=world.acme.auth, params={"limit": 1, "offset": 0}).json()
    assert len(page["items"]) == 1 and page["next_offset"] == 1
    other = client.get("/api/v1/orders", headers=world.acme.auth, params={"channel": "nope"}).json()
    assert other["items"] == []
    globex = client.get("/api/v1/orders", headers=world.globex.auth).json()
    assert [o["marketplace_order_id"] for o in globex["items"]] == ["G-1"]


def test_order_detail_by_id_or_channel_ref(client: TestClient, world, orders):
    by_ref = client.get(f"/api/v1/orders/{quote(CHANNEL + ':A-1', safe='')}", headers=world.acme.auth)
    assert by_ref.status_code == 200, by_ref.text
    detail = by_ref.json()
    assert detail["id"] == orders["A-1"] and detail["cancellation"] is None
    assert [v["payload"]["v"] for v in detail["versions"]] == [0.0, 60.0]
    assert detail["history"][0]["state"] == "to_ship"
    assert detail["updates"] == [] and detail["documents"] == [] and detail["returns"] == []
    lean = client.get(
        f"/api/v1/orders/{orders['A-1']}", headers=world.acme.auth, params={"payloads": "false"}
    )
    assert lean.json()["versions"] is None and lean.json()["id"] == orders["A-1"]
    for ref in (str(orders["G-1"]), f"{CHANNEL}:G-1", "nope", "99999999999999999999999", "%C2%B2"):
        response = client.get(f"/api/v1/orders/{ref}", headers=world.acme.auth)
        assert response.status_code == 404, ref
        assert response.headers["content-type"] == "application/problem+json"


def test_shipment_created_then_replayed(client: TestClient, world, orders, container):
    url = f"/api/v1/orders/{orders['A-1']}/shipments"
    body = {
        "carrier": "UPS",
        "tracking_number": "1Z9",
        "tracking_url": "https://t.example/1Z9",
        "external_id": "s-1",
    }
    first = client.post(url, headers=world.acme.auth, json=body)
    assert first.status_code == 201, first.text
    result = first.json()
    assert result["status"] == "queued" and result["created"] is True and result["kind"] == "shipment"
    again = client.post(url, headers=world.acme.auth, json=body)
    assert (
        again.status_code == 200 and again.json()["id"] == result["id"] and again.json()["created"] is False
    )
    conflict = client.post(url, headers=world.acme.auth, json={**body, "tracking_number": "OTHER"})
    assert conflict.status_code == 409
    [job] = _jobs(container, "fulfillments.ship")
    assert job.channel_id == world.acme.channel_id and job.payload["tracking_number"] == "1Z9"
    # shop-fr has multi-shipment off: a partial shipment is recorded as not supported, never sent.
    partial = client.post(url, headers=world.acme.auth, json={"lines": [{"sku": "SKU-1", "quantity": 1}]})
    assert partial.status_code == 201 and partial.json()["status"] == "not_supported"
    detail = client.get(url.rsplit("/", 1)[0], headers=world.acme.auth).json()
    assert [(u["kind"], u["status"]) for u in detail["updates"]] == [
        ("shipment", "queued"),
        ("shipment", "not_supported"),
    ]
    assert len(_jobs(container, "fulfillments.ship")) == 1


def test_update_validation_and_isolation(client: TestClient, world, orders, container):
    url = f"/api/v1/orders/{orders['A-1']}/shipments"
    for bad in (
        {"lines": [{"quantity": 1}]},
        {"lines": [{"sku": "SKU-1", "quantity": 0}]},
        {"lines": []},
        {"unknown": 1},
        {"external_id": "a\u0000b"},
    ):
        assert client.post(url, headers=world.acme.auth, json=bad).status_code == 422, bad
    wrong_sku = client.post(url, headers=world.acme.auth, json={"lines": [{"sku": "X", "quantity": 1}]})
    assert wrong_sku.status_code == 422 and "has no SKU 'X'" in wrong_sku.json()["detail"]
    assert client.post(url, headers=world.globex.auth, json={}).status_code == 404
    unknown_merchant = client.post(url, headers=world.acme.auth, json={"merchant_system": "erp"})
    assert unknown_merchant.status_code == 404
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(order_updates)).scalar_one() == 0


def test_cancellations_refunds_returns(client: TestClient, world, orders, container):
    base = f"/api/v1/orders/{quote(CHANNEL + ':A-1', safe='')}"
    line_cancel = client.post(
        f"{base}/cancellations",
        headers=world.acme.auth,
        json={"lines": [{"line_id": "A-1-L2", "quantity": 1}], "reason": "no stock"},
    )
    assert line_cancel.status_code == 201
    assert line_cancel.json()["status"] == "not_supported"
    assert "line-level cancellation is not supported by mirakl" in line_cancel.json()["detail"]
    refund = client.post(
        f"{base}/refunds",
        headers=world.acme.auth,
        json={"reason_code": "DAMAGED", "lines": [{"sku": "SKU-1", "quantity": 1, "amount": "3.50"}]},
    )
    assert refund.status_code == 201 and refund.json()["status"] == "queued"
    [job] = _jobs(container, "fulfillments.refund")
    assert job.payload["lines"][0]["amount"] == "3.50"
    too_much = client.post(
        f"{base}/refunds",
        headers=world.acme.auth,
        json={"reason_code": "DAMAGED", "lines": [{"sku": "SKU-2", "quantity": 1, "amount": 99}]},
    )
    assert too_much.status_code == 422
    ret = client.post(
        f"{base}/returns",
        headers=world.acme.auth,
        json={"lines": [{"sku": "SKU-1", "quantity": 1}], "status": "received"},
    )
    assert ret.status_code == 201 and ret.json()["status"] == "not_supported"
    whole = client.post(f"{base}/cancellations", headers=world.acme.auth, json={})
    assert whole.status_code == 201 and whole.json()["status"] == "queued"
    assert len(_jobs(container, "fulfillments.cancel")) == 1


def test_pdf_label_as_json_then_downloaded(client: TestClient, world, orders, container):
    pdf = tiny_pdf("LABEL-PDF")
    url = f"/api/v1/orders/{orders['A-1']}/labels"
    payload = {"content_base64": base64.b64encode(pdf).decode(), "format": "pdf"}
    created = client.post(url, headers=world.acme.auth, json=payload)
    assert created.status_code == 201, created.text
    result = created.json()
    assert result["status"] == "queued" and result["document"]["size"] == len(pdf)
    assert result["document"]["source_format"] == "pdf" and result["payload"]["type_code"] == "SHIPPING_LABEL"
    [job] = _jobs(container, "fulfillments.label")
    assert job.payload["document_id"] == result["document"]["id"] and job.channel_id == world.acme.channel_id
    assert client.post(url, headers=world.acme.auth, json=payload).status_code == 200  # same label
    doc_url = f"{url}/{result['document']['id']}"
    download = client.get(doc_url, headers=world.acme.auth)
    assert download.status_code == 200 and download.content == pdf
    assert download.headers["content-type"] == "application/pdf"
    assert "attachment" in download.headers["content-disposition"]
    as_json = client.get(doc_url, headers=world.acme.auth, params={"as": "base64"}).json()
    assert (
        base64.b64decode(as_json["content_base64"]) == pdf
        and as_json["sha256"] == result["payload"]["sha256"]
    )
    assert client.get(doc_url, headers=world.globex.auth).status_code == 404
    assert client.get(f"{url}/999", headers=world.acme.auth).status_code == 404


def test_bad_labels_are_refused(client: TestClient, world, orders, container):
    url = f"/api/v1/orders/{orders['A-1']}/labels"
    html = b'<p>Label</p><img src="https://cdn.example/logo.png">'
    cases = [
        ({"content_base64": "%%%", "format": "pdf"}, "not valid base64"),
        ({"content_base64": base64.b64encode(b"hello").decode(), "format": "pdf"}, "not a PDF"),
        (
            {"content_base64": base64.b64encode(html).decode(), "format": "html"},
            "https://cdn.example/logo.png",
        ),
    ]
    for body, reason in cases:
        response = client.post(url, headers=world.acme.auth, json=body)
        assert response.status_code == 422 and reason in response.json()["detail"], response.text
    assert client.post(url, headers=world.acme.auth, json={"format": "pdf"}).status_code == 422
    plain = client.post(url, headers={**world.acme.auth, "Content-Type": "text/plain"}, content=b"x")
    assert plain.status_code == 415
    no_file = client.post(url, headers=world.acme.auth, data={"format": "pdf"}, files={"other": ("a", b"x")})
    assert no_file.status_code == 422
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(order_documents)).scalar_one() == 0


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="Chromium is not installed")
def test_html_label_upload_is_rendered_to_a_real_pdf(client: TestClient, world, orders):
    html = b"""<!doctype html><html><body style="margin:10mm">
      <h1>API-LABEL-42</h1><div style="width:50mm;height:20mm;background:#000"></div></body></html>"""
    url = f"/api/v1/orders/{quote(CHANNEL + ':A-1', safe='')}/labels"
    response = client.post(
        url,
        headers=world.acme.auth,
        files={"file": ("label.html", html, "text/html")},
        data={"format": "html", "type_code": "DELIVERY_NOTE", "external_id": "lbl-1"},
    )
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["document"]["source_format"] == "html" and result["external_id"] == "lbl-1"
    pdf = client.get(f"{url}/{result['document']['id']}", headers=world.acme.auth).content
    document = pypdfium2.PdfDocument(pdf)
    try:
        bitmap = document[0].render(scale=50 / 72)
        pixels = bytes(bitmap.buffer)
        dark = sum(1 for i in range(0, len(pixels), bitmap.n_channels) if pixels[i] < 128)
        text = document[0].get_textpage().get_text_range()
    finally:
        document.close()
    assert dark > 300 and "API-LABEL-42" in text
