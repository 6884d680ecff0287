"""Orders API 2026-01-01 (searchOrders, getOrder) and Orders v0 confirmShipment, on the state.

Field names and enums are those of ``orders_2026-01-01.json``: an ``Order`` always carries its base
fields; the ``includedData`` datasets (BUYER, RECIPIENT, PROCEEDS, FULFILLMENT, PACKAGES, CANCELLATION)
add theirs. A PENDING order has no buyer or delivery address yet, as on Amazon.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tradelane.connectors.amazon.sandbox.errors import SpApiError, invalid_input, not_found
from tradelane.connectors.amazon.sandbox.marketplaces import MARKETPLACES
from tradelane.connectors.amazon.sandbox.models import FulfillmentStatus, Order, Package, SellerAccount

INCLUDED_DATA = (
    "BUYER",
    "RECIPIENT",
    "PROCEEDS",
    "EXPENSE",
    "PROMOTION",
    "CANCELLATION",
    "FULFILLMENT",
    "PACKAGES",
    "TAX",
    "PAYMENT",
    "FULFILLMENT_ORDERS",
)
MAX_PAGE = 100
#: Amazon carrier codes (the ``CarrierCode`` list of the Orders v0 model's documentation, abridged to
#: the carriers a European or North-American merchant uses). ``Other`` needs ``carrierName``.
CARRIER_CODES = frozenset(
    {
        "Amazon Shipping",
        "Blue Package",
        "Canada Post",
        "Chronopost",
        "Colissimo",
        "DHL",
        "DHL Express",
        "DHL Home Delivery",
        "DPD",
        "Deutsche Post",
        "FedEx",
        "GLS",
        "Hermes",
        "La Poste",
        "OnTrac",
        "Other",
        "Parcelforce",
        "Royal Mail",
        "SEUR",
        "TNT",
        "UPS",
        "UPS Mail Innovations",
        "USPS",
        "Yodel",
    }
)


#: The ``PackageDetail`` fields the model types as strings.
_STRING_FIELDS = (
    "packageReferenceId",
    "carrierCode",
    "carrierName",
    "shippingMethod",
    "trackingNumber",
    "shipDate",
    "shipFromSupplySourceId",
)


def iso(when: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as SP-API prints times."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(raw: str, name: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_input(f"Invalid {name}: '{raw}' is not an ISO 8601 date-time.") from None
    if value.tzinfo is None:
        raise invalid_input(f"Invalid {name}: '{raw}' has no time zone designator.")
    return value


def _money(amount: Any, currency: str) -> dict[str, str]:
    return {"amount": format(amount, "f"), "currencyCode": currency}


def order_json(order: Order, included: frozenset[str]) -> dict[str, Any]:
    """The ``Order`` object of ``order`` with the ``included`` datasets."""
    mp = MARKETPLACES[order.marketplace_id]
    pending = order.status is FulfillmentStatus.PENDING
    items = []
    for item in order.items:
        entry: dict[str, Any] = {
            "orderItemId": item.order_item_id,
            "quantityOrdered": item.quantity,
            "product": {
                "asin": item.asin,
                "title": item.title,
                "sellerSku": item.sku,
                "condition": {"conditionType": "New", "conditionSubtype": "New"},
                "price": {"unitPrice": _money(item.unit_price, order.currency)},
            },
        }
        if "PROCEEDS" in included:
            entry["proceeds"] = {"proceedsTotal": _money(item.unit_price * item.quantity, order.currency)}
        if "FULFILLMENT" in included:
            entry["fulfillment"] = {
                "quantityFulfilled": item.shipped,
                "quantityUnfulfilled": item.quantity - item.shipped,
            }
        if "CANCELLATION" in included and order.status is FulfillmentStatus.CANCELLED:
            entry["cancellation"] = {
                "cancellationRequest": {"requester": "BUYER", "cancelReason": order.cancel_reason or ""}
            }
        items.append(entry)
    out: dict[str, Any] = {
        "orderId": order.order_id,
        "createdTime": iso(order.created),
        "lastUpdatedTime": iso(order.updated),
        "programs": [],
        "salesChannel": {
            "channelName": "AMAZON",
            "marketplaceId": mp.marketplace_id,
            "marketplaceName": mp.name,
        },
        "orderItems": items,
    }
    if "BUYER" in included and not pending:
        out["buyer"] = {"buyerName": order.buyer_name, "buyerEmail": order.buyer_email}
    if "RECIPIENT" in included and not pending:
        a = order.address
        address: dict[str, Any] = {
            "name": a.name,
            "addressLine1": a.line1,
            "city": a.city,
            "postalCode": a.postal_code,
            "countryCode": a.country_code,
            "addressType": "RESIDENTIAL",
        }
        for key, value in (
            ("addressLine2", a.line2),
            ("stateOrRegion", a.state_or_region),
            ("phone", a.phone),
        ):
            if value:
                address[key] = value
        out["recipient"] = {"deliveryAddress": address}
    if "PROCEEDS" in included:
        total = sum((i.unit_price * i.quantity for i in order.items), start=order.items[0].unit_price * 0)
        out["proceeds"] = {"grandTotal": _money(total, order.currency)}
    if "FULFILLMENT" in included:
        out["fulfillment"] = {
            "fulfillmentStatus": order.status.value,
            "fulfilledBy": "MERCHANT",
            "fulfillmentServiceLevel": "STANDARD",
            "shipByWindow": {"latestDateTime": iso(order.ship_by)},
            "deliverByWindow": {"latestDateTime": iso(order.deliver_by)},
        }
    if "PACKAGES" in included:
        out["packages"] = [_package_json(p) for p in order.packages]
    return out


def _package_json(package: Package) -> dict[str, Any]:
    out: dict[str, Any] = {
        "packageReferenceId": package.package_reference_id,
        "createdTime": iso(package.created),
        "packageStatus": {"status": "SHIPPED"},
        "carrier": package.carrier_name or package.carrier_code,
        "shipTime": iso(package.ship_date),
        "trackingNumber": package.tracking_number,
        "packageItems": [{"orderItemId": item_id, "quantity": qty} for item_id, qty in package.items],
    }
    if package.shipping_method:
        out["shippingService"] = package.shipping_method
    return out


def included_data(values: list[str]) -> frozenset[str]:
    for value in values:
        if value not in INCLUDED_DATA:
            raise invalid_input(f"Invalid includedData value: '{value}'.")
    return frozenset(values)


@dataclass(frozen=True)
class SearchQuery:
    """A searchOrders query, as its pagination token carries it."""

    by: str  # "created" | "updated"
    after: datetime
    before: datetime
    statuses: tuple[str, ...]
    marketplace_ids: tuple[str, ...]
    fulfilled_by: tuple[str, ...]
    page_size: int
    offset: int = 0

    def token(self, offset: int) -> str:
        raw = {
            "by": self.by,
            "after": self.after.isoformat(),
            "before": self.before.isoformat(),
            "st": list(self.statuses),
            "mp": list(self.marketplace_ids),
            "fb": list(self.fulfilled_by),
            "n": self.page_size,
            "o": offset,
        }
        return base64.urlsafe_b64encode(json.dumps(raw, separators=(",", ":")).encode()).decode().rstrip("=")

    @staticmethod
    def from_token(token: str) -> SearchQuery:
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            query = SearchQuery(
                by=raw["by"],
                after=datetime.fromisoformat(raw["after"]),
                before=datetime.fromisoformat(raw["before"]),
                statuses=tuple(str(v) for v in raw["st"]),
                marketplace_ids=tuple(str(v) for v in raw["mp"]),
                fulfilled_by=tuple(str(v) for v in raw["fb"]),
                page_size=int(raw["n"]),
                offset=int(raw["o"]),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise invalid_input("Invalid paginationToken.") from None
        sane = (
            query.by in ("created", "updated")
            and query.after.tzinfo is not None
            and query.before.tzinfo is not None
            and 1 <= query.page_size <= MAX_PAGE
            and query.offset >= 0
        )
        if not sane:
            raise invalid_input("Invalid paginationToken.")
        return query


def parse_search(
    params: Mapping[str, list[str]], marketplace_ids: tuple[str, ...], now: datetime, lag: float
) -> tuple[SearchQuery, dict[str, str]]:
    """The query of a first-page searchOrders call (validated like Amazon does) and the bound it
    reports back (``lastUpdatedBefore`` / ``createdBefore``)."""

    def one(name: str) -> str | None:
        values = params.get(name)
        return values[0] if values else None

    created_after, created_before = one("createdAfter"), one("createdBefore")
    updated_after, updated_before = one("lastUpdatedAfter"), one("lastUpdatedBefore")
    if (created_after is None) == (updated_after is None):
        raise invalid_input("Exactly one of createdAfter and lastUpdatedAfter must be provided.")
    if created_after is not None and (updated_after or updated_before):
        raise invalid_input("createdAfter cannot be combined with lastUpdatedAfter or lastUpdatedBefore.")
    if updated_after is not None and created_before is not None:
        raise invalid_input("lastUpdatedAfter cannot be combined with createdBefore.")
    by = "created" if created_after is not None else "updated"
    after_name = "createdAfter" if by == "created" else "lastUpdatedAfter"
    before_name = "createdBefore" if by == "created" else "lastUpdatedBefore"
    after = parse_time(created_after or updated_after or "", after_name)
    latest = now - timedelta(minutes=2)
    raw_before = created_before if by == "created" else updated_before
    if raw_before is not None:
        before = parse_time(raw_before, before_name)
        if before < after:
            raise invalid_input(f"{before_name} must be equal to or after {after_name}.")
        if before > latest:
            raise invalid_input(f"{before_name} must be at least two minutes before the time of the request.")
    else:
        before = now - timedelta(seconds=lag)
    if after > now:
        raise invalid_input(f"{after_name} must not be in the future.")
    statuses = tuple(v for v in _csv(params.get("fulfillmentStatuses")))
    for status in statuses:
        if status not in FulfillmentStatus.__members__:
            raise invalid_input(f"Invalid fulfillmentStatuses value: '{status}'.")
    fulfilled_by = tuple(_csv(params.get("fulfilledBy")))
    for value in fulfilled_by:
        if value not in ("MERCHANT", "AMAZON"):
            raise invalid_input(f"Invalid fulfilledBy value: '{value}'.")
    size_raw = one("maxResultsPerPage")
    size = MAX_PAGE
    if size_raw is not None:
        try:
            size = int(size_raw)
        except ValueError:
            raise invalid_input(f"Invalid maxResultsPerPage: '{size_raw}'.") from None
        if not 1 <= size <= MAX_PAGE:
            raise invalid_input("maxResultsPerPage must be between 1 and 100.")
    query = SearchQuery(by, after, before, statuses, marketplace_ids, fulfilled_by, size)
    return query, {before_name: iso(before)}


def _csv(values: list[str] | None) -> list[str]:
    return [part for value in values or [] for part in value.split(",") if part]


def search(orders: list[Order], seller: SellerAccount, query: SearchQuery) -> list[Order]:
    """Every order of the query, in its stable order (time, then id)."""

    def when(order: Order) -> datetime:
        return order.created if query.by == "created" else order.updated

    found = [
        o
        for o in orders
        if o.seller_id == seller.seller_id
        and o.marketplace_id in query.marketplace_ids
        and query.after <= when(o) <= query.before
        and (not query.statuses or o.status.value in query.statuses)
        and (not query.fulfilled_by or "MERCHANT" in query.fulfilled_by)
    ]
    return sorted(found, key=lambda o: (when(o), o.order_id))


def confirm_shipment(order: Order | None, seller: SellerAccount, body: Any, now: datetime) -> bool:
    """Apply a ``ConfirmShipmentRequest`` to ``order``; ``False`` when it repeats an identical package
    (a retried call: nothing changes, 204 again). Raises 400/404 as SP-API does."""
    if order is None or order.seller_id != seller.seller_id:
        raise not_found("The requested order was not found.")
    if not isinstance(body, dict):
        raise invalid_input("The request body must be a JSON object.")
    marketplace_id = body.get("marketplaceId")
    if not isinstance(marketplace_id, str) or not marketplace_id:
        raise invalid_input("Missing required field: marketplaceId.")
    if marketplace_id != order.marketplace_id:
        raise invalid_input(f"Invalid marketplaceId '{marketplace_id}' for order {order.order_id}.")
    detail = body.get("packageDetail")
    if not isinstance(detail, dict):
        raise invalid_input("Missing required field: packageDetail.")
    for name in ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate", "orderItems"):
        if detail.get(name) is None or detail.get(name) == "" or detail.get(name) == []:
            raise invalid_input(f"Missing required field: packageDetail.{name}.")
    for name in _STRING_FIELDS:
        if name in detail and not isinstance(detail[name], str):
            raise invalid_input(f"packageDetail.{name} must be a string.")
    ref = detail["packageReferenceId"]
    if not isinstance(ref, str) or not ref.isdigit() or int(ref) < 1:
        raise invalid_input("packageReferenceId must be a positive numeric value.")
    carrier = detail["carrierCode"]
    if carrier not in CARRIER_CODES:
        raise invalid_input(f"Invalid carrierCode: '{carrier}'.")
    carrier_name = detail.get("carrierName") or ""
    if carrier == "Other" and not carrier_name:
        raise invalid_input("carrierName is required when carrierCode is 'Other'.")
    ship_date = parse_time(str(detail["shipDate"]), "shipDate")
    if ship_date < order.created - timedelta(minutes=5) or ship_date > now + timedelta(days=1):
        raise invalid_input("shipDate must be between the order date and one day from now.")
    requested: dict[str, int] = {}
    lines = detail["orderItems"]
    if not isinstance(lines, list):
        raise invalid_input("packageDetail.orderItems must be an array.")
    by_id = {item.order_item_id: item for item in order.items}
    for line in lines:
        if not isinstance(line, dict) or not isinstance(line.get("orderItemId"), str):
            raise invalid_input("Each order item needs an orderItemId.")
        qty = line.get("quantity")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
            raise invalid_input(f"Invalid quantity for order item {line.get('orderItemId')}.")
        if line["orderItemId"] not in by_id:
            raise invalid_input(f"Invalid orderItemId: '{line['orderItemId']}'.")
        requested[line["orderItemId"]] = requested.get(line["orderItemId"], 0) + qty
    package_items = sorted(requested.items())
    for existing in order.packages:
        if existing.package_reference_id == ref:
            same = (
                existing.carrier_code == carrier
                and existing.tracking_number == detail["trackingNumber"]
                and existing.items == package_items
            )
            if same:
                return False
            raise invalid_input(f"packageReferenceId '{ref}' was already confirmed with different details.")
    if order.status is FulfillmentStatus.PENDING:
        raise SpApiError(400, "InvalidInput", "The order is pending; it cannot be shipped before payment.")
    if order.status is FulfillmentStatus.CANCELLED:
        raise SpApiError(400, "InvalidInput", "The order has been cancelled.")
    if order.status is FulfillmentStatus.SHIPPED:
        raise SpApiError(400, "InvalidInput", "The order has already been shipped.")
    for item_id, qty in package_items:
        item = by_id[item_id]
        if qty > item.quantity - item.shipped:
            raise invalid_input(
                f"Quantity {qty} for order item {item_id} exceeds the unshipped quantity "
                f"{item.quantity - item.shipped}."
            )
    for item_id, qty in package_items:
        by_id[item_id].shipped += qty
    order.packages.append(
        Package(
            package_reference_id=ref,
            carrier_code=carrier,
            carrier_name=carrier_name,
            tracking_number=str(detail["trackingNumber"]),
            ship_date=ship_date,
            shipping_method=str(detail.get("shippingMethod") or ""),
            items=package_items,
            created=now,
        )
    )
    done = all(item.shipped >= item.quantity for item in order.items)
    order.status = FulfillmentStatus.SHIPPED if done else FulfillmentStatus.PARTIALLY_SHIPPED
    order.updated = now
    return True
