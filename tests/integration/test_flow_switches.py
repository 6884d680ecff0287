"""Flow switches mean what they say (issue 11), Mirakl sandbox, both stores.

A flow switched off (``channel flow NAME FLOW off``) does not run the jobs already queued for it: the
dispatcher completes them as skipped with the reason, calls nothing on the marketplace and records no
last success (``connectors.dispatch.KIND_FLOWS``). Listings off sends no offer; Orders off polls and
accepts nothing; Fulfillments off sends no update already queued, whose status says so. The
reconciler's own skips (no confirmed dry run) are no success either.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from mirakl_world import SHOP_ID, World, build_world, catalog
from tradelane.connectors.dispatch import KIND_FLOWS, generic_kinds
from tradelane.domain.channels import Flow
from tradelane.persistence.tables import jobs
from tradelane.services import id_match, offer_publishing, reconciler
from tradelane.services import order_updates as updates
from tradelane.services.channel_lifecycle import set_flow
from tradelane.services.channels import flow_statuses, set_enabled
from tradelane.services.orders import list_orders
from tradelane.sync.scheduler import FLOW_JOB_KINDS


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={})


def _off(world: World, flow: Flow) -> None:
    with world.engine.begin() as conn:
        change = set_flow(
            conn, world.channel, flow, False, actor="cli:ops", reason="merchant asked", now=world.clock()
        )
    assert change.changed


def _job(world: World, job_id: int) -> Any:
    with world.engine.connect() as conn:
        return conn.execute(sa.select(jobs.c.state, jobs.c.result).where(jobs.c.id == job_id)).one()


def _skipped(world: World, job_id: int) -> str:
    row = _job(world, job_id)
    assert row.state == "succeeded" and row.result is not None, row
    return str(row.result["skipped"])


def _last_success(world: World, flow: Flow) -> datetime | None:
    with world.engine.connect() as conn:
        return next(s.last_success_at for s in flow_statuses(conn, world.channel.id) if s.flow is flow)


def _seed_offers(world: World, count: int) -> None:
    for i, product in enumerate(list(world.state.catalog.values())[:count]):
        world.state.add_offer(SHOP_ID, f"SKU-{i}", product.sku, Decimal("10.00") + i, 10)


def test_every_marketplace_kind_has_a_flow_or_is_named_as_running_regardless() -> None:
    """The kind -> flow mapping is declared once and covers each flow's scheduled kind; a new kind must
    be given a flow or be added here knowingly (it would then run with its flow off)."""
    assert all(KIND_FLOWS[kind] == Flow(flow) for flow, kind in FLOW_JOB_KINDS.items())
    runs_regardless = {offer_publishing.IMPORT_CHECK, reconciler.DRY_RUN, id_match.RUN}
    assert set(generic_kinds()) - set(KIND_FLOWS) == runs_regardless


def test_listings_off_skips_a_queued_offers_delta(world: World) -> None:
    world.add_products(catalog(3))  # dirty bindings: a delta would send them
    job_id = world.enqueue("offers.delta", flow=Flow.OFFERS.value)
    _off(world, Flow.OFFERS)
    world.run(step=61)
    reason = _skipped(world, job_id)
    assert reason.startswith(f"flow offers is off on channel {world.channel.name}: no offer is sent")
    assert world.state.calls("OF24") == []
    assert not world.state.shop_offers(SHOP_ID)
    assert _last_success(world, Flow.OFFERS) is None


def test_orders_off_neither_polls_nor_accepts(world: World) -> None:
    _seed_offers(world, 2)
    world.order([{"offer_sku": "SKU-0", "quantity": 1}])
    world.enqueue("orders.poll")
    world.worker.run(burst=True, max_jobs=1)  # the poll only: the order is in, its acceptance queued
    with world.engine.connect() as conn:
        [order] = list_orders(conn, world.tenant_id)
        [accept_id] = conn.execute(sa.select(jobs.c.id).where(jobs.c.kind == "orders.accept")).scalars()
    polled_at = _last_success(world, Flow.ORDERS)
    assert polled_at == world.clock() and order["state"] == "awaiting_acceptance"
    polls = len(world.state.calls("OR11"))

    _off(world, Flow.ORDERS)
    world.advance(120)
    world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    poll_id = world.enqueue("orders.poll")
    world.run(step=61)
    assert "flow orders is off" in _skipped(world, accept_id)
    assert "flow orders is off" in _skipped(world, poll_id)
    assert world.state.calls("OR21") == [] and len(world.state.calls("OR11")) == polls
    with world.engine.connect() as conn:
        assert len(list_orders(conn, world.tenant_id)) == 1
    assert _last_success(world, Flow.ORDERS) == polled_at


def test_fulfillments_off_skips_a_queued_shipment_and_its_status_says_why(world: World) -> None:
    _seed_offers(world, 2)
    world.order([{"offer_sku": "SKU-1", "quantity": 2}])
    world.enqueue("orders.poll")
    world.run()
    world.advance(120)
    world.enqueue("orders.poll")
    world.run()
    with world.engine.connect() as conn:
        [order] = list_orders(conn, world.tenant_id)
    assert order["state"] == "to_ship"
    with world.engine.begin() as conn:
        shipped = updates.record_shipment(
            conn,
            tenant_id=world.tenant_id,
            order_ref=f"{world.channel.name}:{order['marketplace_order_id']}",
            carrier="UPS",
            tracking_number="1Z42",
            tracking_url=None,
            lines=None,
            external_id="oms-1",
            now=world.clock(),
        )
    _off(world, Flow.FULFILLMENTS)
    world.run()
    assert world.state.calls("OR23") == [] and world.state.calls("OR24") == []
    with world.engine.connect() as conn:
        [update] = [
            u for u in updates.list_updates(conn, world.tenant_id, order["id"]) if u["id"] == shipped.id
        ]
    assert update["status"] == "skipped"
    assert (
        "flow fulfillments is off" in update["detail"] and "not sent to the marketplace" in update["detail"]
    )
    assert _last_success(world, Flow.FULFILLMENTS) is None


def test_a_reconciler_run_without_a_confirmed_dry_run_is_no_success(world: World) -> None:
    with world.engine.begin() as conn:
        set_enabled(conn, world.channel, Flow.RECONCILER, True)  # on, but no dry run was ever confirmed
    job_id = world.enqueue(reconciler.RUN, flow=Flow.RECONCILER.value)
    world.run(step=61)
    assert "no confirmed dry run" in _skipped(world, job_id)
    assert _last_success(world, Flow.RECONCILER) is None
