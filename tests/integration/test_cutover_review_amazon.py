"""Cutover of an Amazon seller account, cases the main cutover tests leave out (issue 11 review):
``plan`` is a dry run — every SP-API request it makes is a read (GET; the Login-with-Amazon token
aside), no listing, feed or order changes — and a crash at the snapshot read (step 3, the answer lost)
resumes with the snapshot taken once and every price and quantity restored on revert."""

from __future__ import annotations

import sqlalchemy as sa
import test_cutover_amazon as base
from cutover_support import CrashPlan, InjectedCrash, deps, drain, revert_until_done
from test_cutover_amazon import AmazonWorld

from tradelane.connectors.amazon import connector as amazon
from tradelane.persistence.tables import cutovers
from tradelane.services import cutover

world = base.world  # the fixture: a live seller account pre-filled with another integrator's offers


def test_plan_sends_only_reads(world: AmazonWorld) -> None:
    seller = world.seller.seller_id
    world.state.create_order(seller, [("SKU-1", 1)], paid=True)
    world.advance(5)
    listed = world.listed()
    seen = len(world.state.requests)
    planned = cutover.plan(deps(world), world.channel)
    made = [r for r in world.state.requests[seen:] if r.op_id != "lwaToken"]
    assert made, "the plan reads the account"
    assert {r.method for r in made} == {"GET"}, [(r.method, r.path) for r in made]
    assert planned["offers_listed"] == 4 and planned["outstanding_orders"]["total"] == 1
    assert world.listed() == listed
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(cutovers)).scalar_one() == 0


def test_a_crash_at_the_snapshot_read_resumes(world: AmazonWorld) -> None:
    channel = world.channel
    found = world.listed()
    plan = CrashPlan("list_offers", 1, after=True)
    factory = plan.factory(amazon.SPEC.factory)
    state = None
    for _ in range(40):
        try:
            state = cutover.advance(deps(world, factory), channel, previous_integrator_disabled=True)
        except InjectedCrash:
            continue
        if state.step == 6:
            break
        drain(world, 10)
        world.advance(10)
    assert plan.fired and state is not None and state.step == 6, state
    with world.engine.connect() as conn:
        taken = {o.sku: (o.price, o.quantity) for o in cutover.snapshot(conn, state.id)}
    assert taken == found
    revert_until_done(world, channel)
    for sku, value in taken.items():
        assert world.listed()[sku] == value, sku
