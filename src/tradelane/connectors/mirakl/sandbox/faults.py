"""Fault injection, per-operation rate limits and the request log of the sandbox.

Pure bookkeeping: nothing here sleeps or does I/O; the app applies what these objects decide.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

#: Upper bound of an injected timeout: long enough to trip any sane client timeout, short enough
#: that a forgotten fault cannot hang a test run.
MAX_TIMEOUT_DELAY = 30.0

#: Operations with offset pagination, the only ones a ``duplicate_page`` fault makes sense for.
PAGED_OPERATIONS = frozenset({"OR11", "OF21", "M01"})

#: Published Mirakl guidance (specs/MANIFEST.md): OR11, OF01 and OF24 at most once a minute, bulk
#: acceptance up to 100 orders a minute. Everything else is unlimited unless configured.
MANIFEST_RATE_LIMITS: dict[str, tuple[int, float]] = {
    "OR11": (1, 60.0),
    "OF01": (1, 60.0),
    "OF24": (1, 60.0),
    "OR21": (100, 60.0),
}


class FaultKind(StrEnum):
    SERVER_ERROR = "server_error"
    """A 5xx with a Mirakl-style JSON body (``status`` defaults to 500)."""
    RATE_LIMIT = "rate_limit"
    """A 429 with a ``Retry-After`` header (``retry_after`` seconds, default 60)."""
    TIMEOUT = "timeout"
    """The response is held back ``delay`` seconds (bounded), then the call is processed normally —
    so the client times out while the call may still take effect, as with a real slow server."""
    HTML_ERROR = "html_error"
    """A gateway-style HTML error page (``status`` defaults to 502)."""
    TRUNCATED_JSON = "truncated_json"
    """The call is processed, but only the first half of its JSON body is sent (status unchanged)."""
    DUPLICATE_PAGE = "duplicate_page"
    """A paged list ignores ``offset`` once and serves the previously served page again."""


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int | None = None
    retry_after: int | None = None
    delay: float | None = None


class FaultBook:
    """Pending faults per operation id; ``"*"`` matches any ``/api`` operation."""

    def __init__(self) -> None:
        self._pending: dict[str, deque[Fault]] = {}

    def inject(
        self,
        op_id: str,
        kind: FaultKind | str,
        *,
        count: int = 1,
        status: int | None = None,
        retry_after: int | None = None,
        delay: float | None = None,
    ) -> Fault:
        """Make the next ``count`` calls to ``op_id`` fail with ``kind``; returns the fault."""
        fault_kind = FaultKind(kind)
        if count < 1:
            raise ValueError("count must be at least 1")
        if fault_kind is FaultKind.DUPLICATE_PAGE and op_id not in PAGED_OPERATIONS:
            raise ValueError(f"duplicate_page only applies to paged operations {sorted(PAGED_OPERATIONS)}")
        if fault_kind is FaultKind.SERVER_ERROR:
            status = 500 if status is None else status
            if not 500 <= status <= 599:
                raise ValueError("server_error needs a 5xx status")
        if fault_kind is FaultKind.HTML_ERROR:
            status = 502 if status is None else status
            if not 400 <= status <= 599:
                raise ValueError("html_error needs a 4xx/5xx status")
        if fault_kind is FaultKind.RATE_LIMIT:
            retry_after = 60 if retry_after is None else retry_after
            if retry_after < 0:
                raise ValueError("retry_after must not be negative")
        if fault_kind is FaultKind.TIMEOUT:
            delay = 5.0 if delay is None else delay
            if not 0 < delay <= MAX_TIMEOUT_DELAY:
                raise ValueError(f"timeout delay must be in (0, {MAX_TIMEOUT_DELAY}] seconds")
        fault = Fault(fault_kind, status=status, retry_after=retry_after, delay=delay)
        self._pending.setdefault(op_id, deque()).extend([fault] * count)
        return fault

    def take(self, op_id: str) -> Fault | None:
        """Consume the next fault for ``op_id`` (specific ones before ``"*"``), if any."""
        for key in (op_id, "*"):
            queue = self._pending.get(key)
            if queue:
                if key == "*" and queue[0].kind is FaultKind.DUPLICATE_PAGE and op_id not in PAGED_OPERATIONS:
                    continue
                return queue.popleft()
        return None

    def pending(self) -> dict[str, list[Fault]]:
        return {op: list(q) for op, q in self._pending.items() if q}

    def clear(self) -> None:
        self._pending.clear()


class RouteMode(StrEnum):
    """A lasting behaviour of one operation, like an operator's configuration (not a one-off fault)."""

    OFF = "off"
    """The route does not exist: 404, as on an operator without the module (returns, messages...)."""
    STATUS = "status"
    """Every call answers ``status`` (4xx/5xx) with a Mirakl-style JSON error body."""
    GARBAGE = "garbage"
    """Every call answers ``status`` (default 200) with a body that is not JSON at all."""
    TRUNCATED = "truncated"
    """Every call is processed, but only the first half of its JSON body is sent."""


#: The non-JSON body a ``garbage`` route sends.
GARBAGE_BODY = b'\x1f\x8b<<<not json: sandbox garbage>>>\x00{"orders": [1, 2'


@dataclass(frozen=True)
class RouteOverride:
    mode: RouteMode
    status: int | None = None

    @staticmethod
    def build(mode: RouteMode | str, status: int | None = None) -> RouteOverride:
        """Validate ``mode`` and ``status`` (a clear ``ValueError`` for any bad combination)."""
        try:
            kind = RouteMode(mode)
        except ValueError:
            allowed = ", ".join(m.value for m in RouteMode)
            raise ValueError(f"unknown route mode {mode!r} (expected one of: {allowed})") from None
        if kind is RouteMode.OFF:
            if status not in (None, 404):
                raise ValueError("an 'off' route always answers 404")
            status = 404
        elif kind is RouteMode.STATUS:
            if status is None or not 400 <= status <= 599:
                raise ValueError("a 'status' route needs a 4xx/5xx status")
        elif kind is RouteMode.GARBAGE:
            status = 200 if status is None else status
            if not 200 <= status <= 599:
                raise ValueError("a 'garbage' route needs a status within 200..599")
        elif status is not None:
            raise ValueError("a 'truncated' route keeps the operation's own status")
        return RouteOverride(kind, status)


@dataclass(frozen=True)
class RateLimit:
    """At most ``calls`` calls per sliding window of ``per_seconds`` seconds."""

    calls: int
    per_seconds: float

    def __post_init__(self) -> None:
        if self.calls < 1 or self.per_seconds <= 0:
            raise ValueError("a rate limit needs calls >= 1 and per_seconds > 0")


class RateLimiter:
    """Sliding-window budgets per (shop, operation), measured on the sandbox clock.

    Only admitted calls consume budget; a refused call reports how many whole seconds to wait
    (the ``Retry-After`` value) until the oldest call in the window leaves it.
    """

    def __init__(self, limits: dict[str, RateLimit] | None = None) -> None:
        self.limits: dict[str, RateLimit] = dict(limits or {})
        self._calls: dict[tuple[int, str], deque[datetime]] = {}

    def set(self, op_id: str, calls: int, per_seconds: float) -> None:
        self.limits[op_id] = RateLimit(calls, per_seconds)

    def remove(self, op_id: str) -> None:
        self.limits.pop(op_id, None)

    def admit(self, shop_id: int, op_id: str, now: datetime) -> int | None:
        """Record the call and return ``None`` when within budget, else the seconds to wait."""
        limit = self.limits.get(op_id)
        if limit is None:
            return None
        window = timedelta(seconds=limit.per_seconds)
        calls = self._calls.setdefault((shop_id, op_id), deque())
        while calls and calls[0] <= now - window:
            calls.popleft()
        if len(calls) >= limit.calls:
            wait = (calls[0] + window - now).total_seconds()
            return max(1, math.ceil(wait))
        calls.append(now)
        return None


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the sandbox answered (``op_id`` is ``None`` off the operation table)."""

    method: str
    path: str
    query: str
    op_id: str | None
    at: datetime
    status: int
    shop_id: int | None
    fault: FaultKind | None = None


def calls_of(records: Iterable[RequestRecord], op_id: str) -> list[RequestRecord]:
    return [r for r in records if r.op_id == op_id]
