"""A cutover in a real browser, the parts test_cutover_browser leaves out: while step 2 waits for the
previous integrator's outstanding orders, the page shows the live count (two orders; one processed —
the page, reloading itself, shows 1; the other processed — step 2 done with no outstanding order);
then the operator reverts from the dashboard with a reason, and the page shows what was restored and
what could not be; the shop is back as found."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from dashboard_e2e import Stack
from playwright.sync_api import expect
from test_cutover_browser import _engine_rounds, _step
from test_dashboard_browser import login

from mirakl_world import API_KEY, SHOP_ID, catalog
from tradelane.connectors.mirakl.client import MiraklClient
from tradelane.persistence.tables import channels
from tradelane.services import audit

pytestmark = pytest.mark.browser


def _listed(stack: Stack) -> dict[str, tuple[Decimal, int]]:
    return {o.shop_sku: (o.price, o.quantity) for o in stack.world.state.shop_offers(SHOP_ID).values()}


def _previous_integrator_ships(stack: Stack, order_id: str) -> None:
    """The other integrator accepts and ships the order through the seller API (the same shop)."""
    world = stack.world
    client = MiraklClient(world.url, API_KEY, str(SHOP_ID))
    try:
        order = world.state.order(order_id)
        client.accept_lines(order_id, {line.line_id: True for line in order.lines})
        world.advance(120)  # payment
        client.ship(order_id)
    finally:
        client.close()


def test_live_outstanding_count_then_revert_from_the_dashboard(stack: Stack, tab: Any) -> None:
    world = stack.world
    with world.engine.begin() as conn:  # a live channel, budgets generous for the account reads
        settings = conn.execute(
            sa.select(channels.c.settings).where(channels.c.id == world.channel.id)
        ).scalar_one()
        limits = {**settings["rate_limits"], "OF21": [1000, 1], "A02": [1000, 1], "OR11": [1000, 1]}
        conn.execute(
            sa.update(channels)
            .where(channels.c.id == world.channel.id)
            .values(lifecycle_state="live", settings={**settings, "rate_limits": limits})
        )
    for i in range(3):
        world.state.add_offer(SHOP_ID, f"SKU-{i}", f"OP-{i}", Decimal(f"3{i}.50"), 4 + i)
    world.add_products(catalog(4))
    first = world.order([{"offer_sku": "SKU-0", "quantity": 1}])  # the previous integrator's
    second = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
    world.advance(5)
    found = _listed(stack)

    login(tab, stack)
    tab.get_by_role("link", name="Channels", exact=True).click()
    tab.locator("[data-cutover-link]").first.click()
    tab.locator("[data-confirm-previous]").check()
    tab.get_by_role("button", name="Run").click()
    expect(tab.locator(".flash")).to_contain_text("cutover waiting at step 2")
    expect(tab.locator("[data-outstanding]")).to_have_attribute("data-outstanding", "2")
    expect(tab.locator("[data-live]")).to_be_visible()  # the page reloads itself

    _previous_integrator_ships(stack, first)
    world.advance(20)
    world.worker.run(burst=True)  # the engine's cutover.advance job counts again
    expect(tab.locator("[data-outstanding]")).to_have_attribute("data-outstanding", "1", timeout=15_000)
    expect(tab.locator('tr[data-step="2"]')).to_have_attribute("data-state", "waiting")

    _previous_integrator_ships(stack, second)
    _engine_rounds(stack, ("waiting", 6))  # step 2 passes, zero, cutoff, initial sync
    assert _step(stack) == ("waiting", 6)
    expect(tab.locator('tr[data-step="2"]')).to_have_attribute("data-state", "done", timeout=15_000)
    expect(tab.locator('tr[data-step="2"]')).to_contain_text("no outstanding order")
    expect(tab.locator("[data-outstanding]")).to_have_count(0)
    assert _listed(stack) != found  # ours now: zeroed, then synced

    tab.get_by_role("link", name="Stop live updates").click()  # the page stays while typing
    tab.locator('[data-form="revert"] input[name="reason"]').fill("merchant postponed the switch")
    tab.get_by_role("button", name="Revert").click()
    for _ in range(20):  # the restore's import runs; the engine finishes the revert
        if _step(stack) is not None and _step(stack)[0] == "reverted":  # type: ignore[index]
            break
        world.advance(20)
        world.worker.run(burst=True)
    assert _step(stack) is not None and _step(stack)[0] == "reverted"  # type: ignore[index]
    tab.reload()
    expect(tab.locator("[data-cutover-status]")).to_have_attribute("data-cutover-status", "reverted")
    message = tab.locator("[data-revert-message]")
    expect(message).to_contain_text("reverted: 3 of 3 offers restored")
    expect(message).to_contain_text("deleted (SKU-3)")
    assert _listed(stack) == found
    assert world.state.shop(SHOP_ID).closed_from is None
    with world.engine.connect() as conn:
        events = audit.history(conn, world.channel.id, prefix="cutover.revert", limit=None)
    phases = [(e.actor, e.reason, e.details.get("phase")) for e in events]
    assert ("dashboard:acme", "merchant postponed the switch", "started") in phases, phases
    assert [p for _, _, p in phases].count("finished") == 1, phases  # by the engine's job or the page
