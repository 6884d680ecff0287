"""Handlers of the SP-API operations: each takes the request context and returns (status, body).

Validation follows the models (contracts/amazon) and SP-API's documented rules; anything the real API
rejects is rejected here too, with the ``ErrorList`` shape.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tradelane.connectors.amazon.sandbox import listings as li
from tradelane.connectors.amazon.sandbox import orders as orders_api
from tradelane.connectors.amazon.sandbox.errors import SpApiError, invalid_input, not_found, unauthorized
from tradelane.connectors.amazon.sandbox.feeds import report_iso
from tradelane.connectors.amazon.sandbox.models import Feed, Listing, SellerAccount
from tradelane.connectors.amazon.sandbox.state import AmazonSandboxState

LISTING_INCLUDED = (
    "summaries",
    "attributes",
    "issues",
    "offers",
    "fulfillmentAvailability",
    "procurement",
    "relationships",
    "productTypes",
)
SUBMISSION_INCLUDED = ("identifiers", "issues")


@dataclass
class Context:
    state: AmazonSandboxState
    seller: SellerAccount
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    base_url: str
    duplicate_page: bool = False

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def csv(self, name: str) -> list[str]:
        return [part for value in self.query.get(name, []) for part in value.split(",") if part]

    def json(self) -> Any:
        if not self.body.strip():
            raise invalid_input("The request body is missing.")
        try:
            return json.loads(self.body)
        except ValueError:
            raise invalid_input("The request body is not valid JSON.") from None


Result = tuple[int, Any]


# -- orders -------------------------------------------------------------------------------------


def search_orders(ctx: Context) -> Result:
    state = ctx.state
    token = ctx.one("paginationToken")
    with state.lock:
        now = state.now()
        if token is not None:
            query = orders_api.SearchQuery.from_token(token)
            bound_name = "createdBefore" if query.by == "created" else "lastUpdatedBefore"
            bound = {bound_name: orders_api.iso(query.before)}
        else:
            mps = state.check_marketplaces(ctx.seller, ctx.csv("marketplaceIds"), required=False)
            if len(ctx.csv("marketplaceIds")) > 50:
                raise invalid_input("marketplaceIds accepts at most 50 values.")
            query, bound = orders_api.parse_search(ctx.query, mps, now, state.settings.visibility_lag)
        included = orders_api.included_data(ctx.csv("includedData"))
        found = orders_api.search(list(state.orders.values()), ctx.seller, query)
        start = query.offset
        if ctx.duplicate_page and start > 0:
            # The previous page again; its next token leads back to the page that was asked for.
            start = max(0, start - query.page_size)
        page = found[start : start + query.page_size]
        body: dict[str, Any] = {"orders": [orders_api.order_json(o, included) for o in page], **bound}
        if start + query.page_size < len(found):
            body["pagination"] = {"nextToken": query.token(start + query.page_size)}
    return 200, body


def get_order(ctx: Context) -> Result:
    included = orders_api.included_data(ctx.csv("includedData"))
    with ctx.state.lock:
        order = ctx.state.orders.get(ctx.params["orderId"])
        if order is None or order.seller_id != ctx.seller.seller_id:
            raise not_found(f"Order {ctx.params['orderId']} not found.")
        return 200, {"order": orders_api.order_json(order, included)}


def confirm_shipment(ctx: Context) -> Result:
    body = ctx.json()
    with ctx.state.lock:
        order = ctx.state.orders.get(ctx.params["orderId"])
        orders_api.confirm_shipment(order, ctx.seller, body, ctx.state.now())
    return 204, None


# -- listings -----------------------------------------------------------------------------------


def _listing_target(ctx: Context) -> tuple[str, tuple[str, ...]]:
    if ctx.params["sellerId"] != ctx.seller.seller_id:
        raise unauthorized(f"The access token does not grant access to seller {ctx.params['sellerId']}.")
    mps = ctx.state.check_marketplaces(ctx.seller, ctx.csv("marketplaceIds"), required=True)
    return ctx.params["sku"], mps


def _included(ctx: Context, allowed: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    values = ctx.csv("includedData")
    for value in values:
        if value not in allowed:
            raise invalid_input(f"Invalid includedData value: '{value}'.")
    return tuple(values) or default


def _mode(ctx: Context) -> bool:
    mode = ctx.one("mode")
    if mode not in (None, "VALIDATION_PREVIEW"):
        raise invalid_input(f"Invalid mode: '{mode}'.")
    return mode == "VALIDATION_PREVIEW"


def _submission(ctx: Context, sku: str, mps: tuple[str, ...], status: str, issues: list[li.Issue]) -> Result:
    included = _included(ctx, SUBMISSION_INCLUDED, ("issues",))
    body: dict[str, Any] = {"sku": sku, "status": status, "submissionId": ctx.state.submission_id()}
    if "issues" in included:
        body["issues"] = [
            {**i, "marketplaceIds": list(mps)} if "marketplaceIds" not in i else i for i in issues
        ]
    if "identifiers" in included and status != "INVALID":
        listing = ctx.state.listings.get((ctx.seller.seller_id, sku))
        asin = li.listing_asin(listing, ctx.state.catalog) if listing else None
        if asin:
            body["identifiers"] = [{"marketplaceId": mp, "asin": asin} for mp in mps]
    return 200, body


SEARCH_PAGE_MAX = 20
#: Amazon pages through at most this many SKUs of a search, whatever ``numberOfResults`` says.
SEARCH_WINDOW = 1000
_SORT_KEYS = {"sku": "sku", "createdDate": "created", "lastUpdatedDate": "updated"}


def search_listings_items(ctx: Context) -> Result:
    """searchListingsItems: the seller's listings, sorted (default lastUpdatedDate DESC), filtered by
    SKU/ASIN identifiers, dates and status, ``pageSize`` 1..20 (default 10), opaque ``pageToken``."""
    if ctx.params["sellerId"] != ctx.seller.seller_id:
        raise unauthorized(f"The access token does not grant access to seller {ctx.params['sellerId']}.")
    state = ctx.state
    mps = state.check_marketplaces(ctx.seller, ctx.csv("marketplaceIds"), required=True)
    included = _included(ctx, LISTING_INCLUDED, ("summaries",))
    size = _int_param(ctx, "pageSize", 10, 1, SEARCH_PAGE_MAX)
    sort_by = ctx.one("sortBy") or "lastUpdatedDate"
    order = ctx.one("sortOrder") or "DESC"
    if sort_by not in _SORT_KEYS or order not in ("ASC", "DESC"):
        raise invalid_input("sortBy must be sku, createdDate or lastUpdatedDate; sortOrder ASC or DESC.")
    identifiers, id_type = ctx.csv("identifiers"), ctx.one("identifiersType")
    if bool(identifiers) != bool(id_type):
        raise invalid_input("identifiers and identifiersType must be provided together.")
    if len(identifiers) > 20:
        raise invalid_input("identifiers accepts at most 20 values.")
    if id_type not in (None, "SKU", "ASIN"):
        raise invalid_input(f"identifiersType '{id_type}' is not supported by the sandbox (SKU or ASIN).")
    bounds = {
        name: orders_api.parse_time(value, name)
        for name in ("createdAfter", "createdBefore", "lastUpdatedAfter", "lastUpdatedBefore")
        if (value := ctx.one(name)) is not None
    }
    with_status, without_status = set(ctx.csv("withStatus")), set(ctx.csv("withoutStatus"))
    severities = set(ctx.csv("withIssueSeverity"))
    if not with_status | without_status <= {"BUYABLE", "DISCOVERABLE"} or not severities <= {
        "WARNING",
        "ERROR",
    }:
        raise invalid_input("Invalid withStatus, withoutStatus or withIssueSeverity value.")
    offset = 0
    token = ctx.one("pageToken")
    if token is not None:
        try:
            offset = int(
                base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().removeprefix("o:")
            )
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise invalid_input("Invalid pageToken.") from None
    with state.lock:
        found = []
        for (seller_id, sku), listing in state.listings.items():
            if seller_id != ctx.seller.seller_id:
                continue
            asin = li.listing_asin(listing, state.catalog)
            if identifiers and (sku if id_type == "SKU" else asin) not in identifiers:
                continue
            if not _within(listing.created, bounds.get("createdAfter"), bounds.get("createdBefore")):
                continue
            if not _within(listing.updated, bounds.get("lastUpdatedAfter"), bounds.get("lastUpdatedBefore")):
                continue
            if with_status or without_status:
                status = _statuses(listing, mps[0], state)
                if (with_status and not with_status & status) or without_status & status:
                    continue
            if severities and not any(i["severity"] in severities for i in listing.issues):
                continue
            found.append(listing)
        key = _SORT_KEYS[sort_by]
        found.sort(key=lambda item: (getattr(item, key), item.sku), reverse=order == "DESC")
        window = found[:SEARCH_WINDOW]
        page = window[offset : offset + size]
        body: dict[str, Any] = {
            "numberOfResults": len(found),
            "items": [li.item_json(item, mps, included, state.catalog, orders_api.iso) for item in page],
        }
        pagination: dict[str, str] = {}
        if offset + size < len(window):
            pagination["nextToken"] = _page_token(offset + size)
        if offset > 0:
            pagination["previousToken"] = _page_token(max(0, offset - size))
        if pagination:
            body["pagination"] = pagination
    return 200, body


def _statuses(listing: Listing, marketplace_id: str, state: AmazonSandboxState) -> set[str]:
    summary = li.item_json(listing, (marketplace_id,), ("summaries",), state.catalog, orders_api.iso)
    return set(summary["summaries"][0]["status"])


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _within(when: Any, after: Any, before: Any) -> bool:
    return (after is None or when >= after) and (before is None or when <= before)


def _int_param(ctx: Context, name: str, default: int, low: int, high: int) -> int:
    raw = ctx.one(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_input(f"Invalid {name}: '{raw}'.") from None
    if not low <= value <= high:
        raise invalid_input(f"{name} must be between {low} and {high}.")
    return value


def get_listings_item(ctx: Context) -> Result:
    sku, mps = _listing_target(ctx)
    included = _included(ctx, LISTING_INCLUDED, ("summaries",))
    listing = ctx.state.listing(ctx.seller.seller_id, sku)
    with ctx.state.lock:
        return 200, li.item_json(listing, mps, included, ctx.state.catalog, orders_api.iso)


def put_listings_item(ctx: Context) -> Result:
    sku, mps = _listing_target(ctx)
    preview = _mode(ctx)
    body = ctx.json()
    if not isinstance(body, dict):
        raise invalid_input("The request body must be a JSON object.")
    product_type, attributes = body.get("productType"), body.get("attributes")
    if not isinstance(product_type, str) or not product_type:
        raise invalid_input("Missing required field: productType.")
    if not isinstance(attributes, dict):
        raise invalid_input("Missing required field: attributes.")
    requirements = body.get("requirements", "LISTING")
    if requirements not in li.REQUIREMENTS:
        raise invalid_input(f"Invalid requirements: '{requirements}'.")
    status, issues = ctx.state.submit_put(
        ctx.seller.seller_id, sku, product_type, requirements, attributes, mps, preview=preview
    )
    return _submission(ctx, sku, mps, status, issues)


def patch_listings_item(ctx: Context) -> Result:
    sku, mps = _listing_target(ctx)
    preview = _mode(ctx)
    body = ctx.json()
    if not isinstance(body, dict):
        raise invalid_input("The request body must be a JSON object.")
    product_type, patches = body.get("productType"), body.get("patches")
    if not isinstance(product_type, str) or not product_type:
        raise invalid_input("Missing required field: productType.")
    if not isinstance(patches, list) or not patches:
        raise invalid_input("Missing required field: patches (at least one patch operation).")
    status, issues = ctx.state.submit_patch(
        ctx.seller.seller_id, sku, product_type, patches, mps, preview=preview
    )
    return _submission(ctx, sku, mps, status, issues)


def delete_listings_item(ctx: Context) -> Result:
    sku, _ = _listing_target(ctx)
    ctx.state.delete_listing(ctx.seller.seller_id, sku)
    return 200, {"sku": sku, "status": "ACCEPTED", "submissionId": ctx.state.submission_id(), "issues": []}


# -- feeds --------------------------------------------------------------------------------------


def create_feed_document(ctx: Context) -> Result:
    body = ctx.json()
    if not isinstance(body, dict) or not isinstance(body.get("contentType"), str) or not body["contentType"]:
        raise invalid_input("Missing required field: contentType.")
    doc = ctx.state.create_document(ctx.seller.seller_id, body["contentType"])
    return 201, {"feedDocumentId": doc.document_id, "url": f"{ctx.base_url}/_documents/{doc.document_id}"}


def get_feed_document(ctx: Context) -> Result:
    with ctx.state.lock:
        doc = ctx.state.documents.get(ctx.params["feedDocumentId"])
        if doc is None or doc.seller_id != ctx.seller.seller_id:
            raise not_found(f"Feed document '{ctx.params['feedDocumentId']}' not found.")
    body = {"feedDocumentId": doc.document_id, "url": f"{ctx.base_url}/_documents/{doc.document_id}"}
    if doc.compression:
        body["compressionAlgorithm"] = doc.compression
    return 200, body


def create_feed(ctx: Context) -> Result:
    body = ctx.json()
    if not isinstance(body, dict):
        raise invalid_input("The request body must be a JSON object.")
    for name in ("feedType", "marketplaceIds", "inputFeedDocumentId"):
        if body.get(name) in (None, "", []):
            raise invalid_input(f"Missing required field: {name}.")
    raw_mps = body["marketplaceIds"]
    if (
        not isinstance(raw_mps, list)
        or not 1 <= len(raw_mps) <= 25
        or not all(isinstance(m, str) for m in raw_mps)
    ):
        raise invalid_input("marketplaceIds must be an array of 1 to 25 marketplace identifiers.")
    mps = ctx.state.check_marketplaces(ctx.seller, raw_mps, required=True)
    feed = ctx.state.create_feed(ctx.seller, str(body["feedType"]), mps, str(body["inputFeedDocumentId"]))
    return 202, {"feedId": feed.feed_id}


def feed_json(feed: Feed) -> dict[str, Any]:
    out: dict[str, Any] = {
        "feedId": feed.feed_id,
        "feedType": feed.feed_type,
        "marketplaceIds": list(feed.marketplace_ids),
        "processingStatus": feed.status.value,
        **report_iso(feed),
    }
    if feed.result_document_id:
        out["resultFeedDocumentId"] = feed.result_document_id
    return out


def get_feed(ctx: Context) -> Result:
    feed = ctx.state.feed(ctx.seller.seller_id, ctx.params["feedId"])
    return 200, feed_json(feed)


def cancel_feed(ctx: Context) -> Result:
    ctx.state.cancel_feed(ctx.seller.seller_id, ctx.params["feedId"])
    return 200, None


HANDLERS: dict[str, Callable[[Context], Result]] = {
    "searchOrders": search_orders,
    "getOrder": get_order,
    "confirmShipment": confirm_shipment,
    "searchListingsItems": search_listings_items,
    "getListingsItem": get_listings_item,
    "putListingsItem": put_listings_item,
    "patchListingsItem": patch_listings_item,
    "deleteListingsItem": delete_listings_item,
    "createFeedDocument": create_feed_document,
    "getFeedDocument": get_feed_document,
    "createFeed": create_feed,
    "getFeed": get_feed,
    "cancelFeed": cancel_feed,
}

__all__ = ["HANDLERS", "Context", "SpApiError", "feed_json"]
