"""Mirakl secondary feeds, each in a job of its own beside the orders poll: customer messages (M01, job
``orders.messages``) and returns (RT11, job ``orders.returns``).

The orders poll queues both after its orders are committed (:func:`enqueue_feeds`). A feed's failure —
404 on an operator without the module, 403, 5xx, timeouts, garbage or truncated bodies, contract
breaks — never fails the orders poll nor the feed's job: the raw exchange is kept, an alert raised and
the feed backs off (:mod:`tradelane.services.feeds`). Only a 429 goes back to the engine, which retries
at exactly ``Retry-After`` without spending an attempt, and a 401 (the API key itself rejected, a matter
of the whole channel).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.mirakl.errors import (
    MiraklAuthError,
    MiraklPermanentError,
    MiraklRateLimited,
    MiraklRetryableError,
)
from tradelane.connectors.mirakl.gateway import MiraklGateway
from tradelane.connectors.mirakl.mapping import ORDER_MESSAGE_ATTRIBUTE
from tradelane.connectors.mirakl.models import Message, Return
from tradelane.domain.channels import Flow
from tradelane.domain.feeds import SecondaryFeed, classify_status
from tradelane.persistence.db import insert_ignore
from tradelane.persistence.tables import order_messages, orders, returns
from tradelane.services import feeds
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.sync.context import JobContext

MESSAGES = "orders.messages"
RETURNS = "orders.returns"
MESSAGES_WATERMARK = "mirakl.m01.start_date"
RETURNS_WATERMARK = "mirakl.rt11.updated_from"
#: Job kind and Mirakl operation of each feed.
FEED_JOBS: dict[SecondaryFeed, tuple[str, str]] = {
    SecondaryFeed.MESSAGES: (MESSAGES, "M01"),
    SecondaryFeed.RETURNS: (RETURNS, "RT11"),
}


def enqueue_feeds(conn: Connection, channel: Channel, *, now: datetime) -> None:
    """Queue a read of every secondary feed, each as its backoff allows (coalesced with a pending one)."""
    for feed, (kind, _op) in FEED_JOBS.items():
        feeds.enqueue_feed(
            conn,
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            feed=feed,
            kind=kind,
            flow=Flow.ORDERS.value,
            now=now,
        )


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _read_feed(
    ctx: JobContext,
    channel: Channel,
    feed: SecondaryFeed,
    cursor: str,
    fetch: Callable[[MiraklGateway, datetime | None], Any],
    store: Callable[[Connection, MiraklGateway, Any, datetime], dict[str, Any]],
) -> dict[str, Any]:
    """Read one feed and store what it returned, or record the failure (alert, raw exchange, backoff);
    either way the job completes. ``fetch`` returns ``None`` when the channel's budget has no token."""
    _kind, op = FEED_JOBS[feed]
    now = ctx.now()
    with MiraklGateway(ctx, channel) as gw:
        with ctx.engine.connect() as conn:
            since = _parse_ts(order_service.get_cursor(conn, channel.id, cursor))
        try:
            page = fetch(gw, since)
        except MiraklRateLimited:
            raise  # the engine retries at exactly Retry-After
        except MiraklAuthError:
            raise  # the key itself is rejected: a channel matter (orders fail too), not this feed's
        except (MiraklRetryableError, MiraklPermanentError) as exc:
            with ctx.transaction() as conn:
                gw.record(conn, feeds.exchange_subject(feed), now=now)
                health = feeds.record_failure(
                    conn,
                    tenant_id=channel.tenant_id,
                    channel_id=channel.id,
                    channel_name=channel.name,
                    feed=feed,
                    operation=op,
                    kind=classify_status(exc.status),
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
        if page is None:
            return {"skipped": f"no {op} budget left; read again on the next poll"}
        with ctx.transaction() as conn:
            result = store(conn, gw, page, now)
            if feeds.record_success(
                conn, tenant_id=channel.tenant_id, channel_id=channel.id, feed=feed, now=now
            ):
                result["recovered"] = True
            ctx.complete_in(conn, result)
    return result


# --- messages (M01) -----------------------------------------------------------------------------


def poll_messages(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """M01 since the messages watermark (every page): store new messages, merge customer ones into their
    orders."""

    def fetch(gw: MiraklGateway, since: datetime | None) -> Any:
        return gw.try_call("M01", lambda c: list(c.iter_messages(start_date=since)))

    def store(conn: Connection, _gw: MiraklGateway, messages: Any, now: datetime) -> dict[str, Any]:
        stored = store_messages(conn, channel, messages, now=now)
        for mirakl_id in sorted({m.order_id for m in messages if m.order_id}):
            merge_customer_messages(conn, channel, mirakl_id, now=now)
        return {"messages": stored, "seen": len(messages)}

    return _read_feed(ctx, channel, SecondaryFeed.MESSAGES, MESSAGES_WATERMARK, fetch, store)


def store_messages(conn: Connection, channel: Channel, messages: Iterable[Message], *, now: datetime) -> int:
    """Store messages idempotently (unique per channel and message id) and move the M01 watermark to
    the newest one; returns how many were new."""
    stored = 0
    newest: datetime | None = None
    for msg in messages:
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
                marketplace_order_id=msg.order_id,
                message_id=str(msg.message_id),
                author=msg.from_name,
                subject=msg.subject,
                body=msg.body,
                sent_at=msg.created_at,
                raw=dict(msg.raw),
                received_at=now,
            )
            .returning(order_messages.c.id)
        ).scalar()
        stored += int(inserted is not None)
        newest = msg.created_at if newest is None or msg.created_at > newest else newest
    if newest is not None:
        order_service.set_cursor(conn, channel.id, MESSAGES_WATERMARK, newest.isoformat(), now=now)
    return stored


def merge_customer_messages_of(
    conn: Connection, channel: Channel, mirakl_ids: Sequence[str], *, now: datetime
) -> None:
    """:func:`merge_customer_messages` for each of the orders that has messages stored (one
    ``SELECT`` for the lot; an order without any has nothing to merge)."""
    with_messages: set[str] = set()
    for start in range(0, len(mirakl_ids), 500):
        with_messages.update(
            conn.execute(
                sa.select(order_messages.c.marketplace_order_id)
                .where(
                    order_messages.c.channel_id == channel.id,
                    order_messages.c.marketplace_order_id.in_(mirakl_ids[start : start + 500]),
                )
                .distinct()
            ).scalars()
        )
    for mirakl_id in mirakl_ids:
        if mirakl_id in with_messages:
            merge_customer_messages(conn, channel, mirakl_id, now=now)


def merge_customer_messages(conn: Connection, channel: Channel, mirakl_id: str, *, now: datetime) -> None:
    """Customer messages (M01, from the customer) of an order become its order-level attribute
    ``:MiraklOrderMessage`` — whichever of the order and the message tradelane saw first."""
    row = conn.execute(
        sa.select(orders.c.id, orders.c.attributes, orders.c.customer_message).where(
            orders.c.channel_id == channel.id, orders.c.marketplace_order_id == mirakl_id
        )
    ).first()
    if row is None:
        return
    conn.execute(
        sa.update(order_messages)
        .where(
            order_messages.c.channel_id == channel.id,
            order_messages.c.marketplace_order_id == mirakl_id,
            order_messages.c.order_id.is_(None),
        )
        .values(order_id=row.id)
    )
    texts = [
        m.body
        for m in conn.execute(
            sa.select(order_messages.c.body, order_messages.c.raw)
            .where(
                order_messages.c.channel_id == channel.id, order_messages.c.marketplace_order_id == mirakl_id
            )
            .order_by(order_messages.c.id)
        )
        if (m.raw or {}).get("from_type") == "CUSTOMER"
    ]
    if not texts:
        return
    attributes = dict(row.attributes)
    message = attributes.get(ORDER_MESSAGE_ATTRIBUTE) or row.customer_message or ""
    for text in (t.strip() for t in texts):
        if text and f"\n{text}\n" not in f"\n{message}\n":
            message = f"{message}\n{text}" if message else text
    if message != attributes.get(ORDER_MESSAGE_ATTRIBUTE):
        attributes[ORDER_MESSAGE_ATTRIBUTE] = message
        conn.execute(
            sa.update(orders)
            .where(orders.c.id == row.id)
            .values(attributes=attributes, customer_message=message, updated_at=now)
        )


# --- returns (RT11) -----------------------------------------------------------------------------


def poll_returns(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """RT11 since the returns watermark (every page): store new returns, update changed ones."""

    def fetch(gw: MiraklGateway, since: datetime | None) -> Any:
        return gw.try_call("RT11", lambda c: list(c.iter_returns(updated_from=since)))

    def store(conn: Connection, gw: MiraklGateway, items: Any, now: datetime) -> dict[str, Any]:
        stored = store_returns(conn, channel, items, now=now)
        newest = max((r.updated_at for r in items), default=None)
        if newest is not None:
            # Re-read a little of the past each time: a return updated at the boundary is never missed.
            mark = newest - timedelta(seconds=gw.settings.poll_overlap_seconds)
            order_service.set_cursor(conn, channel.id, RETURNS_WATERMARK, mark.isoformat(), now=now)
        return {"returns": stored, "seen": len(items)}

    return _read_feed(ctx, channel, SecondaryFeed.RETURNS, RETURNS_WATERMARK, fetch, store)


def store_returns(conn: Connection, channel: Channel, items: Iterable[Return], *, now: datetime) -> int:
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
            "marketplace_return_id": ret.return_id,
            "marketplace_order_id": ret.order_id,
            "state": ret.state,
            "rma": ret.rma,
            "lines": [
                {"order_line_id": ln.order_line_id, "quantity": ln.quantity, "reason_code": ln.reason_code}
                for ln in ret.lines
            ],
            "raw": dict(ret.raw),
            "marketplace_updated_at": ret.updated_at,
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
                    returns.c.marketplace_return_id == ret.return_id,
                    returns.c.marketplace_updated_at <= ret.updated_at,
                )
                .values(
                    state=ret.state, raw=dict(ret.raw), marketplace_updated_at=ret.updated_at, updated_at=now
                )
            )
        stored += int(inserted is not None)
    return stored
