"""Shopify's REST Admin API call limit, tracked on our side (pure: the caller passes the time).

Shopify meters REST calls with a leaky bucket per app and shop: each call adds one; the bucket leaks
at ``size / 20`` calls per second (40 and 2/s on standard plans, 400 and 20/s on Plus) and a call that
finds it full answers 429 with ``Retry-After``. Every answer reports the level as
``X-Shopify-Shop-Api-Call-Limit: <used>/<size>``.

:class:`CallLimit` keeps the last reported level, lets it leak with time, and says how long to wait
before the next call so that it fits — so a burst slows down instead of hitting 429. (``Retry-After``
itself is read by the shared edge, :func:`tradelane.http_edge.parse_retry_after`.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
DEFAULT_BUCKET_SIZE = 40
#: Seconds of leak per bucket size: a bucket of 40 leaks 2 calls per second.
LEAK_DIVISOR = 20.0
#: Calls kept free for other clients of the same app and shop.
HEADROOM = 1

_HEADER = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$")


def parse_call_limit(value: str | None) -> tuple[int, int] | None:
    """``"32/40"`` → ``(32, 40)``; None when absent or malformed."""
    if not value:
        return None
    match = _HEADER.match(value)
    if match is None:
        return None
    used, size = int(match.group(1)), int(match.group(2))
    if size <= 0 or used > size:
        return None
    return used, size


@dataclass
class CallLimit:
    """The bucket level as last reported, leaking since ``observed_at`` (monotonic seconds)."""

    size: int = DEFAULT_BUCKET_SIZE
    used: float = 0.0
    observed_at: float | None = None

    @property
    def leak_rate(self) -> float:
        return self.size / LEAK_DIVISOR

    def level(self, at: float) -> float:
        if self.observed_at is None:
            return 0.0
        return max(0.0, self.used - self.leak_rate * max(0.0, at - self.observed_at))

    def observe(self, header: str | None, at: float) -> None:
        """Record the level an answer reported (ignored when the header is missing or malformed)."""
        parsed = parse_call_limit(header)
        if parsed is None:
            return
        self.used, self.size = float(parsed[0]), parsed[1]
        self.observed_at = at

    def throttled(self, retry_after: float, at: float) -> None:
        """A 429: the bucket is full now and will have room after ``retry_after`` seconds."""
        self.used = float(self.size - HEADROOM - 1) + max(0.0, retry_after) * self.leak_rate
        self.observed_at = at

    def wait_before_call(self, at: float) -> float:
        """Seconds to wait so that one more call leaves :data:`HEADROOM` calls free (0: call now)."""
        allowed = self.size - HEADROOM - 1
        excess = self.level(at) - allowed
        return 0.0 if excess <= 0 else excess / self.leak_rate
