"""The marketplace port: what every connector implements, and what it declares it can do.

A connector talks to one marketplace account (one channel). It speaks the marketplace's API and maps
its payloads onto the hub's neutral values (:class:`~tradelane.domain.orders.MarketplaceOrder`,
:class:`OfferUpdate`, :class:`ImportResult`...); it never reads or writes tables. The use cases — order
intake, offer publishing, fulfilment push — are services written once and driven through this port.

Contract of every method:

* errors are classified at the edge: :class:`~tradelane.domain.errors.RetryableError` (with
  ``retry_after`` when the marketplace said so), :class:`~tradelane.domain.errors.PermanentError` (with
  a human-readable reason and the raw exchange), :class:`~tradelane.domain.errors.AuthenticationError`
  when the credentials are rejected. Nothing else escapes (a garbage or truncated body is a retryable
  "bad response", a body that breaks the contract a permanent "schema" error);
* before each remote call the connector calls ``env.throttle(operation)`` (the channel's shared,
  durable rate budget; it raises :class:`RetryableError` with the wait when the budget is spent) and
  reports every exchange to ``env.on_exchange`` (the service stores them);
* an operation the connector does not declare in :attr:`Capabilities.operations` is never called by a
  service; if it is anyway, it raises :class:`UnsupportedOperation` (a programming error), never a 404.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from tradelane.domain.orders import MarketplaceOrder, OrderState
from tradelane.http_edge import ExchangeHook


class Operation(StrEnum):
    """What a service may ask of a connector (declared in :attr:`Capabilities.operations`)."""

    FETCH_ORDERS = "fetch_orders"
    FETCH_MESSAGES = "fetch_messages"
    FETCH_RETURNS = "fetch_returns"
    ACCEPT = "accept"
    SUBMIT_OFFERS_FULL = "submit_offers_full"
    SUBMIT_OFFERS_DELTA = "submit_offers_delta"
    READ_IMPORT = "read_import"
    LIST_OFFERS = "list_offers"
    SHIP = "ship"
    CANCEL = "cancel"
    REFUND = "refund"
    UPLOAD_DOCUMENT = "upload_document"
    SET_HOLIDAY = "set_holiday"
    LIST_OPEN_ORDERS = "list_open_orders"  # OpenOrdersReader.open_orders (the cutover's live count)


class HolidayMode(StrEnum):
    """How a marketplace lets a shop stop taking orders for a while."""

    NONE = "none"  # no such thing: the closest equivalent is zero stock on every offer
    CLOSING_PERIOD = "closing_period"  # e.g. Mirakl A02 closed_from / closed_to
    ZERO_STOCK = "zero_stock"  # the connector emulates it by setting every quantity to 0


@dataclass(frozen=True, slots=True)
class RateBudget:
    """The published budget of one remote operation: a token bucket of ``burst`` tokens refilled at
    ``per_second``. Connectors may correct it from the marketplace's answers (e.g. Amazon's
    ``x-amzn-RateLimit-Limit``)."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"invalid rate budget {self.per_second}/s burst {self.burst}")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a connector does, declared once (services, the dashboard and the channel's go-live checks
    read it; nothing is discovered by calling and failing).

    ``budgets`` are keyed by the remote operation's name (``OR11``, ``searchOrders``...);
    ``max_batch`` by :class:`Operation` (how many items one call may carry, e.g. offers per import).
    ``hints`` explain, for an operator, why an operation is missing or how it differs.
    """

    operations: frozenset[Operation]
    acceptance_required: bool = False
    acceptance_deadline: timedelta | None = None
    line_level_cancellation: bool = False
    partial_shipments: bool = False
    tracking_required: bool = False
    labels: bool = False
    returns_push: bool = False
    asynchronous_offer_imports: bool = False
    holiday_mode: HolidayMode = HolidayMode.NONE
    fulfilment_mandatory: bool = False
    #: Offers can be removed from the marketplace (``OfferUpdate.delete`` is honoured): the reconciler
    #: removes listings only where this is True.
    delete_offers: bool = False
    budgets: Mapping[str, RateBudget] = field(default_factory=dict)
    max_batch: Mapping[Operation, int] = field(default_factory=dict)
    hints: Mapping[str, str] = field(default_factory=dict)
    #: The remote operation (a key of ``budgets``) one call of an :class:`Operation` draws on, e.g.
    #: ``{FETCH_ORDERS: "OR11"}``: the channel's communication frequency is computed from it.
    calls: Mapping[Operation, str] = field(default_factory=dict)
    #: Typical seconds from submitting an asynchronous offer import (keyed by ``SUBMIT_OFFERS_FULL`` /
    #: ``SUBMIT_OFFERS_DELTA``) until the marketplace has applied it: a declared hint the communication
    #: frequency uses (stated as declared) until it has measured the channel's own imports; absent when
    #: the marketplace publishes nothing to base it on (``hints["import_processing"]`` says where from).
    import_processing_seconds: Mapping[Operation, float] = field(default_factory=dict)

    def supports(self, operation: Operation) -> bool:
        return operation in self.operations

    def batch_size(self, operation: Operation, default: int) -> int:
        return self.max_batch.get(operation, default)


#: The key of :attr:`Capabilities.hints` saying what, beyond the orders poll, delays an order being seen
#: (shown with the channel's communication frequency).
ORDERS_SEEN_HINT = "orders_seen"


class AcceptanceSettled(Exception):
    """:meth:`MarketplaceConnector.accept` found that the marketplace no longer awaits a decision on the
    order (an earlier acceptance took effect although its answer was lost, or the order was refused or
    cancelled meanwhile): ``state`` is the order's state as the marketplace shows it now, ``accepted``
    whether that state means accepted, ``evidence`` how it was found (for the order's history)."""

    def __init__(self, order_id: str, state: OrderState, *, accepted: bool, evidence: str) -> None:
        super().__init__(f"order {order_id} is {state.value} on the marketplace ({evidence})")
        self.order_id = order_id
        self.state = state
        self.accepted = accepted
        self.evidence = evidence


class UnsupportedOperation(Exception):
    """A service called an operation the connector does not declare: a bug in the caller."""

    def __init__(self, connector: str, operation: Operation) -> None:
        super().__init__(f"connector {connector!r} does not support {operation.value}")
        self.connector = connector
        self.operation = operation


# --- values crossing the port ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderChanges:
    """Order versions changed since a cursor. ``cursor`` is opaque to services (store it, hand it back);
    it may overlap the previous read (seeing an order twice is harmless, missing one is not).
    ``withheld`` counts orders seen but deliberately not returned yet (e.g. Amazon Pending orders until
    payment is authorised)."""

    orders: Sequence[MarketplaceOrder]
    cursor: str | None
    fetched: int = 0
    withheld: int = 0
    #: The read stopped early (its budget ran out after some pages): ``cursor`` continues it, and the
    #: intake service queues the next poll at once instead of waiting for the schedule.
    more: bool = False


@dataclass(frozen=True, slots=True)
class OpenOrders:
    """The orders the marketplace shows in a state that still needs the seller (Operation.LIST_OPEN_ORDERS).
    ``scope`` says what was read (e.g. "every order in an open state", or a date window where the
    marketplace requires one); ``complete`` is False when a page limit or the budget stopped the read
    (the orders are then a lower bound). ``withheld`` as in :class:`OrderChanges`."""

    orders: Sequence[MarketplaceOrder]
    scope: str
    complete: bool = True
    withheld: int = 0


@runtime_checkable
class OpenOrdersReader(Protocol):
    """A connector declaring :attr:`Operation.LIST_OPEN_ORDERS` implements this (read-only, budget-aware):
    every open order regardless of when it was last updated, at most ``max_pages`` reads."""

    def open_orders(self, *, now: datetime, max_pages: int) -> OpenOrders: ...


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One message or return as read from the marketplace: the order it concerns, its own id (for
    idempotency), when it happened, and the raw payload kept as-is.

    ``data`` carries what the hub stores besides the raw payload, under neutral keys — a message:
    ``author``, ``subject``, ``body``; a return: ``state``, ``rma``, ``lines``
    (``[{"order_line_id", "quantity", "reason_code"}]``). ``order_id`` is empty for a message about no
    order. (Which stored messages are the customer's is the connector's ``customer_messages`` rule in
    the registry.)"""

    order_id: str
    item_id: str
    occurred_at: datetime
    raw: Mapping[str, Any]
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FeedChanges:
    items: Sequence[FeedItem]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class LineDecision:
    """Accept or refuse one order line (``reason`` says why a line is refused)."""

    line_id: str
    accept: bool
    reason: str | None = None


class SubmitMode(StrEnum):
    FULL = "full"  # the whole selected catalog (may replace what is listed)
    DELTA = "delta"  # only changed offers (price, quantity, deletions)


@dataclass(frozen=True, slots=True)
class OfferUpdate:
    """One offer as the hub wants it on the marketplace. ``attributes`` carry what a connector needs to
    match the catalog item (``attr:asin``, GTIN...); ``delete`` removes the offer."""

    sku: str
    price: Decimal
    currency: str
    quantity: int
    gtin: str | None = None
    title: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    delete: bool = False


@dataclass(frozen=True, slots=True)
class OfferOutcome:
    """What the marketplace said of one submitted offer: accepted, or rejected with its reason(s)."""

    sku: str
    ok: bool
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportRef:
    """A submitted batch of offers: the marketplace's reference (import id, feed id...), how many
    offers it carried, and — for a synchronous submission — its result already."""

    reference: str
    mode: SubmitMode
    submitted: int
    result: ImportResult | None = None


@dataclass(frozen=True, slots=True)
class ImportResult:
    """An import's state: ``done`` False means ask again in ``retry_after`` seconds; once done,
    ``outcomes`` holds one entry per offer the marketplace reported on (offers it did not mention are
    taken as accepted)."""

    done: bool
    outcomes: Sequence[OfferOutcome] = ()
    retry_after: float | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class ListedOffer:
    """An offer as it is on the marketplace now (reconciler, ID match, cutover snapshot).

    ``sku`` is the hub's SKU (a connector inverts its own SKU scheme; an SKU that does not fit it is
    kept as listed). ``group_key`` is the marketplace's variant grouping of the listing (compared with
    the catalog's ``parent_sku``), None where the listing carries none."""

    sku: str
    price: Decimal | None
    currency: str | None
    quantity: int | None
    product_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)
    group_key: str | None = None


@dataclass(frozen=True, slots=True)
class ShippedLine:
    line_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Shipment:
    """Lines shipped (None: the whole order), with the marketplace's carrier code (already converted
    through the carrier table) or a free carrier name, and tracking when there is one."""

    order_id: str
    lines: Sequence[ShippedLine] | None
    carrier_code: str | None = None
    carrier_name: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    shipped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Cancellation:
    """Cancel lines (None: the whole order; line-level only where declared) for ``reason``."""

    order_id: str
    lines: Sequence[ShippedLine] | None
    reason: str


@dataclass(frozen=True, slots=True)
class RefundLine:
    line_id: str
    quantity: int
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Refund:
    order_id: str
    lines: Sequence[RefundLine]
    reason: str


@dataclass(frozen=True, slots=True)
class Document:
    """A document to attach to an order (a shipping label...)."""

    order_id: str
    filename: str
    content: bytes
    media_type: str
    kind: str = "label"


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request a connector would make for an update, built by the same mapping code as the real
    call but never sent (test orders): the marketplace's operation name (``OR23``,
    ``confirmShipment``), the HTTP method, the path and the JSON body (None: no body)."""

    operation: str
    method: str
    path: str
    body: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "method": self.method, "path": self.path, "body": self.body}


@runtime_checkable
class RequestPlanner(Protocol):
    """A connector that can say which requests :meth:`MarketplaceConnector.ship` /
    :meth:`MarketplaceConnector.cancel` would make, without making them (pure: no call, no budget).
    ``order_lines`` (line id → quantity still to ship, as the hub stores the order) stands in for what
    a connector would otherwise read from the marketplace. Refusals are the same errors the real call
    raises before any request."""

    def plan_ship(self, shipment: Shipment, order_lines: Mapping[str, int]) -> list[PlannedRequest]: ...

    def plan_cancel(self, cancellation: Cancellation) -> list[PlannedRequest]: ...


class CheckOutcome(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    BAD_ACCOUNT = "bad_account"  # e.g. wrong shop id, region or marketplace id
    UNREACHABLE = "unreachable"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class CheckReport:
    """``channel check``: whether the account answers with these credentials, and if not, which of the
    causes it is (each connector tells them apart as far as its API allows)."""

    outcome: CheckOutcome
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is CheckOutcome.OK


# --- the port --------------------------------------------------------------------------------------


def _hold_nothing(_operation: str, _seconds: float) -> None:
    """The default :attr:`ConnectorEnv.hold` (a CLI command has no shared budget to hold)."""


@dataclass(frozen=True, slots=True)
class ConnectorEnv:
    """What a connector gets from the hub for one job (or one CLI command): the channel's settings and
    decrypted credentials, the clock, the channel's durable rate budget and the exchange sink. In
    Testing, ``testing`` is True and a connector uses the marketplace's test account when configured.

    ``hold(operation, seconds)``: the marketplace said "not before ``seconds``" for ``operation`` (a 429
    with Retry-After); the hub holds the channel's budget of that operation for every worker. A
    connector calls it before raising the retryable error."""

    channel_id: int | None
    channel_name: str
    settings: Mapping[str, Any]
    credentials: Mapping[str, str]
    now: Callable[[], datetime]
    throttle: Callable[[str], None]
    on_exchange: ExchangeHook
    testing: bool = False
    hold: Callable[[str, float], None] = field(default=_hold_nothing)


@runtime_checkable
class MarketplaceConnector(Protocol):
    """One marketplace account. See the module docstring for the error and budget contract."""

    name: str
    capabilities: Capabilities

    def fetch_orders(self, cursor: str | None, *, now: datetime) -> OrderChanges:
        """Order versions updated since ``cursor`` (None: the channel's initial look-back), every page."""
        ...

    def fetch_messages(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        """Customer messages since ``cursor``; never called inside the orders poll."""
        ...

    def fetch_returns(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        """Returns since ``cursor``; never called inside the orders poll."""
        ...

    def accept(self, order_id: str, decisions: Sequence[LineDecision]) -> None:
        """Accept/refuse the order's lines (only where :attr:`Capabilities.acceptance_required`).
        Raises :class:`AcceptanceSettled` when the marketplace no longer awaits a decision."""
        ...

    def submit_offers(self, offers: Sequence[OfferUpdate], mode: SubmitMode) -> ImportRef:
        """Send at most ``capabilities.batch_size(...)`` offers; returns the marketplace's reference."""
        ...

    def import_result(self, ref: ImportRef) -> ImportResult:
        """The state of a submitted import, with per-offer outcomes once done."""
        ...

    def list_offers(self) -> Sequence[ListedOffer]:
        """Every offer the account has on the marketplace now.

        No service calls it yet: it is the contract for the offer reconciler (what the marketplace
        lists against what the hub published), the unique-ID match of existing offers to catalog
        items and the cutover from a previous tool (issue 11). The connector suite and the sandboxes
        exercise it; implement it so (all pages, read-only, budget-aware)."""
        ...

    def ship(self, shipment: Shipment) -> None: ...

    def cancel(self, cancellation: Cancellation) -> None: ...

    def refund(self, refund: Refund) -> None: ...

    def upload_document(self, document: Document) -> None: ...

    def set_holiday(self, start: datetime | None, end: datetime | None) -> None:
        """Close the shop from ``start`` to ``end`` (both None: reopen).

        No service calls it yet: it is the contract for the cutover of issue 11 (closing the shop
        while the listings move from the previous tool to the hub, reopening after the reconciler and
        the unique-ID match found them consistent). The connector suite exercises it."""
        ...

    def current_holiday(self) -> tuple[datetime | None, datetime | None] | None:
        """The account's closing period as the marketplace holds it now: ``(closed_from, closed_to)``
        (each None when unset), or None when the connector cannot read it (no closing period)."""
        ...

    def staging_account(self) -> str | None:
        """The staging/test account this instance works on instead of the live one (e.g. a host and
        shop id; a channel in Testing with a staging account), or None when it uses the live account."""
        ...

    def check(self) -> CheckReport:
        """Whether the account answers with these credentials (never raises for a bad answer)."""
        ...

    def close(self) -> None:
        """Release HTTP connections."""
        ...


ConnectorFactory = Callable[[ConnectorEnv], MarketplaceConnector]
