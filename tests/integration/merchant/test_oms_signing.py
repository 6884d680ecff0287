"""The X-Tradelane-Signature scheme, the OMS document and the adapter's classification (pure)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tradelane.http_edge import parse_retry_after
from tradelane.merchant.base import MerchantSystem, OutcomeKind
from tradelane.merchant.http_oms import HttpOmsAdapter, classify
from tradelane.merchant.schema import OmsOrder, build_oms_order, missing_fields
from tradelane.merchant.signing import (
    SIGNATURE_HEADER,
    BadSignature,
    MalformedSignature,
    StaleSignature,
    parse_signature,
    sign,
    verify,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECRET = "s3cret-for-tests-only"
BODY = b'{"id": 1, "lines": []}'


def test_sign_follows_the_documented_formula():
    header = sign(SECRET, BODY, NOW)
    t = str(int(NOW.timestamp()))
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert header == f"t={t},v1={expected}"
    assert verify(SECRET, header, BODY, NOW) == expected


def _independent_v1(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of ``"<t>.<body>"``, computed here without the module under test."""
    return hmac.new(secret.encode("utf-8"), b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def test_known_vector():
    # Pinned: a receiver written against the documentation must keep verifying what we send.
    assert sign(SECRET, BODY, NOW) == ("t=1795608000,v1=" + _independent_v1(SECRET, 1795608000, BODY))
    assert _independent_v1(SECRET, 1795608000, BODY) == (
        "fd2642790fa15c7e1799d09339d8cc93a5a4bf5dac8a1e3cc7ac70fd252d83cf"
    )


@pytest.mark.parametrize("skew", [-300, 300, 0, 12])
def test_inside_the_replay_window_verifies(skew):
    header = sign(SECRET, BODY, NOW)
    expected = _independent_v1(SECRET, int(NOW.timestamp()), BODY)
    assert verify(SECRET, header, BODY, NOW + timedelta(seconds=skew)) == expected
    # A header made independently (as an OMS would sign its webhooks) verifies too.
    t = int((NOW + timedelta(seconds=skew)).timestamp())
    assert verify(SECRET, f"t={t},v1={_independent_v1(SECRET, t, BODY)}", BODY, NOW) == (
        _independent_v1(SECRET, t, BODY)
    )


@pytest.mark.parametrize("skew", [-301, 301, 3600])
def test_outside_the_replay_window_is_stale(skew):
    header = sign(SECRET, BODY, NOW)
    with pytest.raises(StaleSignature):
        verify(SECRET, header, BODY, NOW + timedelta(seconds=skew))


def test_any_change_of_body_secret_or_timestamp_breaks_it():
    header = sign(SECRET, BODY, NOW)
    with pytest.raises(BadSignature):
        verify(SECRET, header, BODY + b" ", NOW)
    with pytest.raises(BadSignature):
        verify(SECRET + "x", header, BODY, NOW)
    t, v1 = parse_signature(header)
    with pytest.raises(BadSignature):
        verify(SECRET, f"t={int(t) + 1},v1={v1}", BODY, NOW)
    with pytest.raises(BadSignature):
        verify("", header, BODY, NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "v1=" + "a" * 64,
        "t=123",
        "t=abc,v1=" + "a" * 64,
        "t=1,v1=xyz",
        "t=1,v1=" + "A" * 64,  # upper-case hex would be a second spelling of one signature
        "t=1,v1=" + "a" * 64 + ",v1=" + "b" * 64,  # extra signatures could disguise a replay
        "t=1,v0=" + "a" * 64,
        "garbage",
    ],
)
def test_malformed_headers_are_refused(header):
    with pytest.raises(MalformedSignature):
        verify(SECRET, header, BODY, NOW)


def test_parse_tolerates_spaces_only():
    header = sign(SECRET, BODY, NOW)
    spaced = header.replace(",", ", ")
    assert verify(SECRET, spaced, BODY, NOW) == parse_signature(header)[1]


def _captured_adapter() -> tuple[HttpOmsAdapter, list[httpx.Request]]:
    """The real adapter over a fake transport that records each request and answers 201."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "OMS-1"})

    system = MerchantSystem(1, 1, "oms", "http", {"url": "https://oms.test/api/orders"}, True)
    client = httpx.Client(transport=httpx.MockTransport(answer))
    return HttpOmsAdapter(system, {"secret": SECRET}, client=client), seen


def _check_signed(request: httpx.Request, sent_at: datetime) -> str:
    """The request's signature, checked independently over the exact bytes on the wire."""
    body = request.content
    t, v1 = request.headers[SIGNATURE_HEADER].split(",")
    assert t == f"t={int(sent_at.timestamp())}"
    assert v1 == f"v1={_independent_v1(SECRET, int(sent_at.timestamp()), body)}"
    return request.headers[SIGNATURE_HEADER]


def test_the_adapter_signs_the_exact_bytes_it_sends_and_tampering_is_refused():
    adapter, seen = _captured_adapter()
    document = build_oms_order(_order(), {})
    assert adapter.deliver_order(document, idempotency_key="order-7", now=NOW).kind is OutcomeKind.DELIVERED
    assert adapter.notify_cancellation(document, lines=None, idempotency_key="cancel-7", now=NOW).kind is (
        OutcomeKind.DELIVERED
    )
    assert [str(r.url) for r in seen] == ["https://oms.test/api/orders", "https://oms.test/api/cancellations"]
    for request in seen:
        header = _check_signed(request, NOW)
        assert request.headers["content-type"] == "application/json"
        # What the OMS does on receipt: the untouched request verifies...
        assert verify(SECRET, header, request.content, NOW + timedelta(seconds=5))
        # ...a body changed in transit (one byte, or a re-serialisation of the same JSON) does not...
        assert b"7" in request.content
        with pytest.raises(BadSignature):
            verify(SECRET, header, request.content.replace(b"7", b"8", 1), NOW)
        with pytest.raises(BadSignature):
            verify(SECRET, header, json.dumps(json.loads(request.content), indent=1).encode(), NOW)
        # ...and the same request replayed after the window is stale.
        with pytest.raises(StaleSignature):
            verify(SECRET, header, request.content, NOW + timedelta(seconds=301))
    adapter.close()


def _order(**overrides):
    order = {
        "id": 7,
        "channel": "shop-fr",
        "marketplace_order_id": "M-7",
        "state": "SHIPPING",
        "currency": "EUR",
        "customer_message": None,
        "shipping_address": {
            "first_name": "Ada",
            "street1": "1 rue",
            "zip_code": "1",
            "city": "P",
            "country": "FR",
        },
        "billing_address": None,
        "created_at": NOW,
        "lines": [
            {
                "line_id": "1",
                "sku": "A",
                "offer_sku": "o-A",
                "title": "A",
                "quantity": 3,
                "unit_price": Decimal("0.10"),
                "currency": "EUR",
                "type": "textual",
                "state": "SHIPPING",
            },
            {
                "line_id": "2",
                "sku": "B",
                "offer_sku": "o-B",
                "title": None,
                "quantity": 1,
                "unit_price": Decimal("2"),
                "currency": "EUR",
                "type": "textual",
                "state": "REFUSED",
            },
        ],
    }
    order.update(overrides)
    return order


def test_the_document_maps_skus_keeps_money_exact_and_leaves_refused_lines_out():
    doc = build_oms_order(_order(), {"tag": "shop-fr"}, sku_map={"A": "MA"})
    assert [(ln.sku, ln.marketplace_sku, ln.offer_sku) for ln in doc.lines] == [("MA", "A", "o-A")]
    assert doc.lines[0].unit_price == "0.1" and doc.lines[0].line_total == "0.3" and doc.total_price == "0.3"
    assert doc.ref == "shop-fr:M-7" and doc.attributes == {"tag": "shop-fr"}
    # The JSON is what the OMS receives: amounts stay strings, never floats.
    assert '"unit_price":"0.1"' in doc.model_dump_json()
    assert OmsOrder.model_validate_json(doc.model_dump_json()) == doc


def test_missing_fields_name_the_precise_paths():
    assert missing_fields(build_oms_order(_order(), {})) == []
    no_city = _order(
        shipping_address={"last_name": "L", "street1": "s", "zip_code": "1", "city": " ", "country": "FR"}
    )
    assert missing_fields(build_oms_order(no_city, {})) == ["shipping_address.city"]
    assert missing_fields(build_oms_order(_order(shipping_address=None), {})) == ["shipping_address"]
    only_refused = _order(lines=[_order()["lines"][1]])
    assert missing_fields(build_oms_order(only_refused, {})) == ["lines"]
    assert missing_fields(build_oms_order(_order(), {}), ["billing_address.city"]) == ["billing_address"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, "delivered"),
        (201, "delivered"),
        (204, "delivered"),
        (400, "rejected"),
        (401, "rejected"),
        (404, "rejected"),
        (409, "rejected"),
        (422, "rejected"),
        (302, "rejected"),
        (408, "retry"),
        (425, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
    ],
)
def test_http_answers_are_classified_at_the_edge(status, kind):
    outcome = classify(status, {}, '{"id": 42}', request="req", now=NOW)
    assert outcome.kind is OutcomeKind(kind)
    assert outcome.status_code == status and outcome.response == f'HTTP {status}\n{{"id": 42}}'
    assert outcome.external_ref == ("42" if kind == "delivered" else None)


def test_retry_after_as_seconds_or_http_date():
    assert parse_retry_after("30", now=NOW) == 30
    assert parse_retry_after("Wed, 25 Nov 2026 12:01:00 GMT", now=NOW) == 60
    assert parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now=NOW) == 0
    assert parse_retry_after("soon", now=NOW) is None and parse_retry_after(None, now=NOW) is None
    outcome = classify(429, httpx.Headers({"Retry-After": "12"}), "slow down", request="", now=NOW)
    assert outcome.retry_after == 12 and outcome.kind is OutcomeKind.RETRY
