"""Shared helpers for the Mirakl client tests: spec-checked payload builders and a fake Mirakl.

Payload builders produce realistic bodies shaped by the seller OpenAPI file; :func:`validate` checks
them (and the client's request bodies) against the spec's schemas so fixtures cannot drift.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from specs import MIRAKL_SPEC
from tradelane.connectors.mirakl._payload import dumps_json
from tradelane.connectors.mirakl.client import MiraklClient

SPEC_PATH = MIRAKL_SPEC
HOST = "shop.mirakl.test"
API_KEY = "test-key-0123"
SHOP_ID = "2001"


@cache
def spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


@cache
def _components() -> dict[str, Any]:
    """The spec's components, with one documented defect worked around: many properties are described
    as "Null before shipping" / "null when ..." yet typed non-nullable (some even required, e.g. OR11
    ``customer.shipping_address``). Such properties additionally accept ``null`` here."""
    components = copy.deepcopy(spec()["components"])
    for schema in components["schemas"].values():
        for name, prop in list((schema.get("properties") or {}).items()):
            if re.search(r"\bnull\b", prop.get("description", ""), re.IGNORECASE):
                schema["properties"][name] = {"anyOf": [prop, {"type": "null"}]}
    return components


def op_schema(op_id: str, part: str) -> dict[str, Any]:
    """Schema of an operation's ``"request"`` body or of its response with status ``part``."""
    for methods in spec()["paths"].values():
        for operation in methods.values():
            if isinstance(operation, dict) and operation.get("operationId") == op_id:
                if part == "request":
                    content = operation["requestBody"]["content"]
                else:
                    content = operation["responses"][part]["content"]
                schema: dict[str, Any] = next(iter(content.values()))["schema"]
                return schema
    raise KeyError(op_id)


def validate(op_id: str, part: str, instance: object) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``instance`` fits the op's request/response schema."""
    root = {**op_schema(op_id, part), "components": _components()}
    Draft202012Validator(root).validate(instance)


def decoded(body: object) -> Any:
    """What a JSON parser with ``parse_float=Decimal`` sees after sending ``body`` over the wire."""
    return json.loads(dumps_json(body), parse_float=Decimal)


# ------------------------------------------------------------------------------------------- payloads


def address(*, without: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    base = {
        "civility": "Mrs",
        "firstname": "Anna",
        "lastname": "Schmidt",
        "company": "Schmidt GmbH",
        "street_1": "Hauptstraße 5",
        "street_2": "Hinterhaus",
        "zip_code": "10115",
        "city": "Berlin",
        "country": "Germany",
        "country_iso_code": "DEU",
        "phone": "+49 30 1234567",
    }
    base.update(overrides)
    for key in without:
        del base[key]
    return base


def order_line(index: int = 1, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "can_refund": False,
        "cancelations": [],
        "category_code": "shoes",
        "category_label": "Shoes",
        "commission_fee": Decimal("2.40"),
        "commission_rate_vat": Decimal("19.0000"),
        "commission_vat": Decimal("0.46"),
        "created_date": "2024-05-01T09:58:00Z",
        "description": "Trail runner, size 42",
        "last_updated_date": "2024-05-01T10:00:00Z",
        "offer_id": 3000 + index,
        "offer_sku": f"ACME-SKU-{index}",
        "offer_state_code": "11",
        "order_line_additional_fields": [],
        "order_line_id": f"ORD-1001-A-{index}",
        "order_line_index": index,
        "order_line_state": "WAITING_ACCEPTANCE",
        "price": Decimal("59.98"),
        "price_unit": Decimal("29.99"),
        "product_medias": [
            {"media_url": "https://img.example/1.jpg", "mime_type": "image/jpeg", "type": "small"}
        ],
        "product_sku": f"MKP00{index}",
        "product_shop_sku": f"SKU-{index}",
        "product_title": "Trail Runner 42",
        "quantity": 2,
        "refunds": [],
        "shipping_price": Decimal("4.90"),
        "total_commission": Decimal("2.86"),
        "total_price": Decimal("64.88"),
    }
    base.update(overrides)
    return base


def order(order_id: str = "ORD-1001-A", **overrides: Any) -> dict[str, Any]:
    """An OR11 order in WAITING_ACCEPTANCE (addresses withheld, as Mirakl does before SHIPPING)."""
    base: dict[str, Any] = {
        "acceptance_decision_date": None,
        "can_cancel": False,
        "can_shop_ship": False,
        "commercial_id": order_id.rsplit("-", 1)[0],
        "created_date": "2024-05-01T09:58:00Z",
        "currency_iso_code": "EUR",
        "customer": {
            "customer_id": "C-77",
            "firstname": "Anna",
            "lastname": "Schmidt",
            "billing_address": None,
            "shipping_address": None,
        },
        "customer_notification_email": "anon-77@notify.mirakl.test",
        "fulfillment": {"center": {"code": "DEFAULT"}},
        "fully_refunded": False,
        "has_customer_message": False,
        "has_incident": False,
        "has_invoice": False,
        "last_updated_date": "2024-05-01T10:00:00Z",
        "leadtime_to_ship": 2,
        "order_additional_fields": [],
        "order_id": order_id,
        "order_lines": [order_line(1)],
        "order_state": "WAITING_ACCEPTANCE",
        "order_tax_mode": "TAX_INCLUDED",
        "paymentType": "CREDIT_CARD",
        "price": Decimal("59.98"),
        "shipping_deadline": "2024-05-03T23:59:59Z",
        "shipping_price": Decimal("4.90"),
        "shipping_type_code": "STD",
        "shipping_type_label": "Standard",
        "shipping_zone_code": "DE",
        "shipping_zone_label": "Germany",
        "total_commission": Decimal("2.86"),
        "total_price": Decimal("64.88"),
    }
    base.update(overrides)
    return base


def shipping_order(order_id: str = "ORD-1002-A", **overrides: Any) -> dict[str, Any]:
    """An accepted, paid OR11 order in SHIPPING, addresses present."""
    payload = order(
        order_id,
        order_state="SHIPPING",
        acceptance_decision_date="2024-05-01T10:05:00Z",
        can_shop_ship=True,
        customer={
            "customer_id": "C-78",
            "firstname": "Anna",
            "lastname": "Schmidt",
            "billing_address": address(without=("street_2", "company")),
            "shipping_address": {**address(), "additional_info": "Ring twice"},
        },
        order_lines=[order_line(1, order_line_state="SHIPPING"), order_line(2, order_line_state="SHIPPING")],
    )
    payload.update(overrides)
    return payload


def orders_page(orders: list[dict[str, Any]], total_count: int) -> dict[str, Any]:
    return {"orders": orders, "total_count": total_count}


def account(shop_id: int = int(SHOP_ID), **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "billing_info": {},
        "channels": ["DE", "FR"],
        "contact_informations": {
            "city": "Berlin",
            "country": "DEU",
            "email": "ops@acme.test",
            "lastname": "Ops",
            "street1": "Hauptstraße 1",
        },
        "currency_iso_code": "EUR",
        "date_created": "2023-01-01T00:00:00Z",
        "default_billing_information": {
            "default_language": "de",
            "id": "dbi-1",
            "registration_address": {
                "city": "Berlin",
                "country_iso_code": "DEU",
                "street_1": "Hauptstraße 1",
                "zip_code": "10115",
            },
        },
        "domains": ["shoes"],
        "evaluations_count": 12,
        "free_shipping": False,
        "is_professional": True,
        "last_updated_date": "2024-01-01T00:00:00Z",
        "offers_count": 120,
        "orders_count": 45,
        "payment_details": {
            "paid_balance": Decimal("0"),
            "payable_balance": Decimal("10.50"),
            "pending_balance": Decimal("0"),
        },
        "payment_method_mandatory": False,
        "premium": False,
        "pro_details": {},
        "shipping": {},
        "shipping_types": ["STD"],
        "shipping_zones": ["DE"],
        "shop_additional_fields": [],
        "shop_id": shop_id,
        "shop_name": "ACME Outdoor",
        "shop_state": "OPEN",
    }
    base.update(overrides)
    return base


def offer(index: int = 1, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "active": True,
        "all_prices": [
            {"price": Decimal("29.99"), "unit_origin_price": Decimal("29.99"), "volume_prices": []},
        ],
        "category_code": "shoes",
        "category_label": "Shoes",
        "channels": [],
        "currency_iso_code": "EUR",
        "description": "",
        "fulfillment": {"center": {"code": "DEFAULT"}},
        "leadtime_to_ship": 2,
        "logistic_class": {"code": "S", "label": "Small"},
        "max_order_quantity": 10,
        "min_order_quantity": 1,
        "min_quantity_alert": 0,
        "min_shipping_price": Decimal("4.90"),
        "min_shipping_price_additional": Decimal("0"),
        "min_shipping_type": "STD",
        "min_shipping_zone": "DE",
        "offer_id": 5000 + index,
        "package_quantity": 1,
        "price": Decimal("29.99"),
        "product_references": [{"reference": f"40000000000{index:02d}", "reference_type": "EAN"}],
        "product_sku": f"MKP00{index}",
        "product_title": "Trail Runner",
        "quantity": 7,
        "shipping_deadline": "2024-05-03T23:59:59Z",
        "shop_sku": f"ACME-SKU-{index}",
        "state_code": "11",
    }
    base.update(overrides)
    return base


def import_status(import_id: int = 42, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "date_created": "2024-05-01T10:00:00Z",
        "has_error_report": True,
        "import_id": import_id,
        "lines_in_error": 1,
        "lines_in_pending": 0,
        "lines_in_success": 2,
        "lines_read": 3,
        "mode": "NORMAL",
        "offer_deleted": 0,
        "offer_inserted": 1,
        "offer_updated": 1,
        "reason_status": "",
        "status": "COMPLETE",
        "type": "MIRAKL",
    }
    base.update(overrides)
    return base


# ---------------------------------------------------------------------------------------------- fake


Responder = Callable[[httpx.Request], httpx.Response]


def json_response(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=dumps_json(body).encode("utf-8"),
        headers={"content-type": "application/json", **headers},
    )


@dataclass
class FakeMirakl:
    """A scripted Mirakl: ``routes[(METHOD, path)]`` answers, every request is recorded."""

    routes: dict[tuple[str, str], Responder] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)

    def on(self, method: str, path: str, responder: Responder | httpx.Response) -> FakeMirakl:
        if isinstance(responder, httpx.Response):
            fixed = responder

            def constant(_request: httpx.Request) -> httpx.Response:
                return fixed

            self.routes[(method, path)] = constant
        else:
            self.routes[(method, path)] = responder
        return self

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raw_path = request.url.raw_path.split(b"?")[0].decode("ascii")
        responder = self.routes.get((request.method, raw_path))
        if responder is None:
            return json_response(
                404, {"status": 404, "message": f"no route {request.method} {request.url.path}"}
            )
        return responder(request)

    def client(self, shop_id: str | None = SHOP_ID, **kwargs: Any) -> MiraklClient:
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        return MiraklClient(HOST, API_KEY, shop_id, http=http, **kwargs)

    def last_json(self) -> Any:
        return json.loads(self.requests[-1].content, parse_float=Decimal)

    def last_query(self) -> Mapping[str, list[str]]:
        query: dict[str, list[str]] = {}
        for key, value in self.requests[-1].url.params.multi_items():
            query.setdefault(key, []).append(value)
        return query
