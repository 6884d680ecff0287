"""Cutover of a Mirakl shop: the ways to lose an order or the shop the review found (issue 11, K1):

* the cutoff is a whole second (Mirakl dates orders to the second): an order created in the cutoff's
  second is imported, one a second before it is not;
* a channel in Testing with a staging account would run the cutover on the staging shop: ``run`` is
  refused (nothing sent) and ``plan`` says why;
* step 2 reads the shop's existing closing period (A01) before setting its own, into
  ``data["holiday"]["previous"]`` (a crash after A02 went out does not overwrite it with ours);
* a closing period about to end while the cutover still needs the shop closed is extended (A02,
  audited, notified);
* ``status --json`` gives the initial sync's progress, step 6's confirmations and the claim.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
import test_cutover_mirakl as base
from cutover_support import CrashPlan, InjectedCrash, deps, drain, notified

from mirakl_world import SHOP_ID, World
from tradelane.connectors.mirakl.connector import SPEC as MIRAKL
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import channels
from tradelane.services import audit, cutover
from tradelane.services.channels import channel_credentials, get_channel_by_id, update_channel_config
from tradelane.services.merchant_systems import add_http_system

world = base.world  # the fixture: a live Mirakl shop pre-filled with another integrator's offers
_stored_orders = base._stored_orders
_listed = base._listed


def _until(world: World, done: object, rounds: int = 40) -> cutover.Cutover:
    state = None
    for _ in range(rounds):
        state = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
        if done(state):  # type: ignore[operator]
            return state
        drain(world)
        world.advance(20)
    raise AssertionError(f"cutover did not get there: {state.as_json() if state else None}")


def _poll(world: World, rounds: int = 3) -> None:
    for _ in range(rounds):
        world.enqueue("orders.poll")
        drain(world)
        world.advance(120)


def test_an_order_in_the_cutoff_second_is_imported_one_a_second_before_is_not(world: World) -> None:
    world.advance(0.7)  # the hub's clock is not on a whole second when the cutoff is set
    at_sync = _until(world, lambda c: c.step >= 5)
    cutoff = at_sync.orders_cutoff
    assert cutoff is not None and cutoff.microsecond == 0
    assert world.clock().microsecond != 0
    _until(world, lambda c: c.step == 6 and c.data.get("reopened"))
    # two orders dated (to the second, as Mirakl gives them) in the cutoff's second and one before it
    at_cutoff = world.order([{"offer_sku": "SKU-0", "quantity": 1}])
    before = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    world.state.order(at_cutoff).created = cutoff + timedelta(milliseconds=300)
    world.state.order(before).created = cutoff - timedelta(seconds=1)
    world.advance(5)
    with OmsSandboxServer(OmsSandboxState(base.OMS_SECRET, clock=world.clock)) as oms:
        with world.engine.begin() as conn:
            add_http_system(
                conn,
                tenant_id=world.tenant_id,
                name="oms",
                url=oms.orders_url,
                secret=base.OMS_SECRET,
                keyring=world.keyring,
                now=world.clock(),
                timeout_seconds=5,
            )
        _poll(world)
    assert _stored_orders(world) == [at_cutoff]


def _with_staging_account(world: World) -> None:
    with world.engine.begin() as conn:
        channel = world.channel
        credentials = channel_credentials(conn, channel, world.keyring)
        update_channel_config(
            conn,
            channel,
            settings={**channel.settings, "staging_hostname": world.url, "staging_shop_id": str(SHOP_ID)},
            credentials={**credentials, "staging_api_key": credentials["api_key"]},
            keyring=world.keyring,
        )
        conn.execute(sa.update(channels).where(channels.c.id == channel.id).values(lifecycle_state="testing"))
        world.channel = get_channel_by_id(conn, world.tenant_id, channel.id)


def test_a_channel_on_its_staging_account_is_refused(world: World) -> None:
    _with_staging_account(world)
    listed = _listed(world)
    planned = cutover.plan(deps(world), world.channel)
    assert planned["staging_account"] and "promote" in planned["refused"]
    refused = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    assert refused.status == "stopped" and refused.step == 1
    assert "staging account" in refused.message and "channel promote" in refused.message
    assert world.state.calls("A02") == [] and world.state.calls("OF24") == [] and _listed(world) == listed
    assert world.state.shop(SHOP_ID).closed_from is None

    with world.engine.begin() as conn:  # promoted: the live account, the cutover goes on
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state="live")
        )
        world.channel = get_channel_by_id(conn, world.tenant_id, world.channel.id)
    world.advance(61)  # OF21's budget (the plan lists the offers)
    assert cutover.plan(deps(world), world.channel)["refused"] is None
    again = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    assert again.step >= 2 and world.state.shop(SHOP_ID).closed_from is not None


def test_step_2_keeps_the_closing_period_it_found(world: World) -> None:
    shop = world.state.shop(SHOP_ID)
    theirs_from = (world.clock() + timedelta(days=30)).replace(microsecond=0)
    shop.closed_from, shop.closed_to = theirs_from, theirs_from + timedelta(days=10)
    plan = CrashPlan("set_holiday", 1, after=True)  # A02 went out, its answer lost
    try:
        cutover.advance(
            deps(world, plan.factory(MIRAKL.factory)), world.channel, previous_integrator_disabled=True
        )
    except InjectedCrash:
        pass
    assert plan.fired and shop.closed_from is not None and shop.closed_from < theirs_from  # ours now
    state = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    assert state.data["holiday"]["previous"] == {
        "closed_from": theirs_from.isoformat(),
        "closed_to": (theirs_from + timedelta(days=10)).isoformat(),
    }
    assert state.as_json()["previous_holiday"] == state.data["holiday"]["previous"]


def test_step_2_records_no_closing_period_when_there_was_none(world: World) -> None:
    state = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    assert state.data["holiday"]["previous"] == {"closed_from": None, "closed_to": None}


def test_a_closing_period_about_to_end_is_extended(world: World) -> None:
    early = world.order([{"offer_sku": "SKU-0", "quantity": 1}])  # keeps step 2 waiting
    world.advance(5)
    waiting = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    assert (waiting.status, waiting.step) == ("waiting", 2) and early
    first_end = waiting.holiday_to
    assert first_end is not None
    calls = len(world.state.calls("A02"))
    world.advance(3600)
    cutover.advance(deps(world), world.channel)
    assert len(world.state.calls("A02")) == calls  # more than a day left: nothing sent

    world.advance((first_end - world.clock()).total_seconds() - 6 * 3600)  # 6 hours left
    extended = cutover.advance(deps(world), world.channel)
    assert extended.holiday_to == world.clock() + timedelta(days=cutover.DEFAULT_HOLIDAY_DAYS)
    assert world.state.shop(SHOP_ID).closed_to == extended.holiday_to
    assert len(world.state.calls("A02")) == calls + 1
    assert any(e == "cutover.holiday_extended" and "extended to" in s for e, s in notified(world))
    with world.engine.connect() as conn:
        events = audit.history(conn, world.channel.id, prefix="cutover.", limit=None)
    assert [e.details.get("phase") for e in events].count("holiday_extended") == 1


def test_a_stopped_sync_keeps_the_shop_closed(world: World) -> None:
    with world.engine.begin() as conn:  # a product the operator's catalog does not know: refused
        from tradelane.persistence.tables import products

        conn.execute(sa.update(products).where(products.c.sku == "SKU-3").values(gtin="4000000009999"))
    stopped = _until(world, lambda c: c.status == "stopped")
    assert stopped.step == 5 and stopped.holiday_to is not None
    world.advance((stopped.holiday_to - world.clock()).total_seconds() - 3600)
    again = cutover.advance(deps(world), world.channel)
    assert again.holiday_to is not None and again.holiday_to - world.clock() > timedelta(days=6)
    assert world.state.shop(SHOP_ID).closed_to == again.holiday_to


def test_status_json_gives_progress_confirmations_and_claim(world: World) -> None:
    at_live = _until(world, lambda c: c.step == 6 and c.status == "waiting")
    shown = at_live.as_json()
    assert shown["sync_progress"]["total"] == 4 and shown["sync_progress"]["published"] == 4
    assert shown["confirmations"] == {"test_order": None, "status_update": None}
    assert shown["claim"] is None  # the run returned: nobody holds it
    held = cutover.claim(deps(world, actor="cli:alice"), world.channel, at_live.id)
    claim = held.as_json()["claim"]
    assert claim["by"] == "cli:alice" and claim["step"] == 6 and "token" not in claim
    assert claim["since"] == world.clock().isoformat()
    assert claim["until"] == (world.clock() + timedelta(seconds=cutover.CLAIM_SECONDS)).isoformat()
