"""Synchronous client for the Mirakl seller (shop) API — one method per operation tradelane uses.

Every method either returns a typed result (:mod:`.models`; raw JSON kept in ``raw``) or raises a
:class:`~tradelane.domain.errors.RetryableError` / :class:`~tradelane.domain.errors.PermanentError`
subclass from :mod:`.errors` (classification table in :mod:`.transport`). The client never sleeps or
retries: the sync engine owns retries and rate limits (:mod:`.limits`).

Operation ids and shapes follow ``shared/specs/mirakl/mirakl-mmp-seller-openapi.json`` (beside the
project). Offset pagination (OR11, OF21, M01) uses Mirakl's ``offset``/``max`` query parameters and
seek pagination (RT11) ``limit``/``page_token``; the spec mentions both styles without listing those
parameters.
"""

from __future__ import annotations

import functools
import json
import re
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message as _MimeHeader
from enum import StrEnum
from typing import Any, Literal, Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from tradelane.connectors.mirakl._payload import format_datetime
from tradelane.connectors.mirakl.errors import (
    MiraklAuthError,
    MiraklBadResponse,
    MiraklForbidden,
    MiraklHostNotFound,
    MiraklNotFound,
    MiraklPermanentError,
    MiraklRateLimited,
    MiraklRequestRejected,
    MiraklRetryableError,
    MiraklSchemaError,
    MiraklServerError,
    MiraklShopAccessDenied,
    MiraklUnreachable,
)
from tradelane.connectors.mirakl.mapping import MiraklOrderState, OfferImportMode
from tradelane.connectors.mirakl.models import (
    Account,
    Carrier,
    DocumentUpload,
    DocumentUploadError,
    DownloadedFile,
    Message,
    MessagesPage,
    Offer,
    OfferImportStatus,
    OffersPage,
    OrderDocument,
    OrdersPage,
    Refund,
    RefundRequest,
    Return,
    ReturnsPage,
    ShipmentRequest,
    ShipmentsResult,
    parse_account,
    parse_carriers,
    parse_document_upload_errors,
    parse_error_report,
    parse_import_id,
    parse_messages_page,
    parse_offer_import_status,
    parse_offers_page,
    parse_order_documents,
    parse_orders_page,
    parse_refunds,
    parse_returns_page,
    parse_shipments_result,
)
from tradelane.connectors.mirakl.transport import MiraklTransport, Reply, normalize_base_url
from tradelane.domain.orders import MarketplaceOrder
from tradelane.http_edge import ExchangeHook

#: Mirakl's ceiling for ``max`` on offset-paginated lists.
MAX_PAGE_SIZE = 100
#: Safety stop for ``iter_*``: more pages than this means paging is broken, not a big shop.
MAX_PAGES = 10_000
DEFAULT_TIMEOUT = 30.0

T = TypeVar("T")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle costs ~50 ms, far more than a call."""
    return httpx.create_ssl_context()


class CheckProblem(StrEnum):
    """What :meth:`MiraklClient.check` found wrong."""

    WRONG_HOST = "wrong_host"  # DNS failure, or the host answers but is not a Mirakl API
    WRONG_KEY = "wrong_key"  # 401: the API key is rejected
    WRONG_SHOP = "wrong_shop"  # the key works but not for the configured shop id
    UNREACHABLE = "unreachable"  # refused / timed out / TLS failure
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of :meth:`MiraklClient.check`: ``ok`` with the ``account``, or a ``problem`` and a
    message meant for the person configuring the channel; ``error`` is the underlying exception."""

    ok: bool
    message: str
    problem: CheckProblem | None = None
    account: Account | None = None
    error: Exception | None = None


class MiraklClient:
    """Mirakl seller API for one shop.

    ``hostname``: the shop's API host (``myshop.mirakl.net``, https implied) or, for sandboxes and
    staging, a URL with scheme and port (``http://127.0.0.1:8765``); see :func:`normalize_base_url`.
    ``api_key`` is sent as the ``Authorization`` header; ``shop_id`` (digits) as the ``shop_id`` query
    parameter of every call, when given. An injected ``http`` client is used as it is (its ``base_url``,
    if set, wins over ``hostname``, and its timeout applies — ``timeout`` only configures the client
    this class creates, which :meth:`close` then closes). ``on_exchange`` receives an :class:`Exchange`
    after every request (also failed ones); ``clock`` (UTC now) serves Retry-After HTTP-dates.

    Raises ``ValueError`` for a malformed hostname, empty key or non-numeric shop id.
    """

    def __init__(
        self,
        hostname: str,
        api_key: str,
        shop_id: str | None,
        *,
        http: httpx.Client | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        on_exchange: ExchangeHook | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        base_url = normalize_base_url(hostname)
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("Mirakl API key is empty")
        if any(c in api_key for c in "\r\n"):
            raise ValueError("Mirakl API key contains a line break")
        if not (api_key.strip().isascii() and api_key.strip().isprintable()):
            # It travels in the Authorization header, which carries printable ASCII only.
            raise ValueError(
                "Mirakl API key must be printable ASCII (no accents, symbols or control characters)"
            )
        shop = None if shop_id is None or not str(shop_id).strip() else str(shop_id).strip()
        if shop is not None and not re.fullmatch(r"[0-9]{1,19}", shop):
            raise ValueError(f"Mirakl shop id must be a number, got {shop_id!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self._owns_http = http is None
        self._http = (
            http
            if http is not None
            else httpx.Client(timeout=timeout, follow_redirects=False, verify=_ssl_context())
        )
        self._transport = MiraklTransport(
            base_url,
            api_key.strip(),
            shop,
            http=self._http,
            on_exchange=on_exchange,
            clock=clock or (lambda: datetime.now(UTC)),
        )

    def __repr__(self) -> str:
        return f"MiraklClient({self.base_url!r}, shop_id={self.shop_id!r})"

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def shop_id(self) -> str | None:
        return self._transport.shop_id

    def close(self) -> None:
        """Close the HTTP client if this instance created it (an injected one is left open)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ account

    def account(self) -> Account:
        """A01 ``GET /api/account``."""
        return self._parse("A01", self._call("A01", "GET", "/api/account"), parse_account)

    def check(self) -> CheckResult:
        """Verify host, key and shop id with A01; never raises for a remote problem.

        Distinguishes: host not found (DNS) or not a Mirakl API (HTML/404/non-account answer) →
        ``WRONG_HOST``; 401 → ``WRONG_KEY``; no access to the configured shop (403, Mirakl 404/400 on
        it, or A01 naming another shop) → ``WRONG_SHOP`` — when the key was refused *with* a shop id,
        A01 is retried without it to tell a wrong key from a wrong shop; refused connection / timeout →
        ``UNREACHABLE``; 429 → ``RATE_LIMITED``; 5xx → ``SERVER_ERROR``.
        """
        host = urlsplit(self.base_url).netloc
        try:
            account = self.account()
        except MiraklHostNotFound as exc:
            return _problem(CheckProblem.WRONG_HOST, f"host {host!r} not found (DNS lookup failed)", exc)
        except MiraklUnreachable as exc:
            return _problem(CheckProblem.UNREACHABLE, f"cannot reach {self.base_url}: {exc.reason}", exc)
        except MiraklRateLimited as exc:
            return _problem(CheckProblem.RATE_LIMITED, f"{host} is rate limiting this key: {exc.reason}", exc)
        except MiraklServerError as exc:
            return _problem(CheckProblem.SERVER_ERROR, f"{host} failed: {exc.reason}", exc)
        except MiraklBadResponse as exc:
            return _problem(
                CheckProblem.WRONG_HOST,
                f"{host} answered, but not like a Mirakl API ({exc.reason}); check the hostname",
                exc,
            )
        except MiraklSchemaError as exc:
            return _problem(
                CheckProblem.WRONG_HOST,
                f"{host} answered /api/account with something that is not a Mirakl shop account "
                f"({exc.field_path}: {exc.problem}); check the hostname",
                exc,
            )
        except (MiraklAuthError, MiraklForbidden, MiraklNotFound, MiraklRequestRejected) as exc:
            return self._check_refusal(host, exc)
        if self.shop_id is not None and account.shop_id != self.shop_id:
            return CheckResult(
                ok=False,
                problem=CheckProblem.WRONG_SHOP,
                message=(
                    f"{host} answered for shop {account.shop_id} ({account.shop_name!r}), "
                    f"not for the configured shop id {self.shop_id}"
                ),
                account=account,
            )
        return CheckResult(
            ok=True,
            message=f"connected to shop {account.shop_id} ({account.shop_name!r}) on {host}",
            account=account,
        )

    def set_closing_period(self, closed_from: datetime | None, closed_to: datetime | None) -> None:
        """A02 ``PUT /api/account`` with only ``closed_from`` / ``closed_to`` (the shop's holiday; both
        None reopen it). Mirakl answers 200 with an ``errors`` list for fields it refused: those raise
        :class:`MiraklRequestRejected` naming them."""
        body = {
            "closed_from": format_datetime(closed_from) if closed_from else None,
            "closed_to": format_datetime(closed_to) if closed_to else None,
        }
        reply = self._call("A02", "PUT", "/api/account", json_body=body)
        errors = (reply.data or {}).get("errors")
        if errors:
            problems = "; ".join(
                f"{e.get('field')}: {e.get('message')}" if isinstance(e, Mapping) else str(e) for e in errors
            )
            raise MiraklRequestRejected(
                f"A02 refused the closing period ({problems})", raw=reply.raw, status=reply.status, op="A02"
            )

    def _check_refusal(self, host: str, exc: MiraklPermanentError) -> CheckResult:
        status = exc.status or 0
        mirakl_answered = exc.mirakl_message is not None
        if 300 <= status < 400:
            return _problem(CheckProblem.WRONG_HOST, f"{host}: {exc.reason}", exc)
        if status == 404 and not mirakl_answered:
            return _problem(
                CheckProblem.WRONG_HOST,
                f"{host} answered HTTP 404 on /api/account without a Mirakl error: not a Mirakl API host",
                exc,
            )
        if self.shop_id is None:
            if status == 401:
                return _problem(CheckProblem.WRONG_KEY, f"API key rejected by {host} (HTTP 401)", exc)
            if status == 403:
                return _problem(
                    CheckProblem.WRONG_KEY, "API key may not read the shop account (HTTP 403)", exc
                )
            return _problem(CheckProblem.WRONG_HOST, f"{host} refused /api/account: {exc.reason}", exc)
        # A shop id was sent: find out whether the key works without it.
        try:
            default = self._parse(
                "A01", self._call("A01", "GET", "/api/account", shop_scoped=False), parse_account
            )
        except MiraklAuthError as probe_exc:
            return _problem(CheckProblem.WRONG_KEY, f"API key rejected by {host} (HTTP 401)", probe_exc)
        except MiraklForbidden as probe_exc:
            return _problem(
                CheckProblem.WRONG_KEY,
                "API key may not read the shop account, with or without the shop id (HTTP 403)",
                probe_exc,
            )
        except (MiraklRetryableError, MiraklPermanentError):
            if status == 401:
                return _problem(CheckProblem.WRONG_KEY, f"API key rejected by {host} (HTTP 401)", exc)
            return _problem(
                CheckProblem.WRONG_SHOP, f"no access to shop id {self.shop_id} on {host}: {exc.reason}", exc
            )
        return _problem(
            CheckProblem.WRONG_SHOP,
            f"the API key works (its default shop is {default.shop_id}, {default.shop_name!r}) "
            f"but not for the configured shop id {self.shop_id}: {exc.reason}",
            exc,
        )

    # ------------------------------------------------------------------------------------- offers

    def import_offers(
        self,
        csv_bytes: bytes,
        mode: OfferImportMode | str = OfferImportMode.NORMAL,
        *,
        with_products: bool = False,
        file_name: str = "offers.csv",
    ) -> int:
        """OF01 ``POST /api/offers/imports`` (multipart ``file`` + ``import_mode``) → import id.
        Mirakl returns the existing import's id when it detects a duplicate request."""
        import_mode = OfferImportMode(mode)
        if not csv_bytes:
            raise ValueError("the offers file is empty")
        reply = self._call(
            "OF01",
            "POST",
            "/api/offers/imports",
            files=[("file", (file_name, csv_bytes, "text/csv"))],
            data={"import_mode": import_mode.value, "with_products": "true" if with_products else "false"},
        )
        return self._parse("OF01", reply, parse_import_id)

    def offer_import_status(self, import_id: int) -> OfferImportStatus:
        """OF02 ``GET /api/offers/imports/{import}``."""
        return self._parse(
            "OF02",
            self._call("OF02", "GET", f"/api/offers/imports/{int(import_id)}"),
            parse_offer_import_status,
        )

    def offer_import_error_report(self, import_id: int) -> tuple[dict[str, str], ...]:
        """OF03 ``GET /api/offers/imports/{import}/error_report`` → rows keyed by CSV header (with
        ``error-message``, usually ``error-line``); feed them to
        :func:`~.mapping.error_report_rows_to_offer_errors`. Only call it when OF02 says
        ``has_error_report`` (Mirakl answers 404 otherwise)."""
        reply = self._call(
            "OF03", "GET", f"/api/offers/imports/{int(import_id)}/error_report", expect="bytes"
        )
        text = reply.content.decode("utf-8-sig", errors="replace")
        return self._parse("OF03", reply, lambda _: parse_error_report(text))

    def list_offers(
        self,
        offset: int = 0,
        max: int = MAX_PAGE_SIZE,
        *,
        sku: str | None = None,
        offer_state_codes: Sequence[str] | None = None,
    ) -> OffersPage:
        """OF21 ``GET /api/offers`` — one page of the shop's offers."""
        _check_page(offset, max)
        params = {
            "offset": offset,
            "max": max,
            "sku": sku,
            "offer_state_codes": ",".join(offer_state_codes) if offer_state_codes else None,
        }
        return self._parse("OF21", self._call("OF21", "GET", "/api/offers", params=params), parse_offers_page)

    def iter_offers(self, *, page_size: int = MAX_PAGE_SIZE) -> Iterator[Offer]:
        """Every offer of the shop (OF21 pages until ``total_count``); see :meth:`iter_orders` for paging."""
        return _paged(
            "OF21",
            lambda offset, size: _items(self.list_offers(offset, size)),
            lambda offer: str(offer.offer_id),
            page_size,
        )

    def update_offers(self, offers: Sequence[Mapping[str, Any]]) -> int:
        """OF24 ``POST /api/offers`` with ``offers`` (see :func:`~.mapping.offer_update_json`) → import id
        (track it with :meth:`offer_import_status`). Fields not sent are reset by Mirakl."""
        if not offers:
            raise ValueError("no offers to update")
        reply = self._call("OF24", "POST", "/api/offers", json_body={"offers": list(offers)})
        return self._parse("OF24", reply, parse_import_id)

    # ------------------------------------------------------------------------------------- orders

    def list_orders(
        self,
        states: Iterable[MiraklOrderState | str] | None = None,
        start_update_date: datetime | None = None,
        end_update_date: datetime | None = None,
        offset: int = 0,
        max: int = MAX_PAGE_SIZE,
        order_ids: Sequence[str] | None = None,
    ) -> OrdersPage:
        """OR11 ``GET /api/orders`` — one page (``max`` <= 100), orders mapped by
        :func:`~.mapping.order_from_mirakl`; any unmappable order fails the page with a
        :class:`MiraklSchemaError` naming ``orders[i].field``. Dates must be timezone-aware."""
        _check_page(offset, max)
        state_codes = [MiraklOrderState(s).value for s in states] if states is not None else []
        if order_ids is not None and len(order_ids) > MAX_PAGE_SIZE:
            raise ValueError(f"at most {MAX_PAGE_SIZE} order ids per OR11 call, got {len(order_ids)}")
        params = {
            "order_state_codes": ",".join(state_codes) or None,
            "start_update_date": format_datetime(start_update_date) if start_update_date else None,
            "end_update_date": format_datetime(end_update_date) if end_update_date else None,
            "order_ids": ",".join(order_ids) if order_ids else None,
            "offset": offset,
            "max": max,
            "paginate": True,
        }
        return self._parse("OR11", self._call("OR11", "GET", "/api/orders", params=params), parse_orders_page)

    def iter_orders(
        self,
        states: Iterable[MiraklOrderState | str] | None = None,
        start_update_date: datetime | None = None,
        end_update_date: datetime | None = None,
        order_ids: Sequence[str] | None = None,
        *,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[MarketplaceOrder]:
        """All OR11 orders matching the filters, page after page (``offset`` += page length) until a page
        is empty or ``total_count`` is reached — so exactly ``total_count / page_size`` calls when it
        divides. An order seen on an earlier page is not yielded again; a whole page of already-seen
        orders means the listing shifted or a proxy replayed a page, and raises
        :class:`MiraklBadResponse` (retryable) rather than silently skipping orders."""
        state_list = list(states) if states is not None else None
        return _paged(
            "OR11",
            lambda offset, size: _items(
                self.list_orders(state_list, start_update_date, end_update_date, offset, size, order_ids)
            ),
            lambda order: order.marketplace_order_id,
            page_size,
        )

    def accept_lines(self, order_id: str, decisions: Mapping[str, bool]) -> None:
        """OR21 ``PUT /api/orders/{order_id}/accept``: order line id → accept (True) / refuse (False).
        Mirakl wants a decision for every line of the order."""
        if not decisions:
            raise ValueError("no order line decisions given")
        body = {"order_lines": [{"id": line_id, "accepted": bool(ok)} for line_id, ok in decisions.items()]}
        self._call("OR21", "PUT", f"/api/orders/{_seg(order_id)}/accept", json_body=body, expect="empty")

    def update_tracking(
        self,
        order_id: str,
        carrier_code: str | None = None,
        carrier_name: str | None = None,
        carrier_url: str | None = None,
        tracking_number: str | None = None,
    ) -> None:
        """OR23 ``PUT /api/orders/{order_id}/tracking``. A registered carrier needs ``carrier_code``
        (validate it against :meth:`carriers`), an unregistered one ``carrier_name`` (and optionally
        ``carrier_url``)."""
        body = tracking_body(carrier_code, carrier_name, carrier_url, tracking_number)
        self._call("OR23", "PUT", tracking_path(order_id), json_body=body, expect="empty")

    def ship(self, order_id: str) -> None:
        """OR24 ``PUT /api/orders/{order_id}/ship`` — confirm shipment of an order in SHIPPING."""
        self._call("OR24", "PUT", ship_path(order_id), expect="empty")

    def refund(
        self, refunds: Sequence[RefundRequest], *, order_tax_mode: str | None = None
    ) -> tuple[Refund, ...]:
        """OR28 ``PUT /api/orders/refund`` → the refunds Mirakl created."""
        if not refunds:
            raise ValueError("no refunds given")
        body: dict[str, Any] = {"refunds": [r.as_json() for r in refunds]}
        if order_tax_mode is not None:
            body["order_tax_mode"] = order_tax_mode
        return self._parse(
            "OR28", self._call("OR28", "PUT", "/api/orders/refund", json_body=body), parse_refunds
        )

    def cancel(self, order_id: str) -> None:
        """OR29 ``PUT /api/orders/{order_id}/cancel`` — cancel a whole order."""
        self._call("OR29", "PUT", cancel_path(order_id), expect="empty")

    # ---------------------------------------------------------------------------------- shipping

    def carriers(self) -> tuple[Carrier, ...]:
        """SH21 ``GET /api/shipping/carriers`` (sorted by label by Mirakl)."""
        return self._parse("SH21", self._call("SH21", "GET", "/api/shipping/carriers"), parse_carriers)

    def create_shipments(self, shipments: Sequence[ShipmentRequest]) -> ShipmentsResult:
        """ST01 ``POST /api/shipments`` (at most 1000) — partial success: inspect ``result.errors``."""
        if not shipments:
            raise ValueError("no shipments given")
        if len(shipments) > 1000:
            raise ValueError(f"at most 1000 shipments per ST01 call, got {len(shipments)}")
        body = shipments_body(shipments)
        return self._parse(
            "ST01", self._call("ST01", "POST", "/api/shipments", json_body=body), parse_shipments_result
        )

    # ---------------------------------------------------------------------------- returns, messages

    def list_returns(
        self,
        *,
        states: Sequence[str] | None = None,
        order_commercial_ids: Sequence[str] | None = None,
        updated_from: datetime | None = None,
        updated_to: datetime | None = None,
        page_token: str | None = None,
        limit: int | None = None,
    ) -> ReturnsPage:
        """RT11 ``GET /api/returns`` — one page (seek pagination: pass back ``next_page_token``)."""
        if limit is not None and not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be within 1..{MAX_PAGE_SIZE}, got {limit}")
        params = {
            "return_state": list(states) if states else None,
            "order_commercial_id": list(order_commercial_ids) if order_commercial_ids else None,
            "return_last_updated_from": format_datetime(updated_from) if updated_from else None,
            "return_last_updated_to": format_datetime(updated_to) if updated_to else None,
            "page_token": page_token,
            "limit": limit,
        }
        return self._parse(
            "RT11", self._call("RT11", "GET", "/api/returns", params=params), parse_returns_page
        )

    def iter_returns(
        self,
        *,
        states: Sequence[str] | None = None,
        updated_from: datetime | None = None,
        updated_to: datetime | None = None,
    ) -> Iterator[Return]:
        """Every RT11 return matching the filters, following ``next_page_token`` (a repeated token
        raises :class:`MiraklBadResponse`)."""
        token: str | None = None
        seen_tokens: set[str] = set()
        for _ in range(MAX_PAGES):
            page = self.list_returns(
                states=states, updated_from=updated_from, updated_to=updated_to, page_token=token
            )
            yield from page.returns
            token = page.next_page_token
            if token is None:
                return
            if token in seen_tokens:
                raise MiraklBadResponse(f"RT11 paging repeats page token {token!r}", op="RT11")
            seen_tokens.add(token)
        raise MiraklBadResponse(f"RT11 paging did not end after {MAX_PAGES} pages", op="RT11")

    def list_messages(
        self,
        *,
        order_id: str | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        received: Literal["TRUE", "FALSE", "ALL"] | None = None,
        offset: int = 0,
        max: int = MAX_PAGE_SIZE,
    ) -> MessagesPage:
        """M01 ``GET /api/messages`` (deprecated by Mirakl in favour of M10/M11, still served)."""
        _check_page(offset, max)
        params = {
            "order_id": order_id,
            "start_date": format_datetime(start_date) if start_date else None,
            "end_date": format_datetime(end_date) if end_date else None,
            "received": received,
            "offset": offset,
            "max": max,
        }
        return self._parse(
            "M01", self._call("M01", "GET", "/api/messages", params=params), parse_messages_page
        )

    def iter_messages(
        self, *, start_date: datetime | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[Message]:
        """Every M01 message received since ``start_date`` (inclusive), page after page: a first page
        alone would hold only the newest messages (M01 sorts newest first) and lose the older ones."""
        return _paged(
            "M01",
            lambda offset, size: _message_items(
                self.list_messages(start_date=start_date, offset=offset, max=size)
            ),
            lambda message: str(message.message_id),
            page_size,
        )

    # ------------------------------------------------------------------------------ order documents

    def upload_order_documents(
        self, order_id: str, files: Sequence[DocumentUpload]
    ) -> tuple[DocumentUploadError, ...]:
        """OR74 ``POST /api/orders/{order_id}/documents`` → the documents Mirakl rejected (empty: all
        attached). File names must be distinct US-ASCII; at most 50 documents per order."""
        if not files:
            raise ValueError("no documents given")
        if len(files) > 50:
            raise ValueError(f"an order holds at most 50 documents, got {len(files)}")
        names = [f.file_name for f in files]
        if len(set(names)) != len(names):
            raise ValueError("document file names must be distinct")
        for name in names:
            if not name or not name.isascii() or any(c in name for c in '"\r\n/\\'):
                raise ValueError(f"document file name must be plain US-ASCII: {name!r}")
        details = {"order_documents": [{"file_name": f.file_name, "type_code": f.type_code} for f in files]}
        parts: list[tuple[str, tuple[str | None, bytes, str]]] = [
            ("files", (f.file_name, f.content, f.content_type)) for f in files
        ]
        parts.append(("order_documents", (None, json.dumps(details).encode("utf-8"), "application/json")))
        reply = self._call("OR74", "POST", f"/api/orders/{_seg(order_id)}/documents", files=parts)
        return self._parse("OR74", reply, parse_document_upload_errors)

    def list_order_documents(self, order_ids: Sequence[str]) -> tuple[OrderDocument, ...]:
        """OR72 ``GET /api/orders/documents?order_ids=...``."""
        if not order_ids:
            raise ValueError("no order ids given")
        reply = self._call("OR72", "GET", "/api/orders/documents", params={"order_ids": ",".join(order_ids)})
        return self._parse("OR72", reply, parse_order_documents)

    def download_order_documents(
        self,
        *,
        document_ids: Sequence[int] | None = None,
        order_ids: Sequence[str] | None = None,
        document_codes: Sequence[str] | None = None,
    ) -> DownloadedFile:
        """OR73 ``GET /api/orders/documents/download`` — one document as is, several as a ZIP."""
        if not document_ids and not order_ids:
            raise ValueError("document_ids or order_ids is required")
        params = {
            "document_ids": ",".join(str(int(i)) for i in document_ids) if document_ids else None,
            "order_ids": ",".join(order_ids) if order_ids else None,
            "document_codes": ",".join(document_codes) if document_codes else None,
        }
        reply = self._call("OR73", "GET", "/api/orders/documents/download", params=params, expect="bytes")
        return DownloadedFile(
            content=reply.content,
            content_type=reply.headers.get("content-type"),
            file_name=_attachment_name(reply.headers.get("content-disposition")),
        )

    # ---------------------------------------------------------------------------------- internals

    def _call(self, op: str, method: str, path: str, **kwargs: Any) -> Reply:
        return self._transport.call(op, method, path, **kwargs)

    @staticmethod
    def _parse(op: str, reply: Reply, parser: Callable[[Mapping[str, Any]], T]) -> T:
        try:
            return parser(reply.data or {})
        except MiraklSchemaError as exc:
            error = MiraklSchemaError(exc.field_path, exc.problem, raw=reply.raw, op=op)
            error.status = reply.status
            raise error from None


def _problem(problem: CheckProblem, message: str, error: Exception) -> CheckResult:
    return CheckResult(ok=False, problem=problem, message=message, error=error)


def _check_page(offset: int, size: int) -> None:
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"max must be within 1..{MAX_PAGE_SIZE}, got {size}")


def _items(page: OrdersPage | OffersPage) -> tuple[Sequence[Any], int]:
    if isinstance(page, OrdersPage):
        return page.orders, page.total_count
    return page.offers, page.total_count


def _message_items(page: MessagesPage) -> tuple[Sequence[Message], int]:
    return page.messages, page.total_count


def _paged(
    op: str,
    fetch: Callable[[int, int], tuple[Sequence[T], int]],
    key: Callable[[T], str],
    page_size: int,
) -> Iterator[T]:
    _check_page(0, page_size)
    seen: set[str] = set()
    offset = 0
    for _ in range(MAX_PAGES):
        items, total = fetch(offset, page_size)
        fresh = [item for item in items if key(item) not in seen]
        if items and not fresh:
            raise MiraklBadResponse(
                f"{op} paging returned only already-seen items at offset {offset} (total_count {total}); "
                "the listing shifted or a page was replayed — retry the whole run",
                op=op,
            )
        for item in fresh:
            seen.add(key(item))
            yield item
        offset += len(items)
        if not items or offset >= total:
            return
    raise MiraklBadResponse(f"{op} paging did not end after {MAX_PAGES} pages", op=op)


# --- request shapes (pure; shared by the calls and by fulfilment_port's request plans) ------------


def tracking_path(order_id: str) -> str:
    """OR23's path."""
    return f"/api/orders/{_seg(order_id)}/tracking"


def ship_path(order_id: str) -> str:
    """OR24's path."""
    return f"/api/orders/{_seg(order_id)}/ship"


def cancel_path(order_id: str) -> str:
    """OR29's path."""
    return f"/api/orders/{_seg(order_id)}/cancel"


def tracking_body(
    carrier_code: str | None, carrier_name: str | None, carrier_url: str | None, tracking_number: str | None
) -> dict[str, str]:
    """OR23's body: the values given (a registered carrier's ``carrier_code``, or an unregistered one's
    ``carrier_name`` with an optional ``carrier_url``)."""
    if not carrier_code and not carrier_name:
        raise ValueError("carrier_code (registered carrier) or carrier_name (unregistered) is required")
    return {
        key: value
        for key, value in (
            ("carrier_code", carrier_code),
            ("carrier_name", carrier_name),
            ("carrier_url", carrier_url),
            ("tracking_number", tracking_number),
        )
        if value
    }


def shipments_body(shipments: Sequence[ShipmentRequest]) -> dict[str, Any]:
    """ST01's body."""
    return {"shipments": [s.as_json() for s in shipments]}


def _seg(value: str) -> str:
    """One URL path segment (Mirakl order ids are like ``ORDER-1-A`` but never trust input)."""
    if not value:
        raise ValueError("identifier must not be empty")
    return quote(value, safe="")


def _attachment_name(disposition: str | None) -> str | None:
    if not disposition:
        return None
    header = _MimeHeader()
    header["content-disposition"] = disposition
    name = header.get_filename()
    return name or None


__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_PAGE_SIZE",
    "CheckProblem",
    "CheckResult",
    "MiraklAuthError",
    "MiraklBadResponse",
    "MiraklClient",
    "MiraklForbidden",
    "MiraklHostNotFound",
    "MiraklNotFound",
    "MiraklPermanentError",
    "MiraklRateLimited",
    "MiraklRequestRejected",
    "MiraklRetryableError",
    "MiraklSchemaError",
    "MiraklServerError",
    "MiraklShopAccessDenied",
    "MiraklUnreachable",
    "OfferImportMode",
    "normalize_base_url",
]
