"""The one HTTP edge every client shares (marketplace connectors and merchant adapters alike).

What lives here is generic HTTP, written once:

* :class:`Exchange` — one request/response pair as stored for diagnostics and replay (secrets never in it);
* :func:`parse_retry_after` — ``Retry-After`` as seconds, from delay-seconds or an HTTP date, bounded by
  :data:`~tradelane.domain.errors.MAX_RETRY_AFTER_SECONDS`;
* :func:`status_class` — how an HTTP status is classified before any marketplace-specific reading:
  408/425/429/5xx retryable, 401 auth, other 4xx/3xx rejected, 2xx ok.

Connector- or adapter-specific meaning (a Mirakl 403 on the account pauses the channel, an Amazon
``QuotaExceeded``...) is layered on top in each client; the generic part is never copied there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from enum import StrEnum

from tradelane.domain.errors import bounded_retry_after

#: Request/response bodies kept in an :class:`Exchange`.
EXCHANGE_EXCERPT_CHARS = 65_536


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


class StatusClass(StrEnum):
    """The generic reading of an HTTP status (see :func:`status_class`)."""

    OK = "ok"
    RETRYABLE = "retryable"  # 408, 425, 429, 5xx
    AUTH = "auth"  # 401
    REJECTED = "rejected"  # 3xx, 400, 403, 404, 409, 422, other 4xx


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
    """``text`` cut to ``limit`` characters, saying how many were left out."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"
