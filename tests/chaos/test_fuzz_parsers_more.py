"""Fuzzing, continued (issue 12): the parsers and mappers ``test_fuzz_parsers.py`` leaves out — the
Amazon connector (order, listing, submission and processing-report mapping, LWA token answers, the
SP-API client's classification of answers), stock files, the HTTP OMS answer classification, Shopify's
client helpers and the parsing part of Shopify webhook processing. No crash other than the documented,
classified errors.

Inputs are the Amazon sandbox's own answers (LWA, searchOrders/getOrder in every fulfilment status,
searchListingsItems with a variation child, a rejected putListingsItem, a JSON_LISTINGS_FEED processing
report, an ErrorList) mutated by Hypothesis like the Mirakl payloads there (keys dropped, values swapped
for arbitrary JSON — nulls, wrong types, huge and negative numbers, odd strings —, lists cut); bodies
also come truncated, nested too deep for the parser, with a 5,000-digit number, or as arbitrary text.
Examples per test: 100 (``TRADELANE_CHAOS=long``: 2,000). Nothing here touches a database.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import os
import string
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient
from test_fuzz_parsers import FUZZ, JSON, NOW, _header_text, _only, mutate

from tradelane.connectors.amazon import mapping as amazon
from tradelane.connectors.amazon.auth import MAX_EXPIRES_IN, LwaAuth
from tradelane.connectors.amazon.client import AmazonClient
from tradelane.connectors.amazon.errors import (
    AmazonAuthError,
    AmazonRejected,
    AmazonRetryable,
    AmazonSchemaError,
)
from tradelane.connectors.amazon.sandbox import AmazonSandboxState, SandboxSettings, create_app
from tradelane.connectors.amazon.settings import AmazonSettings
from tradelane.connectors.base import ListedOffer, OfferOutcome
from tradelane.domain.errors import MAX_RETRY_AFTER_SECONDS, ValidationError
from tradelane.http_edge import StatusClass, status_class
from tradelane.merchant.base import MerchantSystem, OutcomeKind
from tradelane.merchant.files.stock import (
    MAX_QUANTITY,
    MAX_SKU_LENGTH,
    LineRejection,
    StockFileError,
    StockLine,
    parse_quantity,
    read_stock_file,
    scan_stock_file,
)
from tradelane.merchant.http_oms import MAX_MESSAGE, classify, partner_message
from tradelane.merchant.shopify.client import ShopifyUnavailable, describe_errors, next_page_info
from tradelane.merchant.shopify.webhook_protocol import WebhookTopic, payload_fits_topic
from tradelane.services.shopify_webhooks import EventStatus, ProcessResult, process_event

# Nothing here touches a database: the SQLite half of ``make test`` runs it, the PostgreSQL half need not.
pytestmark = pytest.mark.skipif(
    os.environ.get("TRADELANE_TEST_DB") == "postgres", reason="no database involved: runs in the SQLite half"
)

DE = "A1PA6795UKMFR9"
OUT_OF_RANGE = "{" + '"n": ' + "7" * 5000 + "}"  # int() refuses over 4,300 digits (a ValueError)
TOO_DEEP = "[" * 5_000  # json.loads raises RecursionError, not a ValueError


def body_text(data: st.DataObject, value: Any) -> str:
    """A response body from ``value``: mutated JSON (Decimals as strings, NaN/Infinity as Python writes
    them), sometimes truncated, nested too deep, a number too long to parse, or any text."""
    kind = data.draw(st.integers(0, 11), label="body kind")
    if kind == 0:
        return data.draw(st.text(max_size=60), label="text")
    if kind == 1:
        return TOO_DEEP
    if kind == 2:
        return OUT_OF_RANGE
    text = json.dumps(mutate(data, value), default=str)
    if kind == 3:
        return text[: data.draw(st.integers(0, len(text)), label="truncated at")]
    return text


# --- real payloads, from the Amazon sandbox -------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[dict[str, Any]]:
    """What the sandbox answers: ``token`` (LWA), ``orders`` (searchOrders: PENDING, UNSHIPPED,
    PARTIALLY_SHIPPED, SHIPPED, CANCELLED; and a getOrder ``order``), ``items`` (searchListingsItems,
    one a variation child, one with the ERROR issues of ``submission``), ``submission`` (an INVALID
    putListingsItem), ``report`` (a processing report with per-message issues), ``errors`` (an ErrorList),
    ``feed`` (getFeed). Numbers as ``Decimal`` where the client parses them so."""
    settings = SandboxSettings(feed_queue_seconds=1, feed_processing_seconds=1)
    state = AmazonSandboxState(7, rate_limits="generous", settings=settings)
    seller = next(a for a in state.accounts.values() if a.region == "eu")
    asins = list(state.catalog)
    for i, asin in enumerate(asins[:3], start=1):
        state.add_offer(seller.seller_id, f"SKU-{i}", asin, Decimal("10.00") + i, 10)
    state.add_offer(seller.seller_id, "CHILD-1", asins[3], Decimal("5"), 2, parent_sku="PARENT-1")
    state.create_order(seller.seller_id, [("SKU-1", 2), ("SKU-2", 1)])
    state.create_order(seller.seller_id, [("SKU-2", 2)], paid=True)
    partial = state.create_order(seller.seller_id, [("SKU-1", 1), ("SKU-3", 3)], paid=True)
    shipped = state.create_order(seller.seller_id, [("SKU-2", 1)], paid=True)
    state.cancel(state.create_order(seller.seller_id, [("SKU-3", 1)], paid=True).order_id)
    app = state.application
    with TestClient(create_app(state)) as client:
        token = client.post(
            "/auth/o2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": seller.refresh_token,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
            },
        )
        assert token.status_code == 200, token.text
        auth = {"x-amz-access-token": token.json()["access_token"]}

        def call(method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
            response = client.request(method, path, headers=auth, **kwargs)
            assert response.status_code == status, (path, response.text)
            return json.loads(response.text, parse_float=Decimal) if response.text else None

        ship_date = state.now().isoformat().replace("+00:00", "Z")
        for order, item, quantity in ((partial, 1, 1), (shipped, 0, 1)):
            package = {
                "packageReferenceId": "1",
                "carrierCode": "DHL",
                "trackingNumber": f"T-{order.order_id}",
                "shipDate": ship_date,
                "orderItems": [{"orderItemId": order.items[item].order_item_id, "quantity": quantity}],
            }
            call(
                "POST",
                f"/orders/v0/orders/{order.order_id}/shipmentConfirmation",
                204,
                json={"marketplaceId": DE, "packageDetail": package},
            )
        errors = call(
            "POST",
            f"/orders/v0/orders/{partial.order_id}/shipmentConfirmation",
            400,
            json={"marketplaceId": DE, "packageDetail": {**package, "shipDate": "2000-01-01T00:00:00Z"}},
        )
        included = {"includedData": "BUYER,RECIPIENT,FULFILLMENT"}
        orders = call(
            "GET",
            "/orders/2026-01-01/orders",
            params={"lastUpdatedAfter": "2020-01-01T00:00:00Z", "marketplaceIds": DE, **included},
        )["orders"]
        single = call("GET", f"/orders/2026-01-01/orders/{partial.order_id}", params=included)["order"]
        listings = f"/listings/2021-08-01/items/{seller.seller_id}"
        items = call(
            "GET",
            listings,
            params={
                "marketplaceIds": DE,
                "includedData": "summaries,offers,fulfillmentAvailability,issues,relationships",
            },
        )["items"]
        submission = call(
            "PUT",
            f"{listings}/BAD-1",
            params={"marketplaceIds": DE},
            json={
                "productType": "PRODUCT",
                "requirements": "LISTING_OFFER_ONLY",
                "attributes": {"condition_type": [{"value": "new_new", "marketplace_id": DE}]},
            },
        )
        items.append({**items[0], "sku": "BAD-1", "issues": submission["issues"]})
        feed = _processed_feed(call, state, seller.seller_id, asins)
        document = call("GET", f"/feeds/2021-06-30/documents/{feed['resultFeedDocumentId']}")
        download = client.get(document["url"])
        report = json.loads(gzip.decompress(download.content), parse_float=Decimal)
    statuses = {o["fulfillment"]["fulfillmentStatus"] for o in orders}
    assert statuses == {"PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED"}, statuses
    assert report["issues"] and submission["status"] == "INVALID"
    yield {
        "token": json.loads(token.text),
        "orders": [*orders, single],
        "items": items,
        "submission": submission,
        "report": report,
        "errors": errors,
        "feed": feed,
    }


def _processed_feed(
    call: Callable[..., Any], state: AmazonSandboxState, seller_id: str, asins: list[str]
) -> dict[str, Any]:
    """A JSON_LISTINGS_FEED of two good offers, an unknown ASIN, a zero price and a missing quantity,
    processed (getFeed DONE)."""

    def offer(
        message_id: int, sku: str, asin: str, price: Any = "19.99", quantity: Any = 5
    ) -> dict[str, Any]:
        availability: dict[str, Any] = {"fulfillment_channel_code": "DEFAULT"}
        if quantity is not None:
            availability["quantity"] = quantity
        return {
            "messageId": message_id,
            "sku": sku,
            "operationType": "UPDATE",
            "productType": "PRODUCT",
            "requirements": "LISTING_OFFER_ONLY",
            "attributes": {
                "merchant_suggested_asin": [{"value": asin, "marketplace_id": DE}],
                "condition_type": [{"value": "new_new", "marketplace_id": DE}],
                "purchasable_offer": [
                    {
                        "marketplace_id": DE,
                        "currency": "EUR",
                        "our_price": [{"schedule": [{"value_with_tax": price}]}],
                    }
                ],
                "fulfillment_availability": [availability],
            },
        }

    content = {
        "header": {
            "sellerId": seller_id,
            "version": "2.0",
            "issueLocale": "en_US",
            "report": {"includedData": ["issues"], "apiVersion": "2021-08-01"},
        },
        "messages": [
            offer(1, "GOOD-1", asins[0]),
            offer(2, "GOOD-2", asins[1], price="12.5", quantity=0),
            offer(3, "UNKNOWN-ASIN", "B0NOTEXIST"),
            offer(4, "BAD-PRICE", asins[2], price=0),
            offer(5, "NO-QTY", asins[4], quantity=None),
        ],
    }
    document = call(
        "POST", "/feeds/2021-06-30/documents", 201, json={"contentType": "application/json; charset=UTF-8"}
    )
    state.upload(document["feedDocumentId"], json.dumps(content).encode(), "application/json; charset=UTF-8")
    created = call(
        "POST",
        "/feeds/2021-06-30/feeds",
        202,
        json={
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": [DE],
            "inputFeedDocumentId": document["feedDocumentId"],
        },
    )
    state.advance(2)
    feed: dict[str, Any] = call("GET", f"/feeds/2021-06-30/feeds/{created['feedId']}")
    assert feed["processingStatus"] == "DONE", feed
    return feed


# --- Amazon mapping -------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_amazon_orders_map_or_fail_with_a_schema_error(sandbox: dict[str, Any], data) -> None:
    orders = sandbox["orders"]
    payload = mutate(data, orders[data.draw(st.integers(0, len(orders) - 1), label="order")])
    status = _only((AmazonSchemaError,), lambda: amazon.order_status(payload))
    assert status is None or status in amazon.ORDER_STATES
    assert _only((AmazonSchemaError,), lambda: amazon.withheld(payload)) in (None, True, False)
    assert _only((AmazonSchemaError,), lambda: amazon.needs_details(payload)) in (None, True, False)
    left = amazon.order_line_quantities(payload)  # no error of its own: what it cannot read is left out
    assert all(isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in left.items())
    try:
        order = amazon.order_from_amazon(payload)
    except AmazonSchemaError as exc:
        assert exc.path.startswith("$") and len(str(exc)) < 400, str(exc)
        return
    assert order.marketplace_order_id and order.raw_state == status
    assert order.created_at.tzinfo is not None and order.updated_at.tzinfo is not None
    for line in order.lines:
        assert 0 <= line.quantity <= amazon.MAX_LINE_QUANTITY
        assert line.unit_price.is_finite() and line.unit_price.adjusted() < 14
        assert line.offer_sku and isinstance(line.currency, str)


@FUZZ
@given(data=st.data(), skus=st.lists(st.text(min_size=1, max_size=8), max_size=6))  # the feed's own SKUs
def test_amazon_processing_reports_map_or_fail_with_a_schema_error(
    sandbox: dict[str, Any], data, skus: list[str]
) -> None:
    report = mutate(data, sandbox["report"])
    assert isinstance(amazon.report_summary(report), str)  # a summary never fails
    outcomes = _only((AmazonSchemaError,), lambda: amazon.report_outcomes(report, skus))
    for outcome in outcomes or []:
        assert isinstance(outcome, OfferOutcome) and outcome.sku
        assert outcome.ok == (not outcome.errors)


@FUZZ
@given(data=st.data())
def test_amazon_listings_and_submissions_map_or_fail_with_a_schema_error(
    sandbox: dict[str, Any], data
) -> None:
    items = sandbox["items"]
    item = mutate(data, items[data.draw(st.integers(0, len(items) - 1), label="item")])
    listed = _only((AmazonSchemaError,), lambda: amazon.listed_offer(item, DE))
    if listed is not None:
        assert isinstance(listed, ListedOffer) and listed.sku
        assert listed.price is None or (listed.price.is_finite() and listed.price.adjusted() < 14)
        assert listed.quantity is None or isinstance(listed.quantity, int)
        assert listed.group_key is None or isinstance(listed.group_key, str)
    outcome = _only((AmazonSchemaError,), lambda: amazon.listing_outcome("SKU-1", item))
    assert outcome is None or outcome.ok == (not outcome.errors)
    response = mutate(data, sandbox["submission"])
    outcome = _only((AmazonSchemaError,), lambda: amazon.submission_outcome("BAD-1", response))
    assert outcome is None or outcome.ok == (not outcome.errors)


_time_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "2026-01-01T10:00:00Z",
            "2026-01-01T10:00:00",
            "2026-02-30T10:00:00Z",
            "9999-12-31T23:59:59+23:59",
            "0001-01-01T00:00:00-23:59",
            "2026-01-01T10:00:00.123456789Z",
            "2026-01-01T10:00:00+99:00",
        ]
    ),
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
)


@FUZZ
@given(value=_time_text | JSON)
def test_amazon_times_parse_or_fail_with_a_schema_error(value: Any) -> None:
    moment = _only((AmazonSchemaError,), lambda: amazon.parse_time(value, "$.createdTime"))
    assert moment is None or moment.tzinfo is not None


# --- Amazon transport: LWA token answers and SP-API answers ----------------------------------------

_statuses = st.sampled_from([200, 201, 204, 400, 401, 403, 404, 408, 413, 429, 500, 503]) | st.integers(
    200, 599
)
_ascii_header = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30
) | _header_text.filter(lambda v: v is not None and v.isascii() and v.isprintable())


def _headers(data: st.DataObject) -> dict[str, str]:
    headers = {}
    for name, values in (
        ("content-type", st.sampled_from(["application/json", "text/html; charset=utf-8", "text/plain"])),
        ("retry-after", _ascii_header),
        ("x-amzn-RateLimit-Limit", _ascii_header | st.sampled_from(["sNaN", "-1", "0", "1e999", "NaN"])),
    ):
        if data.draw(st.booleans(), label=f"has {name}"):
            headers[name] = data.draw(values, label=name)
    return headers


def _answer(status: int, text: str, headers: dict[str, str]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, content=text.encode(), headers=headers)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _lwa(http: httpx.Client, clock: Clock) -> LwaAuth:
    return LwaAuth(
        token_url="https://lwa.test/auth/o2/token",
        client_id="amzn1.application-oa2-client.fuzz",
        client_secret="secret-value",
        refresh_token="Atzr|refresh-value",
        http=http,
        clock=clock,
    )


@FUZZ
@given(data=st.data(), status=_statuses)
def test_lwa_token_answers_give_a_token_or_a_classified_error(
    sandbox: dict[str, Any], data, status: int
) -> None:
    oauth_error = {"error": "invalid_grant", "error_description": "The refresh token is invalid."}
    base = sandbox["token"] if status_class(status) is StatusClass.OK else oauth_error
    answer = _answer(status, body_text(data, base), _headers(data))
    clock = Clock()
    auth = _lwa(httpx.Client(transport=httpx.MockTransport(answer)), clock)
    try:
        token = auth.access_token()
    except (AmazonAuthError, AmazonRejected, AmazonRetryable) as exc:
        assert len(str(exc)) < 600, str(exc)
        return
    assert isinstance(token, str) and token
    clock.now += timedelta(seconds=MAX_EXPIRES_IN)  # whatever expires_in said, renewed by then
    auth.access_token()
    assert auth.refreshes == 2


def _settings() -> AmazonSettings:
    return AmazonSettings.from_dict(
        {
            "seller_id": "A1SELLER",
            "marketplace_id": DE,
            "region": "eu",
            "endpoint": "https://sp.test",
            "token_endpoint": "https://lwa.test/auth/o2/token",
        }
    )


#: Each client call with the sandbox answer its body is mutated from.
SP_CALLS: dict[str, tuple[Callable[[AmazonClient], Any], Callable[[dict[str, Any]], Any]]] = {
    "searchOrders": (
        lambda c: c.search_orders(last_updated_after=NOW),
        lambda s: {"orders": s["orders"][:2], "pagination": {"nextToken": "abc"}},
    ),
    "getOrder": (lambda c: c.get_order("302-1"), lambda s: {"order": s["orders"][-1]}),
    "searchListingsItems": (lambda c: c.search_listings_items(), lambda s: {"items": s["items"]}),
    "putListingsItem": (lambda c: c.put_listings_item("BAD-1", {"a": 1}), lambda s: s["submission"]),
    "getFeed": (lambda c: c.get_feed("F1"), lambda s: s["feed"]),
    "createFeedDocument": (
        lambda c: c.create_feed_document(),
        lambda s: {"feedDocumentId": "D1", "url": "https://docs.test/D1"},
    ),
    "error": (lambda c: c.get_order("302-1"), lambda s: s["errors"]),
}


@pytest.mark.parametrize("op", sorted(SP_CALLS))
@FUZZ
@given(data=st.data(), status=_statuses)
def test_sp_api_answers_are_classified(sandbox: dict[str, Any], op: str, data, status: int) -> None:
    call, base = SP_CALLS[op]
    headers = _headers(data)
    text = body_text(data, base(sandbox))
    token = json.dumps({"access_token": "Atza|fuzz", "expires_in": 3600})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "lwa.test":
            return httpx.Response(200, text=token)
        return _answer(status, text, headers)(request)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    clock = Clock()
    throttled: list[tuple[str, float]] = []
    client = AmazonClient(
        _settings(),
        _lwa(http, clock),
        http=http,
        clock=clock,
        throttle=lambda op: None,
        on_throttled=lambda op, seconds: throttled.append((op, seconds)),
    )
    try:
        call(client)
    except (AmazonRetryable, AmazonRejected, AmazonSchemaError, AmazonAuthError) as exc:
        assert len(str(exc)) < 2_000, str(exc)[:300]
        retry_after = getattr(exc, "retry_after", None)
        assert retry_after is None or 0 <= retry_after <= MAX_RETRY_AFTER_SECONDS
    assert all(math.isfinite(rate) and rate > 0 for rate in client.rate_limits.values())
    assert all(0 <= seconds <= MAX_RETRY_AFTER_SECONDS for _, seconds in throttled)


# --- stock files ----------------------------------------------------------------------------------

_quantity_text = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.text(max_size=12),
    st.sampled_from(["", " 7 ", "-0", "0012", "²", "١٢", "1e3", "3.0", "2147483648", "9" * 5000]),
)
_sku_text = st.one_of(st.text(max_size=12), st.sampled_from(["SKU-1", " SKU-1 ", "x" * 201, ""]))
_csv_cell = st.one_of(_sku_text, _quantity_text)
_csv_text = st.builds(
    lambda header, rows: "\n".join([header, *(",".join(row) for row in rows)]),
    st.sampled_from(["sku,quantity", "quantity,sku", " SKU , Quantity ", "sku", "sku,qty", ""]),
    st.lists(st.lists(_csv_cell, max_size=3), max_size=6),
)
_jsonl_record = st.one_of(
    st.fixed_dictionaries({"sku": _sku_text | JSON, "quantity": _quantity_text | JSON}),
    st.dictionaries(st.sampled_from(["sku", "quantity", "qty"]), JSON, max_size=3),
    JSON,
)
_jsonl_text = st.lists(
    st.one_of(
        _jsonl_record.map(lambda r: json.dumps(r, default=str)),
        st.text(max_size=20),
        st.just(TOO_DEEP),
        st.just('{"sku": "A", "quantity": ' + "9" * 5000 + "}"),
    ),
    max_size=6,
).map("\n".join)
_file_bytes = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"\xef\xbb\xbfsku,quantity\nA,1\n", b"sku,quantity\nA,\xff\n", b"sku,quantity\n\x00,1"]),
)
_names = itertools.count()


@pytest.fixture(scope="module")
def stock_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stock")


@FUZZ
@given(
    kind=st.sampled_from([".csv", ".jsonl", ".ndjson"]),
    content=_csv_text.map(str.encode) | _jsonl_text.map(str.encode) | _file_bytes,
    crlf=st.booleans(),
)
def test_stock_files_read_or_fail_with_a_stock_file_error(
    stock_dir: Path, kind: str, content: bytes, crlf: bool
) -> None:
    path = stock_dir / f"stock-{next(_names)}{kind}"
    path.write_bytes(content.replace(b"\n", b"\r\n") if crlf else content)
    try:
        items = list(read_stock_file(path))
    except StockFileError as exc:
        assert str(exc) and len(str(exc)) < 600, str(exc)[:300]
        path.unlink()
        return
    numbers = [item.line for item in items]
    assert numbers == sorted(numbers) and all(n >= 1 for n in numbers)
    for item in items:
        if isinstance(item, StockLine):
            assert item.sku == item.sku.strip() and 0 < len(item.sku) <= MAX_SKU_LENGTH
            assert 0 <= item.quantity <= MAX_QUANTITY
        else:
            assert isinstance(item, LineRejection) and item.error and len(item.error) < 400, item.error[:300]
    if items:
        assert set(scan_stock_file(path)) == {i.sku for i in items if isinstance(i, StockLine)}
    else:
        with pytest.raises(StockFileError, match="no stock lines"):
            scan_stock_file(path)
    path.unlink()


@FUZZ
@given(value=_quantity_text | JSON | st.integers(min_value=-(10**5000), max_value=10**5000))
def test_stock_quantities_parse_or_give_a_short_reason(value: Any) -> None:
    parsed = parse_quantity(value)
    if isinstance(parsed, str):
        assert parsed.startswith("quantity must be") and len(parsed) < 120, parsed[:200]
    else:
        assert 0 <= parsed <= MAX_QUANTITY


# --- HTTP OMS answers -----------------------------------------------------------------------------

OMS_ANSWERS: list[Any] = [
    {"id": "OMS-1", "status": "created"},
    {"id": 77, "status": "duplicate"},
    {"message": "unknown sku", "errors": {"lines[0].sku": ["unknown", "inactive"]}},
    {"error": "invalid_request", "error_description": "bad address"},
    {"detail": [{"loc": ["body", "lines"], "msg": "field required"}]},
    ["first problem", "second problem"],
    "plain string",
]
_html = st.builds(
    lambda title, body: f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>",
    st.text(max_size=20),
    st.text(max_size=40),
)


def _strict_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


@FUZZ
@given(data=st.data(), status=st.integers(100, 599) | _statuses, retry_after=_header_text)
def test_oms_answers_are_classified(data, status: int, retry_after: str | None) -> None:
    kind = data.draw(st.integers(0, 4), label="answer kind")
    if kind == 0:
        text = data.draw(
            _html | st.sampled_from(["", "  ", "NaN", "Infinity", "1e999", "[1e400]"]), label="t"
        )
    else:
        text = body_text(data, OMS_ANSWERS[data.draw(st.integers(0, len(OMS_ANSWERS) - 1), label="answer")])
    headers = {} if retry_after is None else {"retry-after": retry_after}
    outcome = classify(status, headers, text, request="POST https://oms.test/orders", now=NOW)
    reading = status_class(status)
    assert f"HTTP {status}" in outcome.reason and outcome.status_code == status
    if reading is StatusClass.OK:
        assert outcome.kind in (OutcomeKind.DELIVERED, OutcomeKind.RETRY)
        assert outcome.kind is OutcomeKind.DELIVERED or text.strip(), "an empty 2xx acknowledges"
    elif reading is StatusClass.RETRYABLE:
        assert outcome.kind is OutcomeKind.RETRY
    else:
        assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.external_ref is None or 0 < len(outcome.external_ref) <= 200
    assert outcome.retry_after is None or 0 <= outcome.retry_after <= MAX_RETRY_AFTER_SECONDS
    # Stored as JSON on the delivery row (PostgreSQL refuses NaN/Infinity in a JSON column).
    assert _strict_json(outcome.response_body), repr(outcome.response_body)[:200]


@FUZZ
@given(body=JSON, text=st.text(max_size=80) | _html)
def test_partner_messages_are_one_short_line(body: Any, text: str) -> None:
    said = partner_message(body, text)
    # excerpt() marks a cut message with "…[N more characters]"
    assert said is None or (0 < len(said) <= MAX_MESSAGE + 40 and "\n" not in said), said


# --- Shopify client helpers and webhook parsing ---------------------------------------------------

_url_piece = st.text(
    st.sampled_from(list(string.ascii_letters + string.digits + "[]:/?=&%#@.;<> ")), max_size=30
)


@FUZZ
@given(
    link=st.none()
    | st.text(max_size=80)
    | st.builds(
        lambda scheme, host, query, rel: f'<{scheme}://{host}/orders.json?{query}>; rel="{rel}"',
        st.sampled_from(["https", "http", ""]),
        _url_piece,
        _url_piece.map(lambda q: f"page_info={q}"),
        st.sampled_from(["next", "previous", "next ", ""]),
    )
)
def test_shopify_page_links_give_a_cursor_none_or_a_retryable_error(link: str | None) -> None:
    cursor = _only((ShopifyUnavailable,), lambda: next_page_info(link))
    assert cursor is None or isinstance(cursor, str)


@FUZZ
@given(body=JSON | st.dictionaries(st.sampled_from(["errors", "error"]), JSON, max_size=2))
def test_shopify_error_bodies_describe_as_one_string(body: Any) -> None:
    assert isinstance(describe_errors(body), str)


FULFILLMENT = {
    "id": 4455,
    "order_id": 820982911946154508,
    "status": "success",
    "tracking_company": "UPS",
    "tracking_number": "1Z999",
    "line_items": [
        {"id": 1, "sku": "M-1", "quantity": 2, "properties": [{"name": "_tradelane_line", "value": "L1"}]}
    ],
}
SHOPIFY_PAYLOADS: dict[str, dict[str, Any]] = {
    WebhookTopic.PRODUCTS_UPDATE: {
        "id": 9,
        "title": "Mug",
        "vendor": "Acme",
        "variants": [
            {"id": 1, "sku": "M-1", "price": "9.90", "inventory_quantity": 3, "inventory_item_id": 5}
        ],
    },
    WebhookTopic.INVENTORY_LEVELS_UPDATE: {"inventory_item_id": 5, "location_id": 7, "available": 3},
    WebhookTopic.FULFILLMENTS_CREATE: FULFILLMENT,
    WebhookTopic.ORDERS_FULFILLED: {
        "id": 820982911946154508,
        "fulfillment_status": "fulfilled",
        "tags": "tradelane, tradelane-order-41",
        "note_attributes": [{"name": "tradelane_order_id", "value": "41"}],
        "fulfillments": [FULFILLMENT],
    },
    WebhookTopic.ORDERS_CANCELLED: {
        "id": 820982911946154508,
        "cancelled_at": "2026-11-25T12:00:00Z",
        "cancel_reason": "customer",
        "tags": "tradelane-order-41",
    },
}


@FUZZ
@given(data=st.data(), topic=st.sampled_from([*SHOPIFY_PAYLOADS, "orders/create", ""]))
def test_shopify_webhook_payloads_fit_their_topic_or_not(data, topic: str) -> None:
    source = SHOPIFY_PAYLOADS.get(topic, FULFILLMENT)
    payload = mutate(data, source) if data.draw(st.booleans(), label="mutated") else data.draw(JSON)
    assert payload_fits_topic(topic, payload) in (True, False)


class _ReachedAWrite(Exception):
    """The event got past its parsing to its first write: what follows is the database's business."""


class _ReadOnlyConnection:
    """Answers every SELECT with no row (no such order, product or delivery); any write raises
    :class:`_ReachedAWrite`. Enough for the parsing that comes before the first write."""

    class dialect:  # read as ``conn.dialect.name``
        name = "sqlite"

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(statement, sa.Select):
            raise _ReachedAWrite(type(statement).__name__)
        return _NoRows()


class _NoRows:
    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def scalar(self) -> None:
        return None

    def first(self) -> None:
        return None

    def all(self) -> list[Any]:
        return []


SYSTEM = MerchantSystem(id=3, tenant_id=1, name="shop", kind="shopify", settings={}, enabled=True)


@FUZZ
@given(data=st.data(), topic=st.sampled_from([*SHOPIFY_PAYLOADS, "orders/create"]))
def test_shopify_webhook_events_parse_before_they_write(data, topic: str) -> None:
    payload = mutate(data, SHOPIFY_PAYLOADS.get(topic, FULFILLMENT))
    if data.draw(st.integers(0, 9), label="not an object") == 0:
        payload = data.draw(JSON)
    try:
        result = process_event(
            _ReadOnlyConnection(),  # type: ignore[arg-type]
            system=SYSTEM,
            currency="EUR",
            topic=topic,
            payload=payload,
            now=NOW,
        )
    except (_ReachedAWrite, ValidationError):
        return
    assert isinstance(result, ProcessResult)
    # Nothing was written and no order or product exists: nothing can have been processed but a product
    # without a variant tradelane can match (nothing to do).
    if result.status is EventStatus.PROCESSED:
        assert topic == WebhookTopic.PRODUCTS_UPDATE and not result.data["created"], result
    else:
        assert result.status in (EventStatus.IGNORED, EventStatus.FAILED), result
    assert isinstance(result.detail, str) and result.detail
