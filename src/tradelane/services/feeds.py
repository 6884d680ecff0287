"""Secondary feeds of a channel (see :mod:`tradelane.domain.feeds`): their health, alerts and jobs.

Marketplace-agnostic: a connector reads the feed in a job of its own and reports here whether the read
worked. A failure is stored as the feed's health (a channel cursor ``feed.<name>.health``), raises one
alert per run of failures (``feed_unavailable`` for a route the operator does not offer, else
``feed_failing``) naming the raw exchange kept under subject ``feed:<name>``, and makes
:func:`enqueue_feed` schedule the next read no earlier than the backoff allows. The first success after
failures resolves the alert and clears the backoff.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.feeds import FeedFailureKind, FeedHealth, SecondaryFeed, after_failure
from tradelane.persistence.tables import alerts
from tradelane.services import orders as order_service
from tradelane.sync.jobs import EnqueueResult, JobSpec, enqueue

#: Raw exchange excerpt kept in the alert message itself (the whole exchange is in ``exchanges``).
ALERT_RAW_CHARS = 600


def health_cursor(feed: SecondaryFeed) -> str:
    return f"feed.{feed.value}.health"


def exchange_subject(feed: SecondaryFeed) -> str:
    """The ``exchanges.subject`` under which a feed's failing exchanges are kept."""
    return f"feed:{feed.value}"


def load_health(conn: Connection, channel_id: int, feed: SecondaryFeed) -> FeedHealth:
    """The stored health; an unreadable stored value counts as healthy (the next read rewrites it)."""
    try:
        return FeedHealth.from_json(order_service.get_cursor(conn, channel_id, health_cursor(feed)))
    except ValueError:
        return FeedHealth()


def _alert_key(channel_id: int, feed: SecondaryFeed, health: FeedHealth) -> str:
    since = health.since.isoformat() if health.since else "-"
    return f"feed:{channel_id}:{feed.value}:{since}"


def record_failure(
    conn: Connection,
    *,
    tenant_id: int,
    channel_id: int,
    channel_name: str,
    feed: SecondaryFeed,
    operation: str,
    kind: FeedFailureKind,
    reason: str,
    raw: str | None,
    now: datetime,
) -> FeedHealth:
    """One failed read of ``feed``: back off and alert (once per run of failures). Returns the new
    health, whose ``retry_at`` is the earliest next read."""
    health = after_failure(load_health(conn, channel_id, feed), kind, reason, now=now)
    order_service.set_cursor(conn, channel_id, health_cursor(feed), health.to_json(), now=now)
    what = (
        f"the marketplace does not offer {operation} ({feed.value}) to this account"
        if kind is FeedFailureKind.UNAVAILABLE
        else f"{operation} ({feed.value}) failed"
    )
    excerpt = (raw or "").strip()
    if len(excerpt) > ALERT_RAW_CHARS:
        excerpt = excerpt[:ALERT_RAW_CHARS] + "…"
    message = (
        f"{channel_name}: {what}: {reason}. Orders are not affected; {feed.value} will be read again "
        f"after {health.retry_at.isoformat() if health.retry_at else 'the next poll'}. Raw exchange "
        f"kept under subject {exchange_subject(feed)!r}" + (f":\n{excerpt}" if excerpt else ".")
    ).replace("\x00", "\\0")  # storable text: PostgreSQL cannot hold NUL, a garbage body may
    order_service.raise_alert(
        conn,
        tenant_id=tenant_id,
        kind="feed_unavailable" if kind is FeedFailureKind.UNAVAILABLE else "feed_failing",
        key=_alert_key(channel_id, feed, health),
        message=message,
        now=now,
        channel_id=channel_id,
        severity="warning",
    )
    return health


def record_success(
    conn: Connection, *, tenant_id: int, channel_id: int, feed: SecondaryFeed, now: datetime
) -> bool:
    """A successful read: resolve the failure alert and clear the backoff. True if it was failing."""
    health = load_health(conn, channel_id, feed)
    if not health.failing:
        return False
    conn.execute(
        sa.update(alerts)
        .where(
            alerts.c.tenant_id == tenant_id,
            alerts.c.key == _alert_key(channel_id, feed, health),
            alerts.c.resolved_at.is_(None),
        )
        .values(resolved_at=now)
    )
    order_service.set_cursor(conn, channel_id, health_cursor(feed), FeedHealth().to_json(), now=now)
    return True


def enqueue_feed(
    conn: Connection,
    *,
    tenant_id: int,
    channel_id: int,
    feed: SecondaryFeed,
    kind: str,
    flow: str,
    now: datetime,
) -> EnqueueResult:
    """Queue one read of ``feed`` (job ``kind``): now when the feed is healthy or its backoff is over,
    else at ``retry_at``. Coalesces with a read already pending (one dedupe key per channel and feed),
    so a backed-off feed is not read on every poll."""
    health = load_health(conn, channel_id, feed)
    run_at = None if health.due(now) else health.retry_at
    return enqueue(
        conn,
        JobSpec(
            tenant_id=tenant_id,
            kind=kind,
            payload={"feed": feed.value},
            channel_id=channel_id,
            flow=flow,
            dedupe_key=f"{kind}:{channel_id}",
            run_at=run_at,
            priority=200,
        ),
        now=now,
    )
