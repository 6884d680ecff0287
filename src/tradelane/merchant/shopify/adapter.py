"""The Shopify merchant adapter: create each marketplace order in the shop, once.

:meth:`ShopifyAdapter.deliver_order` makes up to three kinds of calls:

1. **Already there?** ``GET orders.json?status=any&attribution_app_id=current&created_at_min=<order
   created on the marketplace - 1 h>&fields=id,name,tags,note_attributes``, page by page (at most
   ``lookup_max_pages``), looking for the order's ``tradelane_order_id`` note attribute or
   ``tradelane-order-<id>`` tag (:mod:`.mapping`). Found → delivered with that Shopify order's id, nothing
   created. This makes a retry after a lost answer (timeout, 5xx after the write) safe.
2. **Which variants?** ``GET products.json?fields=id,variants`` page by page (at most
   ``catalog_max_pages``, stopping once every line SKU is found): each line's SKU must match exactly one
   variant, otherwise the order is *rejected* with the SKUs named (unknown, or carried by several variants).
3. **Create**: ``POST orders.json`` (:func:`.mapping.order_payload`).

Classification: 2xx with the created order → delivered (``external_ref`` = Shopify's order id; a
look-up that finds it → delivered with ``already_held``); a 2xx without it (an HTML page, a garbled or
truncated body) → retry, the next attempt's look-up telling whether it was created; 429, 408, 425, 5xx,
timeouts and a full call-limit bucket → retry (``retry_after`` when known); any other 4xx (422 with Shopify's
``errors``, 401 bad token, 402/423 shop unavailable...) → rejected with Shopify's answer kept. The access
token never appears in the kept request.

Cancellations made on the marketplace are not supported by this adapter yet:
:meth:`ShopifyAdapter.notify_cancellation` answers REJECTED without calling Shopify.

It is also the shop's :class:`~tradelane.merchant.base.StockSource`: :meth:`ShopifyAdapter.read_stock`
reads an inventory item's SKU and its levels at every location (``GET inventory_items/<id>``, ``GET
inventory_levels?inventory_item_ids=<id>`` page by page), for the ``shopify.inventory`` job
(:mod:`tradelane.services.shopify_catalog`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tradelane.domain.errors import ValidationError
from tradelane.http_edge import excerpt
from tradelane.merchant.base import (
    Capability,
    DeliveryOutcome,
    MerchantCapabilities,
    MerchantSystem,
    OutcomeKind,
)
from tradelane.merchant.schema import OmsOrder
from tradelane.merchant.shopify.client import (
    MAX_KEPT_TEXT,
    ShopifyApiError,
    ShopifyClient,
    ShopifyUnavailable,
    describe_errors,
)
from tradelane.merchant.shopify.mapping import (
    ORDER_ID_ATTRIBUTE,
    is_order_of,
    order_payload,
    order_tag,
    variant_ids_by_sku,
)
from tradelane.merchant.shopify.settings import ShopifyCredentials, ShopifySettings

#: Shopify orders created this long before the marketplace order are not looked at (clock skew).
LOOKBACK_SKEW = timedelta(hours=1)
LOOKUP_FIELDS = "id,name,tags,note_attributes"
#: Pages of inventory levels (250 each) read for one item: Shopify has far fewer locations per shop.
LEVELS_MAX_PAGES = 40
#: A shop receives orders (not their cancellations: :meth:`ShopifyAdapter.notify_cancellation`) and
#: sends its catalog, stock and fulfilments by webhooks.
SHOPIFY_CAPABILITIES = MerchantCapabilities.of(
    Capability.RECEIVE_ORDERS, Capability.SEND_CATALOG, Capability.SEND_STOCK, Capability.SEND_SHIPMENTS
)


def capabilities(settings: dict[str, Any]) -> MerchantCapabilities:
    """The :data:`~tradelane.merchant.base.CapabilitiesOf` of ``kind = "shopify"`` systems."""
    return SHOPIFY_CAPABILITIES


class _Rejected(Exception):
    def __init__(self, reason: str, detail: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class ShopifyAdapter:
    """One Shopify shop as a merchant system. Pass ``client`` to supply the HTTP client (its pool and
    clock); otherwise one is built from the settings and closed by :meth:`close`.

    Raises ``ValueError`` (the delivery service quarantines it as a configuration problem) when the
    system's settings or credentials are incomplete."""

    def __init__(
        self, system: MerchantSystem, credentials: dict[str, Any], client: ShopifyClient | None = None
    ) -> None:
        try:
            self.settings = ShopifySettings.from_settings(system.settings)
            token = ShopifyCredentials.from_credentials(credentials).access_token
        except ValidationError as exc:
            raise ValueError(str(exc)) from None
        self.system = system
        self._own_client = client is None
        self._client = client or ShopifyClient(
            self.settings.api_url,
            token,
            api_version=self.settings.api_version,
            timeout=self.settings.timeout_seconds,
        )

    def __repr__(self) -> str:
        return f"ShopifyAdapter({self.system.name!r}, {self.settings.shop_domain!r})"

    def deliver_order(self, document: OmsOrder, *, idempotency_key: str, now: datetime) -> DeliveryOutcome:
        request = f"lookup of {order_tag(document.id)} in {self.settings.shop_domain}"
        try:
            existing = self._find_existing(document, now)
            if existing is not None:
                return DeliveryOutcome(
                    OutcomeKind.DELIVERED,
                    f"already in Shopify as {existing.get('name') or existing.get('id')}",
                    request,
                    f"found order {existing.get('id')}",
                    external_ref=str(existing["id"]) if existing.get("id") is not None else None,
                    response_body=existing,
                    already_held=True,
                )
            variants = self._variant_ids(document, now)
            payload = order_payload(document, variants, inventory_behaviour=self.settings.inventory_behaviour)
            body = json.dumps(payload, ensure_ascii=False)
            request = f"POST {self._client.url('orders')}\nIdempotency-Key: {idempotency_key}\n\n{body}"
            response = self._client.post("orders", payload, now=now)
        except _Rejected as exc:
            return DeliveryOutcome(OutcomeKind.REJECTED, exc.reason, request, response_body=exc.detail)
        except ShopifyUnavailable as exc:
            return DeliveryOutcome(
                OutcomeKind.RETRY,
                exc.reason,
                request,
                exc.raw,
                exc.status,
                retry_after=exc.retry_after,
            )
        except ShopifyApiError as exc:
            return DeliveryOutcome(
                OutcomeKind.REJECTED,
                f"Shopify rejected the order with HTTP {exc.status}: "
                f"{describe_errors(exc.body) or exc.reason}",
                request,
                exc.raw,
                exc.status,
                response_body=exc.body,
            )
        kept = f"HTTP {response.status}\n{excerpt(response.text, MAX_KEPT_TEXT)}"
        created = response.body.get("order") if isinstance(response.body, Mapping) else None
        order_id = created.get("id") if isinstance(created, Mapping) else None
        if order_id is None or isinstance(order_id, bool):
            # Not an acknowledgement (an HTML page, a garbled or truncated body): the order may or may
            # not exist; the next attempt's look-up finds it if it does, and creates it otherwise.
            return DeliveryOutcome(
                OutcomeKind.RETRY,
                f"Shopify answered HTTP {response.status} without the created order; it is looked up "
                "again before any new attempt to create it",
                request,
                kept,
                response.status,
                response_body=response.body,
            )
        name = created.get("name") if isinstance(created, Mapping) else None
        return DeliveryOutcome(
            OutcomeKind.DELIVERED,
            f"created in Shopify as {name or order_id}",
            request,
            kept,
            response.status,
            external_ref=str(order_id),
            response_body=response.body,
        )

    def notify_cancellation(
        self, document: OmsOrder, *, lines: list[str] | None, idempotency_key: str, now: datetime
    ) -> DeliveryOutcome:
        """Not supported yet: always REJECTED, so the order gets a clear history note and an alert
        (cancel it in Shopify by hand) rather than a retry loop."""
        what = "the order" if lines is None else f"line(s) {', '.join(lines)}"
        return DeliveryOutcome(
            OutcomeKind.REJECTED,
            f"cancellations are not supported by Shopify (tradelane does not cancel {what} there)",
            f"cancellation of {order_tag(document.id)} in {self.settings.shop_domain} (not sent)",
        )

    def _find_existing(self, document: OmsOrder, now: datetime) -> dict[str, Any] | None:
        since = (document.created_at - LOOKBACK_SKEW).astimezone(UTC)
        params = {
            "status": "any",
            "attribution_app_id": "current",
            "created_at_min": since.isoformat(),
            "fields": LOOKUP_FIELDS,
        }
        max_pages = self.settings.lookup_max_pages
        found = self._client.pages("orders", "orders", params, max_pages=max_pages, now=now)
        for pages, page in enumerate(found, 1):
            for order in page.items:
                if is_order_of(order, document):
                    return order
            if page.more and pages >= max_pages:
                raise _Rejected(
                    f"cannot tell whether Shopify already has the order: more than {pages} pages of orders "
                    f"since {since.isoformat()} (raise lookup_max_pages, or look for the "
                    f"{ORDER_ID_ATTRIBUTE} {document.id} note attribute in Shopify and release the order)",
                    {"query": urlencode(params), "pages_read": pages},
                )
        return None

    def _variant_ids(self, document: OmsOrder, now: datetime) -> dict[str, int]:
        needed = {line.sku for line in document.lines}
        if not needed:
            raise _Rejected("the order has no lines to create in Shopify", {})
        found: dict[str, list[int]] = {}
        pages = 0
        truncated = False
        for page in self._client.pages(
            "products",
            "products",
            {"fields": "id,variants"},
            max_pages=self.settings.catalog_max_pages,
            now=now,
        ):
            pages += 1
            for sku, ids in variant_ids_by_sku(page.items).items():
                if sku in needed:
                    found.setdefault(sku, []).extend(ids)
            truncated = page.more
            if needed <= found.keys():
                break
        unknown = sorted(needed - found.keys())
        if unknown:
            where = (
                f"in the first {pages} pages of Shopify products (catalog_max_pages)"
                if truncated
                else "in Shopify"
            )
            raise _Rejected(
                f"unknown variant SKU(s) {where}: {', '.join(unknown)}",
                {"unknown_skus": unknown, "pages_read": pages},
            )
        ambiguous = {sku: ids for sku, ids in found.items() if len(set(ids)) > 1}
        if ambiguous:
            described = "; ".join(
                f"{sku} (variants {', '.join(str(i) for i in sorted(set(ids)))})"
                for sku, ids in sorted(ambiguous.items())
            )
            raise _Rejected(
                f"SKU(s) carried by several Shopify variants, make them unique: {described}",
                {"ambiguous_skus": {sku: sorted(set(ids)) for sku, ids in ambiguous.items()}},
            )
        return {sku: ids[0] for sku, ids in found.items()}

    def read_stock(self, inventory_item_id: int) -> tuple[str | None, int] | None:
        """The item's SKU and its available stock summed over every location (the levels read page by
        page, at most :data:`LEVELS_MAX_PAGES`); None when Shopify no longer has the item (404). A
        garbled answer is :class:`ShopifyUnavailable` (retryable); more pages of levels than the bound
        is :class:`ShopifyApiError`, since a partial sum would be a wrong stock."""
        try:
            answer = self._client.get(f"inventory_items/{inventory_item_id}")
        except ShopifyApiError as exc:
            if exc.status == 404:
                return None
            raise
        item = answer.body.get("inventory_item") if isinstance(answer.body, Mapping) else None
        if not isinstance(item, Mapping):
            raise ShopifyUnavailable(
                f"Shopify answered GET inventory_items/{inventory_item_id} with HTTP {answer.status} but "
                "without an 'inventory_item' object (a garbled answer)",
                status=answer.status,
                raw=f"HTTP {answer.status}\n{excerpt(answer.text, MAX_KEPT_TEXT)}",
            )
        sku = item.get("sku")
        total = 0
        more = False
        params = {"inventory_item_ids": str(inventory_item_id)}
        for page in self._client.pages(
            "inventory_levels", "inventory_levels", params, max_pages=LEVELS_MAX_PAGES
        ):
            for level in page.items:
                available = level.get("available")
                if isinstance(available, int) and not isinstance(available, bool):
                    total += available
            more = page.more
        if more:
            raise ShopifyApiError(
                f"inventory item {inventory_item_id} has more than {LEVELS_MAX_PAGES} pages of inventory "
                "levels; its stock is not read partially",
                status=200,
                body=None,
            )
        return (str(sku).strip() or None) if sku else None, total

    def close(self) -> None:
        if self._own_client:
            self._client.close()


def shopify_adapter(system: MerchantSystem, credentials: dict[str, Any]) -> ShopifyAdapter:
    """The :data:`~tradelane.merchant.base.AdapterFactory` of ``kind = "shopify"`` systems."""
    return ShopifyAdapter(system, credentials)
