"""Order intake for any marketplace connector: the ``orders.poll`` job.

Each run hands the channel's stored orders cursor to the connector's
:meth:`~tradelane.connectors.base.MarketplaceConnector.fetch_orders` (every page, an overlapping
watermark — seeing an order twice is harmless, missing one is not), stores what came back set-wise and
idempotently (:func:`~tradelane.services.orders.ingest_orders`, unique on channel + order id), queues
what follows — one acceptance per order awaiting it where the connector requires acceptance, one
delivery per order ready for the merchant system, a cancellation notice for a delivered order the
marketplace cancelled — alerts on missed acceptance deadlines, and keeps the new cursor, all in one
transaction with the job's completion.

Cutover cutoff: while a cutover of the channel (:mod:`tradelane.services.cutover`, not reverted) holds an
order-import cutoff, :func:`store_orders` drops every order the marketplace *created* before it — those
belong to the previous integrator and are never imported, whatever later versions say — and counts them
in ``before_cutoff``. Orders created at or after the cutoff are stored as usual.

Secondary feeds (messages, returns) are never read inside the poll: once the orders are committed the
poll queues their own jobs (:func:`~tradelane.services.feeds.enqueue_feeds`), so no failure of theirs
can hold an order back from being stored and accepted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.connectors.registry import ConnectorSpec
from tradelane.domain.orders import MarketplaceOrder, MerchantStatus, OrderState, deadline_missed
from tradelane.persistence.tables import channel_flows, cutovers, jobs, orders
from tradelane.services import feeds
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.connector_session import ConnectorSession
from tradelane.services.order_delivery import enqueue_cancellation_notice
from tradelane.services.order_health import delivery_spec
from tradelane.sync.context import JobContext
from tradelane.sync.jobs import EnqueueResult, JobSpec, enqueue, enqueue_many

POLL = "orders.poll"
ACCEPT = "orders.accept"
#: Line states (connectors keep each line's raw state) meaning the marketplace took the line away from
#: the order: Mirakl's CANCELED / REFUSED, Amazon's CANCELLED (an item with a cancellation executed).
CANCELLED_LINE_STATES = frozenset({"CANCELED", "CANCELLED", "REFUSED"})


def poll_orders(ctx: JobContext, channel: Channel, spec: ConnectorSpec) -> dict[str, Any]:
    """One ``orders.poll`` run for ``channel`` (see the module docstring). Returns the job's summary:
    ``fetched`` (order versions read), ``orders`` (distinct orders), ``created``, ``to_accept``,
    ``cancellations`` (notices queued) and ``alerts`` (deadline alerts raised)."""
    now = ctx.now()
    cursor_name = spec.cursor("orders")
    with ConnectorSession(ctx, channel, spec.factory) as session:
        connector = session.connector
        with ctx.engine.connect() as conn:
            cursor = order_service.get_cursor(conn, channel.id, cursor_name)
            third_party = fulfillments_off(conn, channel.id)
        changes = connector.fetch_orders(cursor, now=now)
        latest: dict[str, MarketplaceOrder] = {}
        for order in changes.orders:  # one version per order: the newest
            seen = latest.get(order.marketplace_order_id)
            if seen is None or order.updated_at >= seen.updated_at:
                latest[order.marketplace_order_id] = order
        summary: dict[str, Any] = {
            "fetched": changes.fetched or len(changes.orders),
            "orders": len(latest),
            "created": 0,
            "to_accept": 0,
            "cancellations": 0,
            "alerts": 0,
        }
        if changes.withheld:
            summary["withheld"] = changes.withheld
        with ctx.transaction() as conn:
            counts = store_orders(
                conn,
                channel,
                list(latest.values()),
                now=now,
                third_party=third_party,
                acceptance_required=connector.capabilities.acceptance_required,
            )
            summary.update(counts)
            summary["alerts"] = check_deadlines(conn, channel, now=now)
            if spec.customer_messages is not None:  # messages read before their order arrived
                feeds.merge_customer_messages_of(conn, channel, list(latest), spec.customer_messages, now=now)
            feeds.enqueue_feeds(conn, channel, connector.capabilities, now=now)
            if changes.cursor is not None and changes.cursor != cursor:
                order_service.set_cursor(conn, channel.id, cursor_name, changes.cursor, now=now)
            if changes.more:  # the read stopped early: continue as soon as the budget allows
                summary["more"] = True
                enqueue(
                    conn,
                    JobSpec(
                        tenant_id=channel.tenant_id,
                        kind=POLL,
                        payload={},
                        channel_id=channel.id,
                        flow="orders",
                        dedupe_key=f"{POLL}:{channel.id}",
                    ),
                    now=now,
                )
            session.record(conn, POLL, now=now)
            ctx.complete_in(conn, summary)
    return summary


def store_orders(
    conn: Connection,
    channel: Channel,
    page: list[MarketplaceOrder],
    *,
    now: datetime,
    third_party: bool = False,
    acceptance_required: bool = True,
) -> dict[str, int]:
    """Store a polled page and queue what follows from it, set-wise: the orders
    (:func:`~tradelane.services.orders.ingest_orders`), one acceptance per order awaiting it
    when the connector requires acceptance (``acceptance_required``; idempotent per order), one
    delivery per order ready for the merchant system (at most one in flight, by ``exclusive_key``), and
    a cancellation notice for a delivered order the marketplace cancelled. Returns the counts
    ``created``, ``to_accept`` and ``cancellations``, and ``before_cutoff`` when a cutover cutoff
    (:func:`orders_cutoff`) dropped orders created before it.

    A page holding an order more than once (the poll keeps one version per order; other callers may
    not) is stored in rounds — each order's first version, then its second... — so the rows are those
    of storing the versions one by one in page order. The jobs of orders stored before whose key an
    existing job already holds are found with one ``SELECT`` (:func:`held_jobs`) and not inserted
    again: re-polling known orders costs no statement per order."""
    cutoff = orders_cutoff(conn, channel.id)
    dropped = 0
    if cutoff is not None:
        kept = [order for order in page if order.created_at >= cutoff]
        dropped = len(page) - len(kept)
        page = kept
    ingested = [
        item
        for round_ in _rounds(page)
        for item in order_service.ingest_orders(
            conn,
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            orders_page=round_,
            now=now,
            third_party_managed=third_party,
        )
    ]
    accept: list[JobSpec] = []
    deliver: list[JobSpec] = []
    cancellations = 0
    for item in ingested:
        result = item.result
        if result.stale:
            continue
        if acceptance_required and item.order.state is OrderState.AWAITING_ACCEPTANCE:
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
    specs = accept + deliver
    # An order this call created has no job yet (its id is new): only the other orders' keys may be held.
    created = {item.result.order_id for item in ingested if item.result.created}
    known = [i for i, spec in enumerate(specs) if spec.payload["order_id"] not in created]
    held_known = held_jobs(conn, channel.tenant_id, [specs[i] for i in known])
    held = {known[j]: job_id for j, job_id in held_known.items()}
    fresh = iter(enqueue_many(conn, [s for i, s in enumerate(specs) if i not in held], now=now))
    queued = [EnqueueResult(held[i], False) if i in held else next(fresh) for i in range(len(specs))]
    counts = {
        "created": sum(int(item.result.created) for item in ingested),
        "to_accept": sum(int(r.created) for r in queued[: len(accept)]),
        "cancellations": cancellations,
    }
    if dropped:
        counts["before_cutoff"] = dropped
    return counts


def _rounds(page: list[MarketplaceOrder]) -> list[list[MarketplaceOrder]]:
    """``page`` split so that no round holds an order twice: round ``n`` holds the ``n``-th version of
    each order given ``n`` times or more, in page order (one round for a page without repeats)."""
    rounds: list[list[MarketplaceOrder]] = []
    seen: dict[str, int] = {}
    for order in page:
        n = seen.get(order.marketplace_order_id, 0)
        seen[order.marketplace_order_id] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(order)
    return rounds


#: The predicates of the partial unique indexes on ``jobs`` (``uq_jobs_in_flight_exclusive``,
#: ``uq_jobs_pending_dedupe``), written as the indexes are so that both databases use them.
_IN_FLIGHT = sa.text("state IN ('queued', 'running') AND exclusive_key IS NOT NULL")
_PENDING = sa.text("state = 'queued' AND dedupe_key IS NOT NULL")


def held_jobs(conn: Connection, tenant_id: int, specs: Sequence[JobSpec]) -> dict[int, int]:
    """Position in ``specs`` → id of the job already holding that spec's key, for the specs that
    :func:`~tradelane.sync.jobs.enqueue` would answer with an existing job (``created=False``) and
    nothing else: the tenant's job with the same ``idempotency_key``, else the queued or running one
    with the same ``exclusive_key``, else the queued one with the same ``dedupe_key`` — the unique
    indexes' own rules, read with one ``SELECT`` per 500 specs (a ``UNION ALL``, one branch per key).

    Only specs of ``tenant_id`` without ``run_at`` are looked up (enqueue may bring a held job's
    ``run_at`` forward). This spares the doomed insert and the per-spec conflict resolution of
    :func:`~tradelane.sync.jobs.enqueue_many`; it does not replace the unique indexes: a key held here
    but freed before the caller's commit is what a poll that ran a moment earlier would have seen, and
    every spec not found here is still inserted with ``ON CONFLICT DO NOTHING``."""
    held: dict[int, int] = {}
    candidates = [
        (position, spec)
        for position, spec in enumerate(specs)
        if spec.tenant_id == tenant_id
        and spec.run_at is None
        and (spec.idempotency_key or spec.exclusive_key or spec.dedupe_key) is not None
    ]
    for start in range(0, len(candidates), 500):
        chunk = candidates[start : start + 500]
        idempotency = sorted({s.idempotency_key for _, s in chunk if s.idempotency_key is not None})
        exclusive = sorted({s.exclusive_key for _, s in chunk if s.exclusive_key is not None})
        dedupe = sorted({s.dedupe_key for _, s in chunk if s.dedupe_key is not None})
        branches: list[sa.Select[Any]] = []
        if idempotency:
            branches.append(
                sa.select(
                    sa.literal_column("'i'").label("by"), jobs.c.idempotency_key.label("key"), jobs.c.id
                ).where(jobs.c.tenant_id == tenant_id, jobs.c.idempotency_key.in_(idempotency))
            )
        if exclusive:
            branches.append(
                sa.select(
                    sa.literal_column("'e'").label("by"), jobs.c.exclusive_key.label("key"), jobs.c.id
                ).where(_IN_FLIGHT, jobs.c.exclusive_key.in_(exclusive))
            )
        if dedupe:
            branches.append(
                sa.select(
                    sa.literal_column("'d'").label("by"), jobs.c.dedupe_key.label("key"), jobs.c.id
                ).where(_PENDING, jobs.c.dedupe_key.in_(dedupe))
            )
        found: dict[tuple[str, str], int] = {}
        for row in conn.execute(sa.union_all(*branches) if len(branches) > 1 else branches[0]):
            found[(row.by, row.key)] = row.id
        for position, spec in chunk:
            job_id = None
            if spec.idempotency_key is not None:
                job_id = found.get(("i", spec.idempotency_key))
            if job_id is None and spec.exclusive_key is not None:
                job_id = found.get(("e", spec.exclusive_key))
            if job_id is None and spec.dedupe_key is not None:
                job_id = found.get(("d", spec.dedupe_key))
            if job_id is not None:
                held[position] = job_id
    return held


def orders_cutoff(conn: Connection, channel_id: int) -> datetime | None:
    """The order-import cutoff of the channel's cutover (None: no cutover, none set yet, or reverted):
    orders created on the marketplace before it are never imported."""
    value: datetime | None = conn.execute(
        sa.select(cutovers.c.orders_cutoff).where(
            cutovers.c.channel_id == channel_id,
            cutovers.c.status != "reverted",
            cutovers.c.orders_cutoff.is_not(None),
        )
    ).scalar()
    return value


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
    if order.state is OrderState.CANCELLED:
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


def fulfillments_off(conn: Connection, channel_id: int) -> bool:
    """Third Party Managed: with the Fulfillments flow off, orders are flagged and never updated back."""
    enabled = conn.execute(
        sa.select(channel_flows.c.enabled).where(
            channel_flows.c.channel_id == channel_id, channel_flows.c.flow == "fulfillments"
        )
    ).scalar()
    return enabled is False


def check_deadlines(conn: Connection, channel: Channel, *, now: datetime) -> int:
    """Alert (once per order) for every order whose acceptance deadline passed unaccepted, including
    orders the marketplace auto-cancelled for that reason. Returns how many alerts were raised."""
    rows = conn.execute(
        sa.select(
            orders.c.id, orders.c.marketplace_order_id, orders.c.acceptance_deadline, orders.c.state
        ).where(
            orders.c.channel_id == channel.id,
            orders.c.accepted_at.is_(None),
            orders.c.acceptance_deadline.is_not(None),
            orders.c.acceptance_deadline <= now,
            orders.c.state.in_([OrderState.AWAITING_ACCEPTANCE.value, OrderState.CANCELLED.value]),
        )
    ).all()
    raised = 0
    for row in rows:
        # An unaccepted order past its deadline: still waiting, or already cancelled by the marketplace.
        if not deadline_missed(row.acceptance_deadline, False, now):
            continue
        cancelled = row.state == OrderState.CANCELLED.value
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
