"""Cutover of a Mirakl shop, cases the main cutover tests leave out (issue 11 review):

* ``plan`` is a dry run: every request it makes to the sandbox is a read (GET), nothing is written;
* orders around the cutoff when the channel already had an orders watermark (it polled the account
  before the cutover): an order of the previous integrator created before the cutoff and updated
  after it is never imported; an order placed after the cutoff while the shop is still on holiday (the
  initial sync has published the catalog) and one placed after reopening are both imported;
* a crash inside the transaction of steps 1, 5 and 6 (raised from the service's own flow changes, not
  from a connector call — the main tests inject those) rolls the step back whole: the resumed cutover
  does the step once (one ``flow.pause`` at step 1, one initial sync job, the flows enabled once);
  the revert then restores every price and quantity and is notified (``cutover.reverted``);
* a crash at each marketplace call of a revert from step 5 (the answer of a call lost, or before it)
  resumes: the next ``revert`` leaves the account exactly as found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
import test_cutover_mirakl as base
from cutover_support import CrashPlan, InjectedCrash, deps, drain, revert_until_done

from mirakl_world import SHOP_ID, World
from tradelane.connectors.mirakl.connector import SPEC as MIRAKL
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import jobs, notifications
from tradelane.services import audit, cutover
from tradelane.services import orders as order_service
from tradelane.services.merchant_systems import add_http_system

world = base.world  # the fixture: a live Mirakl shop pre-filled with another integrator's offers
OMS_SECRET = base.OMS_SECRET
_listed = base._listed
_previous_integrator_processes = base._previous_integrator_processes
_stored_orders = base._stored_orders


def _poll(world: World, rounds: int = 3) -> None:
    for _ in range(rounds):
        world.enqueue("orders.poll")
        drain(world)
        world.advance(120)


def _add_oms(world: World, url: str) -> None:
    with world.engine.begin() as conn:
        add_http_system(
            conn,
            tenant_id=world.tenant_id,
            name="oms",
            url=url,
            secret=OMS_SECRET,
            keyring=world.keyring,
            now=world.clock(),
            timeout_seconds=5,
        )


def test_plan_sends_only_reads(world: World) -> None:
    world.order([{"offer_sku": "SKU-0", "quantity": 1}])
    world.advance(5)
    listed = _listed(world)
    seen = len(world.state.requests)
    planned = cutover.plan(deps(world), world.channel)
    made = world.state.requests[seen:]
    assert made, "the plan reads the account"
    assert {r.method for r in made} == {"GET"}, [(r.method, r.path) for r in made]
    assert planned["offers_listed"] == 4 and planned["outstanding_orders"]["total"] == 1
    assert _listed(world) == listed and world.state.shop(SHOP_ID).closed_from is None
    with world.engine.connect() as conn:
        assert cutover.current(conn, world.channel.id) is None  # nothing stored locally either


def test_orders_around_the_cutoff_with_an_existing_watermark(world: World) -> None:
    channel = world.channel
    _poll(world, rounds=1)  # the channel polled the account before the cutover (no order yet)
    with world.engine.connect() as conn:
        watermark = order_service.get_cursor(conn, channel.id, MIRAKL.cursor("orders"))
    assert watermark is not None

    early = world.order([{"offer_sku": "SKU-0", "quantity": 1}])  # the previous integrator's
    world.advance(5)
    first = cutover.advance(deps(world), channel, previous_integrator_disabled=True)
    assert (first.status, first.step) == ("waiting", 2)
    _previous_integrator_processes(world, [early])
    world.advance(5)

    state = first
    for _ in range(40):  # up to the initial sync, queued and not run yet
        state = cutover.advance(deps(world), channel)
        if state.step >= 5:
            break
        drain(world)
        world.advance(20)
    assert state.step == 5 and state.orders_cutoff is not None
    assert "watermark precedes the cutoff" in (state.steps["4"].get("message") or "")
    world.state.transition_order(early, "RECEIVED")  # updated after the cutoff: still never imported

    drain(world)  # the initial sync publishes the catalog; the shop is still closed
    assert _listed(world)["SKU-2"][1] > 0 and world.state.shop(SHOP_ID).closed_from is not None
    on_holiday = world.order([{"offer_sku": "SKU-2", "quantity": 1}])
    world.advance(5)

    for _ in range(40):
        state = cutover.advance(deps(world), channel)
        if state.step == 6 and state.data.get("reopened"):
            break
        drain(world)
        world.advance(20)
    assert world.state.shop(SHOP_ID).closed_from is None

    with OmsSandboxServer(OmsSandboxState(OMS_SECRET, clock=world.clock)) as oms:
        _add_oms(world, oms.orders_url)
        reopened = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
        world.advance(5)
        _poll(world)
    assert sorted(_stored_orders(world)) == sorted([on_holiday, reopened])
    assert early not in _stored_orders(world)


def _crash_once(original: Callable[..., Any], when: Callable[..., bool]) -> Callable[..., Any]:
    fired: list[bool] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not fired and when(*args, **kwargs):
            fired.append(True)
            raise InjectedCrash(f"crash in {original.__name__}")
        return original(*args, **kwargs)

    call.fired = fired  # type: ignore[attr-defined]
    return call


@pytest.mark.parametrize("step", [1, 5, 6])
def test_a_crash_inside_a_step_transaction_rolls_it_back_and_resumes(
    world: World, step: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = world.channel
    found_before = _listed(world)
    crash = _crash_once(cutover.pause_flows, lambda *a, **k: k.get("reason") == f"cutover step {step}")
    monkeypatch.setattr(cutover, "pause_flows", crash)
    state = None
    for _ in range(40):
        try:
            state = cutover.advance(deps(world), channel, previous_integrator_disabled=True)
        except InjectedCrash:
            with world.engine.connect() as conn:  # nothing of the step was kept
                found = cutover.current(conn, channel.id)
                assert found is not None and found.steps[str(step)]["state"] != "done"
            continue
        if state.step == 6 and state.data.get("flows_enabled"):
            break
        drain(world)
        world.advance(20)
    assert crash.fired and state is not None and state.step == 6, state and state.as_json()
    with world.engine.connect() as conn:
        taken = {o.sku: (o.price, o.quantity) for o in cutover.snapshot(conn, state.id)}
        flows = [
            (e.reason, tuple(e.details["flows"]))
            for e in audit.history(conn, channel.id, prefix="flow.pause", limit=None)
        ]
        syncs = conn.execute(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.kind == cutover.SYNC_KIND)
        ).scalar_one()
        events = [(e.action, e.details.get("phase")) for e in cutover.log(conn, channel.id)]
    assert taken == found_before
    assert flows == [("cutover step 1", ("offers", "orders"))]  # paused once
    assert syncs == 1  # one initial sync, not one per attempt
    assert events.count(("cutover.schedule", "finished")) == 1
    assert events.count(("cutover.sync", "finished")) == 1
    assert world.state.shop(SHOP_ID).closed_from is None

    reverted = revert_until_done(world, channel)
    for sku, value in taken.items():
        assert _listed(world)[sku] == value, sku
    with world.engine.connect() as conn:
        mail = conn.execute(
            sa.select(notifications.c.subject, notifications.c.body).where(
                notifications.c.event == "cutover.reverted"
            )
        ).one()
    assert mail.subject == f"[{channel.name}] cutover {reverted.id} reverted"
    assert mail.body.startswith("reverted: 4 of 4 offers restored") and "SKU-3" in mail.body


@pytest.mark.sqlite_only(
    reason="store-agnostic crash matrix: the cutover's store code (claims, step transactions, the"
    " snapshot) runs on both stores in the complete cutover and step-transaction tests"
)
@pytest.mark.parametrize(
    "plan",
    [
        CrashPlan("list_offers", 1, after=True),  # the read of the offers the sync created
        CrashPlan("submit_offers", 1, after=True),  # the restore went out, its answer lost
        CrashPlan("import_result", 1),
        CrashPlan("set_holiday", 1),  # ending the holiday
        CrashPlan("set_holiday", 1, after=True),
    ],
    ids=lambda p: f"{p.method}-{p.nth}-{'after' if p.after else 'before'}",
)
def test_a_crash_during_revert_resumes(world: World, plan: CrashPlan) -> None:
    """Reverting from step 5 (on holiday, quantities at 0, the initial sync run): a crash at any
    marketplace call of the revert, and the next ``revert`` finishes it — every price and quantity as
    found, the offer the sync created deleted, the shop open."""
    report = _revert_with_a_crash(world, plan)
    assert report["restored"] == 4 and report["deleted"] == ["SKU-3"]
    if not (plan.method == "submit_offers" and plan.after):  # see the test below
        assert report["errors"] == {}


def test_a_deletion_sent_again_after_a_lost_answer_is_not_reported_as_refused(world: World) -> None:
    report = _revert_with_a_crash(world, CrashPlan("submit_offers", 1, after=True))
    assert report["errors"] == {}, report["not_restored"]


def _revert_with_a_crash(world: World, plan: CrashPlan) -> dict[str, Any]:
    channel = world.channel
    found_before = _listed(world)
    for _ in range(40):
        state = cutover.advance(deps(world), channel, previous_integrator_disabled=True)
        if state.step == 5:
            break
        drain(world)
        world.advance(20)
    drain(world)  # the initial sync runs: SKU-3 is created on the marketplace
    assert "SKU-3" in _listed(world) and world.state.shop(SHOP_ID).closed_from is not None
    factory = plan.factory(MIRAKL.factory)
    reverted = None
    for _ in range(40):
        try:
            reverted = cutover.revert(deps(world, factory), channel, reason="test")
        except InjectedCrash:
            continue
        if reverted.status == cutover.REVERTED:
            break
        world.advance(20)
    assert plan.fired and reverted is not None and reverted.status == cutover.REVERTED
    assert _listed(world) == found_before
    assert world.state.shop(SHOP_ID).closed_from is None
    return reverted.revert_report or {}
