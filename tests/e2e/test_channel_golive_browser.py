"""A channel from Setup to Live in the dashboard (headless Chromium): the channels page links to the
channel's page; "Save and activate" checks the credentials on the Mirakl sandbox and starts the testing
period, whose length is then changed with a reason; a flow is switched off with a reason; Promote is
refused while a unique-ID conflict exists and goes through with an override reason; the history shows
every step with its actor."""

from __future__ import annotations

from typing import Any

import pytest
from dashboard_e2e import Stack
from playwright.sync_api import expect
from test_dashboard_browser import login, shoot

from mirakl_world import API_KEY, SHOP_ID
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.services import id_match

pytestmark = pytest.mark.browser


def test_a_channel_goes_from_setup_to_live(stack: Stack, tab: Any) -> None:
    world = stack.world
    with world.engine.begin() as conn:
        channel = add_channel(
            conn,
            tenant_id=world.tenant_id,
            name="shop-new",
            hostname=world.url,
            shop_id=str(SHOP_ID),
            api_key=API_KEY,
            keyring=world.keyring,
            now=world.clock(),
        )
    with world.engine.begin() as conn:  # a unique-ID match that found 2 conflicts
        rows = [
            id_match.MatchRow(id_match.CONFLICT, sku=sku, their_sku=sku, our_group="P-1", their_group="X")
            for sku in ("SKU-1", "SKU-2")
        ]
        id_match.store_run(conn, channel, 2, rows, actor="cli:tester", now=world.clock())

    login(tab, stack)
    tab.goto("/dashboard/channels")
    tab.get_by_role("link", name="shop-new").click()
    expect(tab.locator("[data-lifecycle-state]")).to_have_attribute("data-lifecycle-state", "setup")
    expect(tab.locator("nav[data-links]")).to_be_visible()
    expect(tab.locator("[data-frequency]")).to_contain_text("a full sync takes ")
    # each figure with what it is made of (the stock change: worker pick-up, OF24 budget, call, processing)
    expect(tab.locator("[data-frequency-parts]").nth(1)).to_contain_text(
        "the marketplace processes the OF24 import"
    )

    activate = tab.locator('form[data-form="activate"]')
    activate.locator('input[name="testing_days"]').fill("3")
    activate.get_by_role("button", name="Save and activate").click()
    expect(tab.locator(".flash")).to_contain_text("shop-new: testing for 3 days")
    expect(tab.locator("[data-lifecycle-state]")).to_have_attribute("data-lifecycle-state", "testing")

    period = tab.locator('form[data-form="testing-period"]')
    period.locator('input[name="testing_days"]').fill("5")
    period.locator('input[name="reason"]').fill("the merchant's promotion starts later")
    period.get_by_role("button", name="Change the testing period").click()
    expect(tab.locator(".flash")).to_contain_text("shop-new: testing for 5 days")
    expect(tab.locator("#lifecycle")).to_contain_text("5 days")

    fulfillments = tab.locator('tr[data-flow="fulfillments"]')
    fulfillments.locator('input[name="reason"]').fill("the 3PL ships")
    fulfillments.get_by_role("button", name="Switch off").click()
    expect(tab.locator(".flash")).to_contain_text("Fulfillments switched off")
    expect(tab.locator('tr[data-flow="fulfillments"]')).to_contain_text("off")

    tab.locator('form[data-form="promote"]').get_by_role("button", name="Promote to live").click()
    expect(tab.locator(".flash.error")).to_contain_text("shop-new cannot go live: 2 unique-ID match conflict")
    override = tab.locator('form[data-form="override"]')
    override.locator('input[name="override_reason"]').fill("old SKUs, agreed with the merchant")
    override.get_by_role("button", name="Override and go live").click()
    expect(tab.locator(".flash")).to_contain_text("shop-new is live.")
    expect(tab.locator("[data-lifecycle-state]")).to_have_attribute("data-lifecycle-state", "live")

    history = tab.locator("#history tbody tr")
    expect(history).to_have_count(5)  # newest first
    expect(history.nth(0)).to_have_attribute("data-action", "lifecycle.promote")
    expect(history.nth(1)).to_have_attribute("data-action", "lifecycle.override")
    expect(history.nth(1)).to_contain_text("old SKUs, agreed with the merchant")
    expect(history.nth(3)).to_have_attribute("data-action", "lifecycle.testing_period")
    expect(history.nth(3)).to_contain_text("the merchant's promotion starts later")
    expect(history.nth(4)).to_contain_text("dashboard:acme")
    shoot(tab, "channel-golive")
