"""Customer-driven cancellations, end to end through the real orders poll: an order placed on the Mirakl
sandbox is accepted, paid and delivered to the HTTP OMS sandbox; the customer then cancels it on the
marketplace (whole, or some lines) → the next ``orders.poll`` (OR11 over HTTP) ingests the new version
and queues ``orders.notify_cancellation`` → the worker tells the OMS, which records it (or refuses it:
alert + history, job done)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from mirakl_world import World, build_world, catalog
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import alerts, jobs, order_history, orders
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.order_delivery import NOTIFY_CANCELLATION_KIND, cancellation_key

SECRET = "cancellation-oms-signing-secret-0123"
PAYMENT_DELAY = 120  # the Mirakl sandbox's payment delay (seconds)
LINES = [("SKU-1", 1), ("SKU-2", 2), ("SKU-3", 3)]


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    """A Mirakl channel on the sandbox (no rate limits) with four published offers."""
    for w in build_world(engine, now, sandbox_limits={}):
        w.add_products(catalog(4))
        w.enqueue("offers.full", flow="offers")
        w.run(step=20)
        yield w


@pytest.fixture
def oms(world: World) -> Iterator[OmsSandboxServer]:
    """The HTTP OMS sandbox, registered as the tenant's merchant system."""
    with OmsSandboxServer(OmsSandboxState(SECRET, clock=world.clock)) as server:
        with world.engine.begin() as conn:
            add_http_system(
                conn,
                tenant_id=world.tenant_id,
                name="oms",
                url=server.orders_url,
                secret=SECRET,
                keyring=world.keyring,
                now=world.clock(),
                timeout_seconds=5,
            )
        yield server


def _poll(world: World) -> dict[str, Any]:
    """Run one real ``orders.poll`` (and whatever it queues); the poll job's summary."""
    job_id = world.enqueue("orders.poll")
    world.run()
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(jobs.c.state, jobs.c.result).where(jobs.c.id == job_id)).one()
    assert row.state == "succeeded", row
    return dict(row.result)


def _order_id(world: World, mirakl_id: str) -> int:
    with world.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(orders.c.id).where(
                    orders.c.tenant_id == world.tenant_id, orders.c.marketplace_order_id == mirakl_id
                )
            ).scalar_one()
        )


def _merchant_status(world: World, order_id: int) -> str:
    with world.engine.connect() as conn:
        return str(
            conn.execute(sa.select(orders.c.merchant_status).where(orders.c.id == order_id)).scalar_one()
        )


def _delivered(world: World, oms: OmsSandboxServer) -> tuple[str, int]:
    """An order placed on the sandbox, accepted and paid through two polls, delivered to the OMS."""
    mirakl_id = world.order([{"offer_sku": sku, "quantity": qty} for sku, qty in LINES])
    _poll(world)  # ingested as WAITING_ACCEPTANCE, accepted (OR21)
    world.advance(PAYMENT_DELAY)
    _poll(world)  # SHIPPING: delivered to the OMS
    order_id = _order_id(world, mirakl_id)
    assert _merchant_status(world, order_id) == "delivered"
    [received] = oms.state.orders()
    assert received.cancellations == []
    world.advance(60)
    return mirakl_id, order_id


def _line_id(world: World, mirakl_id: str, sku: str) -> str:
    [line] = [ln for ln in world.state.order(mirakl_id).lines if ln.offer_sku == sku]
    return line.line_id


def _notice_jobs(world: World) -> list[Any]:
    with world.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(jobs).where(jobs.c.kind == NOTIFY_CANCELLATION_KIND).order_by(jobs.c.id)
            ).all()
        )


def _history(world: World, order_id: int) -> list[tuple[str, str | None]]:
    with world.engine.connect() as conn:
        rows = conn.execute(
            sa.select(order_history.c.state, order_history.c.note)
            .where(order_history.c.order_id == order_id)
            .order_by(order_history.c.id)
        ).all()
    return [(r.state, r.note) for r in rows]


def test_a_whole_order_cancellation_reaches_the_oms_once(world, oms):
    mirakl_id, order_id = _delivered(world, oms)
    world.state.cancel_by_customer(mirakl_id)

    assert _poll(world)["cancellations"] == 1
    [cancellation] = oms.state.orders()[0].cancellations
    assert cancellation["lines"] is None
    assert cancellation["reason"] == "cancelled on the marketplace"
    assert cancellation["idempotency_key"] == cancellation_key(order_id, None)
    [job] = _notice_jobs(world)
    assert job.payload == {"order_id": order_id, "lines": None}
    assert job.state == "succeeded" and job.result["notified"] == ["oms"]
    assert (
        "CANCELLATION_NOTIFIED",
        "merchant system notified of the cancellation of the order: oms",
    ) in _history(world, order_id)

    # Later polls overlap and see the same cancelled version again: nothing more is queued or sent.
    world.advance(30)
    assert _poll(world)["cancellations"] == 0
    assert len(_notice_jobs(world)) == 1 and len(oms.state.orders()[0].cancellations) == 1


def test_a_line_cancellation_sends_only_those_lines(world, oms):
    mirakl_id, _ = _delivered(world, oms)
    world.state.cancel_by_customer(mirakl_id, [_line_id(world, mirakl_id, "SKU-2")])

    assert _poll(world)["cancellations"] == 1
    assert [c["lines"] for c in oms.state.orders()[0].cancellations] == [[{"sku": "SKU-2", "quantity": 2}]]

    # A further line later: only the newly cancelled one is sent.
    world.advance(60)
    world.state.cancel_by_customer(mirakl_id, [_line_id(world, mirakl_id, "SKU-3")])
    assert _poll(world)["cancellations"] == 1
    assert [c["lines"] for c in oms.state.orders()[0].cancellations] == [
        [{"sku": "SKU-2", "quantity": 2}],
        [{"sku": "SKU-3", "quantity": 3}],
    ]
    assert world.state.order(mirakl_id).state.value == "SHIPPING"  # SKU-1 is still to ship


def test_an_order_cancelled_before_delivery_queues_no_notice(world, oms):
    mirakl_id = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    _poll(world)  # accepted, not paid yet: nothing went to the OMS
    world.advance(10)
    world.state.cancel_by_customer(mirakl_id)

    assert _poll(world)["cancellations"] == 0
    order_id = _order_id(world, mirakl_id)
    with world.engine.connect() as conn:
        state = conn.execute(sa.select(orders.c.state).where(orders.c.id == order_id)).scalar_one()
    assert state == "cancelled" and _merchant_status(world, order_id) != "delivered"
    assert _notice_jobs(world) == [] and oms.state.orders() == []


def test_an_oms_refusal_raises_an_alert_and_the_job_succeeds(world, oms):
    mirakl_id, order_id = _delivered(world, oms)
    world.state.cancel_by_customer(mirakl_id)
    oms.state.fail_next(1, 422)

    assert _poll(world)["cancellations"] == 1
    assert oms.state.orders()[0].cancellations == []
    [job] = _notice_jobs(world)
    assert job.state == "succeeded" and job.attempts == 1
    notes = [note or "" for state, note in _history(world, order_id) if state == "CANCELLATION_REFUSED"]
    assert len(notes) == 1 and notes[0].startswith(
        "merchant system refused the cancellation: oms: OMS rejected the cancellation with HTTP 422"
    )
    with world.engine.connect() as conn:
        [alert] = conn.execute(sa.select(alerts).where(alerts.c.order_id == order_id)).all()
    assert alert.kind == "cancellation_not_accepted" and mirakl_id in alert.message


def test_a_transient_oms_failure_retries_then_notifies(world, oms):
    mirakl_id, _ = _delivered(world, oms)
    world.state.cancel_by_customer(mirakl_id)
    oms.state.fail_next(1, 503)

    assert _poll(world)["cancellations"] == 1
    [job] = _notice_jobs(world)
    assert job.state != "succeeded" and oms.state.orders()[0].cancellations == []

    world.advance(3600)
    world.run()
    [job] = _notice_jobs(world)
    assert job.state == "succeeded" and job.attempts == 2
    assert len(oms.state.orders()[0].cancellations) == 1
