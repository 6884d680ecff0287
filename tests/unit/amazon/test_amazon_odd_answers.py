"""Amazon answers the fuzzing of issue 12 (tests/chaos/test_fuzz_parsers_more.py) found crashing the
connector with an unclassified error (TypeError, ValueError, RecursionError, OverflowError) or a value
the hub cannot store; each is now a classified error or a handled value."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from amazon_fakes import Clock, FakeAmazon, json_response, order

from tradelane.connectors.amazon import mapping
from tradelane.connectors.amazon.auth import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, REFRESH_MARGIN_SECONDS
from tradelane.connectors.amazon.errors import (
    AmazonBadResponse,
    AmazonRejected,
    AmazonRetryable,
    AmazonSchemaError,
    AmazonThrottled,
)
from tradelane.domain.errors import MAX_RETRY_AFTER_SECONDS

ORDER = "/orders/2026-01-01/orders/302-1"


def _token_answer(body: str) -> FakeAmazon:
    fake = FakeAmazon()
    fake.on("POST", "/auth/o2/token", httpx.Response(200, text=body))
    return fake


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        ("1e999", MAX_EXPIRES_IN),  # json.loads reads it as infinity: timedelta() raised OverflowError
        ("1" + "0" * 30, MAX_EXPIRES_IN),  # 10**30 seconds: timedelta() raised OverflowError
        ("NaN", DEFAULT_EXPIRES_IN),  # timedelta(seconds=nan) raised ValueError
        ("-Infinity", DEFAULT_EXPIRES_IN),
        ("604800", MAX_EXPIRES_IN),  # a week: fetched again after a day
        ("3600", 3600.0),
    ],
)
def test_lwa_expires_in_out_of_range_is_bounded(expires_in: str, lifetime: float) -> None:
    fake, clock = _token_answer(f'{{"access_token": "Atza|1", "expires_in": {expires_in}}}'), Clock()
    auth = fake.auth(clock)
    assert auth.access_token() == "Atza|1"
    clock.advance(lifetime - REFRESH_MARGIN_SECONDS - 1)
    auth.access_token()
    assert auth.refreshes == 1
    clock.advance(2)
    auth.access_token()
    assert auth.refreshes == 2


def test_lwa_answer_nested_too_deep_is_a_bad_response() -> None:
    auth = _token_answer("[" * 5000).auth(Clock())
    with pytest.raises(AmazonBadResponse, match="not JSON"):  # was RecursionError
        auth.access_token()


def test_lwa_error_answer_nested_too_deep_is_still_classified() -> None:
    fake = FakeAmazon().on("POST", "/auth/o2/token", httpx.Response(400, text="{" * 5000))
    with pytest.raises(AmazonRejected, match=r"HTTP 400, no error code"):  # was RecursionError
        fake.auth(Clock()).access_token()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('{"order": {"n": ' + "7" * 5000 + "}}", "4300 digits"),  # int() limit: was a bare ValueError
        ("[" * 5000, "nested too deep"),  # was RecursionError
    ],
)
def test_sp_api_bodies_json_cannot_read_are_bad_responses(body: str, problem: str) -> None:
    fake = FakeAmazon().on("GET", ORDER, httpx.Response(200, text=body))
    with pytest.raises(AmazonBadResponse, match=problem) as caught:
        fake.client().get_order("302-1")
    assert caught.value.retry_after is None


def test_sp_api_error_body_nested_too_deep_keeps_the_status_classification() -> None:
    fake = FakeAmazon().on("GET", ORDER, httpx.Response(503, text="[" * 5000))
    with pytest.raises(AmazonRetryable, match="HTTP 503") as caught:  # was RecursionError
        fake.client().get_order("302-1")
    assert not isinstance(caught.value, AmazonBadResponse)


def test_a_signalling_nan_rate_limit_header_is_ignored() -> None:
    fake = FakeAmazon().on(
        "GET", ORDER, json_response({"order": order()}, headers={"x-amzn-RateLimit-Limit": "sNaN"})
    )
    client = fake.client()
    client.get_order("302-1")  # float(Decimal("sNaN")) raised ValueError
    assert "getOrder" not in client.rate_limits


def test_a_tiny_reported_rate_never_holds_an_operation_beyond_the_cap() -> None:
    fake = FakeAmazon().on(
        "GET",
        ORDER,
        json_response({"order": order()}, headers={"x-amzn-RateLimit-Limit": "0.00001"}),
        httpx.Response(429, json={"errors": [{"code": "QuotaExceeded", "message": "slow down"}]}),
    )
    client = fake.client()
    client.get_order("302-1")
    with pytest.raises(AmazonThrottled) as caught:
        client.get_order("302-1")
    assert caught.value.retry_after == MAX_RETRY_AFTER_SECONDS  # 1 / 0.00001 would be 100,000 s


# --- mapping ----------------------------------------------------------------------------------------


def _item(**changes: Any) -> dict[str, Any]:
    payload = order()
    payload["orderItems"][0].update(changes)
    return payload


def test_a_quantity_beyond_what_the_hub_stores_is_a_schema_error() -> None:
    with pytest.raises(AmazonSchemaError, match=r"orderItems\[0\]\.quantityOrdered.*more than 2147483647"):
        mapping.order_from_amazon(_item(quantityOrdered=2**31))
    assert mapping.order_from_amazon(_item(quantityOrdered=2**31 - 1)).lines[0].quantity == 2**31 - 1


@pytest.mark.parametrize("amount", ["1E+999999999", "100000000000000", "-1e20"])
def test_an_amount_beyond_what_the_hub_stores_is_a_schema_error(amount: str) -> None:
    # "1E+999999999" written out in full (as SQLite stores it) is a billion characters.
    payload = order()
    payload["orderItems"][0]["product"]["price"]["unitPrice"]["amount"] = amount
    with pytest.raises(AmazonSchemaError, match="amount out of range"):
        mapping.order_from_amazon(payload)


def test_largest_storable_amount_maps() -> None:
    payload = order()
    payload["orderItems"][0]["product"]["price"]["unitPrice"]["amount"] = "99999999999999.99"
    assert mapping.order_from_amazon(payload).lines[0].unit_price == Decimal("99999999999999.99")


def test_listed_price_out_of_range_is_a_schema_error() -> None:
    item = {"sku": "A", "offers": [{"price": {"amount": Decimal("1E+999999999"), "currencyCode": "EUR"}}]}
    with pytest.raises(AmazonSchemaError, match="out of range"):  # abs() of it raised decimal.Overflow
        mapping.listed_offer(item, "A1PA6795UKMFR9")


def test_issue_attribute_names_that_are_not_strings_are_left_out() -> None:
    issue = {"severity": "ERROR", "code": "90220", "message": "missing", "attributeNames": [1, "brand", None]}
    outcome = mapping.submission_outcome("SKU-1", {"status": "INVALID", "issues": [issue]})
    assert outcome.errors == ("90220: missing [brand]",)  # ",".join() raised TypeError
    report = {"issues": [{**issue, "sku": "SKU-1", "attributeNames": 7}]}
    assert mapping.report_outcomes(report)[0].errors == ("90220: missing",)


@pytest.mark.parametrize("issues", [5, "ERROR", {"severity": "ERROR"}])
def test_submission_issues_that_are_not_an_array_are_a_schema_error(issues: Any) -> None:
    with pytest.raises(AmazonSchemaError, match=r"\$\.issues: not an array"):  # 5 raised TypeError
        mapping.submission_outcome("SKU-1", {"status": "ACCEPTED", "issues": issues})


def test_a_report_summary_never_fails_on_odd_issues() -> None:
    report = {"summary": {"messagesProcessed": 1}, "issues": 5}
    assert mapping.report_summary(report) == "1 processed, ? accepted, ? invalid"  # was TypeError
    report["issues"] = [{"message": "feed is empty", "attributeNames": [None]}, "text"]
    assert mapping.report_summary(report).endswith("; feed issues: feed is empty")
