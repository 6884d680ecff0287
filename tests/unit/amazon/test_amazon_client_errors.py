"""The SP-API client's edge: throttling, classification of every kind of answer, rate-limit headers,
token renewal, exchanges."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from amazon_fakes import API, MARKETPLACE, Clock, FakeAmazon, errors, json_response

from tradelane.connectors.amazon.client import dumps
from tradelane.connectors.amazon.errors import (
    AmazonAuthError,
    AmazonBadResponse,
    AmazonNotFound,
    AmazonRejected,
    AmazonRetryable,
    AmazonSchemaError,
    AmazonThrottled,
    AmazonUnreachable,
    AuthProblem,
)
from tradelane.http_edge import Exchange

ORDERS = "/orders/2026-01-01/orders"
ORDER = "/orders/2026-01-01/orders/302-1"


def get_order(fake: FakeAmazon, **kwargs: object) -> dict[str, object]:
    return fake.client(**kwargs).get_order("302-1")  # type: ignore[arg-type]


def test_throttle_before_every_call_and_exchange_after() -> None:
    throttled: list[str] = []
    exchanges: list[Exchange] = []
    fake = FakeAmazon().on("GET", ORDER, json_response({"order": {"orderId": "302-1"}}))
    client = fake.client(throttled=throttled, exchanges=exchanges)
    client.get_order("302-1")
    client.get_order("302-1")
    assert throttled == ["getOrder", "getOrder"]
    assert [e.op for e in exchanges] == ["getOrder", "getOrder"]
    request = fake.calls("GET", ORDER)[0]
    assert request.headers["x-amz-access-token"] == "token-1"
    assert request.url.params["includedData"] == "BUYER,RECIPIENT,FULFILLMENT"
    assert "token-1" not in str(exchanges[0])


def test_429_with_retry_after() -> None:
    fake = FakeAmazon().on(
        "GET", ORDER, errors(429, "QuotaExceeded", "You exceeded your quota", {"Retry-After": "3"})
    )
    with pytest.raises(AmazonThrottled) as info:
        get_order(fake)
    assert info.value.retry_after == 3
    assert "QuotaExceeded" in info.value.reason


def test_429_without_retry_after_waits_the_refill_time() -> None:
    fake = FakeAmazon().on("GET", ORDER, errors(429, "QuotaExceeded", "slow down"))
    with pytest.raises(AmazonThrottled) as info:
        get_order(fake)
    assert info.value.retry_after == 2.0  # getOrder's usage plan: 0.5 rps
    fake = FakeAmazon().on(
        "GET", ORDER, errors(429, "QuotaExceeded", "slow down", {"x-amzn-RateLimit-Limit": "0.25"})
    )
    with pytest.raises(AmazonThrottled) as info:
        get_order(fake)
    assert info.value.retry_after == 4.0  # the rate Amazon reports wins


def test_rate_limit_header_is_recorded_and_reported() -> None:
    seen: list[tuple[str, float]] = []
    fake = FakeAmazon().on(
        "GET",
        ORDER,
        json_response({"order": {"orderId": "302-1"}}, headers={"x-amzn-RateLimit-Limit": "1.5"}),
    )
    client = fake.client()
    client._on_rate_limit = lambda op, rate: seen.append((op, rate))
    client.get_order("302-1")
    assert client.rate_limits == {"getOrder": 1.5}
    assert seen == [("getOrder", 1.5)]


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_are_retryable(status: int) -> None:
    fake = FakeAmazon().on("GET", ORDER, errors(status, "InternalFailure", "try later", {"Retry-After": "5"}))
    with pytest.raises(AmazonRetryable) as info:
        get_order(fake)
    assert not isinstance(info.value, AmazonThrottled)
    assert info.value.retry_after == 5 and info.value.status == status


def test_timeouts_and_refusals_are_unreachable() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(AmazonUnreachable, match="getOrder timed out"):
        get_order(FakeAmazon().on("GET", ORDER, timeout))


def test_400_invalid_input_is_permanent_with_amazons_messages() -> None:
    fake = FakeAmazon().on(
        "GET",
        ORDER,
        httpx.Response(
            400,
            json={
                "errors": [
                    {"code": "InvalidInput", "message": "Invalid marketplace identifier", "details": "x"},
                    {"code": "InvalidInput", "message": "Second problem"},
                ]
            },
        ),
    )
    with pytest.raises(AmazonRejected) as info:
        get_order(fake)
    assert not isinstance(info.value, AmazonNotFound)
    assert info.value.codes == ("InvalidInput", "InvalidInput")
    assert info.value.messages == ("Invalid marketplace identifier (x)", "Second problem")
    assert "Invalid marketplace identifier" in info.value.reason and "HTTP 400" in info.value.reason


def test_404_is_not_found() -> None:
    with pytest.raises(AmazonNotFound):
        get_order(FakeAmazon().on("GET", ORDER, errors(404, "NotFound", "Order not found")))


def test_403_unauthorized_renews_the_token_once() -> None:
    fake = FakeAmazon().on(
        "GET",
        ORDER,
        errors(403, "Unauthorized", "Access to requested resource is denied."),
        json_response({"order": {"orderId": "302-1"}}),
    )
    throttled: list[str] = []
    assert get_order(fake, throttled=throttled) == {"orderId": "302-1"}
    assert [r.headers["x-amz-access-token"] for r in fake.calls("GET", ORDER)] == ["token-1", "token-2"]
    assert throttled == ["getOrder", "getOrder"]  # the second try is a call of the budget too


def test_403_unauthorized_twice_is_an_authentication_error() -> None:
    fake = FakeAmazon().on(
        "GET", ORDER, errors(403, "Unauthorized", "Access to requested resource is denied.")
    )
    with pytest.raises(AmazonAuthError) as info:
        get_order(fake)
    assert info.value.problem is AuthProblem.ACCESS_DENIED
    assert len(fake.calls("GET", ORDER)) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"garbage \x00\xff not json",
        b'{"order": {"orderId": "302-1", "orderItems": [',  # truncated
        b"",
        b"<!DOCTYPE html><html>maintenance</html>",
    ],
)
def test_garbage_truncated_empty_or_html_is_a_retryable_bad_response(body: bytes) -> None:
    fake = FakeAmazon().on("GET", ORDER, httpx.Response(200, content=body))
    with pytest.raises(AmazonBadResponse) as info:
        get_order(fake)
    assert isinstance(info.value, AmazonRetryable)


@pytest.mark.parametrize(
    ("path", "body"),
    [(ORDER, [1, 2]), (ORDER, {"order": "not an object"}), (ORDERS, {"orders": None}), (ORDERS, {})],
)
def test_json_breaking_the_model_is_a_permanent_schema_error(path: str, body: object) -> None:
    client = FakeAmazon().on("GET", path, json_response(body)).client()
    with pytest.raises(AmazonSchemaError):
        if path == ORDER:
            client.get_order("302-1")
        else:
            client.search_orders(last_updated_after=Clock()())


def test_search_orders_query() -> None:
    fake = FakeAmazon().on("GET", ORDERS, json_response({"orders": []}))
    fake.client().search_orders(last_updated_after=Clock()(), pagination_token="tok")
    params = fake.calls("GET", ORDERS)[0].url.params
    assert params["lastUpdatedAfter"] == "2025-03-01T12:00:00Z"
    assert params["marketplaceIds"] == MARKETPLACE
    assert params["fulfilledBy"] == "MERCHANT"
    assert params["paginationToken"] == "tok"


def test_feed_document_download_gunzips() -> None:
    report = {"header": {"feedId": "1"}, "issues": []}
    fake = (
        FakeAmazon()
        .on(
            "GET",
            "/feeds/2021-06-30/documents/doc-1",
            json_response(
                {
                    "feedDocumentId": "doc-1",
                    "url": f"{API}/s3/doc-1?X-Amz-Signature=abc",
                    "compressionAlgorithm": "GZIP",
                }
            ),
        )
        .on("GET", "/s3/doc-1", httpx.Response(200, content=gzip.compress(json.dumps(report).encode())))
    )
    exchanges: list[Exchange] = []
    content = fake.client(exchanges=exchanges).get_feed_document("doc-1")
    assert json.loads(content) == report
    download = fake.calls("GET", "/s3/doc-1")[0]
    assert "x-amz-access-token" not in download.headers  # a presigned URL takes no SP-API token
    assert exchanges[-1].url == f"{API}/s3/doc-1"  # shown without its signature


def test_truncated_gzip_is_a_bad_response() -> None:
    fake = (
        FakeAmazon()
        .on(
            "GET",
            "/feeds/2021-06-30/documents/doc-1",
            json_response(
                {"feedDocumentId": "doc-1", "url": f"{API}/s3/doc-1", "compressionAlgorithm": "GZIP"}
            ),
        )
        .on("GET", "/s3/doc-1", httpx.Response(200, content=gzip.compress(b'{"issues": []}')[:12]))
    )
    with pytest.raises(AmazonBadResponse, match="not valid gzip"):
        fake.client().get_feed_document("doc-1")


def test_dumps_writes_decimals_exactly() -> None:
    from decimal import Decimal

    text = dumps(
        {"price": Decimal("19.90"), "big": Decimal("12345678901234567890.01"), "list": [1, "é", None, True]}
    )
    assert text == '{"price":19.90,"big":12345678901234567890.01,"list":[1,"é",null,true]}'
    with pytest.raises(TypeError):
        dumps({"x": object()})
