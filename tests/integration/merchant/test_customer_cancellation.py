"""Customer-driven cancellations: an order already delivered to the HTTP OMS sandbox is cancelled on the
marketplace (whole, or some lines) → the poll's ingest step queues ``orders.notify_cancellation`` →
the worker tells the OMS, which records it (or refuses it: alert + history, job done)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from merchant_support import (
    add_product,
    history,
    ingest,
    marketplace_order,
    order_row,
    read,
    run_worker,
)

from tradelane.connectors.mirakl.orders_flow import queue_cancellation_notice, stored_line_states
from tradelane.domain.orders import MarketplaceOrder, MarketplaceOrderState
from tradelane.persistence.tables import alerts, jobs
from tradelane.services.channels import get_channel_by_id
from tradelane.services.order_delivery import NOTIFY_CANCELLATION_KIND, cancellation_key
from tradelane.services.order_health import enqueue_delivery
from tradelane.services.orders import ingest_order

LINES = [("SKU-A", 1, "10.00"), ("SKU-B", 2, "4.50"), ("SKU-C", 3, "1.00")]


def _delivered_order(
    container, shop, oms, clock, now: datetime, mirakl_id: str
) -> tuple[int, MarketplaceOrder]:
    for sku, _, _ in LINES:
        add_product(container.engine, shop.tenant_id, f"{mirakl_id}-{sku}", now)
    lines = [(f"{mirakl_id}-{sku}", qty, price) for sku, qty, price in LINES]
    order = marketplace_order(mirakl_id, lines, now=now)
    order_id = ingest(container, shop, order, now)
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=now
        )
    run_worker(container, clock)
    assert order_row(container.engine, order_id).merchant_status == "delivered"
    return order_id, order


def _poll_ingest(container, shop, version: MarketplaceOrder, now: datetime) -> int:
    """What ``poll_orders`` does for one fetched order version, in one transaction."""
    with container.engine.begin() as conn:
        channel = get_channel_by_id(conn, shop.tenant_id, shop.channel_id)
        before = stored_line_states(conn, channel.id, version.marketplace_order_id)
        result = ingest_order(
            conn, tenant_id=shop.tenant_id, channel_id=shop.channel_id, order=version, now=now
        )
        return queue_cancellation_notice(conn, channel, version, result, before, now=now)


def _cancelled(order: MarketplaceOrder, now: datetime, line_ids: set[str] | None) -> MarketplaceOrder:
    """A later marketplace version: the whole order CANCELED (``line_ids`` None), or those lines."""
    state = MarketplaceOrderState.CANCELED if line_ids is None else order.state
    lines = tuple(
        replace(ln, state="CANCELED") if line_ids is None or ln.line_id in line_ids else ln
        for ln in order.lines
    )
    return replace(order, state=state, lines=lines, updated_at=now, raw={**order.raw, "v": 2})


def _notice_jobs(container) -> list:
    return read(container.engine, sa.select(jobs).where(jobs.c.kind == NOTIFY_CANCELLATION_KIND))


def test_a_whole_order_cancellation_reaches_the_oms_once(container, shop, merchant, oms, clock, now):
    order_id, order = _delivered_order(container, shop, oms, clock, now, "C-1")
    later = now + timedelta(minutes=5)
    clock.advance(300)

    assert _poll_ingest(container, shop, _cancelled(order, later, None), later) == 1
    # The same version seen again (poll overlap) queues nothing more.
    assert _poll_ingest(container, shop, _cancelled(order, later, None), later) == 0
    [job] = _notice_jobs(container)
    assert job.payload == {"order_id": order_id, "lines": None}
    assert job.idempotency_key == cancellation_key(order_id, None)

    stats = run_worker(container, clock)
    assert stats.succeeded == 1
    [received] = oms.state.orders()
    [cancellation] = received.cancellations
    assert cancellation["lines"] is None
    assert cancellation["reason"] == "cancelled on the marketplace"
    assert cancellation["idempotency_key"] == cancellation_key(order_id, None)
    assert (
        "CANCELLATION_NOTIFIED",
        "merchant system notified of the cancellation of the order: oms",
    ) in history(container.engine, order_id)
    [done] = _notice_jobs(container)
    assert done.state == "succeeded" and done.result["notified"] == ["oms"]


def test_a_line_cancellation_sends_only_those_lines(container, shop, merchant, oms, clock, now):
    _, order = _delivered_order(container, shop, oms, clock, now, "C-2")
    later = now + timedelta(minutes=5)
    clock.advance(300)

    assert _poll_ingest(container, shop, _cancelled(order, later, {"C-2-2"}), later) == 1
    run_worker(container, clock)
    [received] = oms.state.orders()
    assert [c["lines"] for c in received.cancellations] == [[{"sku": "C-2-SKU-B", "quantity": 2}]]

    # A further line later: only the newly cancelled one is sent.
    latest = later + timedelta(minutes=5)
    clock.advance(300)
    again = _cancelled(_cancelled(order, latest, {"C-2-2"}), latest, {"C-2-2", "C-2-3"})
    assert _poll_ingest(container, shop, again, latest) == 1
    run_worker(container, clock)
    assert [c["lines"] for c in oms.state.orders()[0].cancellations] == [
        [{"sku": "C-2-SKU-B", "quantity": 2}],
        [{"sku": "C-2-SKU-C", "quantity": 3}],
    ]


def test_an_undelivered_order_queues_no_notice(container, shop, merchant, oms, now):
    order = marketplace_order("C-3", [("NOWHERE", 1, "1.00")], now=now)
    ingest(container, shop, order, now)
    later = now + timedelta(minutes=1)
    assert _poll_ingest(container, shop, _cancelled(order, later, None), later) == 0
    assert _notice_jobs(container) == []


def test_an_oms_refusal_raises_an_alert_and_the_job_succeeds(container, shop, merchant, oms, clock, now):
    order_id, order = _delivered_order(container, shop, oms, clock, now, "C-4")
    later = now + timedelta(minutes=5)
    clock.advance(300)
    oms.state.fail_next(1, 422)

    assert _poll_ingest(container, shop, _cancelled(order, later, None), later) == 1
    stats = run_worker(container, clock)
    assert stats.succeeded == 1 and stats.retried == 0
    assert oms.state.orders()[0].cancellations == []
    [job] = _notice_jobs(container)
    assert job.state == "succeeded" and job.attempts == 1
    notes = [
        note or "" for state, note in history(container.engine, order_id) if state == "CANCELLATION_REFUSED"
    ]
    assert len(notes) == 1 and notes[0].startswith("merchant system refused the cancellation: oms: HTTP 422")
    [alert] = read(container.engine, sa.select(alerts).where(alerts.c.order_id == order_id))
    assert alert.kind == "cancellation_not_accepted" and "C-4" in alert.message


def test_a_transient_oms_failure_retries_then_notifies(container, shop, merchant, oms, clock, now):
    _, order = _delivered_order(container, shop, oms, clock, now, "C-5")
    later = now + timedelta(minutes=5)
    clock.advance(300)
    oms.state.fail_next(1, 503)

    _poll_ingest(container, shop, _cancelled(order, later, None), later)
    run_worker(container, clock)
    [job] = _notice_jobs(container)
    assert job.state != "succeeded" and oms.state.orders()[0].cancellations == []

    clock.advance(3600)
    run_worker(container, clock)
    [job] = _notice_jobs(container)
    assert job.state == "succeeded" and job.attempts == 2
    assert len(oms.state.orders()[0].cancellations) == 1
