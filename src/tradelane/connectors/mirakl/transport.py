"""Mirakl's layer on the shared HTTP edge (:mod:`tradelane.http_edge`): base URL, auth, one call → one
:class:`~tradelane.http_edge.Exchange`, and the Mirakl reading of each outcome.

The generic part — Retry-After, which statuses are retryable, what a timeout or a DNS failure is, the
exchange capture — is the edge's; what is Mirakl's stays here: a 403 on the account, Mirakl's error
bodies, HTML pages from a host that is not a Mirakl API, the schema of its answers.

Classification (the contract the sync engine relies on):

==========================================  ====================================================
what happened                               raised
==========================================  ====================================================
DNS lookup failed                           :class:`MiraklHostNotFound` (retryable)
refused / timeout / TLS / protocol / gzip   :class:`MiraklUnreachable` (retryable, "unreachable: ...")
429                                         :class:`MiraklRateLimited`, ``retry_after`` from Retry-After
5xx, 408, 425                               :class:`MiraklServerError` (Retry-After honoured)
2xx with HTML, empty or invalid JSON        :class:`MiraklBadResponse` (retryable)
2xx JSON that breaks the schema             :class:`MiraklSchemaError` (permanent, field path)
401                                         :class:`MiraklAuthError` "authentication failed: API key rejected"
403                                         :class:`MiraklShopAccessDenied` on A01/OR11/OF01/OF24 (pauses
                                            the channel), else :class:`MiraklForbidden` (that call only)
404                                         :class:`MiraklNotFound` (Mirakl's ``message``)
3xx, 400, 409, 422, other 4xx               :class:`MiraklRequestRejected` (Mirakl's ``message``)
==========================================  ====================================================

Every error's ``raw`` is ``"METHOD URL -> HTTP status (content-type)"`` plus the response body cut to
:data:`RAW_EXCERPT_CHARS`; the API key never appears in it nor in an exchange.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
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
from tradelane.http_edge import (
    ExchangeHook,
    NoResponseKind,
    StatusClass,
    capture,
    excerpt,
    no_response,
    parse_retry_after,
    report,
    status_class,
)

#: Response body kept in an error's ``raw``.
RAW_EXCERPT_CHARS = 8_192

Expect = Literal["json", "empty", "bytes"]
QueryValue = str | int | bool | Sequence[str]


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
        if files or data:
            request.read()  # a multipart/form body, kept for the exchange
        shown_url = str(request.url)
        started = time.perf_counter()
        try:
            response = self._http.send(request)
        except httpx.RequestError as exc:
            error = _transport_error(op, method, shown_url, exc)
            self._emit(op, request, None, None, started, error.reason)
            raise error from exc
        body = response.content
        text = body.decode(response.encoding or "utf-8", errors="replace")
        self._emit(op, request, response, text, started, None)
        return self._classify(op, method, shown_url, response, body, text, expect)

    # ----------------------------------------------------------------------------------------- internals

    def _emit(
        self,
        op: str,
        request: httpx.Request,
        response: httpx.Response | None,
        text: str | None,
        started: float,
        error: str | None,
    ) -> None:
        if self._on_exchange is None:
            return
        duration_ms = (time.perf_counter() - started) * 1000
        exchange = capture(
            op,
            request,
            response,
            duration_ms=duration_ms,
            error=error,
            secrets=(self._api_key,),
            response_body=text,
        )
        report(self._on_exchange, exchange)

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
        reading = status_class(status)
        if reading is StatusClass.OK:
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
        if reading is StatusClass.RETRYABLE:  # 5xx, 408, 425
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
        if reading is StatusClass.AUTH:
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
        except (ValueError, RecursionError) as exc:  # a number of thousands of digits, nesting too deep
            raise bad(f"unreadable JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
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
    except (ValueError, RecursionError):  # not JSON, a number of thousands of digits, nesting too deep
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


def _transport_error(op: str, method: str, url: str, exc: httpx.RequestError) -> MiraklRetryableError:
    failure = no_response(exc, method=method, url=url)
    error = MiraklHostNotFound if failure.kind is NoResponseKind.HOST_NOT_FOUND else MiraklUnreachable
    return error(f"unreachable: {failure.describe(op)}", raw=failure.raw, op=op)


__all__ = [
    "RAW_EXCERPT_CHARS",
    "MiraklTransport",
    "Reply",
    "normalize_base_url",
]
