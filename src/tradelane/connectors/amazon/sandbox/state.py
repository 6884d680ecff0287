"""The mutable world of the Amazon SP-API sandbox and its programmatic controls.

Everything the HTTP layer does goes through these methods, under :attr:`AmazonSandboxState.lock`
(uvicorn serves requests concurrently from one event loop plus test threads calling the controls).
Time comes from the sandbox clock: feeds advance and tokens expire lazily against it.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tradelane.connectors.amazon.sandbox import listings as li
from tradelane.connectors.amazon.sandbox import seed as seeding
from tradelane.connectors.amazon.sandbox.errors import (
    LwaError,
    SpApiError,
    invalid_input,
    not_found,
    unauthorized,
)
from tradelane.connectors.amazon.sandbox.feeds import settle
from tradelane.connectors.amazon.sandbox.marketplaces import MARKETPLACES, REGIONS
from tradelane.connectors.amazon.sandbox.models import (
    AccessToken,
    Address,
    Application,
    Catalog,
    Document,
    Feed,
    FeedStatus,
    FulfillmentStatus,
    Listing,
    Order,
    OrderItem,
    SellerAccount,
)
from tradelane.connectors.amazon.sandbox.ratelimits import FaultBook, RouteOverride, TokenBuckets, plans
from tradelane.connectors.mirakl.sandbox.clock import SandboxClock


@dataclass(frozen=True)
class RequestRecord:
    """One SP-API or LWA request the sandbox answered."""

    method: str
    path: str
    query: str
    op_id: str | None
    at: datetime
    status: int
    seller_id: str | None
    fault: str | None = None


@dataclass(frozen=True)
class SandboxSettings:
    """Tunables. ``token_ttl``: lifetime of LWA access tokens (Amazon: 3600 s). ``feed_queue_seconds``
    / ``feed_processing_seconds``: how long a feed stays IN_QUEUE, then IN_PROGRESS. ``upload_ttl``:
    validity of a feed document's upload URL (Amazon: 5 minutes). ``visibility_lag``: how far behind
    ``now`` searchOrders' results are complete (Amazon answers up to two minutes behind).
    ``gzip_reports``: processing reports stored gzip-compressed, getFeedDocument saying
    ``compressionAlgorithm: GZIP`` (as Amazon does for JSON listings reports)."""

    token_ttl: float = 3600.0
    feed_queue_seconds: float = 2.0
    feed_processing_seconds: float = 3.0
    upload_ttl: float = 300.0
    visibility_lag: float = 0.0
    max_feed_messages: int = 25_000
    max_feed_bytes: int = 10 * 1024 * 1024
    gzip_reports: bool = True


class AmazonSandboxState:
    """A seeded SP-API world: ``region`` is the SP-API region this server plays (accounts of other
    regions are refused as on the wrong regional endpoint)."""

    def __init__(
        self,
        seed: int = 0,
        *,
        rate_limits: str = "published",
        region: str = "eu",
        products: int = 20,
        settings: SandboxSettings | None = None,
        clock: SandboxClock | None = None,
        follow_wall_time: bool = False,
    ) -> None:
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r} ({', '.join(REGIONS)})")
        self.seed = seed
        self.region = region
        self.settings = settings or SandboxSettings()
        self.clock = clock or SandboxClock(follow_wall_time=follow_wall_time)
        self.lock = threading.RLock()
        app = seeding.application(seed)
        self.applications: dict[str, Application] = {app.client_id: app}
        self.accounts: dict[str, SellerAccount] = {
            a.seller_id: a for a in seeding.accounts(seed, app.client_id)
        }
        self.catalog = Catalog(seeding.catalog(seed, products))
        self.tokens: dict[str, AccessToken] = {}
        self.listings: dict[tuple[str, str], Listing] = {}
        self.orders: dict[str, Order] = {}
        self.documents: dict[str, Document] = {}
        self.feeds: dict[str, Feed] = {}
        self.buckets = TokenBuckets(plans(rate_limits))
        self.faults = FaultBook()
        self.routes: dict[str, RouteOverride] = {}
        self.requests: list[RequestRecord] = []
        self._counter = 0

    # -- time and ids -------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            return self.clock.advance(seconds)

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def _order_id(self) -> str:
        k = self._next() + 1000 * (self.seed % 1000)
        return f"{300 + k % 600:03d}-{(k * 7919) % 10_000_000:07d}-{(k * 104_729 + 17) % 10_000_000:07d}"

    def submission_id(self) -> str:
        with self.lock:
            return f"{secrets.token_hex(16)}"

    @property
    def application(self) -> Application:
        return next(iter(self.applications.values()))

    def account(self, seller_id: str) -> SellerAccount:
        try:
            return self.accounts[seller_id]
        except KeyError:
            raise KeyError(f"no seller {seller_id!r}") from None

    def record(self, record: RequestRecord) -> None:
        with self.lock:
            self.requests.append(record)

    def calls(self, op_id: str) -> list[RequestRecord]:
        with self.lock:
            return [r for r in self.requests if r.op_id == op_id]

    # -- Login with Amazon ----------------------------------------------------------------------

    def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        """The LWA ``refresh_token`` grant: a fresh access token for the refresh token's seller."""
        grant = form.get("grant_type")
        if not grant:
            raise LwaError(400, "invalid_request", "The request is missing a required parameter : grant_type")
        if grant != "refresh_token":
            raise LwaError(
                400, "unsupported_grant_type", f"The authorization grant type {grant} is not supported"
            )
        app = self.applications.get(form.get("client_id", ""))
        if app is None or not secrets.compare_digest(app.client_secret, form.get("client_secret", "")):
            raise LwaError(401, "invalid_client", "Client authentication failed")
        refresh = form.get("refresh_token")
        if not refresh:
            raise LwaError(
                400, "invalid_request", "The request is missing a required parameter : refresh_token"
            )
        with self.lock:
            seller = next(
                (
                    a
                    for a in self.accounts.values()
                    if a.refresh_token == refresh and a.client_id == app.client_id
                ),
                None,
            )
            if seller is None:
                raise LwaError(
                    400, "invalid_grant", "The request has an invalid grant parameter : refresh_token"
                )
            token = AccessToken(
                token=f"Atza|{secrets.token_urlsafe(48)}",
                seller_id=seller.seller_id,
                expires_at=self.now() + timedelta(seconds=self.settings.token_ttl),
            )
            self.tokens[token.token] = token
        return {
            "access_token": token.token,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": int(self.settings.token_ttl),
        }

    def authorize(self, token: str | None) -> SellerAccount:
        """The seller a live ``x-amz-access-token`` acts for; 403 Unauthorized otherwise."""
        if not token:
            raise unauthorized("The request is missing the x-amz-access-token header.")
        with self.lock:
            found = self.tokens.get(token)
            if found is None or found.revoked:
                raise unauthorized("The access token you provided is revoked, malformed or invalid.")
            if found.expires_at <= self.now():
                raise unauthorized("The access token you provided has expired.")
            seller = self.accounts[found.seller_id]
        if seller.region != self.region:
            raise unauthorized(
                f"Seller {seller.seller_id} is registered in region '{seller.region}'; this endpoint serves "
                f"region '{self.region}'."
            )
        return seller

    def expire_tokens(self) -> int:
        """Expire every access token now (the next SP-API call answers 403 until a refresh)."""
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = min(token.expires_at, self.now())
            return len(self.tokens)

    def check_marketplaces(self, seller: SellerAccount, ids: list[str], *, required: bool) -> tuple[str, ...]:
        """``ids`` when all are marketplaces of ``seller``; 400 for unknown ids, 403 for others'."""
        if not ids:
            if required:
                raise invalid_input("Missing required parameter: marketplaceIds.")
            return seller.marketplace_ids
        for mp in ids:
            if mp not in MARKETPLACES:
                raise invalid_input(f"Invalid marketplace identifier: '{mp}'.", "Unknown marketplaceId")
            if mp not in seller.marketplace_ids:
                raise unauthorized(f"Seller {seller.seller_id} does not sell in marketplace {mp}.")
        return tuple(dict.fromkeys(ids))

    # -- listings -------------------------------------------------------------------------------

    def submit_put(
        self,
        seller_id: str,
        sku: str,
        product_type: str,
        requirements: str,
        attributes: dict[str, Any],
        marketplace_ids: tuple[str, ...],
        *,
        preview: bool = False,
    ) -> tuple[str, list[li.Issue]]:
        """putListingsItem: status ``ACCEPTED`` (stored), ``VALID`` (preview) or ``INVALID``."""
        issues = li.validate(product_type, requirements, attributes, marketplace_ids, self.catalog)
        if li.has_errors(issues):
            return "INVALID", issues
        if preview:
            return "VALID", issues
        with self.lock:
            now = self.now()
            old = self.listings.get((seller_id, sku))
            self.listings[(seller_id, sku)] = Listing(
                seller_id=seller_id,
                sku=sku,
                product_type=product_type,
                requirements=requirements,
                attributes=dict(attributes),
                created=old.created if old else now,
                updated=now,
                issues=issues,
            )
        return "ACCEPTED", issues

    def submit_patch(
        self,
        seller_id: str,
        sku: str,
        product_type: str,
        patches: list[Any],
        marketplace_ids: tuple[str, ...],
        *,
        preview: bool = False,
    ) -> tuple[str, list[li.Issue]]:
        """patchListingsItem on an existing SKU (an unknown SKU is ``INVALID``)."""
        with self.lock:
            old = self.listings.get((seller_id, sku))
            if old is None:
                return "INVALID", [
                    li.issue(
                        "4000009",
                        f"The SKU '{sku}' does not exist for this seller; create it with a full "
                        "submission first.",
                        category="MISSING_ATTRIBUTE",
                    )
                ]
            attributes, issues = li.apply_patches(old.attributes, patches)
            if issues:
                return "INVALID", issues
            issues = li.validate(product_type, old.requirements, attributes, marketplace_ids, self.catalog)
            if li.has_errors(issues):
                return "INVALID", issues
            if not preview:
                old.attributes = attributes
                old.product_type = product_type
                old.updated = self.now()
                old.issues = issues
        return ("VALID" if preview else "ACCEPTED"), issues

    def delete_listing(self, seller_id: str, sku: str) -> bool:
        with self.lock:
            return self.listings.pop((seller_id, sku), None) is not None

    def listing(self, seller_id: str, sku: str) -> Listing:
        with self.lock:
            found = self.listings.get((seller_id, sku))
        if found is None:
            raise not_found(f"SKU '{sku}' not found in marketplace for seller '{seller_id}'.")
        return found

    def add_offer(
        self,
        seller_id: str,
        sku: str,
        asin: str,
        price: Decimal,
        quantity: int,
        *,
        marketplace_id: str | None = None,
        parent_sku: str | None = None,
    ) -> Listing:
        """Control: list an offer directly (LISTING_OFFER_ONLY on ``asin``), bypassing the API;
        ``parent_sku`` makes it a variation child of that SKU (``child_parent_sku_relationship``)."""
        seller = self.account(seller_id)
        mp = marketplace_id or seller.marketplace_ids[0]
        attributes = offer_attributes(asin, price, quantity, mp)
        if parent_sku is not None:
            attributes["child_parent_sku_relationship"] = [
                {"marketplace_id": mp, "child_relationship_type": "variation", "parent_sku": parent_sku}
            ]
        status, issues = self.submit_put(
            seller_id,
            sku,
            li.GENERIC_PRODUCT_TYPE,
            "LISTING_OFFER_ONLY",
            attributes,
            (mp,),
        )
        if status != "ACCEPTED":
            raise ValueError(f"offer {sku} refused: {issues}")
        return self.listings[(seller_id, sku)]

    # -- orders ---------------------------------------------------------------------------------

    def create_order(
        self,
        seller_id: str,
        lines: list[tuple[str, int]],
        *,
        marketplace_id: str | None = None,
        paid: bool = False,
        address: Address | None = None,
        buyer_name: str = "Jane Doe",
        prices: dict[str, Decimal] | None = None,
    ) -> Order:
        """Control: a buyer orders ``lines`` (seller SKU, quantity) of the seller's listings.

        PENDING until :meth:`pay` (``paid=True`` starts UNSHIPPED). Prices default to the listing's
        ``our_price``."""
        if not lines:
            raise ValueError("an order needs at least one line")
        seller = self.account(seller_id)
        mp = marketplace_id or seller.marketplace_ids[0]
        if mp not in seller.marketplace_ids:
            raise ValueError(f"seller {seller_id} does not sell in {mp}")
        currency = MARKETPLACES[mp].currency
        with self.lock:
            now = self.now()
            items = []
            for sku, qty in lines:
                if qty < 1:
                    raise ValueError("quantities must be at least 1")
                listing = self.listings.get((seller_id, sku))
                if listing is None:
                    raise ValueError(f"seller {seller_id} has no listing {sku}")
                asin = li.listing_asin(listing, self.catalog)
                listed = li.offer_price(listing, mp)
                price = (prices or {}).get(sku) or (listed[0] if listed else Decimal("0"))
                price = price.quantize(Decimal(1) if currency == "JPY" else Decimal("0.01"))
                items.append(
                    OrderItem(
                        order_item_id=f"{10_000_000_000_000 + self._next() * 7_741:014d}",
                        asin=asin or "",
                        sku=sku,
                        title=self.catalog[asin].title if asin else sku,
                        quantity=qty,
                        unit_price=price,
                    )
                )
            order = Order(
                order_id=self._order_id(),
                seller_id=seller_id,
                marketplace_id=mp,
                currency=currency,
                created=now,
                updated=now,
                status=FulfillmentStatus.UNSHIPPED if paid else FulfillmentStatus.PENDING,
                items=items,
                buyer_name=buyer_name,
                buyer_email=f"{secrets.token_hex(8)}@marketplace.amazon.example",
                address=address or default_address(MARKETPLACES[mp].country, buyer_name),
                ship_by=now + timedelta(days=2),
                deliver_by=now + timedelta(days=5),
            )
            self.orders[order.order_id] = order
            return order

    def order(self, order_id: str) -> Order:
        with self.lock:
            found = self.orders.get(order_id)
        if found is None:
            raise KeyError(f"no order {order_id!r}")
        return found

    def pay(self, order_id: str) -> Order:
        """Control: payment authorised, PENDING → UNSHIPPED."""
        with self.lock:
            order = self.order(order_id)
            if order.status is not FulfillmentStatus.PENDING:
                raise ValueError(f"order {order_id} is {order.status.value}, not PENDING")
            order.status = FulfillmentStatus.UNSHIPPED
            order.updated = self.now()
            return order

    def cancel(self, order_id: str, reason: str = "BuyerCanceled") -> Order:
        """Control: the buyer (or Amazon) cancels an order nothing of which has shipped."""
        with self.lock:
            order = self.order(order_id)
            if order.status not in (FulfillmentStatus.PENDING, FulfillmentStatus.UNSHIPPED):
                raise ValueError(f"order {order_id} is {order.status.value}; only unshipped orders cancel")
            order.status = FulfillmentStatus.CANCELLED
            order.cancel_reason = reason
            order.updated = self.now()
            return order

    # -- feeds ----------------------------------------------------------------------------------

    def create_document(self, seller_id: str, content_type: str) -> Document:
        with self.lock:
            doc = Document(
                document_id=f"amzn1.tortuga.4.eu.{secrets.token_hex(16)}",
                seller_id=seller_id,
                content_type=content_type,
                created=self.now(),
            )
            self.documents[doc.document_id] = doc
            return doc

    def upload(self, document_id: str, content: bytes, content_type: str) -> None:
        """PUT on the upload URL: 403 after ``upload_ttl`` or when ``content_type`` is not the one
        given to createFeedDocument (the presigned URL signs it); an unknown document is 404."""
        with self.lock:
            doc = self.documents.get(document_id)
            if doc is None:
                raise not_found("The specified key does not exist.")
            if self.now() > doc.created + timedelta(seconds=self.settings.upload_ttl):
                raise SpApiError(403, "AccessDenied", "Request has expired")
            if content_type.strip().lower() != doc.content_type.strip().lower():
                raise SpApiError(
                    403,
                    "SignatureDoesNotMatch",
                    f"The Content-Type '{content_type}' is not the '{doc.content_type}' the URL was "
                    "signed for.",
                )
            doc.content = content

    def create_feed(
        self, seller: SellerAccount, feed_type: str, marketplace_ids: tuple[str, ...], document_id: str
    ) -> Feed:
        if feed_type != "JSON_LISTINGS_FEED":
            raise invalid_input(
                f"Invalid feedType: '{feed_type}'.", "The sandbox processes JSON_LISTINGS_FEED only."
            )
        with self.lock:
            doc = self.documents.get(document_id)
            if doc is None or doc.seller_id != seller.seller_id:
                raise invalid_input(f"Invalid inputFeedDocumentId: '{document_id}'.")
            if doc.content is None:
                raise invalid_input(f"The feed document '{document_id}' has no uploaded content.")
            now = self.now()
            starts = now + timedelta(seconds=self.settings.feed_queue_seconds)
            feed = Feed(
                feed_id=str(50_000_000_000 + self._next()),
                seller_id=seller.seller_id,
                feed_type=feed_type,
                marketplace_ids=marketplace_ids,
                input_document_id=document_id,
                created=now,
                starts=starts,
                ends=starts + timedelta(seconds=self.settings.feed_processing_seconds),
            )
            self.feeds[feed.feed_id] = feed
            return feed

    def feed(self, seller_id: str, feed_id: str) -> Feed:
        """The feed, its status brought up to the clock (processed when its time has come)."""
        with self.lock:
            feed = self.feeds.get(feed_id)
            if feed is None or feed.seller_id != seller_id:
                raise not_found(f"Feed '{feed_id}' not found.")
            settle(self, feed)
            return feed

    def settle_feeds(self) -> None:
        with self.lock:
            for feed in self.feeds.values():
                settle(self, feed)

    def cancel_feed(self, seller_id: str, feed_id: str) -> Feed:
        with self.lock:
            feed = self.feed(seller_id, feed_id)
            if feed.status is not FeedStatus.IN_QUEUE:
                raise invalid_input(
                    f"Feed '{feed_id}' is {feed.status.value}; only IN_QUEUE feeds can be cancelled."
                )
            feed.status = FeedStatus.CANCELLED
            return feed

    # -- faults and routes ----------------------------------------------------------------------

    def set_route(self, op_id: str, mode: str, status: int | None = None) -> RouteOverride:
        override = RouteOverride.build(mode, status)
        with self.lock:
            self.routes[op_id] = override
        return override

    def clear_route(self, op_id: str) -> None:
        with self.lock:
            self.routes.pop(op_id, None)

    def with_settings(self, **changes: Any) -> None:
        self.settings = replace(self.settings, **changes)


def offer_attributes(asin: str, price: Decimal, quantity: int, marketplace_id: str) -> dict[str, Any]:
    """The LISTING_OFFER_ONLY attributes of an offer on ``asin`` (new, merchant-fulfilled)."""
    currency = MARKETPLACES[marketplace_id].currency
    return {
        "merchant_suggested_asin": [{"value": asin, "marketplace_id": marketplace_id}],
        "condition_type": [{"value": "new_new", "marketplace_id": marketplace_id}],
        "purchasable_offer": [
            {
                "marketplace_id": marketplace_id,
                "currency": currency,
                "our_price": [{"schedule": [{"value_with_tax": float(price)}]}],
            }
        ],
        "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}],
    }


def default_address(country: str, name: str) -> Address:
    if country == "US":
        return Address(
            name, "410 Terry Ave N", "Seattle", "98109", "US", state_or_region="WA", phone="+1 206 555 0100"
        )
    if country == "FR":
        return Address(name, "12 rue de la Paix", "Paris", "75002", "FR", phone="+33 1 23 45 67 89")
    return Address(name, "Marcel-Breuer-Str. 12", "München", "80807", country, phone="+49 89 1234567")
