"""Mirakl orders: poll (OR11), accept (OR21), and the alerts around the deadline.

Polling keeps a ``start_update_date`` watermark per channel. Each run reads every page from the
watermark to the end, ingests every order version idempotently (unique on channel + order id), and
moves the watermark to the newest ``last_updated_date`` seen *minus an overlap*, so an order updated at
a page or time boundary is seen again rather than missed. Seeing an order twice is harmless.

Secondary feeds (messages M01, returns RT11) are never read inside the poll: once the orders are
committed, the poll queues their own jobs (:mod:`.feeds_flow`), so no failure of theirs can hold an
order back from being stored and accepted.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.mirakl.errors import MiraklRequestRejected
from tradelane.connectors.mirakl.feeds_flow import enqueue_feeds, merge_customer_messages_of
from tradelane.connectors.mirakl.gateway import MiraklGateway
from tradelane.connectors.mirakl.settings import POLLED_STATES, AcceptancePolicy
from tradelane.domain.errors import RetryableError
from tradelane.domain.orders import MarketplaceOrder, MarketplaceOrderState, MerchantStatus, deadline_missed
from tradelane.persistence.tables import orders, products
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.order_delivery import enqueue_cancellation_notice
from tradelane.services.order_health import delivery_spec
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import JobSpec, enqueue_many

WATERMARK = "mirakl.or11.start_update_date"
ACCEPT = "orders.accept"
#: Line states meaning the marketplace took the line away from the order.
CANCELLED_LINE_STATES = frozenset({"CANCELED", "REFUSED"})


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def poll_orders(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    now = ctx.now()
    with MiraklGateway(ctx, channel) as gw:
        with ctx.engine.connect() as conn:
            start = _parse_ts(order_service.get_cursor(conn, channel.id, WATERMARK))
            third_party = _fulfillments_off(conn, channel.id)
        if start is None:
            start = now - timedelta(hours=gw.settings.initial_lookback_hours)
        fetched = gw.call(
            "OR11", lambda c: list(c.iter_orders(states=POLLED_STATES, start_update_date=start))
        )
        latest: dict[str, MarketplaceOrder] = {}
        for raw_order in fetched:  # a duplicated page yields the same order twice: keep the newest
            order = _localise(raw_order, gw)
            seen = latest.get(order.marketplace_order_id)
            if seen is None or order.updated_at >= seen.updated_at:
                latest[order.marketplace_order_id] = order
        summary = {
            "fetched": len(fetched),
            "orders": len(latest),
            "created": 0,
            "to_accept": 0,
            "cancellations": 0,
            "alerts": 0,
        }
        with ctx.transaction() as conn:
            counts = store_orders(conn, channel, list(latest.values()), now=now, third_party=third_party)
            summary.update(counts)
            summary["alerts"] = check_deadlines(conn, channel, now=now)
            # messages read before the order arrived
            merge_customer_messages_of(conn, channel, list(latest), now=now)
            enqueue_feeds(conn, channel, now=now)
            newest = max((o.updated_at for o in latest.values()), default=None)
            if newest is not None:
                watermark = max(start, newest - timedelta(seconds=gw.settings.poll_overlap_seconds))
                order_service.set_cursor(conn, channel.id, WATERMARK, watermark.isoformat(), now=now)
            elif order_service.get_cursor(conn, channel.id, WATERMARK) is None:
                order_service.set_cursor(conn, channel.id, WATERMARK, start.isoformat(), now=now)
            gw.record(conn, "orders.poll", now=now, only_ops={"OR11"})
            ctx.complete_in(conn, summary)
    return summary


def store_orders(
    conn: Connection,
    channel: Channel,
    page: list[MarketplaceOrder],
    *,
    now: datetime,
    third_party: bool = False,
) -> dict[str, int]:
    """Store a polled page (one version per order) and queue what follows from it, set-wise: the
    orders (:func:`~tradelane.services.orders.ingest_orders`), one acceptance per order awaiting it
    (idempotent per order), one delivery per order ready for the merchant system (at most one in
    flight, by ``exclusive_key``), and a cancellation notice for a delivered order the marketplace
    cancelled. Returns the counts ``created``, ``to_accept`` and ``cancellations``."""
    ingested = order_service.ingest_orders(
        conn,
        tenant_id=channel.tenant_id,
        channel_id=channel.id,
        orders_page=page,
        now=now,
        third_party_managed=third_party,
    )
    accept: list[JobSpec] = []
    deliver: list[JobSpec] = []
    cancellations = 0
    for item in ingested:
        result = item.result
        if result.stale:
            continue
        if item.order.state is MarketplaceOrderState.WAITING_ACCEPTANCE:
            accept.append(
                JobSpec(
                    tenant_id=channel.tenant_id,
                    kind=ACCEPT,
                    payload={"order_id": result.order_id},
                    channel_id=channel.id,
                    flow="orders",
                    idempotency_key=f"{ACCEPT}:{result.order_id}",
                    priority=10,
                )
            )
        if result.merchant_status == MerchantStatus.PENDING.value:
            deliver.append(
                delivery_spec(tenant_id=channel.tenant_id, order_id=result.order_id, channel_id=channel.id)
            )
        cancellations += queue_cancellation_notice(
            conn, channel, item.order, result, item.lines_before, now=now
        )
    queued = enqueue_many(conn, accept + deliver, now=now)
    return {
        "created": sum(int(item.result.created) for item in ingested),
        "to_accept": sum(int(r.created) for r in queued[: len(accept)]),
        "cancellations": cancellations,
    }


def queue_cancellation_notice(
    conn: Connection,
    channel: Channel,
    order: MarketplaceOrder,
    result: order_service.IngestResult,
    before: dict[str, str],
    *,
    now: datetime,
) -> int:
    """Queue ``orders.notify_cancellation`` when this version cancels an order already delivered to
    the merchant system: the whole order (newly CANCELED), else the lines newly cancelled or refused
    (``before``: the stored line states). Returns 1 when a notice was queued."""
    if result.created or result.stale or result.merchant_status != MerchantStatus.DELIVERED.value:
        return 0
    lines: list[str] | None
    if order.state is MarketplaceOrderState.CANCELED:
        if result.previous_state == order.state.value:
            return 0  # already cancelled (and notified) before
        lines = None
    else:
        lines = [
            line.line_id
            for line in order.lines
            if line.state.upper() in CANCELLED_LINE_STATES
            and before.get(line.line_id, "").upper() not in CANCELLED_LINE_STATES
        ]
        if not lines:
            return 0
    queued = enqueue_cancellation_notice(
        conn,
        tenant_id=channel.tenant_id,
        order_id=result.order_id,
        channel_id=channel.id,
        lines=lines,
        now=now,
    )
    return int(queued.created)


def _localise(order: MarketplaceOrder, gw: MiraklGateway) -> MarketplaceOrder:
    """Catalog SKUs from offer SKUs (the channel's SKU template) and the acceptance deadline."""
    offer_settings = gw.settings.offer_settings()
    lines = tuple(
        replace(line, product_sku=offer_settings.product_sku(line.offer_sku) or line.offer_sku)
        for line in order.lines
    )
    deadline = order.acceptance_deadline or order.created_at + timedelta(
        seconds=gw.settings.acceptance_window_seconds
    )
    return replace(order, lines=lines, acceptance_deadline=deadline)


def _fulfillments_off(conn: Connection, channel_id: int) -> bool:
    """Third Party Managed: with the Fulfillments flow off, orders are flagged and never updated back."""
    from tradelane.persistence.tables import channel_flows

    enabled = conn.execute(
        sa.select(channel_flows.c.enabled).where(
            channel_flows.c.channel_id == channel_id, channel_flows.c.flow == "fulfillments"
        )
    ).scalar()
    return enabled is False


def check_deadlines(conn: Connection, channel: Channel, *, now: datetime) -> int:
    """Alert (once per order) for every order whose acceptance deadline passed unaccepted, including
    orders the marketplace auto-cancelled for that reason."""
    rows = conn.execute(
        sa.select(
            orders.c.id, orders.c.marketplace_order_id, orders.c.acceptance_deadline, orders.c.state
        ).where(
            orders.c.channel_id == channel.id,
            orders.c.accepted_at.is_(None),
            orders.c.acceptance_deadline.is_not(None),
            orders.c.acceptance_deadline <= now,
            orders.c.state.in_(
                [MarketplaceOrderState.WAITING_ACCEPTANCE.value, MarketplaceOrderState.CANCELED.value]
            ),
        )
    ).all()
    raised = 0
    for row in rows:
        # An unaccepted order past its deadline: still waiting, or already cancelled by the marketplace.
        if not deadline_missed(row.acceptance_deadline, False, now):
            continue
        cancelled = row.state == MarketplaceOrderState.CANCELED.value
        auto = " and the marketplace cancelled it" if cancelled else ""
        raised += order_service.raise_alert(
            conn,
            tenant_id=channel.tenant_id,
            kind="acceptance_deadline_missed",
            key=f"acceptance_deadline_missed:{row.id}",
            message=(
                f"order {row.marketplace_order_id} on {channel.name} was not accepted before its deadline "
                f"{row.acceptance_deadline.isoformat()}{auto}"
            ),
            now=now,
            channel_id=channel.id,
            order_id=row.id,
        )
    return raised


def accept_order(ctx: JobContext, channel: Channel) -> dict[str, Any]:
    """OR21 for one order: every line accepted (``accept_all``) or only lines whose SKU is known and in
    stock (``accept_if_known``, with the refusal reason recorded on the line).

    An acceptance that already took effect (an OR21 that timed out after the marketplace applied it)
    completes the job: when OR21 is refused, OR11 is read again, and an order past acceptance is
    recorded accepted ("found already accepted"), a refused/cancelled one as not accepted; only an
    order still awaiting acceptance is retried. The same holds when a poll stored the later state first."""
    order_id = int(ctx.job.payload["order_id"])
    now = ctx.now()
    with ctx.engine.connect() as conn:
        order = order_service.get_order(conn, channel.tenant_id, order_id)
    if order["accepted_at"] is not None:
        return {"skipped": "already accepted"}
    if order["state"] in PAST_ACCEPTANCE_STATES:
        # A poll saw the order move on before this job recorded its OR21 (e.g. OR21 timed out after
        # taking effect): the marketplace shows the acceptance done.
        return _found_done(
            ctx, channel, order, MarketplaceOrderState(order["state"]), f"a poll saw it {order['state']}"
        )
    if order["state"] != MarketplaceOrderState.WAITING_ACCEPTANCE.value:
        return {"skipped": f"order is {order['state']}"}
    with MiraklGateway(ctx, channel) as gw:
        decisions, refusals = _decide(ctx, channel, gw.settings.acceptance_policy, order)
        try:
            gw.call("OR21", lambda c: c.accept_lines(order["marketplace_order_id"], decisions))
        except MiraklRequestRejected as exc:
            # Refused because an earlier OR21 took effect (it timed out, or its answer was lost)? The
            # order as the marketplace shows it now tells; only an order still awaiting acceptance
            # is retried.
            state = _marketplace_state(gw, order["marketplace_order_id"])
            if state is None or state not in PAST_ACCEPTANCE_STATES | NOT_ACCEPTED_STATES:
                shown = "not found by OR11" if state is None else f"still {state.value}"
                raise RetryableError(
                    f"OR21 refused ({exc.reason}); the order is {shown}, will try again", raw=exc.raw
                ) from exc
            return _found_done(ctx, channel, order, state, f"OR21 answered {exc.reason}", gw=gw)
        with ctx.transaction() as conn:
            note = "all lines accepted" if not refusals else f"{len(refusals)} line(s) refused"
            order_service.mark_accepted(conn, channel.tenant_id, order_id, now=now, note=note)
            for line_id, reason in refusals.items():
                order_service.set_line_refusal(conn, order_id, line_id, reason)
            if deadline_missed(order["acceptance_deadline"], False, now):
                order_service.raise_alert(
                    conn,
                    tenant_id=channel.tenant_id,
                    kind="acceptance_late",
                    key=f"acceptance_late:{order_id}",
                    message=f"order {order['marketplace_order_id']} was accepted after its deadline",
                    now=now,
                    channel_id=channel.id,
                    order_id=order_id,
                    severity="warning",
                )
            gw.record(conn, f"order:{order_id}", now=now)
            result = {"accepted": sum(decisions.values()), "refused": len(refusals)}
            ctx.complete_in(conn, result)
    return result


#: Order states a Mirakl order reaches only once accepted (at least one line accepted).
PAST_ACCEPTANCE_STATES = frozenset(
    {
        MarketplaceOrderState.WAITING_DEBIT,
        MarketplaceOrderState.WAITING_DEBIT_PAYMENT,
        MarketplaceOrderState.SHIPPING,
        MarketplaceOrderState.SHIPPED,
        MarketplaceOrderState.TO_COLLECT,
        MarketplaceOrderState.RECEIVED,
        MarketplaceOrderState.CLOSED,
    }
)
#: Order states that end the acceptance without the order being accepted.
NOT_ACCEPTED_STATES = frozenset({MarketplaceOrderState.REFUSED, MarketplaceOrderState.CANCELED})


def _marketplace_state(gw: MiraklGateway, mirakl_id: str) -> MarketplaceOrderState | None:
    """The order's state as OR11 shows it now (``None``: OR11 does not know the order)."""
    found = gw.call("OR11", lambda c: list(c.iter_orders(order_ids=[mirakl_id])))
    states = [o.state for o in found if o.marketplace_order_id == mirakl_id]
    return states[0] if states else None


def _found_done(
    ctx: JobContext,
    channel: Channel,
    order: dict[str, Any],
    state: MarketplaceOrderState,
    evidence: str,
    *,
    gw: MiraklGateway | None = None,
) -> dict[str, Any]:
    """Complete the acceptance job for an order the marketplace no longer awaits a decision on,
    recording what is true: accepted (``state`` past acceptance) or not (refused / cancelled)."""
    order_id = int(order["id"])
    now = ctx.now()
    with ctx.transaction() as conn:
        if state in PAST_ACCEPTANCE_STATES:
            note = f"found already accepted on the marketplace ({state.value}; {evidence})"
            order_service.mark_accepted(conn, channel.tenant_id, order_id, now=now, note=note)
            result: dict[str, Any] = {"found_accepted": state.value}
        else:
            note = f"not accepted: the marketplace shows the order {state.value} ({evidence})"
            order_service.add_history(
                conn, channel.tenant_id, order_id, "ACCEPTANCE_NOT_DONE", now=now, note=note
            )
            result = {"found_not_accepted": state.value}
        if gw is not None:
            gw.record(conn, f"order:{order_id}", now=now)
        ctx.complete_in(conn, result)
    return result


def _decide(
    ctx: JobContext, channel: Channel, policy: AcceptancePolicy, order: dict[str, Any]
) -> tuple[dict[str, bool], dict[str, str]]:
    decisions: dict[str, bool] = {}
    refusals: dict[str, str] = {}
    if policy is AcceptancePolicy.ACCEPT_ALL:
        return {line["line_id"]: True for line in order["lines"]}, refusals
    skus = [line["sku"] for line in order["lines"]]
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(products.c.sku, products.c.quantity).where(
                products.c.tenant_id == channel.tenant_id, products.c.sku.in_(skus)
            )
        ).all()
    stock: dict[str, int] = {r.sku: r.quantity for r in rows}
    for line in order["lines"]:
        available = stock.get(line["sku"])
        if available is None:
            refusals[line["line_id"]] = f"SKU {line['sku']} is unknown in the catalog"
        elif available < line["quantity"]:
            refusals[line["line_id"]] = f"SKU {line['sku']} out of stock ({available} < {line['quantity']})"
        decisions[line["line_id"]] = line["line_id"] not in refusals
    return decisions, refusals
