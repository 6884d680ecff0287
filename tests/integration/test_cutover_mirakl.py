"""A complete cutover of a live Mirakl shop run by another integrator, against the Mirakl sandbox over
HTTP (one fake clock for the hub and the sandbox): the shop is pre-filled with the other integrator's
offers and orders; the cutover closes the shop (A02), waits for the outstanding orders, snapshots and
zeroes the offers, sets the cutoff, runs the initial sync, reopens and confirms a live test order and a
status update; orders before the cutoff are never imported, the one after it is; ``revert`` restores
every price and quantity. Crashes injected through the connector factory resume correctly; a sync the
sandbox partly refuses stops on holiday with the errors listed, and revert works from there."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from cutover_support import (
    CrashPlan,
    InjectedCrash,
    advance_until,
    deps,
    drain,
    notified,
    put_live,
    revert_until_done,
)

from mirakl_world import API_KEY, SHOP_ID, World, build_world, catalog
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.connectors.mirakl.connector import SPEC as MIRAKL
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import channel_flows, jobs, notification_settings, orders
from tradelane.services import cutover
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.order_updates import record_shipment

OMS_SECRET = "cutover-oms-signing-secret-0123456789"
#: The other integrator's offers: shop SKU → (sandbox product, price, quantity).
THEIRS = {
    "SKU-0": ("OP-0", Decimal("31.50"), 5),
    "SKU-1": ("OP-1", Decimal("32.50"), 6),
    "SKU-2": ("OP-2", Decimal("33.50"), 7),
    "LEGACY-9": ("OP-9", Decimal("99.00"), 3),  # not in tradelane's catalog
}


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    for w in build_world(engine, now, sandbox_limits={}):
        put_live(w)
        for sku, (product, price, quantity) in THEIRS.items():
            w.state.add_offer(SHOP_ID, sku, product, price, quantity)
        w.add_products(catalog(4))  # SKU-0..SKU-3: SKU-3 is new to the shop
        with engine.begin() as conn:
            conn.execute(
                sa.insert(notification_settings).values(
                    tenant_id=w.tenant_id, emails=["ops@example.com"], created_at=now, updated_at=now
                )
            )
        yield w


def _listed(world: World) -> dict[str, tuple[Decimal, int]]:
    return {sku: (o.price, o.quantity) for sku, o in world.state.shop_offers(SHOP_ID).items()}


def _previous_integrator_processes(world: World, order_ids: list[str]) -> None:
    """The other integrator accepts and ships its orders through the seller API (same shop key)."""
    client = MiraklClient(world.url, API_KEY, str(SHOP_ID))
    try:
        for order_id in order_ids:
            order = world.state.order(order_id)
            client.accept_lines(order_id, {line.line_id: True for line in order.lines})
        world.advance(120)  # payment
        for order_id in order_ids:
            client.ship(order_id)
    finally:
        client.close()


def _stored_orders(world: World) -> list[str]:
    with world.engine.connect() as conn:
        return list(conn.execute(sa.select(orders.c.marketplace_order_id).order_by(orders.c.id)).scalars())


def test_complete_cutover_then_revert(world: World) -> None:
    channel = world.channel
    before = _listed(world)
    early = [world.order([{"offer_sku": "SKU-0", "quantity": 1}]), world.order([{"offer_sku": "LEGACY-9"}])]
    world.advance(5)
    found_before = _listed(world)  # stock reserved by the two orders

    # dry run: counts, nothing written
    planned = cutover.plan(deps(world), channel)
    assert planned["offers_listed"] == 4
    assert planned["outstanding_orders"]["total"] == 2
    assert planned["selected_skus"] == 4 and planned["new_offers_on_sync"] == 1
    assert planned["holiday_mode"] == "closing_period"
    assert world.state.calls("A02") == [] and world.state.calls("OF24") == []

    # step 1 refuses to go on without the operator's confirmation
    first = cutover.advance(deps(world), channel)
    assert (first.status, first.step) == ("waiting", 1)
    assert "previous-integrator-disabled" in first.message

    # step 2: closed, waiting on the two outstanding orders
    second = cutover.advance(deps(world), channel, previous_integrator_disabled=True)
    assert (second.status, second.step) == ("waiting", 2)
    assert second.data["outstanding"]["total"] == 2
    shop = world.state.shop(SHOP_ID)
    assert shop.closed_from is not None and shop.closed_to is not None
    assert abs((shop.closed_from - world.clock()).total_seconds()) < 1
    with world.engine.connect() as conn:
        paused = dict(conn.execute(sa.select(channel_flows.c.flow, channel_flows.c.paused)).all())
    assert paused["offers"] and paused["orders"]

    _previous_integrator_processes(world, early)
    world.advance(5)

    # steps 3-5: snapshot (their prices), zero, cutoff, initial sync
    at_sync = advance_until(world, channel, lambda c: c.step == 6)
    with world.engine.connect() as conn:
        taken = {o.sku: (o.price, o.quantity) for o in cutover.snapshot(conn, at_sync.id)}
    assert taken == found_before
    assert at_sync.orders_cutoff is not None
    assert _listed(world)["SKU-3"] == (Decimal("13.00"), 10)  # our catalog is live
    assert _listed(world)["LEGACY-9"][1] == 0  # zeroed, not ours: stays at 0 until revert

    # step 6: reopened; a live test order after the cutoff and a status update confirm it
    waiting = cutover.advance(deps(world), channel)
    assert (waiting.status, waiting.step) == ("waiting", 6)
    assert "live test order" in waiting.message and shop.closed_from is None
    oms_state = OmsSandboxState(OMS_SECRET, clock=world.clock)
    with OmsSandboxServer(oms_state) as oms:
        with world.engine.begin() as conn:
            add_http_system(
                conn,
                tenant_id=world.tenant_id,
                name="oms",
                url=oms.orders_url,
                secret=OMS_SECRET,
                keyring=world.keyring,
                now=world.clock(),
                timeout_seconds=5,
            )
        live = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
        world.state.transition_order(early[0], "RECEIVED")  # an update of an order before the cutoff
        for _ in range(3):
            world.enqueue("orders.poll")
            drain(world)
            world.advance(120)
        assert _stored_orders(world) == [live]
        with world.engine.begin() as conn:
            record_shipment(
                conn,
                tenant_id=world.tenant_id,
                order_ref=f"{channel.name}:{live}",
                carrier="UPS",
                tracking_number="TEST-1",
                tracking_url=None,
                lines=None,
                external_id="dummy-1",
                now=world.clock(),
            )
        drain(world)
        world.advance(60)
        world.enqueue("orders.poll")
        drain(world)
        done = cutover.advance(deps(world), channel)
    assert done.status == "done", done.message
    assert done.steps["6"]["state"] == "done"
    # the listing tradelane does not manage stays at 0, and the operator is told which, with its snapshot
    assert [u["sku"] for u in done.as_json()["unmanaged_listings"]] == ["LEGACY-9"]
    assert "LEGACY-9 (quantity 2)" in done.steps["6"]["message"]
    assert _stored_orders(world) == [live]  # none before the cutoff, the one after it
    with world.engine.connect() as conn:
        events = [(e.action, e.details.get("phase")) for e in cutover.log(conn, channel.id)]
    for name in ("schedule", "holiday", "snapshot", "cutoff", "sync", "live"):
        assert (f"cutover.{name}", "started") in events and (f"cutover.{name}", "finished") in events
    assert [s for e, s in notified(world) if e == "cutover.step_done"] == [
        f"[{channel.name}] cutover step {n} ({name}) done" for n, name in cutover.STEPS.items()
    ]

    # revert: every price and quantity as found, SKU-3 (created by the sync) removed or zeroed
    reverted = revert_until_done(world, channel)
    now_listed = _listed(world)
    for sku, value in taken.items():
        assert now_listed[sku] == value
    report = reverted.revert_report or {}
    assert report["created_by_sync"] == ["SKU-3"]
    assert MIRAKL.capabilities.delete_offers and "SKU-3" not in now_listed  # deleted (OF24 delete)
    assert report["deleted"] == ["SKU-3"]
    assert report["orders_after_cutoff"] == [live]
    assert world.state.shop(SHOP_ID).closed_from is None
    assert set(before) <= set(now_listed)
    with world.engine.connect() as conn:
        assert "cutover.revert" in [e.action for e in cutover.log(conn, channel.id)]


@pytest.mark.sqlite_only(
    reason="store-agnostic crash matrix: the cutover's store code (claims, step transactions, the"
    " snapshot) runs on both stores in the complete cutover and step-transaction tests"
)
@pytest.mark.parametrize(
    "plan",
    [
        CrashPlan("set_holiday", 1),
        CrashPlan("set_holiday", 1, after=True),
        CrashPlan("list_offers", 1, after=True),
        CrashPlan("submit_offers", 1, after=True),
        CrashPlan("import_result", 1),
        CrashPlan("fetch_orders", 1, after=True),  # the watermark read, step 4
        CrashPlan("open_orders", 1),  # the live count, step 2
        CrashPlan("set_holiday", 2),  # reopening, step 6
        CrashPlan("set_holiday", 2, after=True),
    ],
    ids=lambda p: f"{p.method}-{p.nth}-{'after' if p.after else 'before'}",
)
def test_a_crash_in_any_step_resumes(world: World, plan: CrashPlan) -> None:
    channel = world.channel
    found_before = _listed(world)
    factory = plan.factory(MIRAKL.factory)
    for _ in range(40):
        try:
            state = cutover.advance(deps(world, factory), channel, previous_integrator_disabled=True)
        except InjectedCrash:
            continue  # the process died: the next one starts afresh on the same store
        if state.step == 6 and state.data.get("reopened"):
            break
        drain(world)
        world.advance(20)
    assert plan.fired
    assert state.step == 6, state.as_json()
    with world.engine.connect() as conn:
        taken = {o.sku: (o.price, o.quantity) for o in cutover.snapshot(conn, state.id)}
    assert taken == found_before  # taken once, never by the zeroed quantities
    assert world.state.shop(SHOP_ID).closed_from is None  # reopened exactly once the sync was done
    assert _listed(world)["SKU-3"] == (Decimal("13.00"), 10)
    reverted = revert_until_done(world, channel)
    assert reverted.status == "reverted"
    for sku, value in taken.items():
        assert _listed(world)[sku] == value


def test_sync_errors_stop_on_holiday_then_revert(world: World) -> None:
    channel = world.channel
    found_before = _listed(world)
    with world.engine.begin() as conn:  # a product the operator's catalog does not know: refused
        from tradelane.persistence.tables import products

        conn.execute(sa.update(products).where(products.c.sku == "SKU-3").values(gtin="4000000009999"))
    stopped = advance_until(world, channel, lambda c: c.status == "stopped")
    assert stopped.step == 5 and stopped.steps["5"]["state"] == "failed"
    errors = stopped.data["sync"]["errors"]
    assert list(errors) == ["SKU-3"] and errors["SKU-3"]["reason"]
    assert "SKU-3" in stopped.message
    assert world.state.shop(SHOP_ID).closed_from is not None  # still on holiday
    assert (
        "cutover.problem",
        f"[{channel.name}] cutover stopped at step 5 (sync): the marketplace refused 1 of 4 offers",
    ) in notified(world)
    # run again: the sync is retried (a new attempt), still refused
    again = advance_until(world, channel, lambda c: c.status == "stopped" and c.data["sync"]["attempt"] == 1)
    assert again.step == 5
    reverted = revert_until_done(world, channel)
    for sku, value in found_before.items():
        assert _listed(world)[sku] == value
    assert world.state.shop(SHOP_ID).closed_from is None
    assert reverted.revert_report and reverted.revert_report["from_step"] == 5


def test_revert_while_the_initial_sync_is_queued_cancels_it(world: World) -> None:
    channel = world.channel
    found_before = _listed(world)
    at_sync = advance_until(world, channel, lambda c: c.step == 5)
    job_id = at_sync.data["sync"]["job_id"]
    reverted = revert_until_done(world, channel)
    drain(world)  # the flows are back as they were: nothing of the cancelled sync runs
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).scalar() == "cancelled"
    assert _listed(world) == found_before
    assert reverted.revert_report is not None and reverted.revert_report["created_by_sync"] == []
