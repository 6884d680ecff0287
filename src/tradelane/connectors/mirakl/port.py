"""Mirakl behind the marketplace port: :class:`MiraklConnector` over :class:`MiraklClient`.

One instance serves one channel for one job (or one CLI command). In Testing, with a staging account
configured, every call goes to the staging host, shop and key instead of the live ones. Before every
remote operation the channel's budget of that operation is taken (``env.throttle``); a paged listing
(OR11, M01, RT11, OF21) takes one token for the whole run — Mirakl's guidance is about how often a shop
is polled, not about its pages. A 429 holds the operation's budget for every worker
(``env.hold``) before the error goes up. Every exchange goes to ``env.on_exchange``.

Orders, messages, returns, acceptance, holiday mode and the account check are implemented here; offers
and fulfilment delegate to :mod:`.offers_port` and :mod:`.fulfilment_port`, which receive the
budgeted client (so their calls draw on the same budgets).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from tradelane.connectors.base import (
    AcceptanceSettled,
    Cancellation,
    Capabilities,
    CheckOutcome,
    CheckReport,
    ConnectorEnv,
    Document,
    FeedChanges,
    FeedItem,
    HolidayMode,
    ImportRef,
    ImportResult,
    LineDecision,
    ListedOffer,
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
from tradelane.connectors.mirakl import fulfilment_port, offers_port
from tradelane.connectors.mirakl.client import CheckProblem, MiraklClient
from tradelane.connectors.mirakl.errors import MiraklBadResponse, MiraklRateLimited, MiraklRequestRejected
from tradelane.connectors.mirakl.limits import DEFAULT_LIMITS
from tradelane.connectors.mirakl.settings import CONNECTOR, OPTIONAL_MODULES, POLLED_STATES, MiraklSettings
from tradelane.domain.errors import AuthenticationError, PermanentError, RetryableError
from tradelane.domain.orders import DEAD_STATES, PAST_ACCEPTANCE_STATES, MarketplaceOrder, OrderState

T = TypeVar("T")

#: Order states that end the acceptance without the order being accepted.
NOT_ACCEPTED_STATES = DEAD_STATES

#: Remote operations tradelane calls, for the budgets it declares (A02 has no published guidance).
OPERATIONS_CALLED: tuple[str, ...] = (*sorted(DEFAULT_LIMITS), "A02")
#: Typical seconds until Mirakl has applied an OF01/OF24 import (a declared hint, see the next line).
TYPICAL_IMPORT_SECONDS = 300.0
IMPORT_PROCESSING_HINT = (
    "OF01 and OF24 imports are applied asynchronously; Mirakl publishes no processing time, its guidance "
    "is to check an import's status (OF02) every 5 minutes after submitting it, so ~5 min is assumed until "
    "this channel's own imports are measured"
)
#: Why a partial shipment is refused when the operator's option is off.
MULTI_SHIPMENT_OFF = "the operator's multi-shipment is off (channel setting multi_shipment)"
#: Most shipments one ST01 call carries; most order ids one OR11 call filters on.
MAX_SHIPMENTS_PER_CALL = 1_000


#: The feed operation of each optional module (settings ``modules``).
MODULE_OPERATIONS: dict[str, Operation] = {
    "returns": Operation.FETCH_RETURNS,
    "messages": Operation.FETCH_MESSAGES,
}


def module_off(name: str) -> str:
    """Why a channel does not read module ``name``'s feed (the hint shown for its operation)."""
    return (
        f"the operator does not offer {name} (channel setting modules.{name} is false): "
        f"{OPTIONAL_MODULES[name]} is never called"
    )


def mirakl_capabilities(settings: MiraklSettings) -> Capabilities:
    """What a Mirakl channel with ``settings`` does (budgets include the channel's overrides). An
    optional module the operator does not offer (``modules``) leaves its feed operation out, with a
    hint saying why: its jobs are never queued nor served."""
    absent = {op: name for name, op in MODULE_OPERATIONS.items() if not settings.offers_module(name)}
    budgets = {}
    for op in OPERATIONS_CALLED:
        limit = settings.limit(op)
        budgets[op] = RateBudget(per_second=limit.calls / limit.per_seconds, burst=limit.burst)
    return Capabilities(
        operations=frozenset(Operation) - set(absent),
        acceptance_required=True,
        acceptance_deadline=timedelta(seconds=settings.acceptance_window_seconds),
        line_level_cancellation=False,
        partial_shipments=settings.multi_shipment,
        tracking_required=False,
        labels=True,
        returns_push=False,
        asynchronous_offer_imports=True,
        holiday_mode=HolidayMode.CLOSING_PERIOD,
        fulfilment_mandatory=False,
        delete_offers=True,  # OF24 / OF01 update-delete = "delete"
        budgets=budgets,
        calls={
            Operation.SUBMIT_OFFERS_FULL: "OF01",
            Operation.SUBMIT_OFFERS_DELTA: "OF24",
            Operation.FETCH_ORDERS: "OR11",
        },
        import_processing_seconds={
            Operation.SUBMIT_OFFERS_FULL: TYPICAL_IMPORT_SECONDS,
            Operation.SUBMIT_OFFERS_DELTA: TYPICAL_IMPORT_SECONDS,
        },
        max_batch={
            Operation.SUBMIT_OFFERS_DELTA: settings.delta_batch_size,
            Operation.SHIP: MAX_SHIPMENTS_PER_CALL if settings.multi_shipment else 1,
            Operation.ACCEPT: 1,
        },
        hints={
            Operation.ACCEPT.value: (
                "every order is accepted or refused line by line (OR21) before the operator's "
                "acceptance delay, else the marketplace cancels it"
            ),
            Operation.CANCEL.value: "OR29 cancels a whole order before shipment; lines cannot be cancelled",
            Operation.SHIP.value: (
                "tracking (OR23) then shipment confirmation (OR24); partial shipments (ST01) only "
                "with the operator's multi-shipment option (setting multi_shipment)"
            ),
            Operation.UPLOAD_DOCUMENT.value: "labels and other documents attached with OR74",
            Operation.FETCH_RETURNS.value: "returns are read with RT11 (only where the operator offers it)",
            Operation.SET_HOLIDAY.value: "A02 closed_from / closed_to on the shop account",
            "delete_offers": 'offers are removed with OF24 update_delete "delete"',
            "import_processing": IMPORT_PROCESSING_HINT,
            "line_cancellation": "OR29 cancels whole orders only; refund the lines instead",
            **({} if settings.multi_shipment else {"partial_shipments": MULTI_SHIPMENT_OFF}),
            **{op.value: module_off(name) for op, name in absent.items()},
        },
    )


class BudgetedClient(MiraklClient):
    """A :class:`MiraklClient` that takes a token of the operation's budget before each public call
    (``throttle``), holds the budget on a 429 with Retry-After (``hold``) and names the refusing host on
    an authentication error. A call made while another one runs (the pages of an ``iter_*`` listing)
    takes no token of its own."""

    def __init__(
        self,
        hostname: str,
        api_key: str,
        shop_id: str | None,
        *,
        throttle: Callable[[str], None],
        hold: Callable[[str, float], None],
        http: httpx.Client | None = None,
        timeout: float,
        on_exchange: Callable[[Any], None],
        clock: Callable[[], datetime],
    ) -> None:
        super().__init__(
            hostname, api_key, shop_id, http=http, timeout=timeout, on_exchange=on_exchange, clock=clock
        )
        self._throttle = throttle
        self._hold = hold
        self._host = hostname
        self._inside = 0

    @contextmanager
    def _budget(self, op: str, *, take: bool = True) -> Iterator[None]:
        """One operation run: its token (``take``), then the 429 hold and the refusing host — only at
        the outermost level (a page inside a listing belongs to the listing's run)."""
        outermost = self._inside == 0
        if take and outermost:
            self._throttle(op)
        self._inside += 1
        try:
            yield
        except MiraklRateLimited as exc:
            if outermost and exc.retry_after:
                self._hold(op, exc.retry_after)
            raise
        except AuthenticationError as exc:
            exc.host = self._host  # the channel's alert says which host refused the key
            raise
        finally:
            self._inside -= 1

    def _run(self, items: Iterator[T], op: str) -> Iterator[T]:
        """Pull ``items`` (a lazy listing whose token was taken) without taking more tokens."""
        while True:
            with self._budget(op, take=False):
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item

    def _listing(self, op: str, start: Callable[[], Iterator[T]]) -> Iterator[T]:
        with self._budget(op):
            items = start()
        return self._run(items, op)

    # Each public operation, budgeted (signatures are the client's).
    def account(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("A01"):
            return super().account(*args, **kwargs)

    def set_closing_period(self, *args: Any, **kwargs: Any) -> None:
        with self._budget("A02"):
            super().set_closing_period(*args, **kwargs)

    def import_offers(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OF01"):
            return super().import_offers(*args, **kwargs)

    def offer_import_status(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OF02"):
            return super().offer_import_status(*args, **kwargs)

    def offer_import_error_report(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OF03"):
            return super().offer_import_error_report(*args, **kwargs)

    def list_offers(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OF21"):
            return super().list_offers(*args, **kwargs)

    def iter_offers(self, *args: Any, **kwargs: Any) -> Any:
        return self._listing("OF21", lambda: super(BudgetedClient, self).iter_offers(*args, **kwargs))

    def update_offers(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OF24"):
            return super().update_offers(*args, **kwargs)

    def list_orders(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OR11"):
            return super().list_orders(*args, **kwargs)

    def iter_orders(self, *args: Any, **kwargs: Any) -> Any:
        return self._listing("OR11", lambda: super(BudgetedClient, self).iter_orders(*args, **kwargs))

    def accept_lines(self, *args: Any, **kwargs: Any) -> None:
        with self._budget("OR21"):
            super().accept_lines(*args, **kwargs)

    def update_tracking(self, *args: Any, **kwargs: Any) -> None:
        with self._budget("OR23"):
            super().update_tracking(*args, **kwargs)

    def ship(self, *args: Any, **kwargs: Any) -> None:
        with self._budget("OR24"):
            super().ship(*args, **kwargs)

    def refund(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OR28"):
            return super().refund(*args, **kwargs)

    def cancel(self, *args: Any, **kwargs: Any) -> None:
        with self._budget("OR29"):
            super().cancel(*args, **kwargs)

    def carriers(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("SH21"):
            return super().carriers(*args, **kwargs)

    def create_shipments(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("ST01"):
            return super().create_shipments(*args, **kwargs)

    def list_returns(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("RT11"):
            return super().list_returns(*args, **kwargs)

    def iter_returns(self, *args: Any, **kwargs: Any) -> Any:
        return self._listing("RT11", lambda: super(BudgetedClient, self).iter_returns(*args, **kwargs))

    def list_messages(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("M01"):
            return super().list_messages(*args, **kwargs)

    def iter_messages(self, *args: Any, **kwargs: Any) -> Any:
        return self._listing("M01", lambda: super(BudgetedClient, self).iter_messages(*args, **kwargs))

    def upload_order_documents(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OR74"):
            return super().upload_order_documents(*args, **kwargs)

    def list_order_documents(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OR72"):
            return super().list_order_documents(*args, **kwargs)

    def download_order_documents(self, *args: Any, **kwargs: Any) -> Any:
        with self._budget("OR73"):
            return super().download_order_documents(*args, **kwargs)


def load_settings(data: Any, channel_name: str) -> MiraklSettings:
    """The channel's settings, or a :class:`PermanentError` saying what is wrong with them."""
    try:
        return MiraklSettings.from_dict(dict(data))
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"channel {channel_name}: invalid Mirakl settings: {exc}") from None


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


#: OR11's largest page, pages one poll may read, and how many orders before its stopping point a
#: continued scan starts again (orders that left the polled states meanwhile shift later ones forward).
_PAGE_SIZE = 100
_MAX_PAGES_PER_POLL = 1_000

#: Seller-side states of an order still to be handled (accepted or refused, paid, shipped).
OPEN_STATES: tuple[str, ...] = ("WAITING_ACCEPTANCE", "WAITING_DEBIT", "WAITING_DEBIT_PAYMENT", "SHIPPING")
_RESUME_OVERLAP = 20


@dataclass(frozen=True, slots=True)
class _OrdersScan:
    """Where an OR11 scan stands: its ``start_update_date``, the offset to resume at, and the newest
    ``last_updated_date`` seen so far. Encoded in the orders cursor as the bare ISO watermark (a scan
    to start) or ``ISO|offset|newest-ISO`` (a scan to continue)."""

    start: datetime
    offset: int = 0
    newest: datetime | None = None

    @classmethod
    def parse(cls, cursor: str | None, default_start: datetime) -> _OrdersScan:
        if not cursor:
            return cls(default_start)
        parts = cursor.split("|")
        if len(parts) == 1:
            return cls(datetime.fromisoformat(parts[0]))
        if len(parts) != 3:
            raise PermanentError(f"unreadable Mirakl orders cursor {cursor!r}")
        try:
            return cls(datetime.fromisoformat(parts[0]), int(parts[1]), _parse_ts(parts[2] or None))
        except ValueError:
            raise PermanentError(f"unreadable Mirakl orders cursor {cursor!r}") from None

    def encode(self) -> str:
        newest = self.newest.isoformat() if self.newest is not None else ""
        return f"{self.start.isoformat()}|{self.offset}|{newest}"


class MiraklConnector:
    """The :class:`~tradelane.connectors.base.MarketplaceConnector` of one Mirakl shop.

    Raises :class:`PermanentError` when the channel's settings are invalid or the account in use has no
    API key. ``http`` (tests, sandboxes in-process) is used as it is and never closed here."""

    name = CONNECTOR

    def __init__(self, env: ConnectorEnv, *, http: httpx.Client | None = None) -> None:
        self.env = env
        self.settings = load_settings(env.settings, env.channel_name)
        self.capabilities = mirakl_capabilities(self.settings)
        hostname, shop_id = self.settings.hostname, self.settings.shop_id
        api_key = env.credentials.get("api_key")
        if env.testing and self.settings.staging_hostname:
            # In Testing, every flow runs against the staging/test account next to the live one.
            hostname, shop_id = self.settings.staging_hostname, self.settings.staging_shop_id
            api_key = env.credentials.get("staging_api_key")
        if not api_key:
            raise PermanentError(f"channel {env.channel_name} has no Mirakl API key for {hostname}")
        self._account = (hostname, str(api_key), shop_id)
        self._http = http
        self._client: BudgetedClient | None = None

    @property
    def client(self) -> BudgetedClient:
        """Built on first use; every public call takes its operation's budget first."""
        if self._client is None:
            hostname, api_key, shop_id = self._account
            self._client = BudgetedClient(
                hostname,
                api_key,
                shop_id,
                throttle=self.env.throttle,
                hold=self.env.hold,
                http=self._http,
                timeout=self.settings.timeout_seconds,
                on_exchange=self.env.on_exchange,
                clock=self.env.now,
            )
        return self._client

    # --- orders ------------------------------------------------------------------------------

    def fetch_orders(self, cursor: str | None, *, now: datetime) -> OrderChanges:
        """OR11, page after page, from the watermark in ``cursor`` (an ISO ``start_update_date``; None:
        the initial look-back). One version per order (the newest: a duplicated page yields an order
        twice), offer SKUs mapped to catalog SKUs and the acceptance deadline filled in.

        Each page takes a token of OR11's budget (Mirakl counts every call). When the budget or a 429
        stops the read after at least one page, the orders read so far are returned with a
        *continuation* cursor (:class:`_OrdersScan`): the next poll resumes the same scan a few orders
        before where this one stopped (orders leaving the polled states shift later ones forward), so
        a backlog of more than a page is taken in one page per budget token instead of never. Once a
        scan reaches its end, the next watermark is the newest ``last_updated_date`` it saw *minus the
        overlap*, never before its start, so an order updated at a page or time boundary is seen again
        rather than missed."""
        scan = _OrdersScan.parse(cursor, now - timedelta(hours=self.settings.initial_lookback_hours))
        latest: dict[str, MarketplaceOrder] = {}
        fetched = 0
        offset = scan.offset
        newest = scan.newest
        complete = False
        for _ in range(_MAX_PAGES_PER_POLL):
            try:
                page = self.client.list_orders(POLLED_STATES, scan.start, None, offset, _PAGE_SIZE)
            except RetryableError:
                if fetched == 0:
                    raise  # nothing read: the job is retried as before
                break
            fetched += len(page.orders)
            fresh = [o for o in page.orders if o.marketplace_order_id not in latest]
            if page.orders and not fresh:
                raise MiraklBadResponse(
                    f"OR11 paging returned only already-seen orders at offset {offset} "
                    f"(total_count {page.total_count}); the listing shifted or a page was replayed",
                    op="OR11",
                )
            for raw_order in page.orders:
                order = self._localise(raw_order)
                seen = latest.get(order.marketplace_order_id)
                if seen is None or order.updated_at >= seen.updated_at:
                    latest[order.marketplace_order_id] = order
                if newest is None or order.updated_at > newest:
                    newest = order.updated_at
            offset += len(page.orders)
            if not page.orders or offset >= page.total_count:
                complete = True
                break
        if complete:
            mark = scan.start
            if newest is not None:
                mark = max(scan.start, newest - timedelta(seconds=self.settings.poll_overlap_seconds))
            next_cursor = mark.isoformat()
        else:
            resume = max(0, offset - _RESUME_OVERLAP)
            next_cursor = _OrdersScan(scan.start, resume, newest).encode()
        return OrderChanges(
            orders=list(latest.values()), cursor=next_cursor, fetched=fetched, more=not complete
        )

    def open_orders(self, *, now: datetime, max_pages: int) -> OpenOrders:
        """OR11 filtered by the open ``order_state_codes`` (:data:`OPEN_STATES`) and no date at all, every
        page up to ``max_pages`` (then ``complete`` is False): an order waiting for years is counted too."""
        latest: dict[str, MarketplaceOrder] = {}
        offset = 0
        complete = False
        for _ in range(max(1, max_pages)):
            page = self.client.list_orders(OPEN_STATES, None, None, offset, _PAGE_SIZE)
            for raw_order in page.orders:
                latest[raw_order.marketplace_order_id] = self._localise(raw_order)
            offset += len(page.orders)
            if not page.orders or offset >= page.total_count:
                complete = True
                break
        return OpenOrders(
            orders=list(latest.values()),
            scope=f"OR11: every order in {', '.join(OPEN_STATES)}, whatever its date",
            complete=complete,
        )

    def _localise(self, order: MarketplaceOrder) -> MarketplaceOrder:
        """Catalog SKUs from offer SKUs (the channel's SKU template) and the acceptance deadline."""
        offer_settings = self.settings.offer_settings()
        lines = tuple(
            replace(line, product_sku=offer_settings.product_sku(line.offer_sku) or line.offer_sku)
            for line in order.lines
        )
        deadline = order.acceptance_deadline or order.created_at + timedelta(
            seconds=self.settings.acceptance_window_seconds
        )
        return replace(order, lines=lines, acceptance_deadline=deadline)

    def accept(self, order_id: str, decisions: Sequence[LineDecision]) -> None:
        """OR21 with a decision for every line. When Mirakl refuses it, OR11 tells whether an earlier
        OR21 took effect (its answer lost) or the order was refused/cancelled meanwhile
        (:class:`AcceptanceSettled`); an order still awaiting acceptance is retried
        (:class:`RetryableError`)."""
        try:
            self.client.accept_lines(order_id, {d.line_id: d.accept for d in decisions})
        except MiraklRequestRejected as exc:
            state = self._state_of(order_id)
            if state is None or state not in PAST_ACCEPTANCE_STATES | NOT_ACCEPTED_STATES:
                shown = "not found by OR11" if state is None else f"still {state.value}"
                raise RetryableError(
                    f"OR21 refused ({exc.reason}); the order is {shown}, will try again", raw=exc.raw
                ) from exc
            raise AcceptanceSettled(
                order_id,
                state,
                accepted=state in PAST_ACCEPTANCE_STATES,
                evidence=f"OR21 answered {exc.reason}",
            ) from exc

    def _state_of(self, order_id: str) -> OrderState | None:
        """The order's state as OR11 shows it now (``None``: OR11 does not know the order)."""
        found = list(self.client.iter_orders(order_ids=[order_id]))
        states = [o.state for o in found if o.marketplace_order_id == order_id]
        return states[0] if states else None

    # --- secondary feeds ---------------------------------------------------------------------

    def fetch_messages(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        """M01 since ``cursor`` (inclusive), every page (M01 lists newest first: a first page alone would
        lose the older ones). The next cursor is the newest message's date (None: nothing new).
        :class:`UnsupportedOperation` (before any call) when the operator does not offer messages."""
        if not self.settings.offers_module("messages"):
            raise UnsupportedOperation(self.name, Operation.FETCH_MESSAGES)
        messages = list(self.client.iter_messages(start_date=_parse_ts(cursor)))
        items = [
            FeedItem(
                order_id=m.order_id or "",
                item_id=str(m.message_id),
                occurred_at=m.created_at,
                raw=m.raw,
                data={"author": m.from_name, "subject": m.subject, "body": m.body},
            )
            for m in messages
        ]
        newest = max((m.created_at for m in messages), default=None)
        return FeedChanges(items=items, cursor=newest.isoformat() if newest else None)

    def fetch_returns(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        """RT11 updated since ``cursor``, every page. The next cursor re-reads a little of the past (the
        overlap) so a return updated at the boundary is never missed (None: nothing new).
        :class:`UnsupportedOperation` (before any call) when the operator does not offer returns."""
        if not self.settings.offers_module("returns"):
            raise UnsupportedOperation(self.name, Operation.FETCH_RETURNS)
        found = list(self.client.iter_returns(updated_from=_parse_ts(cursor)))
        items = [
            FeedItem(
                order_id=r.order_id,
                item_id=r.return_id,
                occurred_at=r.updated_at,
                raw=r.raw,
                data={
                    "state": r.state,
                    "rma": r.rma,
                    "lines": [
                        {
                            "order_line_id": ln.order_line_id,
                            "quantity": ln.quantity,
                            "reason_code": ln.reason_code,
                        }
                        for ln in r.lines
                    ],
                },
            )
            for r in found
        ]
        newest = max((r.updated_at for r in found), default=None)
        mark = newest - timedelta(seconds=self.settings.poll_overlap_seconds) if newest else None
        return FeedChanges(items=items, cursor=mark.isoformat() if mark else None)

    # --- offers and fulfilment (mapping in .offers_port / .fulfilment_port) ---------------------

    def submit_offers(self, offers: Sequence[OfferUpdate], mode: SubmitMode) -> ImportRef:
        return offers_port.submit_offers(self.client, self.settings, offers, mode)

    def import_result(self, ref: ImportRef) -> ImportResult:
        return offers_port.import_result(self.client, self.settings, ref)

    def list_offers(self) -> Sequence[ListedOffer]:
        return offers_port.list_offers(self.client, self.settings)

    def ship(self, shipment: Shipment) -> None:
        fulfilment_port.ship(self.client, self.settings, shipment)

    def cancel(self, cancellation: Cancellation) -> None:
        fulfilment_port.cancel(self.client, self.settings, cancellation)

    def refund(self, refund: Refund) -> None:
        fulfilment_port.refund(self.client, self.settings, refund)

    def plan_ship(self, shipment: Shipment, order_lines: Mapping[str, int]) -> list[PlannedRequest]:
        """The OR23/OR24 (or ST01) requests :meth:`ship` would make; nothing is sent."""
        return fulfilment_port.plan_ship(self.settings, shipment)

    def plan_cancel(self, cancellation: Cancellation) -> list[PlannedRequest]:
        """The OR29 request :meth:`cancel` would make; nothing is sent."""
        return fulfilment_port.plan_cancel(self.settings, cancellation)

    def upload_document(self, document: Document) -> None:
        fulfilment_port.upload_document(self.client, self.settings, document)

    def carrier_codes(self) -> set[str]:
        """SH21: the carrier codes the operator knows (see the fulfilment service's carrier directory)."""
        return fulfilment_port.carrier_codes(self.client)

    def document_present(self, document: Document) -> bool:
        """OR72: whether the order already holds this document (an earlier upload may have landed)."""
        return fulfilment_port.document_present(self.client, self.settings, document)

    # --- account -----------------------------------------------------------------------------

    def set_holiday(self, start: datetime | None, end: datetime | None) -> None:
        """A02: close the shop from ``start`` to ``end`` (both None: reopen)."""
        if (start is None) != (end is None):
            raise ValueError("a closing period needs both a start and an end (or neither, to reopen)")
        if start is not None and end is not None and end <= start:
            raise ValueError(
                f"closing period ends ({end.isoformat()}) before it starts ({start.isoformat()})"
            )
        self.client.set_closing_period(start, end)

    def current_holiday(self) -> tuple[datetime | None, datetime | None] | None:
        """A01: the shop's ``closed_from`` / ``closed_to`` as the marketplace holds them (None: unset)."""
        raw = self.client.account().raw
        return _parse_ts(raw.get("closed_from")), _parse_ts(raw.get("closed_to"))

    def staging_account(self) -> str | None:
        """The staging host and shop while in Testing with a staging account, else None (live)."""
        if self.env.testing and self.settings.staging_hostname:
            return f"{self.settings.staging_hostname} shop {self.settings.staging_shop_id or '(key default)'}"
        return None

    def check(self) -> CheckReport:
        """A01 on the account in use: wrong host or shop, rejected key, unreachable told apart."""
        result = self.client.check()
        if result.ok:
            details = {}
            if result.account is not None:
                details = {"shop_id": result.account.shop_id, "shop_name": result.account.shop_name}
            return CheckReport(CheckOutcome.OK, result.message, details)
        return CheckReport(_CHECK_OUTCOMES.get(result.problem, CheckOutcome.REJECTED), result.message)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


_CHECK_OUTCOMES: dict[CheckProblem | None, CheckOutcome] = {
    CheckProblem.WRONG_KEY: CheckOutcome.BAD_CREDENTIALS,
    CheckProblem.WRONG_SHOP: CheckOutcome.BAD_ACCOUNT,
    CheckProblem.WRONG_HOST: CheckOutcome.BAD_ACCOUNT,
    CheckProblem.UNREACHABLE: CheckOutcome.UNREACHABLE,
    CheckProblem.SERVER_ERROR: CheckOutcome.UNREACHABLE,
    CheckProblem.RATE_LIMITED: CheckOutcome.REJECTED,
}


def mirakl_connector(env: ConnectorEnv) -> MiraklConnector:
    """The registry's factory."""
    return MiraklConnector(env)
