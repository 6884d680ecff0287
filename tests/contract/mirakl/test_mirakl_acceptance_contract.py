"""OR21 that already took effect: a marketplace answer showing the acceptance done completes the job
and records it — it never leaves the order with ``accepted_at`` empty forever."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from mirakl_world import SHOP_ID, World, build_world
from tradelane.persistence.tables import jobs
from tradelane.services.orders import get_order, list_orders
from tradelane.sync.jobs import JobSpec, enqueue


@pytest.fixture
def world(engine, now) -> Iterator[World]:
    """A channel whose client gives up after one second, so an injected 2 s delay is a timeout."""
    for w in build_world(engine, now, sandbox_limits={}, options={"timeout_seconds": 1.0}):
        for i, product in enumerate(list(w.state.catalog.values())[:3]):
            w.state.add_offer(SHOP_ID, f"SKU-{i}", product.sku, Decimal(10 + i), 100)
        yield w


def _accept_jobs(world: World) -> list[sa.Row]:
    with world.engine.connect() as conn:
        return conn.execute(sa.select(jobs).where(jobs.c.kind == "orders.accept")).all()


def _order(world: World) -> dict:
    with world.engine.connect() as conn:
        [summary] = list_orders(conn, world.tenant_id)
        return get_order(conn, world.tenant_id, summary["id"])


def test_or21_timed_out_after_taking_effect_then_5xx_then_400_completes_and_records(world: World) -> None:
    mirakl_id = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    world.state.inject("OR21", "timeout", delay=2.0)  # processed, but the answer comes too late
    world.state.inject("OR21", "server_error", count=2, status=503)
    world.enqueue("orders.poll")
    world.run(step=30, max_rounds=40)

    # The timed-out call may be missing from the sandbox log (the client hung up): leave it out.
    calls = [r.status for r in world.state.calls("OR21") if r.fault != "timeout"]
    assert calls == [503, 503, 400]  # the first call took effect; the retry is refused
    assert world.state.order(mirakl_id).state.value != "WAITING_ACCEPTANCE"
    [job] = _accept_jobs(world)
    assert job.state == "succeeded", job.last_error
    order = _order(world)
    assert order["accepted_at"] is not None
    notes = [h["note"] or "" for h in order["history"]]
    assert any("found already accepted" in n for n in notes), notes


def test_acceptance_seen_by_a_poll_first_is_recorded_not_skipped(world: World) -> None:
    world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    world.state.inject("OR21", "timeout", delay=2.0)
    world.enqueue("orders.poll")
    world.run()  # OR21 timed out (took effect); the job waits for its retry
    with world.engine.begin() as conn:  # same instant: the acceptance job's retry is not due yet
        enqueue(
            conn,
            JobSpec(
                world.tenant_id, "orders.poll", {}, channel_id=world.channel.id, flow="orders", priority=1
            ),
            now=world.clock(),
        )
    world.run()  # the poll sees WAITING_DEBIT; then the acceptance job finds it done
    world.run(step=30, max_rounds=10)
    [job] = _accept_jobs(world)
    assert job.state == "succeeded", job.last_error
    assert all(r.fault == "timeout" for r in world.state.calls("OR21"))  # nothing sent twice
    order = _order(world)
    assert order["accepted_at"] is not None
    assert any("found already accepted" in (h["note"] or "") for h in order["history"])


def test_order_cancelled_before_acceptance_is_recorded_as_not_accepted(world: World) -> None:
    world.order(
        [{"offer_sku": "SKU-1", "quantity": 1}], acceptance_deadline=world.clock() + timedelta(minutes=10)
    )
    world.state.inject("OR21", "server_error", count=3)
    world.enqueue("orders.poll")
    world.run()
    world.advance(11 * 60)  # past the deadline: the marketplace auto-cancels the order
    world.run(step=30, max_rounds=40)
    [job] = _accept_jobs(world)
    assert job.state == "succeeded", job.last_error
    order = _order(world)
    assert order["accepted_at"] is None
    assert any(
        "not accepted" in (h["note"] or "") and "cancelled" in (h["note"] or "") for h in order["history"]
    )
