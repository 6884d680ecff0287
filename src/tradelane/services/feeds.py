"""Secondary feeds of a channel (see :mod:`tradelane.domain.feeds`): customer messages (job
``orders.messages``) and returns (job ``orders.returns``), each read through the channel's connector in
a job of its own beside the orders poll, with their own cursors, health, alerts and backoff.

Marketplace-agnostic. The orders poll queues both after its orders are committed
(:func:`enqueue_feeds`, only the feeds the connector declares). A feed's failure — a route the
operator does not offer (404), 403, 5xx, timeouts, garbage or truncated bodies, contract breaks — never
fails the orders poll nor the feed's job: the raw exchange is kept, an alert raised and the feed backs
off. Only a 429 goes back to the engine, which retries at exactly ``Retry-After`` without spending an
attempt, and rejected credentials (a matter of the whole channel).

A failure is stored as the feed's health (a channel cursor ``feed.<name>.health``), raises one alert
per run of failures (``feed_unavailable`` for a route the operator does not offer, else
``feed_failing``) naming the raw exchange kept under subject ``feed:<name>``, and makes
:func:`enqueue_feed` schedule the next read no earlier than the backoff allows. The first success after
failures resolves the alert and clears the backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.base import Capabilities, FeedChanges, FeedItem, MarketplaceConnector, Operation
from tradelane.connectors.registry import ConnectorSpec, CustomerMessages
from tradelane.domain.channels import Flow
from tradelane.domain.errors import AuthenticationError, PermanentError, RetryableError, ValidationError
from tradelane.domain.feeds import FeedFailureKind, FeedHealth, SecondaryFeed, after_failure, classify_status
from tradelane.persistence.db import insert_ignore
from tradelane.persistence.tables import alerts, order_messages, orders, returns
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.connector_session import BudgetSpent, ConnectorSession
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import EnqueueResult, JobSpec, enqueue

MESSAGES = "orders.messages"
RETURNS = "orders.returns"
#: Job kind, port operation and cursor stream of each feed.
FEED_JOBS: dict[SecondaryFeed, tuple[str, Operation, str]] = {
    SecondaryFeed.MESSAGES: (MESSAGES, Operation.FETCH_MESSAGES, "messages"),
    SecondaryFeed.RETURNS: (RETURNS, Operation.FETCH_RETURNS, "returns"),
}

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


def unread_feeds(spec: ConnectorSpec, settings: dict[str, Any]) -> list[tuple[str, str]]:
    """The secondary feeds a channel of ``spec`` with ``settings`` never reads (its connector does not
    declare their operation: e.g. a Mirakl operator without the returns module), each with the
    connector's reason (its hint; a generic one without). Settings the connector refuses: none listed
    (the channel's jobs say what is wrong)."""
    try:
        capabilities = spec.channel_capabilities(settings)
    except ValidationError:
        return []
    return [
        (feed.value, capabilities.hints.get(operation.value) or f"{spec.title} does not offer {feed.value}")
        for feed, (_kind, operation, _stream) in FEED_JOBS.items()
        if not capabilities.supports(operation)
    ]


def enqueue_feeds(conn: Connection, channel: Channel, capabilities: Capabilities, *, now: datetime) -> None:
    """Queue a read of every secondary feed the connector declares, each as its backoff allows
    (coalesced with a pending one)."""
    for feed, (kind, operation, _stream) in FEED_JOBS.items():
        if capabilities.supports(operation):
            enqueue_feed(
                conn,
                tenant_id=channel.tenant_id,
                channel_id=channel.id,
                feed=feed,
                kind=kind,
                flow=Flow.ORDERS.value,
                now=now,
            )


def _read_feed(
    ctx: JobContext,
    channel: Channel,
    spec: ConnectorSpec,
    feed: SecondaryFeed,
    fetch: Callable[[MarketplaceConnector, str | None, datetime], FeedChanges],
    store: Callable[[Connection, Sequence[FeedItem], datetime], dict[str, Any]],
) -> dict[str, Any]:
    """Read one feed and store what it returned, or record the failure (alert, raw exchange, backoff);
    either way the job completes. A feed read takes a token only if one is free: with none, it is
    skipped until the next poll."""
    _kind, _operation, stream = FEED_JOBS[feed]
    cursor_name = spec.cursor(stream)
    now = ctx.now()
    with ConnectorSession(ctx, channel, spec.factory, wait_for_budget=False) as session:
        with ctx.engine.connect() as conn:
            cursor = order_service.get_cursor(conn, channel.id, cursor_name)
        try:
            changes = fetch(session.connector, cursor, now)
        except BudgetSpent as spent:
            return {"skipped": f"no {spent.operation} budget left; read again on the next poll"}
        except AuthenticationError:
            raise  # the credentials themselves are rejected: a channel matter (orders fail too)
        except (RetryableError, PermanentError) as exc:
            status = getattr(exc, "status", None)
            if status == 429:
                raise  # the engine retries at exactly Retry-After
            with ctx.transaction() as conn:
                session.record(conn, exchange_subject(feed), now=now)
                health = record_failure(
                    conn,
                    tenant_id=channel.tenant_id,
                    channel_id=channel.id,
                    channel_name=channel.name,
                    feed=feed,
                    operation=getattr(exc, "op", None) or feed.value,
                    kind=classify_status(status),
                    reason=exc.reason,
                    raw=exc.raw,
                    now=now,
                )
                result: dict[str, Any] = {
                    "failed": exc.reason,
                    "retry_at": health.retry_at.isoformat() if health.retry_at else None,
                }
                ctx.complete_in(conn, result)
            return result
        with ctx.transaction() as conn:
            result = store(conn, changes.items, now)
            if changes.cursor is not None and changes.cursor != cursor:
                order_service.set_cursor(conn, channel.id, cursor_name, changes.cursor, now=now)
            if record_success(conn, tenant_id=channel.tenant_id, channel_id=channel.id, feed=feed, now=now):
                result["recovered"] = True
            ctx.complete_in(conn, result)
    return result


# --- messages -----------------------------------------------------------------------------------


def poll_messages(ctx: JobContext, channel: Channel, spec: ConnectorSpec) -> dict[str, Any]:
    """Messages since the messages cursor (every page): store new ones, merge customer ones into their
    orders (where the connector says how)."""

    def store(conn: Connection, items: Sequence[FeedItem], now: datetime) -> dict[str, Any]:
        stored = store_messages(conn, channel, items, now=now)
        if spec.customer_messages is not None:
            for marketplace_id in sorted({m.order_id for m in items if m.order_id}):
                merge_customer_messages(conn, channel, marketplace_id, spec.customer_messages, now=now)
        return {"messages": stored, "seen": len(items)}

    return _read_feed(
        ctx,
        channel,
        spec,
        SecondaryFeed.MESSAGES,
        lambda c, cursor, now: c.fetch_messages(cursor, now=now),
        store,
    )


def store_messages(conn: Connection, channel: Channel, items: Iterable[FeedItem], *, now: datetime) -> int:
    """Store messages idempotently (unique per channel and message id); returns how many were new."""
    stored = 0
    for msg in items:
        order_id = None
        if msg.order_id:
            order_id = conn.execute(
                sa.select(orders.c.id).where(
                    orders.c.channel_id == channel.id, orders.c.marketplace_order_id == msg.order_id
                )
            ).scalar()
        inserted = conn.execute(
            insert_ignore(conn, order_messages)
            .values(
                tenant_id=channel.tenant_id,
                channel_id=channel.id,
                order_id=order_id,
                marketplace_order_id=msg.order_id or None,
                message_id=msg.item_id,
                author=msg.data.get("author"),
                subject=msg.data.get("subject"),
                body=str(msg.data.get("body") or ""),
                sent_at=msg.occurred_at,
                raw=dict(msg.raw),
                received_at=now,
            )
            .returning(order_messages.c.id)
        ).scalar()
        stored += int(inserted is not None)
    return stored


def merge_customer_messages_of(
    conn: Connection,
    channel: Channel,
    marketplace_ids: Sequence[str],
    rules: CustomerMessages,
    *,
    now: datetime,
) -> None:
    """:func:`merge_customer_messages` for each of the orders that has messages stored (one
    ``SELECT`` for the lot; an order without any has nothing to merge)."""
    with_messages: set[str] = set()
    for start in range(0, len(marketplace_ids), 500):
        with_messages.update(
            conn.execute(
                sa.select(order_messages.c.marketplace_order_id)
                .where(
                    order_messages.c.channel_id == channel.id,
                    order_messages.c.marketplace_order_id.in_(marketplace_ids[start : start + 500]),
                )
                .distinct()
            ).scalars()
        )
    for marketplace_id in marketplace_ids:
        if marketplace_id in with_messages:
            merge_customer_messages(conn, channel, marketplace_id, rules, now=now)


def merge_customer_messages(
    conn: Connection, channel: Channel, marketplace_id: str, rules: CustomerMessages, *, now: datetime
) -> None:
    """The customer's messages of an order become its attribute ``rules.attribute`` (and
    ``customer_message``) — whichever of the order and the message tradelane saw first."""
    row = conn.execute(
        sa.select(orders.c.id, orders.c.attributes, orders.c.customer_message).where(
            orders.c.channel_id == channel.id, orders.c.marketplace_order_id == marketplace_id
        )
    ).first()
    if row is None:
        return
    conn.execute(
        sa.update(order_messages)
        .where(
            order_messages.c.channel_id == channel.id,
            order_messages.c.marketplace_order_id == marketplace_id,
            order_messages.c.order_id.is_(None),
        )
        .values(order_id=row.id)
    )
    texts = [
        m.body
        for m in conn.execute(
            sa.select(order_messages.c.body, order_messages.c.raw)
            .where(
                order_messages.c.channel_id == channel.id,
                order_messages.c.marketplace_order_id == marketplace_id,
            )
            .order_by(order_messages.c.id)
        )
        if rules.is_customer(m.raw or {})
    ]
    if not texts:
        return
    attributes = dict(row.attributes)
    message = attributes.get(rules.attribute) or row.customer_message or ""
    for text in (t.strip() for t in texts):
        if text and f"\n{text}\n" not in f"\n{message}\n":
            message = f"{message}\n{text}" if message else text
    if message != attributes.get(rules.attribute):
        attributes[rules.attribute] = message
        conn.execute(
            sa.update(orders)
            .where(orders.c.id == row.id)
            .values(attributes=attributes, customer_message=message, updated_at=now)
        )


# --- returns ------------------------------------------------------------------------------------


def poll_returns(ctx: JobContext, channel: Channel, spec: ConnectorSpec) -> dict[str, Any]:
    """Returns updated since the returns cursor (every page): store new ones, update changed ones."""

    def store(conn: Connection, items: Sequence[FeedItem], now: datetime) -> dict[str, Any]:
        return {"returns": store_returns(conn, channel, items, now=now), "seen": len(items)}

    return _read_feed(
        ctx,
        channel,
        spec,
        SecondaryFeed.RETURNS,
        lambda c, cursor, now: c.fetch_returns(cursor, now=now),
        store,
    )


def store_returns(conn: Connection, channel: Channel, items: Iterable[FeedItem], *, now: datetime) -> int:
    """Insert new returns, update known ones with a newer marketplace version; returns how many were new."""
    stored = 0
    for ret in items:
        order_id = conn.execute(
            sa.select(orders.c.id).where(
                orders.c.channel_id == channel.id, orders.c.marketplace_order_id == ret.order_id
            )
        ).scalar()
        values = {
            "tenant_id": channel.tenant_id,
            "channel_id": channel.id,
            "order_id": order_id,
            "marketplace_return_id": ret.item_id,
            "marketplace_order_id": ret.order_id,
            "state": ret.data.get("state"),
            "rma": ret.data.get("rma"),
            "lines": list(ret.data.get("lines") or []),
            "raw": dict(ret.raw),
            "marketplace_updated_at": ret.occurred_at,
            "created_at": now,
            "updated_at": now,
        }
        inserted = conn.execute(
            insert_ignore(conn, returns).values(**values).returning(returns.c.id)
        ).scalar()
        if inserted is None:
            conn.execute(
                sa.update(returns)
                .where(
                    returns.c.channel_id == channel.id,
                    returns.c.marketplace_return_id == ret.item_id,
                    returns.c.marketplace_updated_at <= ret.occurred_at,
                )
                .values(
                    state=ret.data.get("state"),
                    raw=dict(ret.raw),
                    marketplace_updated_at=ret.occurred_at,
                    updated_at=now,
                )
            )
        stored += int(inserted is not None)
    return stored
