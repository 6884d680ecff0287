"""Cutover of a Mirakl shop (issue 11 review, gaps 1, 4, 6, 7), against the Mirakl sandbox over HTTP:

* an open order last updated days before the cutover (older than the poll's initial look-back) is
  counted as outstanding by ``plan`` and by step 2 (OR11 by state codes, no date window);
* a revert whose restore answer is lost after the marketplace applied the deletion of the offer the
  sync created: the deletion is not sent again and the report says it was deleted;
* a shop that was already closed for a period before the cutover gets that period back on revert;
* listings tradelane does not manage (LEGACY-9) are named by the plan, and ``new_offers_on_sync``
  counts the selected SKUs only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
import test_cutover_mirakl as base
from cutover_support import CrashPlan, InjectedCrash, deps, drain, revert_until_done

from mirakl_world import API_KEY, SHOP_ID, World
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.connectors.mirakl.connector import SPEC as MIRAKL
from tradelane.persistence.tables import cutovers, offer_bindings, products
from tradelane.services import cutover, cutover_plan
from tradelane.services.offers import LEFT

world = base.world  # the fixture: a live Mirakl shop pre-filled with another integrator's offers
_listed = base._listed


def test_an_open_order_older_than_the_look_back_is_outstanding(world: World) -> None:
    order_id = world.order([{"offer_sku": "SKU-0", "quantity": 1}])
    client = MiraklClient(world.url, API_KEY, str(SHOP_ID))
    try:
        order = world.state.order(order_id)
        client.accept_lines(order_id, {line.line_id: True for line in order.lines})
        world.advance(120)  # paid: SHIPPING, nothing more happens to it
    finally:
        client.close()
    world.advance(5 * 86_400)  # five days later, still to ship
    assert world.state.order(order_id).state.value == "SHIPPING"
    planned = cutover.plan(deps(world), world.channel)
    assert planned["outstanding_orders"]["total"] == 1
    assert planned["outstanding_orders"]["marketplace"] == {"to_ship": 1}
    assert planned["outstanding_orders"]["complete"] is True
    assert "whatever its date" in planned["outstanding_orders"]["scope"]
    second = None
    for _ in range(3):
        second = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    assert second is not None and (second.status, second.step) == ("waiting", 2)
    assert second.data["outstanding"]["total"] == 1


def _to_step_5(world: World) -> None:
    for _ in range(40):
        state = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
        if state.step == 5:
            break
        drain(world)
        world.advance(20)
    drain(world)  # the initial sync runs: SKU-3 is created on the marketplace
    assert "SKU-3" in _listed(world)


def test_a_restore_whose_answer_was_lost_is_not_sent_again_once_applied(world: World) -> None:
    """The restore (4 prices and quantities back, SKU-3 deleted) goes out, the marketplace applies it,
    the answer is lost: the next revert reads the listing, sends nothing again and reports SKU-3
    deleted, nothing refused."""
    found_before = _listed(world)
    _to_step_5(world)
    plan = CrashPlan("submit_offers", 1, after=True)
    sent_before = len(world.state.calls("OF24"))
    with pytest.raises(InjectedCrash):
        cutover.revert(deps(world, plan.factory(MIRAKL.factory)), world.channel, reason="test")
    world.advance(600)  # the marketplace processes the import: the restore took effect
    assert _listed(world) == found_before
    reverted = revert_until_done(world, world.channel)
    report = reverted.revert_report or {}
    assert len(world.state.calls("OF24")) == sent_before + 1, "the restore was sent once"
    assert report["errors"] == {} and report["deleted"] == ["SKU-3"]
    assert report["already_in_effect"] == ["LEGACY-9", "SKU-0", "SKU-1", "SKU-2", "SKU-3"]
    assert "SKU-3" not in " ".join(s for s in report["not_restored"] if "refused" in s)
    assert "already deleted" in report["message"] and _listed(world) == found_before


def _close_shop(world: World, days_from: int, days_to: int) -> tuple[datetime, datetime]:
    """The previous integrator had closed the shop for a period (A02 as Mirakl holds it)."""
    shop = world.state.shop(SHOP_ID)
    start = (world.clock() + timedelta(days=days_from)).replace(microsecond=0)
    end = (world.clock() + timedelta(days=days_to)).replace(microsecond=0)
    shop.closed_from, shop.closed_to = start, end
    return start, end


def _record_previous(world: World, start: datetime | None, end: datetime | None) -> None:
    """The cutover's record of the closing period found at step 2 (``data["holiday"]["previous"]``)."""
    with world.engine.begin() as conn:
        row = conn.execute(sa.select(cutovers.c.id, cutovers.c.data)).one()
        data = {
            **row.data,
            "holiday": {
                "previous": {
                    "closed_from": None if start is None else start.isoformat(),
                    "closed_to": None if end is None else end.isoformat(),
                }
            },
        }
        conn.execute(sa.update(cutovers).where(cutovers.c.id == row.id).values(data=data))


def test_revert_restores_the_closing_period_the_shop_had(world: World) -> None:
    start, end = _close_shop(world, 2, 12)
    _to_step_5(world)
    shop = world.state.shop(SHOP_ID)
    assert (shop.closed_from, shop.closed_to) != (start, end)  # the cutover's own closing period
    _record_previous(world, start, end)
    reverted = revert_until_done(world, world.channel)
    report = reverted.revert_report or {}
    shop = world.state.shop(SHOP_ID)
    assert (shop.closed_from, shop.closed_to) == (start, end)
    assert report["holiday"] == (
        f"closing period restored as before the cutover: {start.isoformat()} → {end.isoformat()}"
    )
    assert report["holiday"] in report["message"]
    assert not [s for s in report["not_restored"] if "closing period" in s]


def test_revert_reopens_when_the_earlier_closing_period_is_over(world: World) -> None:
    start, end = _close_shop(world, -3, -1)  # closed last week, over now
    _to_step_5(world)
    _record_previous(world, start, end)
    report = revert_until_done(world, world.channel).revert_report or {}
    shop = world.state.shop(SHOP_ID)
    assert shop.closed_from is None and shop.closed_to is None
    assert "is over" in report["holiday"] and report["holiday"] in report["not_restored"]


def test_plan_names_unmanaged_listings_and_counts_selected_skus_only(world: World) -> None:
    # SKU-3 left the channel's selection (a binding kept in state LEFT, as a deselection after a sync
    # leaves it): a full sync does not send it
    with world.engine.begin() as conn:
        sku3 = conn.execute(sa.select(products.c.id).where(products.c.sku == "SKU-3")).scalar_one()
        conn.execute(
            sa.update(offer_bindings)
            .where(offer_bindings.c.channel_id == world.channel.id, offer_bindings.c.product_id == sku3)
            .values(selection_state=LEFT)
        )
    planned = cutover.plan(deps(world), world.channel)
    assert planned["selected_skus"] == 3 and planned["new_offers_on_sync"] == 0
    assert planned["unmanaged_listings"] == [
        {"sku": "LEGACY-9", "quantity": 3, "price": "99.00", "currency": "EUR"}
    ]
    warning = (
        "1 listings tradelane does not manage will be set to 0 and left at 0 (their stock is not kept "
        "in sync: oversell risk otherwise): LEGACY-9 (quantity 3)"
    )
    assert planned["unmanaged_warning"] == warning
    assert warning in planned["steps"][2]["does"]


def test_the_snapshot_names_the_unmanaged_listings_left_at_zero(world: World) -> None:
    _to_step_5(world)
    with world.engine.connect() as conn:
        found = cutover.current(conn, world.channel.id)
        assert found is not None
        left = cutover_plan.unmanaged_of_cutover(conn, world.channel.id, found.id)
    assert [(u["sku"], u["quantity"], Decimal(u["price"]), u["currency"]) for u in left] == [
        ("LEGACY-9", 3, Decimal("99.00"), "EUR")
    ]
    assert _listed(world)["LEGACY-9"][1] == 0  # zeroed at step 3, not sent again by the sync
