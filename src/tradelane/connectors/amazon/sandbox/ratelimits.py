"""Per-operation token buckets (the SP-API usage plans), fault injection and route overrides.

Pure bookkeeping on the sandbox clock: nothing here sleeps or does I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


@dataclass(frozen=True)
class UsagePlan:
    """``rate`` requests per second refill a bucket of ``burst`` requests."""

    rate: Decimal
    burst: int

    def header(self) -> str:
        """The ``x-amzn-RateLimit-Limit`` value: the rate, as Amazon prints it."""
        return format(self.rate.normalize(), "f")


#: The default usage plans of the operations the sandbox serves, from each model's description
#: (contracts/amazon): Orders 2026-01-01, Orders v0 confirmShipment, Feeds 2021-06-30, Listings
#: Items 2021-08-01.
PUBLISHED_PLANS: dict[str, UsagePlan] = {
    "searchOrders": UsagePlan(Decimal("0.0056"), 20),
    "getOrder": UsagePlan(Decimal("0.5"), 30),
    "confirmShipment": UsagePlan(Decimal("2"), 10),
    "createFeedDocument": UsagePlan(Decimal("0.5"), 15),
    "getFeedDocument": UsagePlan(Decimal("0.0222"), 10),
    "createFeed": UsagePlan(Decimal("0.0083"), 15),
    "getFeed": UsagePlan(Decimal("2"), 15),
    "cancelFeed": UsagePlan(Decimal("2"), 15),
    "getListingsItem": UsagePlan(Decimal("5"), 10),
    "searchListingsItems": UsagePlan(Decimal("5"), 5),
    "putListingsItem": UsagePlan(Decimal("5"), 10),
    "patchListingsItem": UsagePlan(Decimal("5"), 5),
    "deleteListingsItem": UsagePlan(Decimal("5"), 5),
}

#: The ``generous`` plan for tests and demos: the same operations, never in the way.
GENEROUS_PLAN = UsagePlan(Decimal("1000"), 1000)


def plans(mode: str) -> dict[str, UsagePlan]:
    """``published`` (Amazon's default plans) or ``generous`` (1000 rps, burst 1000, everywhere)."""
    if mode == "published":
        return dict(PUBLISHED_PLANS)
    if mode == "generous":
        return {op: GENEROUS_PLAN for op in PUBLISHED_PLANS}
    raise ValueError(f"unknown rate-limit mode {mode!r} (published or generous)")


class TokenBuckets:
    """One bucket per (seller, operation), full at start, refilled continuously on the sandbox clock."""

    def __init__(self, usage: dict[str, UsagePlan]) -> None:
        self.plans = usage
        self._buckets: dict[tuple[str, str], tuple[float, datetime]] = {}

    def take(self, seller_id: str, op_id: str, now: datetime) -> float | None:
        """Consume one token and return ``None``, or the seconds until one is available (refused)."""
        plan = self.plans.get(op_id)
        if plan is None:
            return None
        rate, burst = float(plan.rate), float(plan.burst)
        tokens, since = self._buckets.get((seller_id, op_id), (burst, now))
        elapsed = max(0.0, (now - since).total_seconds())
        tokens = min(burst, tokens + elapsed * rate)
        if tokens < 1.0:
            self._buckets[(seller_id, op_id)] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[(seller_id, op_id)] = (tokens - 1.0, now)
        return None

    def reset(self) -> None:
        self._buckets.clear()


class FaultKind(StrEnum):
    THROTTLE = "throttle"
    """429 ``QuotaExceeded`` with ``x-amzn-RateLimit-Limit``, whatever the bucket says; with
    ``retry_after`` also a ``Retry-After`` header (Amazon documents none, but a gateway in between may
    send one: a client must honour it)."""
    SERVER_ERROR = "server_error"
    """A 5xx (``status``, default 500) with an ``InternalFailure`` error list."""
    TIMEOUT = "timeout"
    """The answer is held back ``delay`` seconds, then the call is processed normally."""
    GARBAGE = "garbage"
    """200 with a body that is not JSON."""
    TRUNCATED = "truncated"
    """The call is processed but only the first half of its body is sent."""
    DUPLICATE_PAGE = "duplicate_page"
    """searchOrders serves the previous page again, with the token of the page that was asked for
    (a client sees duplicates, never a gap); on a first page it does nothing."""


MAX_DELAY = 30.0


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 500
    delay: float = 5.0
    retry_after: int | None = None


class FaultBook:
    """Pending one-off faults per operation id (``"*"``: any SP-API operation)."""

    def __init__(self) -> None:
        self._pending: dict[str, deque[Fault]] = {}

    def inject(
        self,
        op_id: str,
        kind: str,
        *,
        count: int = 1,
        status: int | None = None,
        delay: float | None = None,
        retry_after: int | None = None,
    ) -> Fault:
        fault_kind = FaultKind(kind)
        if count < 1:
            raise ValueError("count must be at least 1")
        if fault_kind is FaultKind.SERVER_ERROR and status is not None and not 500 <= status <= 599:
            raise ValueError("server_error needs a 5xx status")
        if fault_kind is FaultKind.TIMEOUT and delay is not None and not 0 < delay <= MAX_DELAY:
            raise ValueError(f"timeout delay must be in (0, {MAX_DELAY}] seconds")
        if fault_kind is FaultKind.DUPLICATE_PAGE and op_id != "searchOrders":
            raise ValueError("duplicate_page applies to searchOrders only")
        if retry_after is not None and (fault_kind is not FaultKind.THROTTLE or retry_after < 0):
            raise ValueError("retry_after applies to throttle faults only and must not be negative")
        fault = Fault(fault_kind, status=status or 500, delay=delay or 5.0, retry_after=retry_after)
        self._pending.setdefault(op_id, deque()).extend([fault] * count)
        return fault

    def take(self, op_id: str) -> Fault | None:
        for key in (op_id, "*"):
            queue = self._pending.get(key)
            if queue:
                if key == "*" and queue[0].kind is FaultKind.DUPLICATE_PAGE and op_id != "searchOrders":
                    continue
                return queue.popleft()
        return None

    def pending(self) -> dict[str, list[str]]:
        return {op: [f.kind.value for f in q] for op, q in self._pending.items() if q}

    def clear(self) -> None:
        self._pending.clear()


class RouteMode(StrEnum):
    """A lasting behaviour of one operation (until removed)."""

    OFF = "off"
    """404 NotFound: the operation does not exist (a retired API version)."""
    FORBIDDEN = "forbidden"
    """403 Unauthorized: the application lacks the role for this API."""
    STATUS = "status"
    """Every call answers ``status`` with an error list."""
    GARBAGE = "garbage"
    """Every call answers 200 with a body that is not JSON."""
    TRUNCATED = "truncated"
    """Every call is processed, then cut in half."""


@dataclass(frozen=True)
class RouteOverride:
    mode: RouteMode
    status: int | None = None

    @staticmethod
    def build(mode: str, status: int | None = None) -> RouteOverride:
        try:
            kind = RouteMode(mode)
        except ValueError:
            raise ValueError(
                f"unknown route mode {mode!r} ({', '.join(m.value for m in RouteMode)})"
            ) from None
        if kind is RouteMode.STATUS and (status is None or not 400 <= status <= 599):
            raise ValueError("a 'status' route needs a 4xx/5xx status")
        return RouteOverride(kind, status)


GARBAGE_BODY = b'<html><body>\x00\x1f sandbox garbage {"orders": [1, 2'
