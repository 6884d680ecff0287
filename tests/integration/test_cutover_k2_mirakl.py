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

import test_cutover_mirakl as base
from cutover_support import deps

from mirakl_world import API_KEY, SHOP_ID, World
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.services import cutover

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
