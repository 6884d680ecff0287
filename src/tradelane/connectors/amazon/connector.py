"""The Amazon SP-API connector (merchant-fulfilled seller): the marketplace port implemented, and
channel set-up (add, check).

What Amazon offers through the contracts tradelane holds (specs: Orders 2026-01-01 + v0
confirmShipment, Feeds 2021-06-30, Listings Items 2021-08-01) — and therefore what is declared:

* orders: ``searchOrders`` by ``lastUpdatedAfter`` (overlapping watermark, every ``paginationToken``
  page), ``getOrder`` when a page lacks the delivery address; Pending orders are withheld until paid;
  no acceptance step;
* offers: JSON_LISTINGS_FEED feeds (full syncs, large deltas) or ``patchListingsItem`` (small deltas),
  chosen by :mod:`~tradelane.connectors.amazon.planner`; the feed's processing report is mapped back
  per SKU; ``searchListingsItems`` lists the account's offers;
* shipments: ``confirmShipment`` per package (line quantities, Amazon carrier code, tracking number).

Not declared (see :data:`HINTS`): acceptance, seller cancellation and refunds, messages, returns,
documents, holiday mode.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.engine import Connection

from tradelane.connectors.amazon import mapping
from tradelane.connectors.amazon.auth import LwaAuth, TokenCache, credential_fingerprint
from tradelane.connectors.amazon.client import (
    PUBLISHED_BUDGETS,
    AmazonClient,
    shipment_confirmation_body,
    shipment_confirmation_path,
)
from tradelane.connectors.amazon.errors import (
    AmazonAuthError,
    AmazonBadResponse,
    AmazonNotFound,
    AmazonRejected,
    AmazonSchemaError,
    AmazonUnreachable,
    AuthProblem,
)
from tradelane.connectors.amazon.planner import Plan, Route, plan
from tradelane.connectors.amazon.settings import CONNECTOR, AmazonSettings
from tradelane.connectors.base import (
    ORDERS_SEEN_HINT,
    Cancellation,
    Capabilities,
    CheckOutcome,
    CheckReport,
    ConnectorEnv,
    Document,
    FeedChanges,
    HolidayMode,
    ImportRef,
    ImportResult,
    LineDecision,
    ListedOffer,
    OfferOutcome,
    OfferUpdate,
    OpenOrders,
    Operation,
    OrderChanges,
    PlannedRequest,
    RateBudget,
    Refund,
    Shipment,
    SubmitMode,
    UnsupportedOperation,
)
from tradelane.connectors.registry import ChannelCheck, ConnectorSpec
from tradelane.domain.errors import PermanentError, RetryableError, ValidationError
from tradelane.domain.orders import MarketplaceOrder
from tradelane.http_edge import Exchange
from tradelane.security.crypto import KeyRing
from tradelane.services.channels import Channel, channel_credentials, create_channel

log = logging.getLogger(__name__)

CREDENTIAL_KEYS = ("client_id", "client_secret", "refresh_token")

HINTS: Mapping[str, str] = {
    Operation.ACCEPT.value: "Amazon has no acceptance step: a paid order is to ship at once.",
    Operation.CANCEL.value: (
        "no seller-cancellation call in the SP-API contracts tradelane holds (Orders 2026-01-01 is "
        "read-only; v0 has none): cancel in Seller Central"
    ),
    Operation.REFUND.value: (
        "no refund call in the SP-API contracts tradelane holds (refunds go through Seller Central)"
    ),
    Operation.FETCH_MESSAGES.value: "buyer messages are not in the SP-API contracts tradelane holds",
    Operation.FETCH_RETURNS.value: "returns are not in the SP-API contracts tradelane holds",
    Operation.UPLOAD_DOCUMENT.value: "confirmShipment takes no document; labels are not uploaded",
    Operation.SET_HOLIDAY.value: "no holiday call in the contracts held; set quantities to 0 instead",
    ORDERS_SEEN_HINT: (
        "a Pending order (payment not yet authorised) is read but held back until its payment is "
        "authorised: it is seen within this time of being paid, not of being placed"
    ),
    "import_processing": (
        "JSON_LISTINGS_FEED feeds are processed asynchronously and Amazon publishes no processing time: "
        "none is declared; it is measured from this channel's own feeds (submitted -> DONE)"
    ),
    Operation.SHIP.value: (
        "confirmShipment requires a tracking number; unknown carriers go as Other + name; no "
        "tracking-only update of an order already shipped"
    ),
}

#: How far back the open-orders read goes (searchOrders takes no state-only query: a date is required).
OPEN_ORDERS_DAYS = 90

CAPABILITIES = Capabilities(
    operations=frozenset(
        {
            Operation.FETCH_ORDERS,
            Operation.SUBMIT_OFFERS_FULL,
            Operation.SUBMIT_OFFERS_DELTA,
            Operation.READ_IMPORT,
            Operation.LIST_OFFERS,
            Operation.SHIP,
            Operation.LIST_OPEN_ORDERS,
        }
    ),
    acceptance_required=False,
    line_level_cancellation=False,
    partial_shipments=True,
    tracking_required=True,
    labels=False,
    returns_push=False,
    asynchronous_offer_imports=True,
    holiday_mode=HolidayMode.NONE,
    delete_offers=True,  # deleteListingsItem
    budgets=PUBLISHED_BUDGETS,
    calls={
        Operation.SUBMIT_OFFERS_FULL: "createFeed",
        Operation.SUBMIT_OFFERS_DELTA: "createFeed",
        Operation.FETCH_ORDERS: "searchOrders",
    },
    max_batch={
        # a full sync's submission is packed into feeds by size (see submit_offers): the channel's
        # full_batch setting replaces this default
        Operation.SUBMIT_OFFERS_FULL: 100_000,
        Operation.SUBMIT_OFFERS_DELTA: mapping.MAX_FEED_MESSAGES,
        Operation.FETCH_ORDERS: 100,
        Operation.SHIP: 1,
    },
    hints=HINTS,
)

#: The process's LWA access tokens, shared by every Amazon connector built in it (one per job): a
#: channel fetches a token about once an hour, not once per job (see :class:`TokenCache`).
TOKENS = TokenCache()

CURSOR_VERSION = 1
FEED_PREFIX = "feed:"
PATCH_PREFIX = "patch:"
#: The SKU getListingsItem is asked for by :meth:`AmazonConnector.check` (expected not to exist).
CHECK_SKU = "tradelane-channel-check"
#: How often one searchOrders ``nextToken`` may be followed in one read: a page served twice (the
#: second time with the token leading back to the page asked for) is read through, its orders counted
#: once; a token coming back again means the paging loops.
MAX_TOKEN_FOLLOWS = 2


class AmazonConnector:
    """One Amazon seller account in one marketplace (see the module docstring)."""

    name = CONNECTOR
    capabilities = CAPABILITIES

    def __init__(
        self,
        env: ConnectorEnv,
        *,
        http: httpx.Client | None = None,
        token_cache: TokenCache | None = None,
    ) -> None:
        """``token_cache``: where the LWA access token is kept between connectors of the channel
        (default :data:`TOKENS`, the process's; a channel without an id keeps its own)."""
        try:
            self.settings = AmazonSettings.from_dict(env.settings)
        except (TypeError, ValueError) as exc:
            raise PermanentError(f"channel {env.channel_name} has invalid Amazon settings: {exc}") from None
        missing = [k for k in CREDENTIAL_KEYS if not str(env.credentials.get(k) or "").strip()]
        if missing:
            raise PermanentError(f"channel {env.channel_name} lacks Amazon credentials: {', '.join(missing)}")
        self.env = env
        #: The declared capabilities (with the channel's ``rate_limits``); budgets then follow the rates
        #: Amazon reports (see :meth:`_rate_seen`).
        self.capabilities = _with_rate_limits(self.settings)
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0))
        client_id = env.credentials["client_id"]
        client_secret = env.credentials["client_secret"]
        refresh_token = env.credentials["refresh_token"]
        fingerprint = credential_fingerprint(self.settings.lwa_url, client_id, client_secret, refresh_token)
        self.auth = LwaAuth(
            token_url=self.settings.lwa_url,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            http=self._http,
            clock=env.now,
            on_exchange=env.on_exchange,
            # a channel not stored yet (no id) keeps its token to itself
            slot=None
            if env.channel_id is None
            else (TOKENS if token_cache is None else token_cache).slot(env.channel_id, fingerprint),
        )
        self.client = AmazonClient(
            self.settings,
            self.auth,
            http=self._http,
            clock=env.now,
            throttle=env.throttle,
            on_exchange=env.on_exchange,
            on_rate_limit=self._rate_seen,
            on_throttled=env.hold,
        )
        #: The route the planner chose for the latest :meth:`submit_offers`, with its reason.
        self.last_plan: Plan | None = None

    # ---------------------------------------------------------------------------------- budgets

    def _rate_seen(self, op: str, rate: float) -> None:
        """Amazon reported ``op``'s rate: the declared budget follows it (the hub sizes the channel's
        durable budget from :attr:`capabilities`)."""
        current = self.capabilities.budgets.get(op)
        if current is None or abs(current.per_second - rate) <= 1e-9:
            return
        log.info("amazon %s: %s rate is %g rps (was %g)", self.env.channel_name, op, rate, current.per_second)
        budgets = {**self.capabilities.budgets, op: RateBudget(rate, current.burst)}
        self.capabilities = replace(self.capabilities, budgets=budgets)

    def budget(self, op: str) -> RateBudget:
        """``op``'s budget: the usage plan's burst at the rate Amazon last reported
        (``x-amzn-RateLimit-Limit``), else the usage plan."""
        return self.capabilities.budgets.get(op) or RateBudget(1.0, 1)

    # ----------------------------------------------------------------------------------- orders

    def fetch_orders(self, cursor: str | None, *, now: datetime) -> OrderChanges:
        """Orders updated since the cursor's watermark minus ``order_overlap_seconds``, every page.

        The cursor is ``{"v", "after", "token", "until"}``: ``after`` the watermark (Amazon's own
        ``lastUpdatedBefore`` bound of the last complete read, else the latest ``lastUpdatedTime``
        seen), ``token``/``until`` a read interrupted by the budget (the next call resumes at that
        page). Pending orders are counted in ``withheld``; searchOrders entries without a delivery
        address are completed with getOrder. A page served again is read through (each order kept
        once, at its latest update); a ``nextToken`` followed more than :data:`MAX_TOKEN_FOLLOWS`
        times is a retryable :class:`AmazonBadResponse` (the paging loops)."""
        state = _read_cursor(cursor)
        overlap = timedelta(seconds=self.settings.order_overlap_seconds)
        if state is None:
            watermark = now - timedelta(hours=self.settings.initial_lookback_hours)
            query_after, token, bound = watermark, None, None
        else:
            watermark, token, bound = state
            query_after = watermark - overlap
        found: dict[str, MarketplaceOrder] = {}
        fetched = withheld = pages = 0
        followed: dict[str, int] = {}
        latest: datetime | None = bound
        while True:
            try:
                page = self.client.search_orders(last_updated_after=query_after, pagination_token=token)
            except AmazonRejected as exc:
                if token is not None and exc.status == 400:
                    log.warning(
                        "amazon %s: pagination token refused (%s); reading from the watermark",
                        self.env.channel_name,
                        exc.reason,
                    )
                    token = None
                    continue
                raise
            except RetryableError:
                if pages == 0:
                    raise
                # the budget ran out mid-read: hand over what was read, resume at this page next time
                return OrderChanges(
                    orders=list(found.values()),
                    cursor=_write_cursor(watermark, token, latest),
                    fetched=fetched,
                    withheld=withheld,
                )
            pages += 1
            if pages == 1 and token is None:
                bound_text = page.get("lastUpdatedBefore")
                if isinstance(bound_text, str):
                    latest = mapping.parse_time(bound_text, "$.lastUpdatedBefore")
            for raw in page["orders"]:
                if not isinstance(raw, dict):
                    raise AmazonSchemaError("$.orders[]", "not an object")
                fetched += 1
                if mapping.withheld(raw):
                    withheld += 1
                    continue
                if mapping.needs_details(raw):
                    raw = self.client.get_order(str(raw.get("orderId")))
                order = mapping.order_from_amazon(raw)
                previous = found.get(order.marketplace_order_id)
                if previous is None or previous.updated_at <= order.updated_at:
                    found[order.marketplace_order_id] = order
                if not page.get("lastUpdatedBefore") and (latest is None or order.updated_at > latest):
                    latest = order.updated_at
            pagination = page.get("pagination")
            token = pagination.get("nextToken") if isinstance(pagination, dict) else None
            if not token:
                break
            followed[token] = followed.get(token, 0) + 1
            if followed[token] > MAX_TOKEN_FOLLOWS:
                raise AmazonBadResponse(
                    f"searchOrders answered the same nextToken {followed[token]} times (page {pages}): "
                    "paging loops",
                    op="searchOrders",
                )
        new_watermark = max(watermark, latest) if latest is not None else watermark
        return OrderChanges(
            orders=list(found.values()),
            cursor=_write_cursor(new_watermark, None, None),
            fetched=fetched,
            withheld=withheld,
        )

    def open_orders(self, *, now: datetime, max_pages: int) -> OpenOrders:
        """searchOrders needs a date: every order updated in the last :data:`OPEN_ORDERS_DAYS` days (an
        order still open after that is out of reach of this read), every page; a read the budget
        stopped is ``complete=False``. ``max_pages`` is not applied here: :meth:`fetch_orders` reads
        every page or stops on the budget."""
        del max_pages
        after = now - timedelta(days=OPEN_ORDERS_DAYS)
        changes = self.fetch_orders(_write_cursor(after, None, None), now=now)
        state = _read_cursor(changes.cursor)
        interrupted = state is not None and state[1] is not None
        return OpenOrders(
            orders=changes.orders,
            scope=f"searchOrders: orders updated in the last {OPEN_ORDERS_DAYS} days",
            complete=not interrupted,
            withheld=changes.withheld,
        )

    def fetch_messages(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        raise UnsupportedOperation(self.name, Operation.FETCH_MESSAGES)

    def fetch_returns(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        raise UnsupportedOperation(self.name, Operation.FETCH_RETURNS)

    def accept(self, order_id: str, decisions: Sequence[LineDecision]) -> None:
        raise UnsupportedOperation(self.name, Operation.ACCEPT)

    # ----------------------------------------------------------------------------------- offers

    def plan(self, pending: int, mode: SubmitMode) -> Plan:
        """The planner's route for ``pending`` changes in ``mode`` with this channel's budget."""
        return plan(
            pending,
            mode,
            patch_budget=self.budget("patchListingsItem"),
            max_patch_seconds=self.settings.max_patch_seconds,
        )

    def submit_offers(self, offers: Sequence[OfferUpdate], mode: SubmitMode) -> ImportRef:
        """A feed (reference ``feed:ID[,ID...]``, with a not-done result saying when to look;
        :meth:`import_result` reads it back) or patches (the done result is in the returned reference
        already), as :meth:`plan` decides.

        Feeds: the messages are packed into as few documents as their bytes allow (each ≤ 25,000
        messages and ≤ 10 MiB: 100,000 offer-only messages of ~540 bytes take 6), every document is
        uploaded, then one createFeed per document. createFeed's budget is small (burst 15, then one
        per ~2 minutes), and :meth:`import_result` reads every report of the submission at once
        (getFeedDocument: burst 10, then one per 45 s): a submission needing more feeds than the smaller
        burst is refused (PermanentError, nothing sent; ``full_batch`` lowers the submission's size),
        and when the budget runs out after
        some of its feeds were created, the retry is asked for no sooner than the budget holds a token
        for every feed of the submission (it sends them all again; Amazon applies the same messages
        twice, which changes nothing)."""
        chosen = self.plan(len(offers), mode)
        self.last_plan = chosen
        log.info("amazon %s: %s", self.env.channel_name, chosen.reason)
        if chosen.route is Route.PATCH:
            outcomes = [self._patch_one(offer) for offer in offers]
            stamp = self.env.now().strftime("%Y%m%dT%H%M%S")
            return ImportRef(
                reference=f"{PATCH_PREFIX}{stamp}:{uuid.uuid4().hex[:12]}",
                mode=mode,
                submitted=len(offers),
                result=ImportResult(done=True, outcomes=outcomes, summary=chosen.reason),
            )
        chunks = mapping.feed_documents(offers, self.settings)
        create_feed = self.budget("createFeed")
        # one submission's feeds are created in one go and their reports read in one go
        most = min(create_feed.burst, self.budget("getFeedDocument").burst)
        if len(chunks) > most:
            raise PermanentError(
                f"{len(offers)} offers need {len(chunks)} feeds, more than one submission may carry "
                f"({most}: the burst of createFeed and of getFeedDocument): lower the channel's "
                "full_batch setting"
            )
        documents = []
        for chunk in chunks:
            document_id, url = self.client.create_feed_document()
            self.client.upload_feed_document(url, chunk.content)
            documents.append(document_id)
        feed_ids: list[str] = []
        for document_id in documents:
            try:
                feed_ids.append(self.client.create_feed(mapping.FEED_TYPE, document_id))
            except RetryableError as exc:
                if not feed_ids:
                    raise
                # feeds were created that the retry sends again: wait until it can send all of them
                whole = _refill_seconds(len(documents), create_feed)
                raise RetryableError(
                    f"createFeed: {exc.reason} after {len(feed_ids)} of {len(documents)} feeds; the "
                    f"submission is sent again once the budget allows {len(documents)} feeds",
                    retry_after=max(exc.retry_after or 0.0, whole),
                    raw=exc.raw,
                ) from exc
        reference = FEED_PREFIX + ",".join(feed_ids)
        return ImportRef(
            reference=reference,
            mode=mode,
            submitted=len(offers),
            # Amazon takes minutes over a feed: the first look is worth it only after feed_poll_seconds
            result=ImportResult(
                done=False,
                retry_after=self.settings.feed_poll_seconds,
                summary=f"{reference} submitted ({chosen.reason})",
            ),
        )

    def _patch_one(self, offer: OfferUpdate) -> OfferOutcome:
        """One offer through the Listings API: delete, patch, or — for a SKU not listed yet — put.
        Amazon's refusal of this one offer is its outcome; throttling, server and credential errors
        propagate (the batch is retried)."""
        try:
            if offer.delete:
                try:
                    response = self.client.delete_listings_item(offer.sku)
                except AmazonNotFound:
                    return OfferOutcome(
                        offer.sku, ok=True, warnings=("not listed on Amazon: nothing to delete",)
                    )
                return mapping.submission_outcome(offer.sku, response)
            response = self.client.patch_listings_item(offer.sku, mapping.patch_request(offer, self.settings))
            if response.get("status") == "INVALID" and _not_listed(response):
                response = self.client.put_listings_item(offer.sku, mapping.put_request(offer, self.settings))
            return mapping.submission_outcome(offer.sku, response)
        except AmazonNotFound:
            response = self.client.put_listings_item(offer.sku, mapping.put_request(offer, self.settings))
            return mapping.submission_outcome(offer.sku, response)
        except AmazonRejected as exc:
            return OfferOutcome(offer.sku, ok=False, errors=exc.messages or (exc.reason,))

    def import_result(self, ref: ImportRef) -> ImportResult:
        """Patches: their result. Feeds: not done while any is queued or in progress (ask again in
        ``feed_poll_seconds``); once DONE, the processing reports' issues per SKU, completed by
        :meth:`_issues_not_reported`. A FATAL or CANCELLED feed is a :class:`PermanentError` saying
        why. When getFeedDocument's budget runs out after some reports were read, the retry is asked
        for no sooner than the budget allows every report again (else each attempt would read one
        report and fail on the next, for ever)."""
        if ref.result is not None and ref.result.done:
            return ref.result
        if not ref.reference.startswith(FEED_PREFIX):
            raise PermanentError(f"not an Amazon import reference: {ref.reference!r}")
        feed_ids = [f for f in ref.reference[len(FEED_PREFIX) :].split(",") if f]
        feeds = [self.client.get_feed(feed_id) for feed_id in feed_ids]
        waiting = [f["feedId"] for f in feeds if f["processingStatus"] in ("IN_QUEUE", "IN_PROGRESS")]
        if waiting:
            return ImportResult(
                done=False,
                retry_after=self.settings.feed_poll_seconds,
                summary=f"feed(s) {', '.join(map(str, waiting))} still processing",
            )
        outcomes: list[OfferOutcome] = []
        summaries: list[str] = []
        reports = sum(1 for feed in feeds if feed.get("resultFeedDocumentId"))
        read = 0
        for feed in feeds:
            status = feed["processingStatus"]
            try:
                report = self._report(feed) if feed.get("resultFeedDocumentId") else None
            except RetryableError as exc:
                if not read:
                    raise
                # the retry reads every report again: wait until getFeedDocument's budget allows all
                whole = _refill_seconds(reports, self.budget("getFeedDocument"))
                raise RetryableError(
                    f"getFeedDocument: {exc.reason} after {read} of {reports} processing reports; read "
                    f"again once the budget allows {reports}",
                    retry_after=max(exc.retry_after or 0.0, whole),
                    raw=exc.raw,
                ) from exc
            read += report is not None
            if status != "DONE":
                said = mapping.report_summary(report) if report is not None else "no processing report"
                raise PermanentError(f"Amazon feed {feed['feedId']} ended {status}: {said}")
            if report is None:
                raise AmazonSchemaError(
                    "$.resultFeedDocumentId", f"DONE feed {feed['feedId']} without a processing report"
                )
            outcomes.extend(mapping.report_outcomes(report))
            summaries.append(f"feed {feed['feedId']}: {mapping.report_summary(report)}")
        listed, note = self._issues_not_reported({o.sku for o in outcomes})
        outcomes.extend(listed)
        if note:
            summaries.append(note)
        return ImportResult(done=True, outcomes=outcomes, summary="; ".join(summaries))

    def _issues_not_reported(self, reported: set[str]) -> tuple[list[OfferOutcome], str | None]:
        """Listings Amazon shows with ERROR issues that the processing reports did not mention (issues
        raised after the report, e.g. a suppression), read back by SKU with searchListingsItems
        (``withIssueSeverity=ERROR``, most recently updated first): their outcomes, so that each
        offer's outcome is complete, and a note for the summary. At most ``issue_reads`` listings per
        result; the read stops early, keeping what it has, when the budget or Amazon says to wait (the
        reports' outcomes stand on their own)."""
        limit = self.settings.issue_reads
        found: list[OfferOutcome] = []
        read = 0
        token: str | None = None
        while read < limit:
            try:
                page = self.client.search_listings_items(
                    token, included=("summaries", "issues"), issue_severity="ERROR"
                )
            except RetryableError as exc:
                return found, _issues_note(found, f"listing issues read no further: {exc.reason}")
            for item in page["items"][: limit - read]:
                read += 1
                sku = item.get("sku") if isinstance(item, dict) else None
                if isinstance(sku, str) and sku and sku not in reported:
                    found.append(mapping.listing_outcome(sku, item))
                    reported.add(sku)
            pagination = page.get("pagination")
            token = pagination.get("nextToken") if isinstance(pagination, dict) else None
            if not token:
                return found, _issues_note(found, None)
        return found, _issues_note(found, f"more than {limit} listing(s) with issues: the rest not read now")

    def _report(self, feed: Mapping[str, Any]) -> dict[str, Any]:
        content = self.client.get_feed_document(str(feed["resultFeedDocumentId"]))
        try:
            report = json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise AmazonBadResponse(
                f"processing report of feed {feed['feedId']} is not JSON (garbage or truncated): {exc}",
                op="getFeedDocument",
            ) from None
        if not isinstance(report, dict):
            raise AmazonSchemaError("$", "processing report is not an object", op="getFeedDocument")
        return report

    def listing_issues(self, sku: str) -> OfferOutcome:
        """A listing's current issues read back by SKU (Amazon raises some after the feed's report,
        e.g. suppressions); not listed at all is an error outcome."""
        try:
            item = self.client.get_listings_item(sku, included=("issues",))
        except AmazonNotFound:
            return OfferOutcome(sku, ok=False, errors=("not listed on Amazon",))
        return mapping.listing_outcome(sku, item)

    def list_offers(self) -> Sequence[ListedOffer]:
        """Every listing of the seller in the channel's marketplace (searchListingsItems, 20 a page), with
        its variation parent as ``group_key``."""
        offers: list[ListedOffer] = []
        token: str | None = None
        while True:
            page = self.client.search_listings_items(
                token, included=("summaries", "offers", "fulfillmentAvailability", "relationships")
            )
            offers.extend(
                mapping.listed_offer(item, self.settings.marketplace_id)
                for item in page["items"]
                if isinstance(item, dict)
            )
            pagination = page.get("pagination")
            token = pagination.get("nextToken") if isinstance(pagination, dict) else None
            if not token:
                return offers

    # -------------------------------------------------------------------------------- shipments

    def ship(self, shipment: Shipment) -> None:
        """confirmShipment of one package: the given lines (None: every line still to ship, read with
        getOrder), the Amazon carrier code through the carrier table (``Other`` + name when unknown)
        and the tracking number (required by Amazon). Empty lines (the hub's "tracking only" for an
        order already shipped) or an order with nothing left to ship send nothing: confirmShipment has
        no tracking-only update, and the package is already on Amazon (a retried job ends here)."""
        detail = self._package_detail(
            shipment, lambda: mapping.order_line_quantities(self.client.get_order(shipment.order_id))
        )
        if detail is None:
            log.info("amazon %s: order %s has nothing left to ship", self.env.channel_name, shipment.order_id)
            return
        self.client.confirm_shipment(shipment.order_id, detail)

    def plan_ship(self, shipment: Shipment, order_lines: Mapping[str, int]) -> list[PlannedRequest]:
        """The confirmShipment request :meth:`ship` would make (``order_lines`` stands in for getOrder's
        lines still to ship); nothing is sent."""
        detail = self._package_detail(shipment, lambda: dict(order_lines))
        if detail is None:
            return []
        body = shipment_confirmation_body(self.settings.marketplace_id, detail)
        return [
            PlannedRequest("confirmShipment", "POST", shipment_confirmation_path(shipment.order_id), body)
        ]

    def plan_cancel(self, cancellation: Cancellation) -> list[PlannedRequest]:
        raise UnsupportedOperation(self.name, Operation.CANCEL)

    def _package_detail(
        self, shipment: Shipment, lines_to_ship: Callable[[], Mapping[str, int]]
    ) -> dict[str, Any] | None:
        """The package of :meth:`ship` (None: nothing to ship), refusals included."""
        if not shipment.tracking_number:
            raise PermanentError(
                f"order {shipment.order_id}: Amazon's confirmShipment requires a tracking number"
            )
        code, name = self.settings.amazon_carrier(shipment.carrier_code)
        if code == "Other":
            by_name, _ = self.settings.amazon_carrier(shipment.carrier_name)
            if by_name != "Other":
                code, name = by_name, None
            else:
                name = shipment.carrier_name or shipment.carrier_code
        if code == "Other" and not name:
            raise PermanentError(
                f"order {shipment.order_id}: no carrier given (Amazon needs a code or a name)"
            )
        if shipment.lines is not None:
            items = {line.line_id: line.quantity for line in shipment.lines if line.quantity > 0}
        else:
            items = dict(lines_to_ship())
        if not items:
            return None
        return dict(
            mapping.package_detail(
                shipment,
                items,
                carrier_code=code,
                carrier_name=name,
                ship_date=shipment.shipped_at or self.env.now(),
            )
        )

    def cancel(self, cancellation: Cancellation) -> None:
        raise UnsupportedOperation(self.name, Operation.CANCEL)

    def refund(self, refund: Refund) -> None:
        raise UnsupportedOperation(self.name, Operation.REFUND)

    def upload_document(self, document: Document) -> None:
        raise UnsupportedOperation(self.name, Operation.UPLOAD_DOCUMENT)

    def set_holiday(self, start: datetime | None, end: datetime | None) -> None:
        raise UnsupportedOperation(self.name, Operation.SET_HOLIDAY)

    def current_holiday(self) -> tuple[datetime | None, datetime | None] | None:
        """None: an Amazon account has no closing period to read."""
        return None

    def staging_account(self) -> str | None:
        """None: an Amazon test account is a channel of its own, never a staging side of this one."""
        return None

    # ------------------------------------------------------------------------------------ check

    def check(self) -> CheckReport:
        """Tells apart: bad client (LWA invalid_client), bad refresh token (LWA invalid_grant), wrong
        seller / marketplace / region (SP-API refuses the account with a fresh token, or rejects the
        marketplace id), unreachable (no answer from LWA or SP-API). Two calls: a fresh LWA token,
        then getListingsItem on :data:`CHECK_SKU` (a 404 for it means the account answers)."""
        details: dict[str, Any] = {
            "seller_id": self.settings.seller_id,
            "marketplace_id": self.settings.marketplace_id,
            "region": self.settings.region,
            "endpoint": self.settings.api_url,
        }
        self.auth.invalidate()
        try:
            self.auth.access_token()
        except AmazonAuthError as exc:
            which = "client id/secret" if exc.problem is AuthProblem.BAD_CLIENT else "refresh token"
            return CheckReport(
                CheckOutcome.BAD_CREDENTIALS,
                f"bad {which}: {exc.reason}",
                {**details, "problem": exc.problem.value},
            )
        except RetryableError as exc:
            return CheckReport(
                CheckOutcome.UNREACHABLE,
                f"Login with Amazon at {self.settings.lwa_url}: {exc.reason}",
                {**details, "problem": "lwa_unreachable"},
            )
        except PermanentError as exc:
            return CheckReport(CheckOutcome.REJECTED, exc.reason, {**details, "problem": "lwa_rejected"})
        try:
            self.client.get_listings_item(CHECK_SKU, included=("summaries",))
        except AmazonNotFound:
            pass
        except AmazonAuthError as exc:
            return CheckReport(
                CheckOutcome.BAD_ACCOUNT,
                f"wrong seller, marketplace or region: the credentials are valid but Amazon refuses "
                f"seller {self.settings.seller_id} in marketplace {self.settings.marketplace_id} at "
                f"{self.settings.api_url} — {exc.reason}",
                {**details, "problem": "account_refused"},
            )
        except AmazonRejected as exc:
            outcome = (
                CheckOutcome.BAD_ACCOUNT
                if any("marketplace" in m.lower() or "seller" in m.lower() for m in exc.messages)
                else CheckOutcome.REJECTED
            )
            return CheckReport(outcome, exc.reason, {**details, "problem": "rejected"})
        except AmazonUnreachable as exc:
            return CheckReport(
                CheckOutcome.UNREACHABLE,
                f"SP-API at {self.settings.api_url}: {exc.reason}",
                {**details, "problem": "sp_api_unreachable"},
            )
        except RetryableError as exc:
            return CheckReport(CheckOutcome.UNREACHABLE, exc.reason, {**details, "problem": "sp_api_retry"})
        except PermanentError as exc:
            return CheckReport(CheckOutcome.REJECTED, exc.reason, {**details, "problem": "sp_api_error"})
        return CheckReport(
            CheckOutcome.OK,
            f"seller {self.settings.seller_id} answers in marketplace {self.settings.marketplace_id}",
            details,
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> AmazonConnector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _refill_seconds(tokens: int, budget: RateBudget) -> float:
    """Whole seconds (one more than the exact refill) until ``budget`` holds ``tokens`` again from
    empty: a wait that lands exactly on the refill may find a token a rounding error short."""
    return float(math.ceil(tokens / budget.per_second) + 1)


def _issues_note(found: Sequence[OfferOutcome], stop: str | None) -> str | None:
    said = [f"{len(found)} listing(s) with issues the report did not carry"] if found else []
    return "; ".join([*said, *([stop] if stop else [])]) or None


def _not_listed(response: Mapping[str, Any]) -> bool:
    """A patch refused because the SKU does not exist yet (then a put creates it)."""
    for issue in response.get("issues") or []:
        if isinstance(issue, Mapping):
            text = str(issue.get("message", "")).lower()
            if "does not exist" in text or "not found" in text:
                return True
    return False


def _read_cursor(cursor: str | None) -> tuple[datetime, str | None, datetime | None] | None:
    if cursor is None:
        return None
    try:
        data = json.loads(cursor)
        if data.get("v") != CURSOR_VERSION:
            raise ValueError(f"cursor version {data.get('v')!r}")
        after = datetime.fromisoformat(data["after"])
        until = datetime.fromisoformat(data["until"]) if data.get("until") else None
        token = data.get("token") or None
        if after.tzinfo is None or (until is not None and until.tzinfo is None):
            raise ValueError("naive date-time")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PermanentError(f"unreadable Amazon orders cursor {cursor!r}: {exc}") from None
    return after, token if isinstance(token, str) else None, until


def _write_cursor(after: datetime, token: str | None, until: datetime | None) -> str:
    data: dict[str, Any] = {"v": CURSOR_VERSION, "after": after.isoformat()}
    if token:
        data["token"] = token
        if until is not None:
            data["until"] = until.isoformat()
    return json.dumps(data, separators=(",", ":"))


# ------------------------------------------------------------------------------- the registry


def validate_settings(settings: Mapping[str, Any], credentials: Mapping[str, str]) -> dict[str, Any]:
    """The settings as stored (normalised); :class:`ValidationError` for invalid settings or missing
    LWA credentials (nothing is called remotely)."""
    try:
        normalised = AmazonSettings.from_dict(settings).to_dict()
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from None
    missing = [k for k in CREDENTIAL_KEYS if not str(credentials.get(k) or "").strip()]
    if missing:
        raise ValidationError(f"Amazon credentials missing: {', '.join(missing)}")
    return normalised


def channel_capabilities(settings: Mapping[str, Any]) -> Capabilities:
    """What an Amazon channel declares: the same operations for every channel; the published budgets
    with the channel's ``rate_limits`` overrides (corrected per connector at run time by the rates
    Amazon reports)."""
    try:
        return _with_rate_limits(AmazonSettings.from_dict(settings))
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from None


def _with_rate_limits(settings: AmazonSettings) -> Capabilities:
    """The declared capabilities with the channel's ``rate_limits`` and ``full_batch``."""
    if (
        not settings.rate_limits
        and settings.full_batch == CAPABILITIES.max_batch[Operation.SUBMIT_OFFERS_FULL]
    ):
        return CAPABILITIES
    return replace(
        CAPABILITIES,
        budgets={**CAPABILITIES.budgets, **settings.rate_limits},
        max_batch={**CAPABILITIES.max_batch, Operation.SUBMIT_OFFERS_FULL: settings.full_batch},
    )


def _check(conn: Connection, channel: Channel, keyring: KeyRing, staging: bool | None) -> ChannelCheck:
    """The registry's check: :func:`check_channel` (an Amazon channel has one account: a sandbox or
    test account is a channel of its own, so ``staging=True`` is refused)."""
    if staging:
        raise ValidationError(
            f"channel {channel.name} has no staging account (an Amazon test account is a channel of its own)"
        )
    report = check_channel(conn, channel, keyring)
    return ChannelCheck(report.ok, report.message, None if report.ok else report.outcome.value)


SPEC = ConnectorSpec(
    name=CONNECTOR,
    title="Amazon",
    capabilities=CAPABILITIES,
    factory=AmazonConnector,
    validate_settings=validate_settings,
    channel_capabilities=channel_capabilities,
    check=_check,
    credential_keys=CREDENTIAL_KEYS,
    cli="tradelane.connectors.amazon.cli",
)


# ------------------------------------------------------------------------------- channel set-up


def add_channel(
    conn: Connection,
    *,
    tenant_id: int,
    name: str,
    seller_id: str,
    marketplace_id: str,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    keyring: KeyRing,
    now: datetime,
    region: str = "na",
    endpoint: str | None = None,
    token_endpoint: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Channel:
    """Create an Amazon channel: settings validated (seller id, marketplace id vs region, URLs)
    before anything is stored; LWA credentials stored encrypted."""
    data = {
        **(options or {}),
        "seller_id": seller_id,
        "marketplace_id": marketplace_id,
        "region": region,
        "endpoint": endpoint,
        "token_endpoint": token_endpoint,
    }
    try:
        settings = AmazonSettings.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from None
    credentials = {"client_id": client_id, "client_secret": client_secret, "refresh_token": refresh_token}
    for key, value in credentials.items():
        if not value or not value.strip():
            raise ValidationError(f"the Amazon {key.replace('_', ' ')} is empty")
    return create_channel(
        conn,
        tenant_id=tenant_id,
        name=name,
        connector=CONNECTOR,
        settings=settings.to_dict(),
        credentials={k: v.strip() for k, v in credentials.items()},
        keyring=keyring,
        now=now,
    )


def check_channel(
    conn: Connection,
    channel: Channel,
    keyring: KeyRing,
    *,
    now: Callable[[], datetime] | None = None,
    http: httpx.Client | None = None,
) -> CheckReport:
    """:meth:`AmazonConnector.check` with the channel's stored settings and credentials (two calls,
    outside the channel's durable budget: a check is an operator's one-off)."""
    if channel.connector != CONNECTOR:
        raise ValidationError(f"channel {channel.name} uses connector {channel.connector!r}, not amazon")
    env = ConnectorEnv(
        channel_id=channel.id,
        channel_name=channel.name,
        settings=channel.settings,
        credentials=channel_credentials(conn, channel, keyring),
        now=now or _utcnow,
        throttle=_no_throttle,
        on_exchange=_no_exchange,
    )
    own = http is None
    client = http or httpx.Client(timeout=httpx.Timeout(10.0))
    try:
        try:
            connector = AmazonConnector(env, http=client)
        except PermanentError as exc:
            raise ValidationError(exc.reason) from None
        return connector.check()
    finally:
        if own:
            client.close()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _no_throttle(op: str) -> None:
    return None


def _no_exchange(exchange: Exchange) -> None:
    return None
