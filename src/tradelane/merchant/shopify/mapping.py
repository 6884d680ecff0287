"""Pure mappings between tradelane and Shopify's REST resources (no I/O).

Outbound: an :class:`~tradelane.merchant.schema.OmsOrder` becomes the body of ``POST orders.json``.
Every created order carries its tradelane identity three ways, so it can be found again (idempotent
delivery) and mapped back (webhooks):

* the note attributes ``tradelane_order_id`` (tradelane's order id) and ``tradelane_ref``
  (``CHANNEL:MARKETPLACE_ORDER_ID``);
* the tags ``tradelane`` and ``tradelane-order-<id>`` (plus the order's ``tags`` attribute, if any);
* ``source_identifier`` = the ref; each line item also carries the marketplace line id as the hidden
  property ``_tradelane_line_id``.

Inbound: fulfillments become shipment fields, product variants become catalog fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from tradelane.domain.catalog_rows import RowError, parse_gtin, parse_price
from tradelane.merchant.schema import OmsAddress, OmsOrder
from tradelane.merchant.shopify.countries import alpha2

ORDER_ID_ATTRIBUTE = "tradelane_order_id"
ORDER_REF_ATTRIBUTE = "tradelane_ref"
BASE_TAG = "tradelane"
ORDER_TAG_PREFIX = "tradelane-order-"
LINE_ID_PROPERTY = "_tradelane_line_id"
#: Shopify refuses tags longer than this; longer attribute values stay in the note attributes.
MAX_TAG_LENGTH = 40
MAX_QUANTITY = 2**31 - 1
MAX_SKU_LENGTH = 200
#: Shopify's title of the single variant of a product without options.
DEFAULT_VARIANT_TITLE = "Default Title"


#: The tag of a test order (``tradelane orders create-test``): it exists on no marketplace.
TEST_TAG = "tradelane-test"


def order_tag(order_id: int) -> str:
    return f"{ORDER_TAG_PREFIX}{order_id}"


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def order_tags(document: OmsOrder) -> list[str]:
    """``tradelane``, ``tradelane-order-<id>``, ``tradelane-test`` for a test order, then the order's
    ``tags`` attribute items (deduplicated, case-insensitively; items Shopify would refuse are left
    out)."""
    marks = [TEST_TAG] if document.test else []
    candidates = [BASE_TAG, order_tag(document.id), *marks, *_split(document.attributes.get("tags", ""))]
    seen: set[str] = set()
    tags: list[str] = []
    for tag in candidates:
        if len(tag) > MAX_TAG_LENGTH or tag.lower() in seen:
            continue
        seen.add(tag.lower())
        tags.append(tag)
    return tags


def note_attributes(document: OmsOrder) -> list[dict[str, str]]:
    """tradelane's identity first, then the order's other attributes (sorted by name)."""
    attributes = [
        {"name": ORDER_ID_ATTRIBUTE, "value": str(document.id)},
        {"name": ORDER_REF_ATTRIBUTE, "value": document.ref},
        {"name": "channel", "value": document.channel},
        {"name": "marketplace_order_id", "value": document.marketplace_order_id},
    ]
    reserved = {a["name"] for a in attributes} | {"tags"}
    attributes.extend(
        {"name": name, "value": value}
        for name, value in sorted(document.attributes.items())
        if name not in reserved
    )
    return attributes


def address(value: OmsAddress | None) -> dict[str, Any] | None:
    """A Shopify address; ``country`` as ``country_code`` when it is an ISO alpha-2/alpha-3 code."""
    if value is None:
        return None
    result: dict[str, Any] = {
        "first_name": value.first_name,
        "last_name": value.last_name,
        "company": value.company,
        "address1": value.street1,
        "address2": value.street2,
        "city": value.city,
        "province": value.state,
        "zip": value.zip_code,
        "phone": value.phone,
    }
    code = alpha2(value.country)
    if code is not None:
        result["country_code"] = code
    elif value.country:
        result["country"] = value.country
    return {k: v for k, v in result.items() if v is not None}


def order_payload(
    document: OmsOrder, variant_ids: Mapping[str, int], *, inventory_behaviour: str
) -> dict[str, Any]:
    """The ``POST orders.json`` body. ``variant_ids`` maps every line's (merchant) SKU to its variant.

    The order is created paid (the marketplace collected the money) with one successful ``sale``
    transaction of the total, and no Shopify e-mail to the customer (the marketplace owns that)."""
    line_items = [
        {
            "variant_id": variant_ids[line.sku],
            "quantity": line.quantity,
            "price": line.unit_price,
            "properties": [{"name": LINE_ID_PROPERTY, "value": line.line_id}],
        }
        for line in document.lines
    ]
    email = next(
        (a.email for a in (document.billing_address, document.shipping_address) if a is not None and a.email),
        None,
    )
    order: dict[str, Any] = {
        "line_items": line_items,
        "currency": document.currency,
        "financial_status": "paid",
        "transactions": [
            {
                "kind": "sale",
                "status": "success",
                "amount": document.total_price,
                "currency": document.currency,
                "gateway": document.channel,
            }
        ],
        "inventory_behaviour": inventory_behaviour,
        "send_receipt": False,
        "send_fulfillment_receipt": False,
        "processed_at": document.created_at.astimezone(UTC).isoformat(),
        "source_identifier": document.ref,
        "tags": ", ".join(order_tags(document)),
        "note_attributes": note_attributes(document),
    }
    if document.customer_message:
        order["note"] = document.customer_message
    if email:
        order["email"] = email
    shipping = address(document.shipping_address)
    if shipping:
        order["shipping_address"] = shipping
    billing = address(document.billing_address)
    if billing:
        order["billing_address"] = billing
    return {"order": order}


# --- reading Shopify orders back -------------------------------------------------------------------


def _items(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else nothing (a payload field of the wrong type is ignored,
    like a missing one)."""
    return value if isinstance(value, list) else []


def _note_attribute(order: Mapping[str, Any], name: str) -> str | None:
    for item in _items(order.get("note_attributes")):
        if isinstance(item, Mapping) and item.get("name") == name and item.get("value") is not None:
            return str(item["value"])
    return None


def tradelane_order_id(order: Mapping[str, Any]) -> int | None:
    """The tradelane order id a Shopify order carries (note attribute, else tag), or None."""
    value = _note_attribute(order, ORDER_ID_ATTRIBUTE)
    if value is None:
        tags = order.get("tags")
        for tag in _split(tags) if isinstance(tags, str) else []:
            if tag.lower().startswith(ORDER_TAG_PREFIX):
                value = tag[len(ORDER_TAG_PREFIX) :]
                break
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    return int(value)


def is_order_of(order: Mapping[str, Any], document: OmsOrder) -> bool:
    """Whether the Shopify order is tradelane's ``document`` (same id and, when present, same ref)."""
    if tradelane_order_id(order) != document.id:
        return False
    ref = _note_attribute(order, ORDER_REF_ATTRIBUTE)
    return ref is None or ref == document.ref


# --- fulfillments ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShippedLine:
    """A fulfilled line: the marketplace line id (from the line property) and/or the SKU."""

    quantity: int
    line_id: str | None = None
    sku: str | None = None


@dataclass(frozen=True, slots=True)
class Shipment:
    external_id: str
    shopify_order_id: int | None
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    lines: tuple[ShippedLine, ...]


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] if text else None


def _first(values: Any) -> Any:
    return values[0] if isinstance(values, list) and values else None


def _http_url(value: Any) -> str | None:
    text = _text(value, 1000)
    if text is None:
        return None
    parts = urlsplit(text)
    return text if parts.scheme in {"http", "https"} and parts.netloc else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


def _line_property(item: Mapping[str, Any], name: str) -> str | None:
    for prop in _items(item.get("properties")):
        if isinstance(prop, Mapping) and prop.get("name") == name and prop.get("value") not in (None, ""):
            return str(prop["value"])
    return None


def shipment_from_fulfillment(fulfillment: Mapping[str, Any]) -> Shipment | None:
    """The shipment a *successful* fulfillment describes (None for pending, cancelled or failed ones).

    ``external_id`` is ``shopify-fulfillment-<id>``, the same whichever webhook carried it."""
    fulfillment_id = _int(fulfillment.get("id"))
    if fulfillment_id is None or str(fulfillment.get("status") or "success") != "success":
        return None
    lines: list[ShippedLine] = []
    for item in _items(fulfillment.get("line_items")):
        if not isinstance(item, Mapping):
            continue
        quantity = _int(item.get("quantity"))
        if not quantity or quantity < 0:  # "-2" never parses, but a JSON -2 would ship minus two
            continue
        lines.append(
            ShippedLine(
                quantity=quantity,
                line_id=_line_property(item, LINE_ID_PROPERTY),
                sku=_text(item.get("sku"), 200),
            )
        )
    return Shipment(
        external_id=f"shopify-fulfillment-{fulfillment_id}",
        shopify_order_id=_int(fulfillment.get("order_id")),
        carrier=_text(fulfillment.get("tracking_company"), 100),
        tracking_number=_text(
            fulfillment.get("tracking_number") or _first(fulfillment.get("tracking_numbers")), 200
        ),
        tracking_url=_http_url(fulfillment.get("tracking_url") or _first(fulfillment.get("tracking_urls"))),
        lines=tuple(lines),
    )


# --- products ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VariantFields:
    """What a Shopify variant tells tradelane's catalog. ``price``/``quantity`` are None when absent
    or unusable (they are then left as they are)."""

    sku: str
    title: str | None
    brand: str | None
    gtin: str | None
    price: Decimal | None
    quantity: int | None
    inventory_item_id: int | None


def _price(value: Any) -> Decimal | None:
    try:
        return parse_price(value if isinstance(value, str) else None)
    except RowError:
        return None


def _gtin(value: Any) -> str | None:
    try:
        return parse_gtin(value if isinstance(value, str) else None)
    except RowError:
        return None


def clamp_quantity(value: int) -> int:
    """Shopify stock can go negative (oversold); the catalog holds ``0..2**31-1``."""
    return min(max(value, 0), MAX_QUANTITY)


def variants_of_product(product: Mapping[str, Any]) -> list[VariantFields]:
    """The product's variants that have a SKU (others cannot be matched to anything), first one per SKU."""
    base_title = _text(product.get("title"), 1000)
    brand = _text(product.get("vendor"), 200)
    seen: set[str] = set()
    result: list[VariantFields] = []
    for variant in _items(product.get("variants")):
        if not isinstance(variant, Mapping):
            continue
        sku = _text(variant.get("sku"), MAX_SKU_LENGTH + 1)
        if sku is None or len(sku) > MAX_SKU_LENGTH or sku in seen or not sku.isprintable():
            continue
        seen.add(sku)
        variant_title = _text(variant.get("title"), 500)
        title = base_title
        if variant_title and variant_title != DEFAULT_VARIANT_TITLE:
            title = f"{base_title} - {variant_title}" if base_title else variant_title
        quantity = variant.get("inventory_quantity")
        result.append(
            VariantFields(
                sku=sku,
                title=title,
                brand=brand,
                gtin=_gtin(variant.get("barcode")),
                price=_price(variant.get("price")),
                quantity=clamp_quantity(quantity)
                if isinstance(quantity, int) and not isinstance(quantity, bool)
                else None,
                inventory_item_id=_int(variant.get("inventory_item_id")),
            )
        )
    return result


def variant_ids_by_sku(products: Iterable[Mapping[str, Any]]) -> dict[str, list[int]]:
    """SKU → the ids of the variants carrying it (Shopify does not make SKUs unique)."""
    result: dict[str, list[int]] = {}
    for product in products:
        for variant in _items(product.get("variants")):
            if not isinstance(variant, Mapping):
                continue
            sku = _text(variant.get("sku"), MAX_SKU_LENGTH + 1)
            variant_id = _int(variant.get("id"))
            if sku is not None and variant_id is not None:
                result.setdefault(sku, []).append(variant_id)
    return result
