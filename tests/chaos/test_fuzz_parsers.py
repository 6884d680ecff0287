"""Fuzzing of the mappers and parsers that read outside input: no crash other than the documented,
classified errors. This module covers Mirakl, catalog rows, OMS order documents, Shopify mapping, headers
and merchant update bodies; ``test_fuzz_parsers_more.py`` covers the rest (the Amazon connector, stock
files, HTTP OMS answers, Shopify client helpers and webhook parsing), with the helpers defined here.

Inputs are real payloads (the Mirakl sandbox's own answers, a stored order, a Shopify fulfillment)
mutated by Hypothesis — keys dropped, values swapped for arbitrary JSON, lists cut — plus arbitrary
text where the input is text (Retry-After, signature and call-limit headers, CSV cells, webhook bodies).
Examples per test: 100 (``TRADELANE_CHAOS=long``: 2,000).
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from chaos_support import scale
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirakl_world import API_KEY, SHOP_ID, sandbox_catalog
from tradelane.connectors.mirakl import models
from tradelane.connectors.mirakl.errors import MiraklSchemaError
from tradelane.connectors.mirakl.mapping import (
    MiraklOfferSettings,
    error_report_rows_to_offer_errors,
    offer_blockers,
    order_from_mirakl,
)
from tradelane.connectors.mirakl.sandbox import SandboxState, Shop, create_app
from tradelane.domain.catalog_rows import FIELDS, CsvRowParser, RowError, check_columns, parse_row
from tradelane.domain.errors import MAX_RETRY_AFTER_SECONDS, ValidationError
from tradelane.http_edge import parse_retry_after
from tradelane.merchant.schema import InvalidOrderDocument, build_oms_order
from tradelane.merchant.shopify import mapping as shopify
from tradelane.merchant.shopify.ratelimit import parse_call_limit
from tradelane.merchant.signing import SignatureError, parse_signature
from tradelane.services.merchant_webhooks import parse_update

EXAMPLES = scale(100, 2000)

# Nothing here touches a database: the SQLite half of ``make test`` runs it, the PostgreSQL half need not.
pytestmark = pytest.mark.skipif(
    os.environ.get("TRADELANE_TEST_DB") == "postgres", reason="no database involved: runs in the SQLite half"
)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(),
    st.text(max_size=40),
    st.sampled_from(["", " ", "2024-05-01T10:00:00Z", "not-a-date", "EUR", "XXX", "SHIPPING", "1e999"]),
)
JSON = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def mutate(data: st.DataObject, value: Any, depth: int = 0, *, leaves_only: bool = False) -> Any:
    """``value`` with random damage: replaced by arbitrary JSON, keys dropped, lists cut. With
    ``leaves_only`` the shape (objects, lists) stays and only scalars change or go missing. The root
    object stays an object (transports hand parsers JSON objects only)."""
    container = isinstance(value, dict | list)
    replaceable = not (leaves_only and container) and not (depth == 0 and isinstance(value, dict))
    if replaceable and data.draw(st.integers(0, 12 + depth), label="keep") == 0:
        return data.draw(_scalars if leaves_only else JSON, label="replacement")
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            if data.draw(st.integers(0, 9), label="drop") == 0:
                continue
            out[key] = mutate(data, child, depth + 1, leaves_only=leaves_only)
        return out
    if isinstance(value, list):
        kept = value[: data.draw(st.integers(0, len(value)), label="cut")] if value else value
        return [mutate(data, item, depth + 1, leaves_only=leaves_only) for item in kept]
    return value


# --- real payloads, from the Mirakl sandbox ---------------------------------------------------------


@pytest.fixture(scope="module")
def mirakl() -> Iterator[dict[str, Any]]:
    """Bodies of A01, OR11 (orders in several states), OF21, SH21, M01, RT11, OF02, as the sandbox
    answers them (numbers as ``Decimal``, like the client parses them)."""
    state = SandboxState(
        3, shops=[Shop(SHOP_ID, "Fuzz", API_KEY)], products=sandbox_catalog(4), rate_limits={}
    )
    for i, product in enumerate(sandbox_catalog(4)):
        state.add_offer(SHOP_ID, f"SKU-{i}", product.sku, Decimal("10.5"), 50)
    waiting = state.create_order(
        SHOP_ID, [{"offer_sku": "SKU-0", "quantity": 2}, {"offer_sku": "SKU-1", "quantity": 1}]
    )
    shipped = state.create_order(
        SHOP_ID, [{"offer_sku": "SKU-2", "quantity": 1}], customer_message="engrave: A"
    )
    auth = {"Authorization": API_KEY}
    with TestClient(create_app(state)) as client:
        accept = {
            "order_lines": [{"id": line.line_id, "accepted": True} for line in state.order(shipped).lines]
        }
        assert client.put(f"/api/orders/{shipped}/accept", headers=auth, json=accept).status_code == 204
        state.advance(3600)  # paid: SHIPPING, addresses shown

        def get(path: str, **params: Any) -> Any:
            response = client.get(path, headers=auth, params=params)
            assert response.status_code == 200, (path, response.text)
            return json.loads(response.text, parse_float=Decimal)

        yield {
            "A01": get("/api/account"),
            "OR11": get("/api/orders"),
            "OF21": get("/api/offers"),
            "SH21": get("/api/shipping/carriers"),
            "M01": get("/api/messages"),
            "RT11": get("/api/returns"),
            "orders": (waiting, shipped),
        }


def _only(allowed: tuple[type[BaseException], ...], call: Callable[[], Any]) -> Any:
    try:
        return call()
    except allowed:
        return None


MIRAKL_PARSERS: dict[str, Callable[[Any], Any]] = {
    "A01": models.parse_account,
    "OR11": models.parse_orders_page,
    "OF21": models.parse_offers_page,
    "SH21": models.parse_carriers,
    "M01": models.parse_messages_page,
    "RT11": models.parse_returns_page,
}


@pytest.mark.parametrize("op", sorted(MIRAKL_PARSERS))
@FUZZ
@given(data=st.data())
def test_mirakl_response_parsers_raise_nothing_but_schema_errors(
    mirakl: dict[str, Any], op: str, data
) -> None:
    body = mutate(data, mirakl[op])
    _only((MiraklSchemaError,), lambda: MIRAKL_PARSERS[op](body))


@FUZZ
@given(data=st.data())
def test_orders_map_or_fail_with_a_schema_error_naming_the_field(mirakl: dict[str, Any], data) -> None:
    orders = mirakl["OR11"]["orders"]
    payload = mutate(data, orders[data.draw(st.integers(0, len(orders) - 1))])
    try:
        order = order_from_mirakl(payload, path="orders[0]")
    except MiraklSchemaError as exc:
        assert "orders[0]" in str(exc)
        return
    assert order.lines and all(line.quantity >= 0 for line in order.lines)


@FUZZ
@given(body=st.dictionaries(st.text(max_size=12), JSON, max_size=6))
def test_other_mirakl_parsers_on_arbitrary_json_objects(body: dict[str, Any]) -> None:
    # The transport hands parsers JSON objects only (anything else is a MiraklSchemaError there).
    for parse in (
        models.parse_import_id,
        models.parse_offer_import_status,
        models.parse_refunds,
        models.parse_shipments_result,
        models.parse_order_documents,
        models.parse_document_upload_errors,
    ):
        _only((MiraklSchemaError,), lambda parse=parse: parse(body))


@FUZZ
@given(
    text=st.text(max_size=200) | st.lists(st.text(string.printable, max_size=12), max_size=6).map(";".join)
)
def test_offer_error_report_csv(text: str) -> None:
    rows = _only((MiraklSchemaError,), lambda: models.parse_error_report(text))
    if rows is not None:
        error_report_rows_to_offer_errors(rows)


# --- catalog rows ---------------------------------------------------------------------------------

_columns = st.lists(
    st.sampled_from([*FIELDS, "attr:colour", "attr:", "SKU ", "bogus"]), min_size=1, max_size=8
)


@FUZZ
@given(columns=_columns, cells=st.lists(st.text(max_size=20), max_size=10))
def test_csv_rows_parse_or_fail_with_a_row_error(columns: list[str], cells: list[str]) -> None:
    try:
        checked = check_columns(columns)
    except ValueError:
        return  # a header problem: a ValueError naming the column, by contract
    parser = CsvRowParser(checked)
    product = _only((RowError,), lambda: parser(cells))
    if product is not None:
        assert product.sku and product.quantity >= 0 and (product.price is None or product.price >= 0)


@FUZZ
@given(row=st.dictionaries(st.sampled_from([*FIELDS, "attr:size", "other"]), JSON, max_size=8))
def test_json_rows_parse_or_fail_with_a_row_error(row: dict[str, Any]) -> None:
    product = _only((RowError,), lambda: parse_row(row))
    if product is not None:
        assert product.sku and product.quantity >= 0
        settings_ = MiraklOfferSettings()
        offer_blockers(product, settings_)


# --- the merchant side ----------------------------------------------------------------------------

STORED_ORDER: dict[str, Any] = {
    "id": 41,
    "channel": "shop-fr",
    "marketplace_order_id": "ORD-1-A",
    "state": "SHIPPING",
    "currency": "EUR",
    "customer_message": None,
    "created_at": "2026-11-25T12:00:00+00:00",
    "shipping_address": {
        "firstname": "Anna",
        "lastname": "S",
        "street_1": "1 Rue",
        "city": "Paris",
        "country": "FRA",
    },
    "billing_address": {
        "firstname": "Anna",
        "lastname": "S",
        "street_1": "2 Rue",
        "city": "Lyon",
        "country": "FRA",
    },
    "lines": [
        {
            "line_id": "ORD-1-A-1",
            "sku": "SKU-1",
            "offer_sku": "SKU-1",
            "title": "Mug",
            "quantity": 2,
            "unit_price": Decimal("9.90"),
            "currency": "EUR",
            "state": "SHIPPING",
        },
        {
            "line_id": "ORD-1-A-2",
            "sku": "SKU-2",
            "offer_sku": "SKU-2",
            "title": None,
            "quantity": 1,
            "unit_price": "4.5",
            "currency": "EUR",
            "state": "REFUSED",
        },
    ],
}


@FUZZ
@given(data=st.data())
def test_oms_documents_build_or_fail_with_invalid_order_document(data) -> None:
    # A stored order (``get_order``) has tradelane's own shape; what varies is the values (many of them
    # the marketplace's) and which of them are missing.
    order = mutate(data, STORED_ORDER, leaves_only=True)
    attributes = data.draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))
    document = _only(
        (InvalidOrderDocument,), lambda: build_oms_order(order, attributes, sku_map={"SKU-1": "M-1"})
    )
    if document is not None:
        assert all(line.quantity > 0 for line in document.lines) or not document.lines
        shopify.order_tags(document)
        shopify.note_attributes(document)
        shopify.address(document.shipping_address)


FULFILLMENT = {
    "id": 4455,
    "status": "success",
    "tracking_company": "UPS",
    "tracking_number": "1Z999",
    "tracking_numbers": ["1Z999"],
    "tracking_url": "https://ups.example/1Z999",
    "tracking_urls": ["https://ups.example/1Z999"],
    "line_items": [
        {"id": 1, "sku": "M-1", "quantity": 2, "properties": [{"name": "_tradelane_line", "value": "L1"}]}
    ],
}
SHOPIFY_PRODUCT = {
    "id": 9,
    "title": "Mug",
    "vendor": "Acme",
    "variants": [
        {"id": 1, "sku": "M-1", "price": "9.90", "barcode": "4006381333931", "inventory_quantity": 3}
    ],
}
SHOPIFY_ORDER = {
    "id": 1,
    "tags": "tradelane, tradelane-order-41",
    "note_attributes": [{"name": "x", "value": 1}],
}


@FUZZ
@given(data=st.data())
def test_shopify_mappers_never_raise(data) -> None:
    shipment = shopify.shipment_from_fulfillment(mutate(data, FULFILLMENT))
    if shipment is not None:
        assert all(line.quantity > 0 for line in shipment.lines)
    for variant in shopify.variants_of_product(mutate(data, SHOPIFY_PRODUCT)):
        assert variant.sku
    shopify.variant_ids_by_sku([mutate(data, SHOPIFY_PRODUCT)])
    order_id = shopify.tradelane_order_id(mutate(data, SHOPIFY_ORDER))
    assert order_id is None or order_id >= 0


# --- headers and bodies ---------------------------------------------------------------------------

_header_text = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(
        ["", "0", "-1", "1e999", "NaN", "inf", "  7 ", "2.5", "Wed, 21 Oct 2015 07:28:00 GMT", "Mon, 99"]
    ),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=True).map(str),
)


@FUZZ
@given(value=_header_text)
def test_the_retry_after_parser_returns_a_finite_wait_or_none(value: str | None) -> None:
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or 0 <= seconds <= MAX_RETRY_AFTER_SECONDS, (value, seconds)
    limit = parse_call_limit(value)
    assert limit is None or 0 <= limit[0] <= limit[1]


@FUZZ
@given(
    value=st.text(max_size=80)
    | st.builds(lambda t, v: f"t={t},v1={v}", st.text(max_size=12), st.text(max_size=70))
)
def test_signature_headers_parse_or_fail_with_a_signature_error(value: str) -> None:
    _only((SignatureError,), lambda: parse_signature(value))


@FUZZ
@given(body=st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v, default=str).encode()))
def test_merchant_update_bodies_parse_or_fail_with_a_validation_error(body: bytes) -> None:
    _only((ValidationError,), lambda: parse_update(body))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # float(Decimal("1E310")) is infinity: a rate bucket held "for 1E310 s" was stuck at -inf for good.
        # An exponent is no delay-seconds at all: ignored.
        ("1E310", None),
        ("9" * 400, MAX_RETRY_AFTER_SECONDS),  # float() of it is infinity
        ("99999999999999999999", MAX_RETRY_AFTER_SECONDS),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_SECONDS),
        ("²", None),  # str.isdigit() says yes, float() says no (a crash in the OMS adapter)
        ("120", 120.0),
    ],
)
def test_bogus_retry_after_values_are_capped_or_ignored(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected
