"""HTTP edge of the Mirakl client: base URL, auth, one call → one :class:`Exchange`, error classification.

Classification (the contract the sync engine relies on):

==========================================  ====================================================
what happened                               raised
==========================================  ====================================================
DNS lookup failed                           :class:`MiraklHostNotFound` (retryable)
refused / timeout / TLS / protocol error    :class:`MiraklUnreachable` (retryable, "unreachable: ...")
429                                         :class:`MiraklRateLimited`, ``retry_after`` from Retry-After
5xx, 408                                    :class:`MiraklServerError` (Retry-After honoured)
2xx with HTML, empty or invalid JSON        :class:`MiraklBadResponse` (retryable)
2xx JSON that breaks the schema             :class:`MiraklSchemaError` (permanent, field path)
401                                         :class:`MiraklAuthError` "authentication failed: API key rejected"
403                                         :class:`MiraklShopAccessDenied` on A01/OR11/OF01/OF24 (pauses
                                            the channel), else :class:`MiraklForbidden` (that call only)
404                                         :class:`MiraklNotFound` (Mirakl's ``message``)
3xx, 400, 409, 422, other 4xx               :class:`MiraklRequestRejected` (Mirakl's ``message``)
==========================================  ====================================================

Every error's ``raw`` is ``"METHOD URL -> HTTP status (content-type)"`` plus the response body cut to
:data:`RAW_EXCERPT_CHARS`; the API key never appears in it nor in an :class:`Exchange`.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from tradelane import __version__
from tradelane.connectors.mirakl._payload import dumps_json
from tradelane.connectors.mirakl.errors import (
    SHOP_ACCESS_OPERATIONS,
    MiraklAuthError,
    MiraklBadResponse,
    MiraklForbidden,
    MiraklHostNotFound,
    MiraklNotFound,
    MiraklRateLimited,
    MiraklRequestRejected,
    MiraklRetryableError,
    MiraklSchemaError,
    MiraklServerError,
    MiraklShopAccessDenied,
    MiraklUnreachable,
)
from tradelane.domain.errors import bounded_retry_after

log = logging.getLogger(__name__)

#: Response body kept in an error's ``raw``.
RAW_EXCERPT_CHARS = 8_192
#: Request/response bodies kept in an :class:`Exchange`.
EXCHANGE_EXCERPT_CHARS = 65_536

Expect = Literal["json", "empty", "bytes"]
QueryValue = str | int | bool | Sequence[str]


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request/response pair, for diagnostics (store it next to the offer/order it concerns).

    ``status`` is ``None`` when no response arrived (then ``error`` says why). Bodies are text excerpts
    (UTF-8, undecodable bytes replaced) of at most :data:`EXCHANGE_EXCERPT_CHARS` characters.
    """

    op: str
    method: str
    url: str
    request_body: str | None
    status: int | None
    response_body: str | None
    duration_ms: float
    error: str | None = None


ExchangeHook = Callable[[Exchange], None]


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful (2xx) response. ``data`` is the parsed JSON object when one was expected; ``raw``
    the ``METHOD URL -> status`` line plus a body excerpt, for errors raised while reading it."""

    status: int
    headers: httpx.Headers
    content: bytes
    data: Mapping[str, Any] | None
    raw: str


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def normalize_base_url(hostname: str) -> str:
    """Mirakl shop host → base URL of its API (no trailing slash).

    ``acceleratorprogram-dev.mirakl.net`` → ``https://acceleratorprogram-dev.mirakl.net``; a value with a
    scheme (``http://127.0.0.1:8765``, for sandboxes and staging) keeps scheme and port. A trailing ``/``
    or ``/api`` is tolerated. Raises ``ValueError`` saying what is wrong for anything else.
    """
    text = hostname.strip() if isinstance(hostname, str) else ""
    if not text:
        raise ValueError("Mirakl hostname is empty")
    has_scheme = "://" in text
    try:
        parts = urlsplit(text if has_scheme else f"https://{text}")
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid Mirakl hostname {hostname!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"invalid Mirakl hostname {hostname!r}: scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"invalid Mirakl hostname {hostname!r}: credentials do not belong in the hostname")
    if parts.query or parts.fragment:
        raise ValueError(f"invalid Mirakl hostname {hostname!r}: no query or fragment allowed")
    if parts.path.rstrip("/") not in ("", "/api"):
        raise ValueError(
            f"invalid Mirakl hostname {hostname!r}: give the host only (e.g. 'myshop.mirakl.net'), "
            f"not the path {parts.path!r}"
        )
    host = parts.hostname or ""
    if not _valid_host(host):
        raise ValueError(f"invalid Mirakl hostname {hostname!r}: {host or 'no host'!r} is not a host name")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{parts.scheme}://{netloc.lower()}"


def _valid_host(host: str) -> bool:
    if not host or len(host) > 253:
        return False
    if ":" in host:  # IPv6 literal (urlsplit already validated the brackets)
        try:
            socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            return False
        return True
    return all(_HOST_LABEL.match(label) for label in host.rstrip(".").split("."))


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` → seconds to wait (>= 0): delay-seconds or an HTTP-date (relative to ``now``);
    ``None`` when absent or unparseable. Capped at
    :data:`~tradelane.domain.errors.MAX_RETRY_AFTER_SECONDS` (a day)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = Decimal(text)
    except ArithmeticError:
        seconds = None
    if seconds is not None:
        # float() of a huge Decimal (1E310) is infinity: capped like any wait beyond the maximum.
        return bounded_retry_after(float(seconds)) if seconds.is_finite() and seconds >= 0 else None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return bounded_retry_after((moment - now).total_seconds())


def excerpt(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"


class MiraklTransport:
    """Sends one Mirakl call and classifies the outcome. See the module docstring for the contract.

    ``shop_id`` is added as a query parameter to every call made with ``shop_scoped=True`` (the spec
    accepts it on every seller operation). Not thread-safe beyond what the ``httpx.Client`` is.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        shop_id: str | None,
        *,
        http: httpx.Client,
        on_exchange: ExchangeHook | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self.shop_id = shop_id
        self._http = http
        self._relative = bool(str(http.base_url))
        self._on_exchange = on_exchange
        self._clock = clock

    @property
    def base_url(self) -> str:
        return str(self._http.base_url).rstrip("/") if self._relative else self._base_url

    def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, QueryValue | None] | None = None,
        json_body: object = None,
        files: Sequence[tuple[str, tuple[str | None, bytes, str]]] | None = None,
        data: Mapping[str, str] | None = None,
        expect: Expect = "json",
        shop_scoped: bool = True,
    ) -> Reply:
        query = _query(params or {}, self.shop_id if shop_scoped else None)
        headers = {
            "Authorization": self._api_key,
            "Accept": "application/json" if expect != "bytes" else "*/*",
            "User-Agent": f"tradelane/{__version__}",
        }
        content: str | None = None
        if json_body is not None:
            content = dumps_json(json_body)
            headers["Content-Type"] = "application/json"
        url = path if self._relative else f"{self._base_url}{path}"
        request = self._http.build_request(
            method,
            url,
            params=query,
            content=content.encode("utf-8") if content is not None else None,
            files=list(files) if files else None,
            data=dict(data) if data else None,
            headers=headers,
        )
        request_text = content
        if files or data:
            request_text = request.read().decode("utf-8", errors="replace")
        shown_url = str(request.url)
        started = time.perf_counter()
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            error = _transport_error(op, method, shown_url, exc)
            self._emit(op, method, shown_url, request_text, None, None, started, error.reason)
            raise error from exc
        body = response.content
        text = body.decode(response.encoding or "utf-8", errors="replace")
        self._emit(op, method, shown_url, request_text, response.status_code, text, started, None)
        return self._classify(op, method, shown_url, response, body, text, expect)

    # ----------------------------------------------------------------------------------------- internals

    def _emit(
        self,
        op: str,
        method: str,
        url: str,
        request_text: str | None,
        status: int | None,
        response_text: str | None,
        started: float,
        error: str | None,
    ) -> None:
        if self._on_exchange is None:
            return
        exchange = Exchange(
            op=op,
            method=method,
            url=url,
            request_body=excerpt(request_text, EXCHANGE_EXCERPT_CHARS),
            status=status,
            response_body=excerpt(response_text, EXCHANGE_EXCERPT_CHARS),
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            error=error,
        )
        try:
            self._on_exchange(exchange)
        except Exception:  # a diagnostics hook must never turn a done call into a failed (retried) one
            log.exception("mirakl on_exchange hook failed for %s %s", op, url)

    def _classify(
        self,
        op: str,
        method: str,
        url: str,
        response: httpx.Response,
        body: bytes,
        text: str,
        expect: Expect,
    ) -> Reply:
        status = response.status_code
        content_type = response.headers.get("content-type", "")
        raw = f"{method} {url} -> HTTP {status}" + (f" ({content_type})" if content_type else "")
        raw = f"{raw}\n{excerpt(text, RAW_EXCERPT_CHARS)}"
        if 200 <= status < 300:
            return self._success(op, status, response.headers, body, text, content_type, expect, raw)
        message, codes = _mirakl_error(text)
        detail = f": {message}" if message else ""
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=self._clock())
            hint = f"; retry after {retry_after:g}s" if retry_after is not None else ""
            raise MiraklRateLimited(
                f"rate limited by Mirakl on {op} (HTTP 429){hint}{detail}",
                retry_after=retry_after,
                raw=raw,
                status=status,
                op=op,
            )
        if status >= 500 or status == 408:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now=self._clock())
            raise MiraklServerError(
                f"Mirakl server error on {op} (HTTP {status}){detail}",
                retry_after=retry_after,
                raw=raw,
                status=status,
                op=op,
            )
        common: dict[str, Any] = {
            "raw": raw,
            "status": status,
            "op": op,
            "mirakl_message": message,
            "error_codes": codes,
        }
        if status == 401:
            raise MiraklAuthError(f"authentication failed: API key rejected (HTTP 401){detail}", **common)
        if status == 403:
            shop = f" for shop id {self.shop_id}" if self.shop_id else ""
            forbidden = MiraklShopAccessDenied if op in SHOP_ACCESS_OPERATIONS else MiraklForbidden
            raise forbidden(f"forbidden: the API key may not call {op}{shop} (HTTP 403){detail}", **common)
        if status == 404:
            if message is None and _looks_like_html(text, content_type):
                detail = f": an HTML page answered — is {urlsplit(url).netloc} a Mirakl API host?"
            raise MiraklNotFound(f"not found ({op}, HTTP 404){detail}", **common)
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            raise MiraklRequestRejected(
                f"unexpected redirect on {op} (HTTP {status}) to {location} — check the hostname", **common
            )
        if 400 <= status < 500:
            raise MiraklRequestRejected(
                f"Mirakl rejected {op} (HTTP {status}){detail or ' without a message'}", **common
            )
        raise MiraklBadResponse(f"unexpected HTTP status {status} on {op}", raw=raw, status=status, op=op)

    def _success(
        self,
        op: str,
        status: int,
        headers: httpx.Headers,
        body: bytes,
        text: str,
        content_type: str,
        expect: Expect,
        raw: str,
    ) -> Reply:
        def bad(reason: str) -> MiraklBadResponse:
            return MiraklBadResponse(f"{reason} (HTTP {status} on {op})", raw=raw, status=status, op=op)

        if expect == "empty":
            return Reply(status, headers, body, None, raw)
        if _looks_like_html(text, content_type):
            raise bad(
                "received an HTML page instead of an API response — usually a proxy or maintenance page"
            )
        if expect == "bytes":
            return Reply(status, headers, body, None, raw)
        if not text.strip():
            raise bad("empty response body where JSON was expected")
        try:
            data = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise bad(f"invalid or truncated JSON: {exc.msg} at character {exc.pos} of {len(text)}") from None
        if not isinstance(data, dict):
            error = MiraklSchemaError(
                "$", f"expected a JSON object, got {type(data).__name__}", raw=raw, op=op
            )
            error.status = status
            raise error
        return Reply(status, headers, body, data, raw)


def _query(
    params: Mapping[str, QueryValue | None], shop_id: str | None
) -> list[tuple[str, str | int | float | bool | None]]:
    query: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            query.append((key, "true" if value else "false"))
        elif isinstance(value, str | int):
            query.append((key, str(value)))
        else:
            query.extend((key, str(item)) for item in value)
    if shop_id is not None:
        query.append(("shop_id", shop_id))
    return query


def _looks_like_html(text: str, content_type: str) -> bool:
    if "html" in content_type.lower():
        return True
    head = text.lstrip()[:64].lower()
    return head.startswith(("<!doctype html", "<html", "<head", "<body"))


def _mirakl_error(text: str) -> tuple[str | None, tuple[str, ...]]:
    """Mirakl error bodies: ``{"status": 400, "message": "...", "code"?: "...", "errors"?: [...]}``."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError:
        return None, ()
    if not isinstance(data, dict):
        return None, ()
    codes: list[str] = []
    if isinstance(data.get("code"), str):
        codes.append(data["code"])
    detail_messages: list[str] = []
    errors = data.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict):
                if isinstance(item.get("code"), str):
                    codes.append(item["code"])
                if isinstance(item.get("message"), str):
                    where = f"{item['field']}: " if isinstance(item.get("field"), str) else ""
                    detail_messages.append(f"{where}{item['message']}")
    message = data.get("message") if isinstance(data.get("message"), str) else None
    if detail_messages:
        message = "; ".join([m for m in [message] if m] + detail_messages)
    return (message.strip() or None) if message else None, tuple(codes)


def _transport_error(op: str, method: str, url: str, exc: httpx.TransportError) -> MiraklRetryableError:
    raw = f"{method} {url} -> no response: {type(exc).__name__}: {exc}"
    host = urlsplit(url).netloc
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the response",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc), "talking to the host")
        return MiraklUnreachable(f"unreachable: {op} timed out {kind} ({host})", raw=raw, op=op)
    if isinstance(exc, httpx.ConnectError) and _is_dns_failure(exc):
        return MiraklHostNotFound(
            f"unreachable: host {urlsplit(url).hostname!r} not found (DNS lookup failed)", raw=raw, op=op
        )
    if isinstance(exc, httpx.ConnectError):
        return MiraklUnreachable(f"unreachable: cannot connect to {host}: {exc}", raw=raw, op=op)
    return MiraklUnreachable(
        f"unreachable: {op} failed without a response: {type(exc).__name__}: {exc}", raw=raw, op=op
    )


_DNS_MESSAGES = (
    "name or service not known",
    "nodename nor servname",
    "getaddrinfo failed",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "name does not resolve",
)


def _is_dns_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, socket.gaierror):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    text = str(exc).lower()
    return any(marker in text for marker in _DNS_MESSAGES)


__all__ = [
    "EXCHANGE_EXCERPT_CHARS",
    "RAW_EXCERPT_CHARS",
    "Exchange",
    "ExchangeHook",
    "MiraklTransport",
    "Reply",
    "normalize_base_url",
    "parse_retry_after",
]
