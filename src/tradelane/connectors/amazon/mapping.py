"""Amazon payloads ↔ the hub's neutral values. Pure: no I/O, no clock.

* Orders API 2026-01-01 ``Order`` → :class:`~tradelane.domain.orders.MarketplaceOrder`; the one state
  table is :data:`ORDER_STATES`; Pending orders (payment not yet authorised) are withheld
  (:func:`withheld`).
* :class:`~tradelane.connectors.base.OfferUpdate` → JSON_LISTINGS_FEED messages (chunked to ≤ 25,000
  messages and ≤ 10 MiB per feed document) and → patchListingsItem requests.
* Processing report / ListingsItemSubmissionResponse → :class:`~tradelane.connectors.base.OfferOutcome`.
* Listings ``Item`` → :class:`~tradelane.connectors.base.ListedOffer`.

A payload that breaks the model raises :class:`~tradelane.connectors.amazon.errors.AmazonSchemaError`
with the path of the problem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from tradelane.connectors.amazon.client import dumps
from tradelane.connectors.amazon.errors import AmazonSchemaError
from tradelane.connectors.amazon.settings import AmazonSettings
from tradelane.connectors.base import ListedOffer, OfferOutcome, OfferUpdate, Shipment
from tradelane.domain.orders import (
    Address,
    MarketplaceOrder,
    MarketplaceOrderLine,
    OrderState,
)

#: Amazon's ``fulfillmentStatus`` → the hub's neutral order state. The ONE table (the raw status is kept
#: as ``raw_state``; a status missing here is a schema error, see :func:`order_status`).
#: PARTIALLY_SHIPPED is still handed over (lines remain to ship); UNFULFILLABLE (Amazon-fulfilled
#: non-retail orders only) is final like a cancellation.
ORDER_STATES: Mapping[str, OrderState] = MappingProxyType(
    {
        "PENDING_AVAILABILITY": OrderState.AWAITING_PAYMENT,
        "PENDING": OrderState.AWAITING_PAYMENT,
        "UNSHIPPED": OrderState.TO_SHIP,
        "PARTIALLY_SHIPPED": OrderState.PARTIALLY_SHIPPED,
        "SHIPPED": OrderState.SHIPPED,
        "CANCELLED": OrderState.CANCELLED,
        "UNFULFILLABLE": OrderState.CANCELLED,
    }
)

#: Statuses whose orders are not handed to services yet: payment is not authorised (Amazon may still
#: drop them, and gives no address). They come back with a new ``lastUpdatedTime`` once paid.
WITHHELD_STATUSES = frozenset({"PENDING", "PENDING_AVAILABILITY"})

FEED_TYPE = "JSON_LISTINGS_FEED"
MAX_FEED_MESSAGES = 25_000
MAX_FEED_BYTES = 10 * 1024 * 1024
CONDITION_NEW = "new_new"
ASIN_ATTRIBUTES = ("attr:asin", "asin")
#: The largest quantity an order line may carry (the hub stores quantities as 32-bit integers).
MAX_LINE_QUANTITY = 2**31 - 1
#: Amounts are stored with 14 integer digits (NUMERIC(20, 6)); a larger one is no price.
MAX_AMOUNT = Decimal(10) ** 14
#: Offer attributes with this prefix are Amazon listing attributes sent as-is in full listings.
AMAZON_ATTRIBUTE_PREFIX = "amazon:"


# --------------------------------------------------------------------------------------------- orders


def order_status(order: Mapping[str, Any]) -> str:
    """The order's raw ``fulfillment.fulfillmentStatus`` (schema error when absent or unknown)."""
    fulfillment = order.get("fulfillment")
    status = fulfillment.get("fulfillmentStatus") if isinstance(fulfillment, Mapping) else None
    if not isinstance(status, str):
        raise AmazonSchemaError("$.fulfillment.fulfillmentStatus", "missing")
    if status not in ORDER_STATES:
        raise AmazonSchemaError("$.fulfillment.fulfillmentStatus", f"unknown status {_shown(status)}")
    return status


def withheld(order: Mapping[str, Any]) -> bool:
    """Whether the order waits for payment authorisation (not returned to services yet)."""
    return order_status(order) in WITHHELD_STATUSES


def needs_details(order: Mapping[str, Any]) -> bool:
    """Whether a searchOrders entry lacks what intake needs (the delivery address of an order to ship)
    and :func:`order_from_amazon` should get the getOrder version instead."""
    if order_status(order) not in ("UNSHIPPED", "PARTIALLY_SHIPPED"):
        return False
    recipient = order.get("recipient")
    address = recipient.get("deliveryAddress") if isinstance(recipient, Mapping) else None
    return not isinstance(address, Mapping) or not address.get("addressLine1")


def order_from_amazon(order: Mapping[str, Any]) -> MarketplaceOrder:
    """One 2026-01-01 ``Order`` as a :class:`MarketplaceOrder` (the raw payload kept)."""
    order_id = _req_str(order, "orderId", "$")
    status = order_status(order)
    state = ORDER_STATES[status]
    items = order.get("orderItems")
    if not isinstance(items, list):
        raise AmazonSchemaError("$.orderItems", "missing or not an array")
    lines = tuple(_line(item, i, state, status) for i, item in enumerate(items))
    currency = next((line.currency for line in lines if line.currency), "")
    if not currency:
        currency = _money_currency(order.get("proceeds"), "grandTotal") or ""
    if not currency and state is not OrderState.CANCELLED:
        raise AmazonSchemaError("$.orderItems", "no item carries a price currency")
    attributes: dict[str, str] = {"amazon_status": status}
    channel = order.get("salesChannel")
    if isinstance(channel, Mapping) and isinstance(channel.get("marketplaceId"), str):
        attributes["marketplace_id"] = channel["marketplaceId"]
    fulfillment = order.get("fulfillment")
    if isinstance(fulfillment, Mapping):
        for key, name in (("shipByWindow", "ship_by"), ("deliverByWindow", "deliver_by")):
            window = fulfillment.get(key)
            if isinstance(window, Mapping) and isinstance(window.get("latestDateTime"), str):
                attributes[name] = window["latestDateTime"]
        if isinstance(fulfillment.get("fulfillmentServiceLevel"), str):
            attributes["service_level"] = fulfillment["fulfillmentServiceLevel"]
    buyer = _mapping(order.get("buyer"))
    return MarketplaceOrder(
        marketplace_order_id=order_id,
        state=state,
        raw_state=status,
        currency=currency,
        created_at=parse_time(order.get("createdTime"), "$.createdTime"),
        updated_at=parse_time(order.get("lastUpdatedTime"), "$.lastUpdatedTime"),
        lines=lines,
        shipping_address=_address(order.get("recipient"), buyer),
        attributes=attributes,
        raw=dict(order),
    )


def _line(item: Any, index: int, state: OrderState, status: str) -> MarketplaceOrderLine:
    path = f"$.orderItems[{index}]"
    if not isinstance(item, Mapping):
        raise AmazonSchemaError(path, "not an object")
    line_id = _req_str(item, "orderItemId", path)
    quantity = item.get("quantityOrdered")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise AmazonSchemaError(f"{path}.quantityOrdered", f"not a whole number >= 0: {_shown(quantity)}")
    if quantity > MAX_LINE_QUANTITY:
        raise AmazonSchemaError(
            f"{path}.quantityOrdered", f"more than {MAX_LINE_QUANTITY}: {_shown(quantity)}"
        )
    product = item.get("product")
    if not isinstance(product, Mapping):
        raise AmazonSchemaError(f"{path}.product", "missing or not an object")
    sku = product.get("sellerSku")
    if not isinstance(sku, str) or not sku:
        raise AmazonSchemaError(f"{path}.product.sellerSku", "missing (needed to match the offer)")
    price = product.get("price")
    money = price.get("unitPrice") if isinstance(price, Mapping) else None
    if isinstance(money, Mapping):
        amount = _decimal(money.get("amount"), f"{path}.product.price.unitPrice.amount")
        currency = _req_str(money, "currencyCode", f"{path}.product.price.unitPrice")
    elif state is OrderState.CANCELLED:
        amount, currency = Decimal(0), ""
    else:
        raise AmazonSchemaError(f"{path}.product.price.unitPrice", "missing")
    line_status = status
    cancellation = item.get("cancellation")
    if isinstance(cancellation, Mapping) and cancellation.get("cancellationExecution"):
        line_status = "CANCELLED"
    return MarketplaceOrderLine(
        line_id=line_id,
        offer_sku=sku,
        quantity=quantity,
        unit_price=amount,
        currency=currency,
        state=line_status,
        title=product.get("title") if isinstance(product.get("title"), str) else None,
        product_sku=sku,
    )


def _address(recipient: Any, buyer: Mapping[str, Any]) -> Address | None:
    address = recipient.get("deliveryAddress") if isinstance(recipient, Mapping) else None
    if not isinstance(address, Mapping):
        return None

    def text(key: str) -> str | None:
        value = address.get(key)
        return value if isinstance(value, str) and value else None

    name = text("name") or ""
    first, _, last = name.strip().rpartition(" ")
    extra = " ".join(v for v in (text("addressLine2"), text("addressLine3")) if v) or None
    email = buyer.get("buyerEmail")
    return Address(
        first_name=first or None,
        last_name=last or None,
        company=text("companyName"),
        street1=text("addressLine1"),
        street2=extra,
        zip_code=text("postalCode"),
        city=text("city") or text("municipality"),
        state=text("stateOrRegion"),
        country=text("countryCode"),
        phone=text("phone"),
        email=email if isinstance(email, str) and email else None,
    )


def order_line_quantities(order: Mapping[str, Any]) -> dict[str, int]:
    """``orderItemId`` → quantity still to ship (``quantityUnfulfilled`` when Amazon gives it, else
    the ordered quantity); items fully shipped or cancelled are left out."""
    out: dict[str, int] = {}
    items = order.get("orderItems")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("orderItemId"), str):
            continue
        fulfillment = item.get("fulfillment")
        left = fulfillment.get("quantityUnfulfilled") if isinstance(fulfillment, Mapping) else None
        if not isinstance(left, int) or isinstance(left, bool):
            left = item.get("quantityOrdered")
        if isinstance(left, int) and not isinstance(left, bool) and left > 0:
            out[item["orderItemId"]] = left
    return out


# ----------------------------------------------------------------------------------------- shipments


def package_detail(
    shipment: Shipment,
    items: Mapping[str, int],
    *,
    carrier_code: str,
    carrier_name: str | None,
    ship_date: datetime,
) -> dict[str, Any]:
    """The v0 ``PackageDetail`` of a shipment: ``items`` (orderItemId → quantity) in the package, the
    Amazon carrier code (``Other`` with ``carrier_name``), the tracking number, the ship date. The
    ``packageReferenceId`` (positive digits, unique per order) derives from the tracking number, so
    confirming the same package twice names the same package."""
    tracking = shipment.tracking_number or ""
    digest = hashlib.sha256(f"{shipment.order_id}|{tracking}".encode()).hexdigest()
    detail: dict[str, Any] = {
        "packageReferenceId": str(int(digest[:12], 16) % 999_999_999 + 1),
        "carrierCode": carrier_code,
        "trackingNumber": tracking,
        "shipDate": ship_date.isoformat().replace("+00:00", "Z"),
        "orderItems": [{"orderItemId": k, "quantity": q} for k, q in items.items()],
    }
    if carrier_code == "Other":
        detail["carrierName"] = carrier_name or "Other"
    return detail


# -------------------------------------------------------------------------------------------- offers


def asin_of(offer: OfferUpdate) -> str | None:
    for key in ASIN_ATTRIBUTES:
        value = offer.attributes.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def product_type_of(offer: OfferUpdate, settings: AmazonSettings) -> tuple[str, bool]:
    """(Amazon product type, whether the offer is a full listing through the product-type mapping)."""
    key = offer.attributes.get(settings.product_type_attribute)
    if key is not None and str(key) in settings.product_types:
        return settings.product_types[str(key)], True
    return settings.product_type, False


def _purchasable_offer(offer: OfferUpdate, settings: AmazonSettings) -> list[dict[str, Any]]:
    return [
        {
            "marketplace_id": settings.marketplace_id,
            "currency": offer.currency,
            "our_price": [{"schedule": [{"value_with_tax": offer.price}]}],
        }
    ]


def _availability(offer: OfferUpdate, settings: AmazonSettings) -> list[dict[str, Any]]:
    return [{"fulfillment_channel_code": settings.fulfillment_channel_code, "quantity": offer.quantity}]


def offer_attributes(offer: OfferUpdate, settings: AmazonSettings) -> tuple[str, str, dict[str, Any]]:
    """(product type, requirements, attributes) of an offer: ``LISTING_OFFER_ONLY`` on an existing
    catalog item — identified by ``attr:asin`` (``merchant_suggested_asin``) or else the GTIN
    (``externally_assigned_product_identifier``) — condition new, our price and quantity; a full
    ``LISTING`` (adding the title, the brand — ``:brand``, as the hub passes it — and ``amazon:*``
    attributes) when the product-type mapping names the offer's product type."""
    marketplace = settings.marketplace_id
    product_type, full = product_type_of(offer, settings)
    attributes: dict[str, Any] = {}
    asin = asin_of(offer)
    if asin:
        attributes["merchant_suggested_asin"] = [{"value": asin, "marketplace_id": marketplace}]
    elif offer.gtin:
        attributes["externally_assigned_product_identifier"] = [
            {"type": _gtin_type(offer.gtin), "value": offer.gtin, "marketplace_id": marketplace}
        ]
    attributes["condition_type"] = [{"value": CONDITION_NEW, "marketplace_id": marketplace}]
    attributes["purchasable_offer"] = _purchasable_offer(offer, settings)
    attributes["fulfillment_availability"] = _availability(offer, settings)
    if not full:
        return product_type, "LISTING_OFFER_ONLY", attributes
    if offer.title:
        attributes["item_name"] = [{"value": offer.title, "marketplace_id": marketplace}]
    brand = offer.attributes.get(":brand")
    if isinstance(brand, str) and brand:
        attributes["brand"] = [{"value": brand, "marketplace_id": marketplace}]
    for key, value in offer.attributes.items():
        if key.startswith(AMAZON_ATTRIBUTE_PREFIX) and len(key) > len(AMAZON_ATTRIBUTE_PREFIX):
            name = key[len(AMAZON_ATTRIBUTE_PREFIX) :]
            attributes[name] = (
                value if isinstance(value, list) else [{"value": value, "marketplace_id": marketplace}]
            )
    return product_type, "LISTING", attributes


def _gtin_type(gtin: str) -> str:
    digits = gtin.strip()
    return {12: "upc", 13: "ean", 8: "ean"}.get(len(digits), "gtin")


def feed_message(offer: OfferUpdate, message_id: int, settings: AmazonSettings) -> dict[str, Any]:
    """One JSON_LISTINGS_FEED message: DELETE, or UPDATE with :func:`offer_attributes`."""
    if offer.delete:
        return {"messageId": message_id, "sku": offer.sku, "operationType": "DELETE"}
    product_type, requirements, attributes = offer_attributes(offer, settings)
    return {
        "messageId": message_id,
        "sku": offer.sku,
        "operationType": "UPDATE",
        "productType": product_type,
        "requirements": requirements,
        "attributes": attributes,
    }


@dataclass(frozen=True, slots=True)
class FeedChunk:
    """One feed document ready to upload: its bytes and the SKUs of its messages, in order."""

    content: bytes
    skus: tuple[str, ...]


def feed_documents(
    offers: Sequence[OfferUpdate],
    settings: AmazonSettings,
    *,
    max_messages: int = MAX_FEED_MESSAGES,
    max_bytes: int = MAX_FEED_BYTES,
) -> list[FeedChunk]:
    """The offers as JSON_LISTINGS_FEED documents, each ≤ ``max_messages`` messages and ≤ ``max_bytes``
    bytes (UTF-8). One offer alone larger than ``max_bytes`` raises ``ValueError``. The header asks
    for the issues in the processing report."""
    header = {
        "sellerId": settings.seller_id,
        "version": "2.0",
        "issueLocale": "en_US",
        "report": {"includedData": ["issues"], "apiVersion": "2021-08-01"},
    }
    prefix = ('{"header":' + dumps(header) + ',"messages":[').encode()
    suffix = b"]}"
    chunks: list[FeedChunk] = []
    parts: list[bytes] = []
    skus: list[str] = []
    size = len(prefix) + len(suffix)

    def flush() -> None:
        nonlocal parts, skus, size
        if parts:
            chunks.append(FeedChunk(prefix + b",".join(parts) + suffix, tuple(skus)))
        parts, skus, size = [], [], len(prefix) + len(suffix)

    for offer in offers:
        message_id = len(parts) + 1
        encoded = dumps(feed_message(offer, message_id, settings)).encode()
        if len(prefix) + len(encoded) + len(suffix) > max_bytes:
            raise ValueError(f"offer {offer.sku} alone exceeds the feed document limit of {max_bytes} bytes")
        if len(parts) >= max_messages or size + len(encoded) + (1 if parts else 0) > max_bytes:
            flush()
            encoded = dumps(feed_message(offer, 1, settings)).encode()
        parts.append(encoded)
        skus.append(offer.sku)
        size += len(encoded) + (1 if len(parts) > 1 else 0)
    flush()
    return chunks


def patch_request(offer: OfferUpdate, settings: AmazonSettings) -> dict[str, Any]:
    """The patchListingsItem body of a price/quantity delta: replace ``purchasable_offer`` and
    ``fulfillment_availability``."""
    product_type, _ = product_type_of(offer, settings)
    return {
        "productType": product_type,
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/purchasable_offer",
                "value": _purchasable_offer(offer, settings),
            },
            {
                "op": "replace",
                "path": "/attributes/fulfillment_availability",
                "value": _availability(offer, settings),
            },
        ],
    }


def put_request(offer: OfferUpdate, settings: AmazonSettings) -> dict[str, Any]:
    """The putListingsItem body of an offer (for a SKU not listed yet, where a patch cannot apply)."""
    product_type, requirements, attributes = offer_attributes(offer, settings)
    return {"productType": product_type, "requirements": requirements, "attributes": attributes}


def _issue_text(issue: Mapping[str, Any]) -> str:
    """``code: message [attributes]`` of an issue; fields of the wrong type are shown as text or left
    out (an attribute list holding anything but strings keeps its strings only)."""
    code = issue.get("code")
    message = str(issue.get("message") or "no message")
    attribute = issue.get("attributeName")
    if not isinstance(attribute, str) or not attribute:
        attribute = ",".join(_strings(issue.get("attributeNames")))
    where = f" [{attribute}]" if attribute else ""
    return f"{code}: {message}{where}" if code else f"{message}{where}"


def submission_outcome(sku: str, response: Mapping[str, Any]) -> OfferOutcome:
    """A ListingsItemSubmissionResponse as an outcome: INVALID or any ERROR issue rejects it.
    ``issues`` that is not an array is an :class:`AmazonSchemaError`."""
    raw_issues = response.get("issues")
    if raw_issues is not None and not isinstance(raw_issues, list):
        raise AmazonSchemaError("$.issues", "not an array")
    issues = [i for i in raw_issues or [] if isinstance(i, Mapping)]
    errors = tuple(_issue_text(i) for i in issues if i.get("severity") == "ERROR")
    warnings = tuple(_issue_text(i) for i in issues if i.get("severity") == "WARNING")
    if response.get("status") == "INVALID" and not errors:
        errors = ("Amazon marked the submission INVALID without an error issue",)
    return OfferOutcome(sku=sku, ok=not errors, errors=errors, warnings=warnings)


def listing_outcome(sku: str, item: Mapping[str, Any]) -> OfferOutcome:
    """A listing's current issues (getListingsItem / searchListingsItems ``issues``) as an outcome: any
    ERROR issue rejects it, WARNING issues are kept."""
    issues = item.get("issues")
    if issues is not None and not isinstance(issues, list):
        raise AmazonSchemaError("$.issues", "not an array")
    return submission_outcome(sku, {"status": "ACCEPTED", "issues": issues or []})


def report_outcomes(report: Mapping[str, Any], skus: Sequence[str] = ()) -> list[OfferOutcome]:
    """A JSON_LISTINGS_FEED processing report → one outcome per SKU it mentions (ERROR issues reject,
    WARNING issues are kept). ``skus`` (the feed's messages in order) names issues that carry only a
    ``messageId``. Feed-level issues (no message) are not offer outcomes: see :func:`report_summary`."""
    issues = report.get("issues")
    if issues is None:
        issues = []
    if not isinstance(issues, list):
        raise AmazonSchemaError("$.issues", "not an array")
    errors: dict[str, list[str]] = {}
    warnings: dict[str, list[str]] = {}
    order: list[str] = []
    for index, issue in enumerate(issues):
        if not isinstance(issue, Mapping):
            raise AmazonSchemaError(f"$.issues[{index}]", "not an object")
        sku = issue.get("sku")
        message_id = issue.get("messageId")
        if not isinstance(sku, str) or not sku:
            if isinstance(message_id, int) and 1 <= message_id <= len(skus):
                sku = skus[message_id - 1]
            else:
                continue
        severity = issue.get("severity")
        if severity not in ("ERROR", "WARNING", "INFO"):
            raise AmazonSchemaError(f"$.issues[{index}].severity", f"unknown severity {severity!r}")
        if sku not in errors:
            errors[sku], warnings[sku] = [], []
            order.append(sku)
        if severity == "ERROR":
            errors[sku].append(_issue_text(issue))
        elif severity == "WARNING":
            warnings[sku].append(_issue_text(issue))
    return [
        OfferOutcome(sku=s, ok=not errors[s], errors=tuple(errors[s]), warnings=tuple(warnings[s]))
        for s in order
    ]


def report_summary(report: Mapping[str, Any]) -> str:
    """A one-line summary of a processing report, with its feed-level issues (issues that are not an
    array of objects are left out: the summary never fails)."""
    summary = _mapping(report.get("summary"))
    text = (
        f"{summary.get('messagesProcessed', '?')} processed, {summary.get('messagesAccepted', '?')} "
        f"accepted, {summary.get('messagesInvalid', '?')} invalid"
    )
    general = [
        _issue_text(i) for i in _list(report.get("issues")) if not i.get("sku") and not i.get("messageId")
    ]
    return text + (f"; feed issues: {'; '.join(general)}" if general else "")


# ------------------------------------------------------------------------------------------ listings


def listed_offer(item: Mapping[str, Any], marketplace_id: str) -> ListedOffer:
    """A listings ``Item`` (summaries, offers, fulfillmentAvailability, relationships) as a
    :class:`ListedOffer`; ``group_key`` is the variation parent SKU, where the listing is a child."""
    sku = _req_str(item, "sku", "$.items[]")
    price: Decimal | None = None
    currency: str | None = None
    for offer in _list(item.get("offers")):
        if offer.get("marketplaceId") not in (None, marketplace_id):
            continue
        money = offer.get("price")
        if isinstance(money, Mapping):
            price = _decimal(money.get("amount"), f"$.items[{sku}].offers[].price.amount")
            currency = money.get("currencyCode") if isinstance(money.get("currencyCode"), str) else None
            break
    quantity: int | None = None
    for entry in _list(item.get("fulfillmentAvailability")):
        value = entry.get("quantity")
        if isinstance(value, int) and not isinstance(value, bool):
            quantity = value
            break
    asin = next(
        (
            s.get("asin")
            for s in _list(item.get("summaries"))
            if s.get("marketplaceId") in (None, marketplace_id) and isinstance(s.get("asin"), str)
        ),
        None,
    )
    parent = next(
        (
            parent_sku
            for entry in _list(item.get("relationships"))
            if entry.get("marketplaceId") in (None, marketplace_id)
            for rel in _list(entry.get("relationships"))
            if rel.get("type") == "VARIATION"
            for parent_sku in _strings(rel.get("parentSkus"))
        ),
        None,
    )
    return ListedOffer(
        sku=sku,
        price=price,
        currency=currency,
        quantity=quantity,
        product_id=asin,
        raw=dict(item),
        group_key=parent,
    )


# ------------------------------------------------------------------------------------------- helpers


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Iterable[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _req_str(data: Mapping[str, Any], key: str, path: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise AmazonSchemaError(f"{path}.{key}", "missing or not a non-empty string")
    return value


def _shown(value: Any) -> str:
    """``repr`` of a payload value for a message, cut to 60 characters (a number too long to print is
    described by its size)."""
    if isinstance(value, int) and value.bit_length() > 200:
        return f"a {value.bit_length()}-bit number"
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _decimal(value: Any, path: str) -> Decimal:
    """A finite amount below :data:`MAX_AMOUNT` in magnitude, from a string, an integer or a Decimal."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise AmazonSchemaError(path, f"not a decimal amount: {_shown(value)}")
    try:
        amount = (
            value
            if isinstance(value, Decimal)
            else Decimal(value.strip() if isinstance(value, str) else value)
        )
    except InvalidOperation:
        raise AmazonSchemaError(path, f"not a decimal amount: {_shown(value)}") from None
    if not amount.is_finite():
        raise AmazonSchemaError(path, f"not a finite amount: {_shown(value)}")
    if amount and amount.adjusted() >= MAX_AMOUNT.adjusted():  # no context arithmetic: 1E+999999999 fits
        raise AmazonSchemaError(path, f"amount out of range: {_shown(value)}")
    return amount


def _money_currency(container: Any, key: str) -> str | None:
    money = container.get(key) if isinstance(container, Mapping) else None
    code = money.get("currencyCode") if isinstance(money, Mapping) else None
    return code if isinstance(code, str) else None


def parse_time(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise AmazonSchemaError(path, "missing or not a date-time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AmazonSchemaError(path, f"not an ISO 8601 date-time: {value!r}") from None
    if moment.tzinfo is None:
        raise AmazonSchemaError(path, f"date-time without a timezone: {value!r}")
    return moment
