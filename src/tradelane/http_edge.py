"""The one HTTP edge every client shares (marketplace connectors and merchant adapters alike).

What lives here is generic HTTP, written once; each client layers its remote's meaning on top (a Mirakl
403 on the account pauses the channel, an Amazon ``QuotaExceeded``, Shopify's call-limit bucket...) and
never copies the generic part.

The API, all pure except :func:`report` (which calls the hook it is given):

* :func:`status_class` — the generic reading of an HTTP status: 408/425/429/5xx retryable, 401 auth,
  other 3xx/4xx rejected, 2xx ok;
* :func:`parse_retry_after` — ``Retry-After`` as seconds to wait, from delay-seconds or an HTTP date
  (relative to the ``now`` passed in), bounded by :data:`~tradelane.domain.errors.MAX_RETRY_AFTER_SECONDS`;
* :func:`no_response` — an httpx exception raised instead of a response (timeout, DNS failure, refused
  connection, broken protocol, undecodable body) classified as a :class:`NoResponse`; always retryable;
* :class:`Exchange` and :func:`capture` — one request/response pair as stored for diagnostics, built from
  the httpx request and response (or the failure), with bounded body excerpts and no secrets;
  :func:`report` hands it to an :data:`ExchangeHook` without ever letting the hook fail the call;
* :func:`excerpt` — text cut to a bound, saying how much was left out.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

import httpx

from tradelane.domain.errors import bounded_retry_after

log = logging.getLogger(__name__)

#: Request/response bodies kept in an :class:`Exchange`.
EXCHANGE_EXCERPT_CHARS = 65_536
#: What replaces a secret in an :class:`Exchange`.
REDACTED = "[redacted]"


# ------------------------------------------------------------------------------------------- statuses


class StatusClass(StrEnum):
    """The generic reading of an HTTP status (see :func:`status_class`)."""

    OK = "ok"
    RETRYABLE = "retryable"  # 408, 425, 429, 5xx
    AUTH = "auth"  # 401
    REJECTED = "rejected"  # 3xx, 400, 403, 404, 409, 422, other 4xx (and anything below 200)


#: Statuses below 500 that mean "try again later": request timeout, too early, too many requests.
RETRYABLE_STATUSES = frozenset({408, 425, 429})


def status_class(status: int) -> StatusClass:
    """408/425/429 and every 5xx are retryable; 401 means the credentials were rejected; other 3xx/4xx
    are rejections (a client may refine 403/404 for its remote); 2xx is ok."""
    if 200 <= status < 300:
        return StatusClass.OK
    if status in RETRYABLE_STATUSES or status >= 500:
        return StatusClass.RETRYABLE
    if status == 401:
        return StatusClass.AUTH
    return StatusClass.REJECTED


# ---------------------------------------------------------------------------------------- Retry-After

# RFC 9110 delay-seconds are ASCII digits; a fraction is tolerated (Shopify sends "2.0"). Anything else
# (signs, exponents, "NaN", "inf", other scripts' digits, "1_000") is not a delay.
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` → seconds to wait (>= 0), or ``None`` when absent or unparseable.

    Accepts delay-seconds (``"120"``, ``"2.0"``) and an HTTP date (``"Wed, 21 Oct 2015 07:28:00 GMT"``,
    read by the stdlib's :func:`email.utils.parsedate_to_datetime`; a date without a zone is GMT as
    HTTP says) relative to ``now`` (timezone-aware). A date already past means "now" (0). Every wait is
    capped at :data:`~tradelane.domain.errors.MAX_RETRY_AFTER_SECONDS` (a day), so a bogus value
    (``99999999999999999999``, the year 9999) can never block an operation for good."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELAY_SECONDS.fullmatch(text):
        # float() of a 400-digit string is infinity: capped like any wait beyond the maximum.
        return bounded_retry_after(float(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return bounded_retry_after((moment - now).total_seconds())


# ----------------------------------------------------------------------------------------- no response


class NoResponseKind(StrEnum):
    """Why no (usable) HTTP response arrived."""

    TIMEOUT = "timeout"  # connect, write, read or pool timeout
    HOST_NOT_FOUND = "host_not_found"  # the DNS lookup failed (often a typo in the host name)
    CONNECT = "connect"  # refused, reset while connecting, TLS handshake failure
    PROTOCOL = "protocol"  # the connection broke mid-exchange, invalid HTTP, undecodable body...


@dataclass(frozen=True, slots=True)
class NoResponse:
    """A call that got no usable HTTP response, classified (always worth retrying).

    ``reason`` is human readable and names the host, never a credential: ``"timed out connecting
    (shop.example:443)"``, ``"host 'shop.example' not found (DNS lookup failed)"``, ``"cannot connect to
    127.0.0.1:8765: [Errno 111] Connection refused"``, ``"failed without a response: RemoteProtocolError:
    Server disconnected"``. ``raw`` is ``"METHOD URL -> no response: Type: message"`` for the error's
    raw record. Clients prefix ``reason`` with what they were doing (see :meth:`describe`).
    """

    kind: NoResponseKind
    reason: str
    raw: str

    def describe(self, op: str) -> str:
        """``reason`` with the operation named where it reads well: ``"OR11 timed out connecting
        (host)"``, ``"OR11 failed without a response: ..."``; DNS and connect failures are about the
        host, not the operation, and are returned unchanged."""
        if self.kind in (NoResponseKind.TIMEOUT, NoResponseKind.PROTOCOL):
            return f"{op} {self.reason}"
        return self.reason


_TIMEOUT_PHASES: dict[type[httpx.TimeoutException], str] = {
    httpx.ConnectTimeout: "connecting",
    httpx.ReadTimeout: "waiting for the response",
    httpx.WriteTimeout: "sending the request",
    httpx.PoolTimeout: "waiting for a free connection",
}

_DNS_MESSAGES = (
    "name or service not known",
    "nodename nor servname",
    "getaddrinfo failed",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "name does not resolve",
)


def no_response(exc: httpx.RequestError, *, method: str, url: str) -> NoResponse:
    """Classify an httpx exception raised instead of a response (``url`` as shown: no credentials in
    it). Every :class:`httpx.RequestError` is covered — timeouts, DNS failures (recognised by a
    :class:`socket.gaierror` in the cause chain or the resolver's message), refused or failed
    connections, protocol errors, and a body httpx could not decode (``DecodingError``)."""
    raw = f"{method} {url} -> no response: {type(exc).__name__}: {exc}"
    try:
        parts = httpx.URL(url)
        host, port = parts.host or "?", parts.port
    except httpx.InvalidURL:
        host, port = "?", None
    netloc = f"{host}:{port}" if port is not None else host
    if isinstance(exc, httpx.TimeoutException):
        phase = _TIMEOUT_PHASES.get(type(exc), "talking to the host")
        return NoResponse(NoResponseKind.TIMEOUT, f"timed out {phase} ({netloc})", raw)
    if isinstance(exc, httpx.ConnectError) and _is_dns_failure(exc):
        return NoResponse(NoResponseKind.HOST_NOT_FOUND, f"host {host!r} not found (DNS lookup failed)", raw)
    if isinstance(exc, httpx.ConnectError):
        return NoResponse(NoResponseKind.CONNECT, f"cannot connect to {netloc}: {exc}", raw)
    return NoResponse(NoResponseKind.PROTOCOL, f"failed without a response: {type(exc).__name__}: {exc}", raw)


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


# ------------------------------------------------------------------------------------------ exchanges


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request/response pair, for diagnostics (stored next to the offer/order/job it concerns).

    ``op`` names the remote operation (``OR11``, ``searchOrders``...). ``status`` is ``None`` when no
    response arrived (then ``error`` says why). Bodies are text excerpts (UTF-8, undecodable bytes
    replaced) of at most :data:`EXCHANGE_EXCERPT_CHARS` characters; credentials never appear in them.
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

# Names whose values are credentials wherever they appear: query parameters, form fields, JSON keys.
# Compared case-insensitively with "-" read as "_". Deliberately exact: paging tokens stay readable.
SECRET_NAMES = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "api_key",
        "apikey",
        "password",
        "secret",
        "authorization",
        "x_amz_security_token",
        "x_shopify_access_token",
    }
)
_JSON_FIELD = re.compile(r'"([A-Za-z0-9_\-]{1,64})"(\s*:\s*)"((?:[^"\\]|\\.)*)"')
_FORM_FIELD = re.compile(r"(^|[&?;\s])([A-Za-z0-9_\-]{1,64})=([^&\s]*)")
# Secrets are scrubbed in this much more than the excerpt, so that none is cut in two at the boundary.
_SCRUB_MARGIN = 4_096


def _secret_name(name: str) -> bool:
    return name.lower().replace("-", "_") in SECRET_NAMES


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every value of a :data:`SECRET_NAMES` JSON key or form/query field replaced by
    :data:`REDACTED`, and every literal in ``secrets`` (empty ones ignored) replaced too."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _JSON_FIELD.sub(lambda m: f'"{m[1]}"{m[2]}"{REDACTED}"' if _secret_name(m[1]) else m[0], text)
    return _FORM_FIELD.sub(lambda m: f"{m[1]}{m[2]}={REDACTED}" if _secret_name(m[2]) else m[0], text)


def excerpt(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"


def _kept(text: str | None, secrets: Iterable[str]) -> str | None:
    if not text:
        return None
    if len(text) <= EXCHANGE_EXCERPT_CHARS:
        return redact(text, secrets)
    head = redact(text[: EXCHANGE_EXCERPT_CHARS + _SCRUB_MARGIN], secrets)[:EXCHANGE_EXCERPT_CHARS]
    return f"{head}…[{len(text) - EXCHANGE_EXCERPT_CHARS} more characters]"


def response_text(response: httpx.Response) -> str:
    """The response body as text: its declared charset (UTF-8 when none), undecodable bytes replaced."""
    return response.content.decode(response.encoding or "utf-8", errors="replace")


def _request_text(request: httpx.Request) -> str | None:
    try:
        content = request.content
    except httpx.RequestNotRead:  # a streamed body: reading it here would consume it
        return "[streamed request body not kept]"
    return content.decode("utf-8", errors="replace") if content else None


def capture(
    op: str,
    request: httpx.Request,
    response: httpx.Response | None = None,
    *,
    duration_ms: float,
    error: NoResponse | str | None = None,
    secrets: Iterable[str] = (),
    response_body: str | None = None,
) -> Exchange:
    """The :class:`Exchange` of one call: ``request`` as sent, and its ``response`` (read) or the
    ``error`` raised instead (a :class:`NoResponse` or a text).

    Secrets never reach it: request headers are not kept at all; the URL's query, the bodies' JSON keys
    and form fields named in :data:`SECRET_NAMES` are redacted, and so is every literal in ``secrets``
    (pass the API key, token or client secret the call used). Bodies are cut to
    :data:`EXCHANGE_EXCERPT_CHARS`; an empty body is ``None``; a streamed request body (not read before
    sending) is not consumed. ``response_body`` saves decoding the response twice when the caller
    already has its text (see :func:`response_text`)."""
    secrets = tuple(secrets)
    text = response_body if response_body is not None or response is None else response_text(response)
    return Exchange(
        op=op,
        method=request.method,
        url=redact(str(request.url), secrets),
        request_body=_kept(_request_text(request), secrets),
        status=None if response is None else response.status_code,
        response_body=_kept(text, secrets),
        duration_ms=round(duration_ms, 3),
        error=redact(error.reason if isinstance(error, NoResponse) else error, secrets)
        if error is not None
        else None,
    )


def report(hook: ExchangeHook | None, exchange: Exchange) -> None:
    """Hand ``exchange`` to ``hook`` (when there is one). A failing hook is logged, never raised: a
    diagnostics store must not turn a call that was done into a failed (retried) one."""
    if hook is None:
        return
    try:
        hook(exchange)
    except Exception:
        log.exception("on_exchange hook failed for %s %s", exchange.op, exchange.url)


__all__ = [
    "EXCHANGE_EXCERPT_CHARS",
    "REDACTED",
    "RETRYABLE_STATUSES",
    "SECRET_NAMES",
    "Exchange",
    "ExchangeHook",
    "NoResponse",
    "NoResponseKind",
    "StatusClass",
    "capture",
    "excerpt",
    "no_response",
    "parse_retry_after",
    "redact",
    "report",
    "response_text",
    "status_class",
]
