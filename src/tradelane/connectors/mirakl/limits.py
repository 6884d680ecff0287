"""Mirakl call-rate guidance per operation, as data (the sync engine's limiter enforces it).

Sources: MANIFEST.md ("OR11 at most once a minute (5 min recommended), OF01/OF24 at most once a minute,
bulk accept up to 100 orders per minute") and each operation's "Call Frequency" in the seller OpenAPI
file. Where Mirakl only says "at each event" a sensible ceiling is declared instead (``note`` says which).

Units: a :class:`RateLimit` allows ``calls`` calls per rolling ``per_seconds``. For the paged listings
(OR11, OF21, M01, RT11) the limit applies to one *polling run* — the pages fetched back to back by one
``iter_*`` call count as one run, since Mirakl's guidance is about how often a shop is polled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class RateLimit:
    calls: int
    per_seconds: float
    note: str = ""

    def __post_init__(self) -> None:
        if self.calls < 1:
            raise ValueError(f"RateLimit.calls must be >= 1, got {self.calls}")
        if not self.per_seconds > 0:
            raise ValueError(f"RateLimit.per_seconds must be > 0, got {self.per_seconds}")

    @property
    def min_interval(self) -> float:
        """Seconds between two calls when they are spread evenly."""
        return self.per_seconds / self.calls


_MINUTE = 60.0
_HOUR = 3_600.0

DEFAULT_LIMITS: Mapping[str, RateLimit] = MappingProxyType(
    {
        "A01": RateLimit(1, _MINUTE, "Mirakl: once per day; tradelane only calls it for `channel check`"),
        "OF01": RateLimit(1, _MINUTE, "Mirakl max: once per minute (offers only); recommended every 5 min"),
        "OF02": RateLimit(1, _MINUTE, "Mirakl max: once per minute"),
        "OF03": RateLimit(1, _MINUTE, "Mirakl max: once per minute"),
        "OF21": RateLimit(1, _MINUTE, "Mirakl: on page view; tradelane reconciles at most once a minute"),
        "OF24": RateLimit(1, _MINUTE, "Mirakl max: once per minute; recommended every 5 min"),
        "OR11": RateLimit(1, _MINUTE, "Mirakl max: once per minute; recommended every 5 min"),
        "OR21": RateLimit(100, _MINUTE, "Mirakl: bulk accept up to 100 orders per minute"),
        "OR23": RateLimit(60, _MINUTE, "Mirakl: at each tracking update; sensible ceiling"),
        "OR24": RateLimit(60, _MINUTE, "Mirakl: after each OR23; sensible ceiling"),
        "OR28": RateLimit(60, _MINUTE, "Mirakl: at each refund; sensible ceiling"),
        "OR29": RateLimit(60, _MINUTE, "Mirakl: at each cancelation; sensible ceiling"),
        "OR72": RateLimit(60, _MINUTE, "Mirakl: at each document list display; sensible ceiling"),
        "OR73": RateLimit(60, _MINUTE, "Mirakl: at each download; sensible ceiling"),
        "OR74": RateLimit(60, _MINUTE, "Mirakl: at each upload; sensible ceiling"),
        "SH21": RateLimit(1, _HOUR, "Mirakl: once per day; cache the carrier list"),
        "ST01": RateLimit(60, _MINUTE, "Mirakl: at each shipment (max 1000 per call); sensible ceiling"),
        "RT11": RateLimit(1, 300.0, "Mirakl max: every 5 minutes; recommended every 15"),
        "M01": RateLimit(1, _MINUTE, "Mirakl: synchronous only; tradelane polls at most once a minute"),
    }
)

#: Used for an operation missing from the table.
FALLBACK_LIMIT = RateLimit(30, _MINUTE, "no Mirakl guidance; conservative default")


def merge_limits(
    overrides: Mapping[str, RateLimit] | None = None,
    *,
    base: Mapping[str, RateLimit] = DEFAULT_LIMITS,
) -> dict[str, RateLimit]:
    """``base`` with per-channel ``overrides`` applied (an override may add an op). Op ids are
    upper-cased; a value that is not a :class:`RateLimit` raises ``TypeError``."""
    merged = dict(base)
    for op, limit in (overrides or {}).items():
        if not isinstance(limit, RateLimit):
            raise TypeError(f"override for {op!r} must be a RateLimit, got {type(limit).__name__}")
        merged[op.strip().upper()] = limit
    return merged


def limit_for(op: str, limits: Mapping[str, RateLimit] = DEFAULT_LIMITS) -> RateLimit:
    """The limit of ``op`` (e.g. ``"OR11"``), or :data:`FALLBACK_LIMIT`."""
    return limits.get(op.strip().upper(), FALLBACK_LIMIT)
