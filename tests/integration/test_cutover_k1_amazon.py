"""Cutover of an Amazon account (no holiday mode: zero stock is the closest equivalent): step 2 takes
the snapshot and sets every quantity to 0 BEFORE it waits for the outstanding orders, so an order
placed while it waits is impossible on a real account (nothing in stock) or counted as outstanding —
none falls between the count reaching 0 and the cutoff. Step 3 then finds the zeroing done (nothing
sent again); the snapshot is the account as found."""

from __future__ import annotations

import test_cutover_amazon as base
from cutover_support import CrashPlan, advance_until, deps

from tradelane.connectors.amazon import connector as amazon
from tradelane.connectors.base import Shipment
from tradelane.services import cutover

world = base.world  # a live Amazon account pre-filled with another integrator's listings
AmazonWorld = base.AmazonWorld


def test_step_2_zeroes_before_it_waits_and_counts_orders_placed_meanwhile(world: AmazonWorld) -> None:
    channel = world.channel
    seller = world.seller.seller_id
    found = world.listed()
    first = world.state.create_order(seller, [("THEIRS-9", 1)], paid=True).order_id
    world.advance(5)
    submits = CrashPlan("submit_offers", 10_000)  # never fires: counts the offer submissions
    factory = submits.factory(amazon.SPEC.factory)

    waiting = None
    for _ in range(20):  # the zeroing's imports, then the wait for the outstanding order
        waiting = cutover.advance(deps(world, factory), channel, previous_integrator_disabled=True)
        if waiting.step == 2 and "outstanding" in waiting.data:
            break
        world.advance(10)
    assert waiting is not None and (waiting.status, waiting.step) == ("waiting", 2), waiting
    assert waiting.data["outstanding"]["total"] == 1
    assert {sku: q for sku, (_, q) in world.listed().items()} == dict.fromkeys(found, 0)  # zero stock now
    assert "zero" in waiting.message
    sent = submits.calls

    # a buyer orders while step 2 waits (a real account would refuse it: nothing in stock): counted
    meanwhile = world.state.create_order(seller, [("SKU-2", 1)], paid=True).order_id
    world.advance(5)
    counted = cutover.advance(deps(world, factory), channel)
    assert (counted.status, counted.step) == ("waiting", 2)
    assert counted.data["outstanding"]["total"] == 2

    other = world.other_integrator()  # the previous integrator ships both: outstanding reaches 0
    for order_id in (first, meanwhile):
        other.ship(Shipment(order_id, None, carrier_code="DHL", tracking_number=f"PREV-{order_id}"))
    other.close()
    world.advance(5)
    at_sync = advance_until(world, channel, lambda c: c.step >= 5, factory=factory, step_seconds=10)
    assert at_sync.steps["3"]["state"] == "done" and submits.calls == sent  # step 3: nothing sent again
    with world.engine.connect() as conn:
        taken = {o.sku: (o.price, o.quantity) for o in cutover.snapshot(conn, at_sync.id)}
    assert taken == found  # taken once, before the zeroing
