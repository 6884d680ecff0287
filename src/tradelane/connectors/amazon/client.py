"""SP-API client: one method per remote operation, every call through the shared HTTP edge.

Before each SP-API call the client calls ``throttle(op)`` (the channel's durable budget) and after it
reports the :class:`~tradelane.http_edge.Exchange` to ``on_exchange`` (feed documents' presigned URLs
are shown without their signature). Classification:

==========================================  ====================================================
what happened                               raised
==========================================  ====================================================
no answer (DNS, refused, timeout, TLS)      :class:`AmazonUnreachable` (retryable)
429 ``QuotaExceeded``                       :class:`AmazonThrottled`, ``retry_after`` from
                                            ``Retry-After``, else the operation's refill time
                                            (1 / rate, the rate read from the answer's
                                            ``x-amzn-RateLimit-Limit`` or the usage plan)
5xx, 408, 425                               :class:`AmazonRetryable` (``Retry-After`` honoured)
401, 403 ``Unauthorized``                   the access token is renewed and the call made once
                                            more; rejected again → :class:`AmazonAuthError`
400 ``InvalidInput``, 413, 415, other 4xx   :class:`AmazonRejected` with Amazon's messages
404                                         :class:`AmazonNotFound`
2xx HTML, empty, garbage or truncated JSON  :class:`AmazonBadResponse` (retryable)
2xx JSON that breaks the model              :class:`AmazonSchemaError` (permanent, with the path)
==========================================  ====================================================

Every answer's ``x-amzn-RateLimit-Limit`` is recorded in :attr:`AmazonClient.rate_limits` and passed
to ``on_rate_limit`` (the connector corrects its budgets with it); a 429's wait is passed to
``on_throttled`` before :class:`AmazonThrottled` is raised (the hub holds the operation's budget).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from tradelane import __version__
from tradelane.connectors.amazon.auth import LwaAuth
from tradelane.connectors.amazon.errors import (
    AmazonAuthError,
    AmazonBadResponse,
    AmazonNotFound,
    AmazonRejected,
    AmazonRetryable,
    AmazonSchemaError,
    AmazonThrottled,
    AmazonUnreachable,
    AuthProblem,
)
from tradelane.connectors.amazon.settings import AmazonSettings
from tradelane.connectors.base import RateBudget
from tradelane.domain.errors import MAX_RETRY_AFTER_SECONDS
from tradelane.http_edge import (
    ExchangeHook,
    StatusClass,
    capture,
    excerpt,
    no_response,
    parse_retry_after,
    report,
    response_text,
    status_class,
)

log = logging.getLogger(__name__)

#: The default usage plans (rate per second, burst) of the operations used, from each model's
#: description (Orders 2026-01-01, Orders v0 confirmShipment, Feeds 2021-06-30, Listings 2021-08-01).
PUBLISHED_BUDGETS: Mapping[str, RateBudget] = {
    "searchOrders": RateBudget(0.0056, 20),
    "getOrder": RateBudget(0.5, 30),
    "confirmShipment": RateBudget(2.0, 10),
    "createFeedDocument": RateBudget(0.5, 15),
    "getFeedDocument": RateBudget(0.0222, 10),
    "createFeed": RateBudget(0.0083, 15),
    "getFeed": RateBudget(2.0, 15),
    "getListingsItem": RateBudget(5.0, 10),
    "putListingsItem": RateBudget(5.0, 10),
    "patchListingsItem": RateBudget(5.0, 5),
    "deleteListingsItem": RateBudget(5.0, 5),
    "searchListingsItems": RateBudget(5.0, 5),
}

#: Response body kept in an error's ``raw``.
RAW_EXCERPT_CHARS = 8_192
#: Content type of JSON_LISTINGS_FEED documents (createFeedDocument and the upload must agree).
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"
#: The most a listings search page may hold (searchListingsItems ``pageSize``).
LISTINGS_PAGE_SIZE = 20

ORDER_INCLUDED_DATA = ("BUYER", "RECIPIENT", "FULFILLMENT")


@dataclass(frozen=True, slots=True)
class Reply:
    """A 2xx answer: the parsed JSON object (None for an empty answer) and the ``raw`` line + excerpt
    for errors raised while reading it."""

    status: int
    data: dict[str, Any] | None
    raw: str
    headers: httpx.Headers


class AmazonClient:
    """The SP-API operations tradelane uses, for one seller in one marketplace."""

    def __init__(
        self,
        settings: AmazonSettings,
        auth: LwaAuth,
        *,
        http: httpx.Client,
        clock: Callable[[], datetime],
        throttle: Callable[[str], None],
        on_exchange: ExchangeHook | None = None,
        on_rate_limit: Callable[[str, float], None] | None = None,
        on_throttled: Callable[[str, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        self._http = http
        self._clock = clock
        self._throttle = throttle
        self._on_exchange = on_exchange
        self._on_rate_limit = on_rate_limit
        self._on_throttled = on_throttled
        self._base = settings.api_url
        #: The latest ``x-amzn-RateLimit-Limit`` seen per operation (requests per second).
        self.rate_limits: dict[str, float] = {}

    # ------------------------------------------------------------------------------------- orders

    def search_orders(
        self,
        *,
        last_updated_after: datetime,
        pagination_token: str | None = None,
        max_results: int = 100,
    ) -> dict[str, Any]:
        """One page of searchOrders (2026-01-01) for the channel's marketplace, merchant-fulfilled."""
        params: dict[str, str] = {
            "lastUpdatedAfter": _iso(last_updated_after),
            "marketplaceIds": self.settings.marketplace_id,
            "fulfilledBy": "MERCHANT",
            "maxResultsPerPage": str(max_results),
            "includedData": ",".join(ORDER_INCLUDED_DATA),
        }
        if pagination_token:
            params["paginationToken"] = pagination_token
        reply = self._call("searchOrders", "GET", "/orders/2026-01-01/orders", params=params)
        data = _object(reply, "searchOrders")
        if not isinstance(data.get("orders"), list):
            raise AmazonSchemaError("$.orders", "missing or not an array", raw=reply.raw, op="searchOrders")
        return data

    def get_order(self, order_id: str) -> dict[str, Any]:
        """getOrder (2026-01-01) with the buyer, recipient and fulfilment data; the ``order`` object."""
        reply = self._call(
            "getOrder",
            "GET",
            f"/orders/2026-01-01/orders/{_segment(order_id)}",
            params={"includedData": ",".join(ORDER_INCLUDED_DATA)},
        )
        order = _object(reply, "getOrder").get("order")
        if not isinstance(order, dict):
            raise AmazonSchemaError("$.order", "missing or not an object", raw=reply.raw, op="getOrder")
        return order

    def confirm_shipment(self, order_id: str, package_detail: Mapping[str, Any]) -> None:
        """confirmShipment (v0): one package of an order shipped (204 on success)."""
        body = shipment_confirmation_body(self.settings.marketplace_id, package_detail)
        self._call(
            "confirmShipment", "POST", shipment_confirmation_path(order_id), json_body=body, expect_body=False
        )

    # ----------------------------------------------------------------------------------- listings

    def _listing_path(self, sku: str) -> str:
        return f"/listings/2021-08-01/items/{_segment(self.settings.seller_id)}/{_segment(sku)}"

    def get_listings_item(
        self, sku: str, included: Sequence[str] = ("summaries", "offers", "fulfillmentAvailability", "issues")
    ) -> dict[str, Any]:
        """getListingsItem; :class:`AmazonNotFound` when the seller has no such SKU."""
        params = {"marketplaceIds": self.settings.marketplace_id, "includedData": ",".join(included)}
        reply = self._call("getListingsItem", "GET", self._listing_path(sku), params=params)
        return _object(reply, "getListingsItem")

    def put_listings_item(self, sku: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """putListingsItem: create or fully replace a listing (a ListingsItemSubmissionResponse)."""
        reply = self._call(
            "putListingsItem",
            "PUT",
            self._listing_path(sku),
            params={"marketplaceIds": self.settings.marketplace_id},
            json_body=body,
        )
        return _submission(reply, "putListingsItem")

    def patch_listings_item(self, sku: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """patchListingsItem: JSON patches on an existing listing (a ListingsItemSubmissionResponse)."""
        reply = self._call(
            "patchListingsItem",
            "PATCH",
            self._listing_path(sku),
            params={"marketplaceIds": self.settings.marketplace_id},
            json_body=body,
        )
        return _submission(reply, "patchListingsItem")

    def delete_listings_item(self, sku: str) -> dict[str, Any]:
        """deleteListingsItem (a ListingsItemSubmissionResponse)."""
        reply = self._call(
            "deleteListingsItem",
            "DELETE",
            self._listing_path(sku),
            params={"marketplaceIds": self.settings.marketplace_id},
        )
        return _submission(reply, "deleteListingsItem")

    def search_listings_items(
        self,
        page_token: str | None = None,
        *,
        included: Sequence[str] = ("summaries", "offers", "fulfillmentAvailability"),
        issue_severity: str | None = None,
    ) -> dict[str, Any]:
        """One page (:data:`LISTINGS_PAGE_SIZE`) of the seller's listings, by default with offers and
        quantities; ``issue_severity`` (``ERROR``, ``WARNING``) keeps only listings with such an issue."""
        params = {
            "marketplaceIds": self.settings.marketplace_id,
            "includedData": ",".join(included),
            "pageSize": str(LISTINGS_PAGE_SIZE),
        }
        if issue_severity is not None:
            params["withIssueSeverity"] = issue_severity
        if page_token:
            params["pageToken"] = page_token
        path = f"/listings/2021-08-01/items/{_segment(self.settings.seller_id)}"
        reply = self._call("searchListingsItems", "GET", path, params=params)
        data = _object(reply, "searchListingsItems")
        if not isinstance(data.get("items"), list):
            raise AmazonSchemaError(
                "$.items", "missing or not an array", raw=reply.raw, op="searchListingsItems"
            )
        return data

    # -------------------------------------------------------------------------------------- feeds

    def create_feed_document(self, content_type: str = FEED_CONTENT_TYPE) -> tuple[str, str]:
        """createFeedDocument → (feedDocumentId, presigned upload URL)."""
        reply = self._call(
            "createFeedDocument",
            "POST",
            "/feeds/2021-06-30/documents",
            json_body={"contentType": content_type},
        )
        data = _object(reply, "createFeedDocument")
        return (
            _string(data, "feedDocumentId", reply, "createFeedDocument"),
            _string(data, "url", reply, "createFeedDocument"),
        )

    def upload_feed_document(self, url: str, content: bytes, content_type: str = FEED_CONTENT_TYPE) -> None:
        """PUT the feed's content to the presigned URL (no SP-API token, no SP-API budget)."""
        self._send(
            "uploadFeedDocument",
            "PUT",
            url,
            content=content,
            headers={"Content-Type": content_type},
            expect_body=False,
            presigned=True,
        )

    def create_feed(self, feed_type: str, document_id: str) -> str:
        """createFeed → feedId."""
        body = {
            "feedType": feed_type,
            "marketplaceIds": [self.settings.marketplace_id],
            "inputFeedDocumentId": document_id,
        }
        reply = self._call("createFeed", "POST", "/feeds/2021-06-30/feeds", json_body=body)
        return _string(_object(reply, "createFeed"), "feedId", reply, "createFeed")

    def get_feed(self, feed_id: str) -> dict[str, Any]:
        """getFeed: the feed's ``processingStatus`` and, once DONE, ``resultFeedDocumentId``."""
        reply = self._call("getFeed", "GET", f"/feeds/2021-06-30/feeds/{_segment(feed_id)}")
        data = _object(reply, "getFeed")
        status = _string(data, "processingStatus", reply, "getFeed")
        if status not in ("CANCELLED", "DONE", "FATAL", "IN_PROGRESS", "IN_QUEUE"):
            raise AmazonSchemaError(
                "$.processingStatus", f"unknown status {status!r}", raw=reply.raw, op="getFeed"
            )
        return data

    def get_feed_document(self, document_id: str) -> bytes:
        """getFeedDocument, then the document itself (gunzipped when ``compressionAlgorithm`` says
        GZIP)."""
        reply = self._call("getFeedDocument", "GET", f"/feeds/2021-06-30/documents/{_segment(document_id)}")
        data = _object(reply, "getFeedDocument")
        url = _string(data, "url", reply, "getFeedDocument")
        compression = data.get("compressionAlgorithm")
        if compression not in (None, "GZIP"):
            raise AmazonSchemaError(
                "$.compressionAlgorithm",
                f"unknown algorithm {compression!r}",
                raw=reply.raw,
                op="getFeedDocument",
            )
        download = self._send("downloadFeedDocument", "GET", url, presigned=True, expect_body=False)
        content = download.content
        if compression == "GZIP":
            try:
                content = gzip.decompress(content)
            except (OSError, EOFError, zlib.error) as exc:
                raise AmazonBadResponse(
                    f"feed document {document_id} is not valid gzip (truncated?): {exc}",
                    op="downloadFeedDocument",
                ) from None
        return content

    # ---------------------------------------------------------------------------------- the edge

    def _call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        expect_body: bool = True,
    ) -> Reply:
        """One SP-API call (throttled, authenticated), renewing a rejected access token once."""
        content = dumps(json_body).encode("utf-8") if json_body is not None else None
        for attempt in (1, 2):
            self._throttle(op)
            token = self.auth.access_token()
            headers = {
                "x-amz-access-token": token,
                "Accept": "application/json",
                "User-Agent": f"tradelane/{__version__} (Language=Python)",
            }
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self._send(
                    op,
                    method,
                    f"{self._base}{path}",
                    params=params,
                    content=content,
                    headers=headers,
                    expect_body=expect_body,
                    secrets=(token,),
                )
            except _Unauthorized as exc:
                self.auth.invalidate(token)
                if attempt == 2:
                    raise AmazonAuthError(
                        f"Amazon denied {op} with a freshly issued access token: the app is not "
                        f"authorised for seller {self.settings.seller_id} in marketplace "
                        f"{self.settings.marketplace_id}, or lacks the role{exc.detail}",
                        AuthProblem.ACCESS_DENIED,
                        raw=exc.raw,
                        host=urlsplit(self._base).netloc,
                    ) from None
                continue
            return Reply(response.status_code, response.data, response.raw, response.headers)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        op: str,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect_body: bool = True,
        presigned: bool = False,
        secrets: Sequence[str] = (),
    ) -> _Answer:
        """One HTTP exchange, captured (secrets redacted; a presigned URL shown without its query)
        and classified."""
        request = self._http.build_request(method, url, params=params, content=content, headers=headers)
        shown_url = _without_query(str(request.url)) if presigned else str(request.url)
        started = time.perf_counter()
        try:
            response = self._http.send(request)
        except httpx.RequestError as exc:
            failure = no_response(exc, method=method, url=shown_url)
            exchange = capture(op, request, duration_ms=_ms(started), error=failure, secrets=secrets)
            report(self._on_exchange, replace(exchange, url=shown_url) if presigned else exchange)
            raise AmazonUnreachable(f"Amazon {failure.describe(op)}", op=op, raw=failure.raw) from exc
        text = response_text(response)
        exchange = capture(
            op, request, response, duration_ms=_ms(started), secrets=secrets, response_body=text
        )
        report(self._on_exchange, replace(exchange, url=shown_url) if presigned else exchange)
        self._read_rate_limit(op, response.headers)
        return self._classify(op, method, shown_url, response, text, expect_body)

    def _classify(
        self,
        op: str,
        method: str,
        url: str,
        response: httpx.Response,
        text: str,
        expect_body: bool,
    ) -> _Answer:
        status = response.status_code
        content_type = response.headers.get("content-type", "")
        raw = f"{method} {url} -> HTTP {status}" + (f" ({content_type})" if content_type else "")
        raw = f"{raw}\n{excerpt(text, RAW_EXCERPT_CHARS)}"
        kind = status_class(status)
        if kind is StatusClass.OK:
            return _Answer(
                status,
                _parse_body(op, status, text, content_type, raw, expect_body),
                raw,
                response.headers,
                response.content,
            )
        codes, messages = _sp_errors(text)
        said = "; ".join(messages)
        detail = f": {said}" if said else ""
        now = self._clock()
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
            if retry_after is None:
                retry_after = self.refill_seconds(op)
            if self._on_throttled is not None:
                self._on_throttled(op, retry_after)
            raise AmazonThrottled(
                f"throttled by Amazon on {op} (HTTP 429 {codes[0] if codes else 'QuotaExceeded'}); "
                f"retry after {retry_after:g}s",
                retry_after=retry_after,
                raw=raw,
                status=status,
                op=op,
            )
        if kind is StatusClass.RETRYABLE:
            raise AmazonRetryable(
                f"Amazon server error on {op} (HTTP {status}){detail}",
                retry_after=parse_retry_after(response.headers.get("retry-after"), now=now),
                raw=raw,
                status=status,
                op=op,
            )
        if status == 401 or (status == 403 and (not codes or "Unauthorized" in codes)):
            raise _Unauthorized(raw, detail)
        if status == 404:
            raise AmazonNotFound(
                f"not found on {op} (HTTP 404){detail}",
                raw=raw,
                status=status,
                op=op,
                codes=codes,
                messages=messages,
            )
        raise AmazonRejected(
            f"Amazon rejected {op} (HTTP {status}{', ' + ', '.join(codes) if codes else ''})"
            f"{detail or ' without a message'}",
            raw=raw,
            status=status,
            op=op,
            codes=codes,
            messages=messages,
        )

    def refill_seconds(self, op: str) -> float:
        """How long one token of ``op``'s budget takes to come back: 1 / rate (the rate Amazon last
        reported, else the usage plan's; 1 s for an operation without a plan), at most
        :data:`~tradelane.domain.errors.MAX_RETRY_AFTER_SECONDS` (a reported rate of 0.00001/s is no
        reason to stop for 28 hours)."""
        rate = self.rate_limits.get(op)
        if rate is None:
            budget = PUBLISHED_BUDGETS.get(op)
            rate = budget.per_second if budget else 1.0
        return min(round(1.0 / rate, 3), MAX_RETRY_AFTER_SECONDS)

    def _read_rate_limit(self, op: str, headers: httpx.Headers) -> None:
        value = headers.get("x-amzn-ratelimit-limit")
        if value is None or not value.strip():
            return
        try:
            rate = float(Decimal(value.strip()))
        except (ArithmeticError, ValueError):  # ValueError: float() of a signalling NaN
            log.warning("unreadable x-amzn-RateLimit-Limit %r on %s", value, op)
            return
        if not rate > 0 or rate == float("inf"):
            return
        self.rate_limits[op] = rate
        if self._on_rate_limit is not None:
            self._on_rate_limit(op, rate)


@dataclass(frozen=True, slots=True)
class _Answer:
    status_code: int
    data: dict[str, Any] | None
    raw: str
    headers: httpx.Headers
    content: bytes


class _Unauthorized(Exception):
    """401/403 Unauthorized, before the client decides whether renewing the token helps."""

    def __init__(self, raw: str, detail: str) -> None:
        super().__init__(detail)
        self.raw = raw
        self.detail = detail


def _parse_body(
    op: str, status: int, text: str, content_type: str, raw: str, expect_body: bool
) -> dict[str, Any] | None:
    if not expect_body:
        return None
    head = text.lstrip()[:64].lower()
    if "html" in content_type.lower() or head.startswith(("<!doctype html", "<html")):
        raise AmazonBadResponse(
            f"received an HTML page instead of an API answer on {op} (HTTP {status})",
            raw=raw,
            status=status,
            op=op,
        )
    if not text.strip():
        raise AmazonBadResponse(
            f"empty answer where JSON was expected on {op} (HTTP {status})", raw=raw, status=status, op=op
        )
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise AmazonBadResponse(
            f"garbage or truncated JSON on {op} (HTTP {status}): {exc.msg} at character {exc.pos} "
            f"of {len(text)}",
            raw=raw,
            status=status,
            op=op,
        ) from None
    except (ValueError, RecursionError) as exc:  # an integer of over 4,300 digits; nesting too deep
        problem = "nested too deep" if isinstance(exc, RecursionError) else str(exc).split(":")[0]
        raise AmazonBadResponse(
            f"unreadable JSON on {op} (HTTP {status}): {problem}", raw=raw, status=status, op=op
        ) from None
    if not isinstance(data, dict):
        raise AmazonSchemaError("$", f"expected a JSON object, got {type(data).__name__}", raw=raw, op=op)
    return data


def _object(reply: Reply, op: str) -> dict[str, Any]:
    if reply.data is None:
        raise AmazonSchemaError("$", "empty answer", raw=reply.raw, op=op)
    return reply.data


def _string(data: Mapping[str, Any], key: str, reply: Reply, op: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise AmazonSchemaError(f"$.{key}", "missing or not a non-empty string", raw=reply.raw, op=op)
    return value


def _submission(reply: Reply, op: str) -> dict[str, Any]:
    data = _object(reply, op)
    status = data.get("status")
    if status not in ("ACCEPTED", "INVALID", "VALID"):
        raise AmazonSchemaError(
            "$.status", f"expected ACCEPTED, INVALID or VALID, got {status!r}", raw=reply.raw, op=op
        )
    issues = data.get("issues", [])
    if not isinstance(issues, list) or not all(isinstance(i, dict) for i in issues):
        raise AmazonSchemaError("$.issues", "not an array of objects", raw=reply.raw, op=op)
    return data


def _sp_errors(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Codes and messages of an SP-API ``ErrorList`` (``{"errors": [{"code", "message", "details"}]}``;
    confirmShipment nests the same list)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return (), ()
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, dict):  # ConfirmShipmentErrorResponse.errors is an ErrorList in some answers
        errors = errors.get("errors")
    if not isinstance(errors, list):
        return (), ()
    codes: list[str] = []
    messages: list[str] = []
    for error in errors:
        if not isinstance(error, dict):
            continue
        if isinstance(error.get("code"), str):
            codes.append(error["code"])
        message = error.get("message")
        details = error.get("details")
        if isinstance(message, str) and message:
            messages.append(f"{message} ({details})" if isinstance(details, str) and details else message)
    return tuple(codes), tuple(messages)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def shipment_confirmation_path(order_id: str) -> str:
    """confirmShipment's path (pure; shared with the connector's request plan)."""
    return f"/orders/v0/orders/{_segment(order_id)}/shipmentConfirmation"


def shipment_confirmation_body(marketplace_id: str, package_detail: Mapping[str, Any]) -> dict[str, Any]:
    """confirmShipment's body (pure; shared with the connector's request plan)."""
    return {"marketplaceId": marketplace_id, "packageDetail": dict(package_detail)}


def _segment(value: str) -> str:
    return quote(value, safe="")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.isoformat().replace("+00:00", "Z")


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


#: Decimals travel through :func:`json.dumps` as strings carrying this mark, then lose the quotes.
_DECIMAL_MARK = "\x00decimal:"
_MARKED_DECIMAL = re.compile(r'"\\u0000decimal:([^"]*)"')


def dumps(value: object) -> str:
    """JSON text with :class:`~decimal.Decimal` written as exact numbers (money never goes through
    float). Accepts what JSON can hold: dicts, lists/tuples, str, int, bool, None, Decimal;
    ``TypeError`` for anything else (a non-finite Decimal included)."""
    count = 0

    def marked(o: object) -> str:
        nonlocal count
        if isinstance(o, Decimal) and o.is_finite():
            count += 1
            return _DECIMAL_MARK + format(o, "f")
        raise TypeError(f"cannot write {type(o).__name__} {o!r} as JSON")

    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=marked)
    if not count:
        return text
    result, replaced = _MARKED_DECIMAL.subn(r"\1", text)
    if replaced != count:
        raise TypeError("a string holding the decimal mark cannot be written as JSON")
    return result
