"""Order creation in the sandbox shop, validated the way the REST Admin API validates it.

Refusals carry Shopify's error shapes: 400 ``{"errors": {"order": "Required parameter missing or
invalid"}}`` for a body that is not ``{"order": {...}}``, and 422 ``{"errors": {field: [messages]}}`` for
bad input (unknown variant, bad quantity or price, unknown country, tag too long, out of stock with
``decrement_obeying_policy``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tradelane.merchant.shopify.countries import ALPHA2_CODES
from tradelane.merchant.shopify.sandbox.catalog import Catalog, Variant, iso, money

MAX_TAG_LENGTH = 40
INVENTORY_BEHAVIOURS = ("bypass", "decrement_ignoring_policy", "decrement_obeying_policy")
ADDRESS_FIELDS = (
    "first_name",
    "last_name",
    "company",
    "address1",
    "address2",
    "city",
    "province",
    "zip",
    "country",
    "country_code",
    "phone",
)


class OrderRefused(Exception):
    def __init__(self, status: int, errors: Any) -> None:
        super().__init__(str(errors))
        self.status = status
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Claim:
    """Stock an order takes from one variant at one location."""

    inventory_item_id: int
    location_id: int
    quantity: int


def _errors(field: str, message: str) -> OrderRefused:
    return OrderRefused(422, {"errors": {field: [message]}})


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _errors(field, "is not a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _errors(field, "is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise _errors(field, "must be greater than or equal to 0")
    return amount


def _address(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _errors(field, "is invalid")
    result = {name: value.get(name) for name in ADDRESS_FIELDS}
    code = result.get("country_code")
    if code is not None:
        if not isinstance(code, str) or code.upper() not in ALPHA2_CODES:
            raise _errors(field, f"country_code {code!r} is not a valid country")
        result["country_code"] = code.upper()
    names = [result.get("first_name"), result.get("last_name")]
    result["name"] = " ".join(str(n) for n in names if n) or None
    return result


def _tags(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _errors("tags", "must be a comma-separated string")
    tags = [t.strip() for t in value.split(",") if t.strip()]
    for tag in tags:
        if len(tag) > MAX_TAG_LENGTH:
            raise _errors("tags", f"{tag!r} is too long (maximum is {MAX_TAG_LENGTH} characters)")
    return ", ".join(tags)


def _note_attributes(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(i, Mapping) and "name" in i for i in value):
        raise _errors("note_attributes", "must be a list of {name, value}")
    return [{"name": str(i["name"]), "value": str(i.get("value", ""))} for i in value]


def _properties(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(i, Mapping) and "name" in i for i in value):
        raise _errors("line_items", "properties must be a list of {name, value}")
    return [{"name": str(i["name"]), "value": str(i.get("value", ""))} for i in value]


def _line(
    raw: Any, index: int, catalog: Catalog, new_id: Callable[[], int]
) -> tuple[dict[str, Any], Variant | None]:
    if not isinstance(raw, Mapping):
        raise _errors("line_items", f"line item {index} is invalid")
    quantity = raw.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise _errors("line_items", "quantity must be greater than or equal to 1")
    variant: Variant | None = None
    variant_id = raw.get("variant_id")
    if variant_id is not None:
        if isinstance(variant_id, bool) or not isinstance(variant_id, int):
            raise _errors("line_items", f"variant_id {variant_id!r} is invalid")
        variant = catalog.variant(variant_id)
        if variant is None:
            raise _errors("line_items", f"Unable to find variant with id {variant_id}")
        title = str(raw.get("title") or catalog.products[variant.product_id].title)
        price = _decimal(raw["price"], "line_items") if raw.get("price") is not None else variant.price
    else:
        if not raw.get("title") or raw.get("price") is None:
            raise _errors("line_items", "a line item needs a variant_id, or a title and a price")
        title = str(raw["title"])
        price = _decimal(raw["price"], "line_items")
    line = {
        "id": new_id(),
        "variant_id": variant.id if variant else None,
        "product_id": variant.product_id if variant else None,
        "sku": variant.sku if variant else raw.get("sku"),
        "title": title,
        "variant_title": variant.title if variant else None,
        "quantity": quantity,
        "current_quantity": quantity,
        "fulfillable_quantity": quantity,
        "fulfillment_status": None,
        "price": money(price),
        "requires_shipping": True,
        "properties": _properties(raw.get("properties")),
        "admin_graphql_api_id": "",
    }
    line["admin_graphql_api_id"] = f"gid://shopify/LineItem/{line['id']}"
    return line, variant


def build_order(
    body: Any,
    catalog: Catalog,
    *,
    new_id: Callable[[], int],
    number: int,
    now: datetime,
    app_id: int | None,
    location_id: int,
    shop_currency: str,
) -> tuple[dict[str, Any], list[Claim]]:
    """The created order's JSON and the stock it claims; :class:`OrderRefused` otherwise."""
    order = body.get("order") if isinstance(body, Mapping) else None
    if not isinstance(order, Mapping):
        raise OrderRefused(400, {"errors": {"order": "Required parameter missing or invalid"}})
    raw_lines = order.get("line_items")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise _errors("line_items", "must have at least one line item")
    behaviour = order.get("inventory_behaviour") or "bypass"
    if behaviour not in INVENTORY_BEHAVIOURS:
        raise _errors("inventory_behaviour", f"{behaviour!r} is not included in the list")
    currency = order.get("currency") or shop_currency
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise _errors("currency", "is invalid")
    lines: list[dict[str, Any]] = []
    claims: list[Claim] = []
    for index, raw in enumerate(raw_lines):
        line, variant = _line(raw, index, catalog, new_id)
        lines.append(line)
        if variant is None or behaviour == "bypass":
            continue
        if (
            behaviour == "decrement_obeying_policy"
            and variant.inventory_policy == "deny"
            and catalog.available(variant.inventory_item_id) < line["quantity"]
        ):
            raise _errors("line_items", f"{line['title']} - {variant.title} is out of stock")
        claims.append(Claim(variant.inventory_item_id, location_id, line["quantity"]))
    total = sum((Decimal(line["price"]) * line["quantity"] for line in lines), Decimal(0))
    order_id = new_id()
    created = {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "app_id": app_id,
        "name": f"#{number}",
        "number": number - 1000,
        "order_number": number,
        "created_at": iso(now),
        "updated_at": iso(now),
        "processed_at": order.get("processed_at") or iso(now),
        "cancelled_at": None,
        "cancel_reason": None,
        "closed_at": None,
        "currency": currency.upper(),
        "presentment_currency": currency.upper(),
        "financial_status": order.get("financial_status")
        or ("paid" if order.get("transactions") else "pending"),
        "fulfillment_status": None,
        "email": order.get("email"),
        "note": order.get("note"),
        "note_attributes": _note_attributes(order.get("note_attributes")),
        "tags": _tags(order.get("tags")),
        "source_name": "api" if app_id is not None else "web",
        "source_identifier": order.get("source_identifier"),
        "subtotal_price": money(total),
        "total_price": money(total),
        "line_items": lines,
        "shipping_address": _address(order.get("shipping_address"), "shipping_address"),
        "billing_address": _address(order.get("billing_address"), "billing_address"),
        "fulfillments": [],
        "test": False,
    }
    return created, claims


def fulfillment_json(
    order: dict[str, Any],
    *,
    fulfillment_id: int,
    lines: list[tuple[dict[str, Any], int]],
    tracking_company: str | None,
    tracking_number: str | None,
    tracking_url: str | None,
    location_id: int,
    now: datetime,
) -> dict[str, Any]:
    """A successful fulfillment of ``lines`` ((order line item, quantity) pairs)."""
    return {
        "id": fulfillment_id,
        "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fulfillment_id}",
        "order_id": order["id"],
        "name": f"{order['name']}.{len(order['fulfillments']) + 1}",
        "status": "success",
        "service": "manual",
        "shipment_status": None,
        "location_id": location_id,
        "created_at": iso(now),
        "updated_at": iso(now),
        "tracking_company": tracking_company,
        "tracking_number": tracking_number,
        "tracking_numbers": [tracking_number] if tracking_number else [],
        "tracking_url": tracking_url,
        "tracking_urls": [tracking_url] if tracking_url else [],
        "line_items": [{**item, "quantity": quantity} for item, quantity in lines],
    }
