"""Feeds 2021-06-30 with JSON_LISTINGS_FEED: document store, processing pace, processing reports."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from typing import Any

import pytest
from amazon_sandbox_helpers import DE, eu_seller, offer_body
from amazon_sandbox_spec import FEED_SCHEMA, REPORT_SCHEMA, assert_request, assert_response, document_errors
from starlette.testclient import TestClient

from tradelane.connectors.amazon.sandbox import AmazonSandboxState

MODEL = "feeds_2021-06-30"
FEEDS = "/feeds/2021-06-30"


def _submit(
    client: TestClient, auth: dict[str, str], content: bytes, feed_type: str = "JSON_LISTINGS_FEED"
) -> str:
    spec = {"contentType": "application/json; charset=UTF-8"}
    assert_request(MODEL, "createFeedDocument", spec)
    created = client.post(f"{FEEDS}/documents", json=spec, headers=auth)
    assert created.status_code == 201, created.text
    assert_response(MODEL, "createFeedDocument", 201, created.json())
    url = created.json()["url"]
    assert url.startswith("http://testserver/_documents/")
    assert (
        client.put(
            url, content=content, headers={"content-type": "application/json; charset=UTF-8"}
        ).status_code
        == 200
    )
    feed_spec = {
        "feedType": feed_type,
        "marketplaceIds": [DE],
        "inputFeedDocumentId": created.json()["feedDocumentId"],
    }
    assert_request(MODEL, "createFeed", feed_spec)
    response = client.post(f"{FEEDS}/feeds", json=feed_spec, headers=auth)
    assert response.status_code == 202, response.text
    assert_response(MODEL, "createFeed", 202, response.json())
    feed_id: str = response.json()["feedId"]
    return feed_id


def _feed(client: TestClient, auth: dict[str, str], feed_id: str) -> dict[str, Any]:
    response = client.get(f"{FEEDS}/feeds/{feed_id}", headers=auth)
    assert response.status_code == 200, response.text
    assert_response(MODEL, "getFeed", 200, response.json())
    body: dict[str, Any] = response.json()
    return body


def _report(client: TestClient, auth: dict[str, str], document_id: str) -> dict[str, Any]:
    response = client.get(f"{FEEDS}/documents/{document_id}", headers=auth)
    assert response.status_code == 200
    assert_response(MODEL, "getFeedDocument", 200, response.json())
    download = client.get(response.json()["url"])
    assert download.status_code == 200
    assert response.json()["compressionAlgorithm"] == "GZIP"
    report: dict[str, Any] = json.loads(gzip.decompress(download.content))
    errors = document_errors(REPORT_SCHEMA.name, report)
    assert not errors, errors
    return report


def _feed_doc(
    state: AmazonSandboxState, messages: list[dict[str, Any]], included: bool = True
) -> dict[str, Any]:
    header: dict[str, Any] = {"sellerId": eu_seller(state), "version": "2.0", "issueLocale": "en_US"}
    if included:
        header["report"] = {
            "includedData": ["issues", "offers", "fulfillmentAvailability"],
            "apiVersion": "2021-08-01",
        }
    doc = {"header": header, "messages": messages}
    assert not document_errors(FEED_SCHEMA.name, doc), document_errors(FEED_SCHEMA.name, doc)
    return doc


def _offer(message_id: int, sku: str, asin: str, **kwargs: Any) -> dict[str, Any]:
    body = offer_body(asin, **kwargs)
    return {"messageId": message_id, "sku": sku, "operationType": "UPDATE", **body}


def test_feed_goes_through_its_states_and_reports_per_message(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    asins = list(state.catalog)
    state.add_offer(eu_seller(state), "OLD", asins[5], Decimal("5"), 1)
    doc = _feed_doc(
        state,
        [
            _offer(1, "GOOD-1", asins[0]),
            _offer(2, "GOOD-2", asins[1], price=12.5, quantity=0),
            _offer(3, "UNKNOWN-ASIN", "B0NOTEXIST"),
            _offer(4, "BAD-PRICE", asins[2], price=0),
            _offer(5, "NO-QTY", asins[3], quantity=None),
            {"messageId": 6, "sku": "OLD", "operationType": "DELETE"},
            {
                "messageId": 7,
                "sku": "GOOD-1",
                "operationType": "PATCH",
                "productType": "PRODUCT",
                "patches": [
                    {
                        "op": "replace",
                        "path": "/attributes/fulfillment_availability",
                        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": 42}],
                    }
                ],
            },
        ],
    )
    feed_id = _submit(client, auth, json.dumps(doc).encode())
    first = _feed(client, auth, feed_id)
    assert first["processingStatus"] == "IN_QUEUE" and "resultFeedDocumentId" not in first
    state.advance(1)
    assert _feed(client, auth, feed_id)["processingStatus"] == "IN_PROGRESS"
    assert "GOOD-1" not in {sku for _, sku in state.listings}, "nothing is applied before DONE"
    state.advance(1)
    done = _feed(client, auth, feed_id)
    assert done["processingStatus"] == "DONE"
    assert done["processingStartTime"] <= done["processingEndTime"]
    report = _report(client, auth, done["resultFeedDocumentId"])
    assert report["header"]["feedId"] == feed_id
    assert report["summary"]["messagesProcessed"] == 7
    assert (report["summary"]["messagesAccepted"], report["summary"]["messagesInvalid"]) == (4, 3)
    rejected = {(i["messageId"], i["sku"], i["code"]) for i in report["issues"] if i["severity"] == "ERROR"}
    assert rejected == {(3, "UNKNOWN-ASIN", "8541"), (4, "BAD-PRICE", "8026"), (5, "NO-QTY", "90220")}
    items = {item["sku"]: item for item in report["items"]}
    assert set(items) == {"GOOD-1", "GOOD-2"}
    assert items["GOOD-1"]["fulfillmentAvailability"] == [
        {"fulfillmentChannelCode": "DEFAULT", "quantity": 42}
    ]
    assert items["GOOD-2"]["offers"][0]["price"] == {"currencyCode": "EUR", "amount": "12.5"}
    seller = eu_seller(state)
    assert (seller, "OLD") not in state.listings and (seller, "BAD-PRICE") not in state.listings
    assert _feed(client, auth, feed_id) == done, "a DONE feed is processed once"


def test_oversized_or_malformed_feeds_are_fatal(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    asin = next(iter(state.catalog))
    too_many = {
        "header": {"sellerId": eu_seller(state), "version": "2.0"},
        "messages": [{"messageId": i, "sku": f"S{i}", "operationType": "DELETE"} for i in range(1, 25_002)],
    }
    assert document_errors(FEED_SCHEMA.name, too_many), "the schema itself caps messages at 25,000"
    too_big = json.dumps(_feed_doc(state, [_offer(1, "A", asin)], included=False)).encode() + b" " * (
        10 * 1024 * 1024
    )
    wrong_seller = json.dumps(
        {"header": {"sellerId": "SOMEONE", "version": "2.0"}, "messages": [_offer(1, "A", asin)]}
    )
    cases = [
        (json.dumps(too_many).encode(), "25000"),
        (too_big, "maximum size"),
        (b"{not json", "not valid JSON"),
        (wrong_seller.encode(), "sellerId"),
    ]
    feed_ids = [(_submit(client, auth, content), text) for content, text in cases]
    state.advance(2)
    for feed_id, text in feed_ids:
        feed = _feed(client, auth, feed_id)
        assert feed["processingStatus"] == "FATAL"
        report = _report(client, auth, feed["resultFeedDocumentId"])
        assert text in report["issues"][0]["message"]
        assert report["summary"]["messagesAccepted"] == 0
    assert not state.listings


def test_feed_requests_amazon_rejects(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    def create(spec: dict[str, Any]) -> Any:
        return client.post(f"{FEEDS}/feeds", json=spec, headers=auth)

    doc = client.post(f"{FEEDS}/documents", json={"contentType": "application/json"}, headers=auth).json()
    base = {
        "feedType": "JSON_LISTINGS_FEED",
        "marketplaceIds": [DE],
        "inputFeedDocumentId": doc["feedDocumentId"],
    }
    not_uploaded = create(base)
    assert (
        not_uploaded.status_code == 400
        and "no uploaded content" in not_uploaded.json()["errors"][0]["message"]
    )
    assert client.put(doc["url"], content=b"{}", headers={"content-type": "text/plain"}).status_code == 403
    assert (
        client.put(doc["url"], content=b"{}", headers={"content-type": "application/json"}).status_code == 200
    )
    assert create({**base, "feedType": "POST_PRODUCT_DATA"}).status_code == 400
    assert create({**base, "inputFeedDocumentId": "nope"}).status_code == 400
    assert create({**base, "marketplaceIds": []}).status_code == 400
    assert create({**base, "marketplaceIds": ["ATVPDKIKX0DER"]}).status_code == 403
    missing = create({"feedType": "JSON_LISTINGS_FEED"})
    assert missing.status_code == 400
    assert_response(MODEL, "createFeed", 400, missing.json())
    assert client.post(f"{FEEDS}/documents", json={}, headers=auth).status_code == 400
    unknown = client.get(f"{FEEDS}/feeds/123", headers=auth)
    assert unknown.status_code == 404
    assert_response(MODEL, "getFeed", 404, unknown.json())


def test_upload_url_expires_after_five_minutes(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    doc = client.post(f"{FEEDS}/documents", json={"contentType": "application/json"}, headers=auth).json()
    state.advance(301)
    assert (
        client.put(doc["url"], content=b"{}", headers={"content-type": "application/json"}).status_code == 403
    )


def test_cancel_only_while_in_queue(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    content = json.dumps(_feed_doc(state, [_offer(1, "A", next(iter(state.catalog)))])).encode()
    first, second = _submit(client, auth, content), _submit(client, auth, content)
    assert client.delete(f"{FEEDS}/feeds/{first}", headers=auth).status_code == 200
    assert _feed(client, auth, first)["processingStatus"] == "CANCELLED"
    state.advance(1)
    assert client.delete(f"{FEEDS}/feeds/{second}", headers=auth).status_code == 400
    state.advance(1)
    assert _feed(client, auth, first)["processingStatus"] == "CANCELLED"
    assert _feed(client, auth, second)["processingStatus"] == "DONE"


@pytest.mark.parametrize("operation", ["PARTIAL_UPDATE", "PATCH"])
def test_partial_operations_need_an_existing_sku(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str], operation: str
) -> None:
    message: dict[str, Any] = {
        "messageId": 1,
        "sku": "NEW",
        "operationType": operation,
        "productType": "PRODUCT",
    }
    value = [{"fulfillment_channel_code": "DEFAULT", "quantity": 3}]
    if operation == "PATCH":
        message["patches"] = [
            {"op": "replace", "path": "/attributes/fulfillment_availability", "value": value}
        ]
    else:
        message["attributes"] = {"fulfillment_availability": value}
    feed_id = _submit(client, auth, json.dumps(_feed_doc(state, [message])).encode())
    state.advance(2)
    report = _report(client, auth, _feed(client, auth, feed_id)["resultFeedDocumentId"])
    assert report["summary"]["messagesInvalid"] == 1 and report["issues"][0]["sku"] == "NEW"


def test_amazons_own_example_feed_is_processed(
    client: TestClient, state: AmazonSandboxState, auth: dict[str, str]
) -> None:
    """The upstream example feed (its seller id replaced by ours): every message is answered, the
    ones touching SKUs this seller does not have, or lacking an ASIN, come back INVALID."""
    from amazon_sandbox_spec import AMAZON_DIR

    example = json.loads((AMAZON_DIR / "listings-feed-schema-v2.example.json").read_text(encoding="utf-8"))
    example["header"]["sellerId"] = eu_seller(state)
    assert not document_errors(FEED_SCHEMA.name, example)
    feed_id = _submit(client, auth, json.dumps(example).encode())
    state.advance(2)
    report = _report(client, auth, _feed(client, auth, feed_id)["resultFeedDocumentId"])
    summary = report["summary"]
    assert summary["messagesProcessed"] == 5
    assert (summary["messagesAccepted"], summary["messagesInvalid"]) == (1, 4)  # only the DELETE
    assert {i["messageId"] for i in report["issues"] if i["severity"] == "ERROR"} == {2, 3, 4, 5}
    assert report["items"] == [] and summary["itemSummary"]["items"] == 0, "a deleted SKU has no item"
