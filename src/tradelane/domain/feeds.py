"""Secondary feeds of a channel (customer messages, returns...) and how they back off. Pure: no I/O.

A secondary feed is read from the marketplace *beside* the orders poll, never inside it: orders are
stored and acceptance queued whatever happens to a secondary feed. A feed that fails is not retried
on every poll; it waits until ``retry_at`` (see :func:`after_failure`), and the length of the wait
depends on what the failure says:

* ``UNAVAILABLE`` (HTTP 404 on the feed's route): the operator has no such module. Alert once, wait
  long (hours), never retry hot.
* ``FORBIDDEN`` (HTTP 401/403): the API key lacks the role. Alert, wait an hour and more.
* ``FAILING`` (5xx, timeouts, garbage or truncated bodies, contract breaks): a fault of the moment.
  Alert, retry after minutes, doubling up to an hour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum


class SecondaryFeed(StrEnum):
    """Feeds read next to the orders poll, each with its own job, cursor and backoff."""

    MESSAGES = "messages"
    RETURNS = "returns"


class FeedFailureKind(StrEnum):
    UNAVAILABLE = "unavailable"
    FORBIDDEN = "forbidden"
    FAILING = "failing"


#: First wait and ceiling per failure kind; the wait doubles with each consecutive failure.
BACKOFF: dict[FeedFailureKind, tuple[timedelta, timedelta]] = {
    FeedFailureKind.UNAVAILABLE: (timedelta(hours=6), timedelta(hours=24)),
    FeedFailureKind.FORBIDDEN: (timedelta(hours=1), timedelta(hours=24)),
    FeedFailureKind.FAILING: (timedelta(minutes=5), timedelta(hours=1)),
}


def classify_status(status: int | None) -> FeedFailureKind:
    """The failure kind of an HTTP status (``None``: no response at all, or a non-HTTP failure)."""
    if status == 404:
        return FeedFailureKind.UNAVAILABLE
    if status in (401, 403):
        return FeedFailureKind.FORBIDDEN
    return FeedFailureKind.FAILING


@dataclass(frozen=True)
class FeedHealth:
    """The state of one feed of one channel; the default value is a healthy feed.

    ``since`` is when the current run of failures started (it names the episode's alert); ``failures``
    counts consecutive failures; ``retry_at`` is the earliest next read."""

    failures: int = 0
    since: datetime | None = None
    retry_at: datetime | None = None
    kind: FeedFailureKind | None = None
    reason: str | None = None

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def due(self, now: datetime) -> bool:
        return self.retry_at is None or self.retry_at <= now

    def to_json(self) -> str:
        return json.dumps(
            {
                "failures": self.failures,
                "since": self.since.isoformat() if self.since else None,
                "retry_at": self.retry_at.isoformat() if self.retry_at else None,
                "kind": self.kind.value if self.kind else None,
                "reason": self.reason,
            }
        )

    @staticmethod
    def from_json(text: str | None) -> FeedHealth:
        """Parse a stored value; ``None`` (never stored) is a healthy feed. Raises ``ValueError`` on a
        value that is not what :meth:`to_json` writes."""
        if text is None:
            return FeedHealth()
        try:
            data = json.loads(text)
            return FeedHealth(
                failures=int(data["failures"]),
                since=datetime.fromisoformat(data["since"]) if data.get("since") else None,
                retry_at=datetime.fromisoformat(data["retry_at"]) if data.get("retry_at") else None,
                kind=FeedFailureKind(data["kind"]) if data.get("kind") else None,
                reason=data.get("reason"),
            )
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"invalid feed health {text!r}: {exc}") from None


def backoff(kind: FeedFailureKind, failures: int) -> timedelta:
    """The wait after the ``failures``-th consecutive failure (``failures`` >= 1)."""
    first, ceiling = BACKOFF[kind]
    return min(first * (2 ** max(0, min(failures, 20) - 1)), ceiling)


def after_failure(health: FeedHealth, kind: FeedFailureKind, reason: str, *, now: datetime) -> FeedHealth:
    """The feed's state after one more failure at ``now``."""
    failures = health.failures + 1
    return replace(
        health,
        failures=failures,
        since=health.since or now,
        retry_at=now + backoff(kind, failures),
        kind=kind,
        reason=reason,
    )
