"""A cutover walked in a real browser, from plan to done: the Mirakl shop carries another integrator's
offers; the operator opens the channel's cutover page, plans (counts), confirms the previous
integrator's disconnection and runs; the engine's ``cutover.advance`` job moves the cutover on while the
page reloads itself (holiday, snapshot and zero, cutoff, initial sync, live); a live test order
and a shipment confirm step 6 and the page shows it done."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from dashboard_e2e import Stack
from playwright.sync_api import expect
from test_dashboard_browser import login, shoot

from mirakl_world import SHOP_ID, catalog
from tradelane.persistence.tables import channels, cutovers
from tradelane.services.order_updates import record_shipment

pytestmark = pytest.mark.browser


def _step(stack: Stack) -> tuple[str, int] | None:
    with stack.world.engine.connect() as conn:
        row = conn.execute(sa.select(cutovers.c.status, cutovers.c.step)).first()
    return None if row is None else (row.status, row.step)


def _engine_rounds(stack: Stack, until: tuple[str, int], rounds: int = 30) -> None:
    """Let time pass and the worker run (the cutover.advance job looks every 15 s) until ``until``."""
    for _ in range(rounds):
        if _step(stack) == until:
            return
        stack.world.advance(20)
        stack.world.worker.run(burst=True)
    raise AssertionError(f"cutover at {_step(stack)}, expected {until}")


def test_cutover_from_plan_to_done(stack: Stack, tab: Any) -> None:
    world = stack.world
    with world.engine.begin() as conn:  # a live channel, budgets generous for the account reads
        settings = conn.execute(
            sa.select(channels.c.settings).where(channels.c.id == world.channel.id)
        ).scalar_one()
        limits = {**settings["rate_limits"], "OF21": [1000, 1], "A02": [1000, 1]}
        conn.execute(
            sa.update(channels)
            .where(channels.c.id == world.channel.id)
            .values(lifecycle_state="live", settings={**settings, "rate_limits": limits})
        )
    for i in range(3):
        world.state.add_offer(SHOP_ID, f"SKU-{i}", f"OP-{i}", Decimal(f"3{i}.50"), 4 + i)
    world.add_products(catalog(4))

    login(tab, stack)
    tab.get_by_role("link", name="Channels", exact=True).click()
    tab.locator("[data-cutover-link]").first.click()
    expect(tab.locator("[data-cutover-status]")).to_have_attribute("data-cutover-status", "none")

    tab.get_by_role("button", name="Plan").click()
    expect(tab.locator("[data-plan]")).to_contain_text("3 offers listed now · 0 outstanding orders")
    expect(tab.locator("[data-plan]")).to_contain_text("4 selected SKUs")

    world.advance(5)  # the marketplace's budgets refill (one clock for the app and the sandbox)
    tab.locator("[data-confirm-previous]").check()
    tab.get_by_role("button", name="Run").click()
    expect(tab.locator(".flash")).to_contain_text("cutover waiting at step 3")
    expect(tab.locator('tr[data-step="2"]')).to_have_attribute("data-state", "done")
    assert world.state.shop(SHOP_ID).closed_from is not None

    _engine_rounds(stack, ("waiting", 6))  # zero, cutoff, initial sync: all by the engine
    expect(tab.locator('tr[data-step="5"]')).to_have_attribute("data-state", "done", timeout=15_000)
    expect(tab.locator('tr[data-step="6"]')).to_contain_text("live test order", timeout=15_000)
    shoot(tab, "cutover")

    live = world.order([{"offer_sku": "SKU-3", "quantity": 1}])
    stack.import_orders()
    with world.engine.begin() as conn:
        record_shipment(
            conn,
            tenant_id=world.tenant_id,
            order_ref=f"{world.channel.name}:{live}",
            carrier="UPS",
            tracking_number="E2E-1",
            tracking_url=None,
            lines=None,
            external_id="e2e-dummy",
            now=world.clock(),
        )
    stack.run(step=20)
    world.enqueue("orders.poll")
    stack.run(step=20)
    _engine_rounds(stack, ("done", 6))
    expect(tab.locator("[data-cutover-status]")).to_have_attribute(
        "data-cutover-status", "done", timeout=15_000
    )
    expect(tab.locator('tr[data-step="6"]')).to_have_attribute("data-state", "done")
    assert world.state.shop(SHOP_ID).closed_from is None
