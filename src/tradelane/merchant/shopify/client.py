"""A small client of Shopify's REST Admin API (httpx), with errors classified at the edge.

Why REST and not GraphQL: the calls tradelane needs (list products with their variants, list and create
orders, read inventory items and levels) are plain resources there, metered by a simple per-call leaky
bucket that :mod:`.ratelimit` follows from ``X-Shopify-Shop-Api-Call-Limit``, and Shopify's webhook
payloads are the same REST resources, so one vocabulary serves both directions. Shopify calls REST
"legacy" for *new public apps*; custom apps (an access token per shop, which is how tradelane connects)
keep using it. The price is that REST cannot filter variants by SKU nor orders by tag, so the adapter
scans bounded pages (see :mod:`.adapter`); moving these two look-ups to GraphQL would only touch this
module and the adapter.

Contracts:

* Every request carries ``X-Shopify-Access-Token``; the token never appears in errors or logs.
* Before each call the client waits (up to ``max_wait`` seconds, through the injected ``sleep``) until
  the call fits in the bucket; a longer wait raises :class:`ShopifyUnavailable` with ``retry_after``.
* Classified on the shared HTTP edge (:mod:`tradelane.http_edge`): 2xx → :class:`ShopifyResponse`;
  429 → :class:`ShopifyUnavailable` with ``Retry-After`` (2 s when absent); 408, 425, 5xx, timeouts and
  connection failures → :class:`ShopifyUnavailable`; any other status → :class:`ShopifyApiError` with
  Shopify's parsed ``errors``. ``Retry-After`` dates count from the ``now`` a call is given.
* Pagination follows the ``page_info`` cursor of the ``Link: <...>; rel="next"`` header, up to a bound.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tradelane import __version__
from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.http_edge import StatusClass, excerpt, no_response, parse_retry_after, status_class
from tradelane.merchant.json_body import strict_json
from tradelane.merchant.shopify.ratelimit import CALL_LIMIT_HEADER, CallLimit
from tradelane.timeutil import utcnow

ACCESS_TOKEN_HEADER = "X-Shopify-Access-Token"
#: Raw answers are kept (for inspection) up to this many characters.
MAX_KEPT_TEXT = 64 * 1024
DEFAULT_THROTTLE_SECONDS = 2.0
DEFAULT_MAX_WAIT_SECONDS = 2.0
PAGE_SIZE = 250

_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class ShopifyApiError(PermanentError):
    """Shopify refused the request; retrying it unchanged cannot help."""

    def __init__(self, reason: str, *, status: int, body: Any, raw: str | None = None) -> None:
        super().__init__(reason, raw=raw)
        self.status = status
        self.body = body


class ShopifyUnavailable(RetryableError):
    """Shopify could not serve the request now (throttled, 5xx, timeout, unreachable)."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        raw: str | None = None,
    ) -> None:
        super().__init__(reason, retry_after=retry_after, raw=raw)
        self.status = status


@dataclass(frozen=True, slots=True)
class ShopifyResponse:
    status: int
    headers: httpx.Headers
    body: Any
    text: str

    def next_page_info(self) -> str | None:
        """The ``page_info`` cursor of the next page, from the ``Link`` header (None on the last page)."""
        return next_page_info(self.headers.get("link"))


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    more: bool


def next_page_info(link: str | None) -> str | None:
    """The ``page_info`` of the ``rel="next"`` URL of a ``Link`` header (None: no next page). A next URL
    that cannot be read is a garbled answer, :class:`ShopifyUnavailable` like a garbled page (taking it
    for the last page would cut the listing short)."""
    if not link:
        return None
    match = _NEXT_LINK.search(link)
    if match is None:
        return None
    try:
        query = urlsplit(match.group(1)).query
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise ShopifyUnavailable(
            f"Shopify answered a Link header whose next URL cannot be read ({exc}): a garbled answer",
            raw=f"Link: {excerpt(link, 2_000)}",
        ) from None
    values = parse_qs(query).get("page_info")
    return values[0] if values else None


def describe_errors(body: Any) -> str:
    """Shopify's ``errors`` (a string, a list, or ``{field: [messages]}``) as one line."""
    errors = body.get("errors", body.get("error")) if isinstance(body, Mapping) else body
    if isinstance(errors, Mapping):
        parts = []
        for field, messages in errors.items():
            texts = messages if isinstance(messages, list) else [messages]
            parts.append(f"{field}: {'; '.join(str(m) for m in texts)}")
        return ", ".join(parts)
    if isinstance(errors, list):
        return "; ".join(str(e) for e in errors)
    return "" if errors is None else str(errors)


class ShopifyClient:
    """REST Admin API of one shop. Pass ``client`` to share a pool (then :meth:`close` leaves it open).

    ``monotonic`` and ``sleep`` pace calls in the bucket; ``clock`` (UTC now) serves Retry-After dates."""

    def __init__(
        self,
        api_url: str,
        access_token: str,
        *,
        api_version: str,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = DEFAULT_MAX_WAIT_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_version = api_version
        self._token = access_token
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._monotonic = monotonic
        self._sleep = sleep
        self._max_wait = max_wait
        self._clock = clock
        self.call_limit = CallLimit()

    def __repr__(self) -> str:
        return f"ShopifyClient({self.api_url!r}, {self.api_version!r})"

    def url(self, resource: str) -> str:
        """``resource`` like ``orders`` or ``inventory_items/12`` → its absolute ``.json`` URL."""
        return f"{self.api_url}/admin/api/{self.api_version}/{resource}.json"

    def get(
        self, resource: str, params: Mapping[str, Any] | None = None, *, now: datetime | None = None
    ) -> ShopifyResponse:
        return self.request("GET", resource, params=params, now=now)

    def post(self, resource: str, body: Mapping[str, Any], *, now: datetime | None = None) -> ShopifyResponse:
        return self.request("POST", resource, json_body=body, now=now)

    def request(
        self,
        method: str,
        resource: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> ShopifyResponse:
        """One call, classified. ``now`` (the caller's clock; the client's ``clock`` when None) is what
        a ``Retry-After`` HTTP date is counted from."""
        url = self.url(resource)
        self._wait_for_room(f"{method} {resource}")
        headers = {
            ACCESS_TOKEN_HEADER: self._token,
            "Accept": "application/json",
            "User-Agent": f"tradelane/{__version__}",
        }
        content = None
        if json_body is not None:
            content = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            response = self._client.request(
                method, url, params=dict(params) if params else None, content=content, headers=headers
            )
        except httpx.RequestError as exc:
            failure = no_response(exc, method=method, url=url)
            raise ShopifyUnavailable(
                f"Shopify unreachable on {method} {resource}: {failure.reason}", raw=failure.raw
            ) from None
        return self._classify(method, resource, response, now or self._clock())

    def _wait_for_room(self, what: str) -> None:
        wait = self.call_limit.wait_before_call(self._monotonic())
        if wait <= 0:
            return
        if wait > self._max_wait:
            raise ShopifyUnavailable(
                f"Shopify call limit nearly reached before {what}: wait {wait:.1f}s", retry_after=wait
            )
        self._sleep(wait)

    def _classify(
        self, method: str, resource: str, response: httpx.Response, now: datetime
    ) -> ShopifyResponse:
        status = response.status_code
        self.call_limit.observe(response.headers.get(CALL_LIMIT_HEADER), self._monotonic())
        text = response.text
        body = strict_json(text)
        kept = f"HTTP {status}\n{excerpt(text, MAX_KEPT_TEXT)}"
        reading = status_class(status)
        if reading is StatusClass.OK:
            return ShopifyResponse(status, response.headers, body, text)
        detail = describe_errors(body) if body is not None else text[:300]
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
            retry_after = DEFAULT_THROTTLE_SECONDS if retry_after is None else retry_after
            self.call_limit.throttled(retry_after, self._monotonic())
            raise ShopifyUnavailable(
                f"Shopify throttled {method} {resource} (HTTP 429): {detail}",
                status=status,
                retry_after=retry_after,
                raw=kept,
            )
        if reading is StatusClass.RETRYABLE:
            raise ShopifyUnavailable(
                f"Shopify answered HTTP {status} to {method} {resource}: {detail}",
                status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after"), now=now),
                raw=kept,
            )
        raise ShopifyApiError(
            f"Shopify refused {method} {resource} with HTTP {status}: {detail}",
            status=status,
            body=body if body is not None else text[:MAX_KEPT_TEXT],
            raw=kept,
        )

    def pages(
        self,
        resource: str,
        key: str,
        params: Mapping[str, Any],
        *,
        max_pages: int,
        now: datetime | None = None,
    ) -> Iterator[Page]:
        """Each page of ``resource`` (the objects of its ``key`` list), at most ``max_pages`` of them;
        the last page yielded says whether more were left unread. A page whose answer has no ``key``
        list (a garbled body) is :class:`ShopifyUnavailable`: the read is worth retrying.

        With a ``page_info`` cursor Shopify accepts only ``limit`` and ``fields``, so the other filters
        are sent with the first page only."""
        query: dict[str, Any] = {"limit": PAGE_SIZE, **params}
        for _ in range(max_pages):
            response = self.get(resource, query, now=now)
            items = response.body.get(key) if isinstance(response.body, Mapping) else None
            if not isinstance(items, list):
                raise ShopifyUnavailable(
                    f"Shopify answered GET {resource} with HTTP {response.status} but without a {key!r} "
                    "list (a garbled answer)",
                    status=response.status,
                    raw=f"HTTP {response.status}\n{excerpt(response.text, MAX_KEPT_TEXT)}",
                )
            cursor = response.next_page_info()
            yield Page([item for item in items if isinstance(item, dict)], more=cursor is not None)
            if cursor is None:
                return
            query = {"limit": query["limit"], "page_info": cursor}
            if "fields" in params:
                query["fields"] = params["fields"]

    def close(self) -> None:
        if self._own_client:
            self._client.close()
