"""Answer bodies of merchant systems that Python's ``json`` reads but a JSON column cannot store, or that
crash the parser: found by the fuzzing of issue 12. The HTTP OMS adapter (:func:`classify`) and the
Shopify client read strict JSON only."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from tradelane.merchant.base import OutcomeKind
from tradelane.merchant.http_oms import classify
from tradelane.merchant.shopify.client import (
    ShopifyApiError,
    ShopifyClient,
    ShopifyUnavailable,
    next_page_info,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NOT_STRICT_JSON = ["NaN", "-Infinity", '{"id": NaN}', '{"error": "x", "retry": Infinity}', "[1e400]"]


@pytest.mark.parametrize("text", NOT_STRICT_JSON)
def test_a_rejection_keeps_the_text_of_a_body_that_is_not_strict_json(text: str) -> None:
    outcome = classify(422, {}, text, request="POST /orders", now=NOW)
    assert outcome.kind is OutcomeKind.REJECTED
    # The delivery row stores it in a JSON column: PostgreSQL refuses NaN/Infinity (was float('nan')).
    assert outcome.response_body == text
    json.dumps(outcome.response_body, allow_nan=False)


@pytest.mark.parametrize("text", NOT_STRICT_JSON)
def test_a_2xx_body_that_is_not_strict_json_acknowledges_nothing(text: str) -> None:
    outcome = classify(200, {}, text, request="POST /orders", now=NOW)
    assert outcome.kind is OutcomeKind.RETRY and "not JSON" in outcome.reason


def test_a_body_nested_too_deep_is_not_json_rather_than_a_crash() -> None:
    deep = "[" * 5000
    assert classify(200, {}, deep, request="POST /orders", now=NOW).kind is OutcomeKind.RETRY
    assert classify(400, {}, deep, request="POST /orders", now=NOW).kind is OutcomeKind.REJECTED


def test_finite_json_numbers_still_read() -> None:
    outcome = classify(201, {}, '{"id": 12, "total": 1.5e3}', request="POST /orders", now=NOW)
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.response_body == {"id": 12, "total": 1500.0}


def _shopify(answer: httpx.Response) -> ShopifyClient:
    transport = httpx.MockTransport(lambda request: answer)
    return ShopifyClient(
        "https://shop.test", "token", api_version="2025-01", client=httpx.Client(transport=transport)
    )


def test_shopify_bodies_that_are_not_strict_json_are_kept_as_text() -> None:
    with pytest.raises(ShopifyApiError) as caught:
        _shopify(httpx.Response(422, text='{"errors": NaN}')).get("orders")
    assert caught.value.body == '{"errors": NaN}'
    assert _shopify(httpx.Response(200, text="[" * 5000)).get("orders").body is None


@pytest.mark.parametrize(
    ("link", "cursor"),
    [
        ('<https://shop.test/admin/api/2025-01/orders.json?page_info=abc&limit=250>; rel="next"', "abc"),
        ('<https://shop.test/orders.json?page_info=abc>; rel="previous"', None),
        (None, None),
    ],
)
def test_next_page_cursor(link: str | None, cursor: str | None) -> None:
    assert next_page_info(link) == cursor


def test_a_next_link_that_cannot_be_read_is_a_garbled_answer() -> None:
    # urlsplit raises ValueError("Invalid IPv6 URL"): it escaped the client unclassified.
    link = '<http://[shop/orders.json?page_info=abc>; rel="next"'
    with pytest.raises(ShopifyUnavailable, match="next URL cannot be read"):
        next_page_info(link)
    answer = httpx.Response(200, json={"orders": [{"id": 1}]}, headers={"Link": link})
    with pytest.raises(ShopifyUnavailable, match="garbled"):
        list(_shopify(answer).pages("orders", "orders", {}, max_pages=3))
