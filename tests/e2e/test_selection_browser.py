"""The selection page in a real browser: from the channels page, preview a label selection (counts and
samples, nothing sent), apply it, and the next offers delta deletes the de-selected offers (reconciler
on) from the Mirakl sandbox."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from dashboard_e2e import Stack
from playwright.sync_api import expect

from mirakl_world import SHOP_ID, catalog
from tradelane.persistence.tables import channel_flows, channels

pytestmark = pytest.mark.browser


def test_preview_and_apply_a_label_selection(stack: Stack, tab: Any) -> None:
    world = stack.world
    with world.engine.begin() as conn:  # sending, with the reconciler on
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state="live")
        )
        conn.execute(
            sa.update(channel_flows)
            .where(channel_flows.c.channel_id == world.channel.id, channel_flows.c.flow == "reconciler")
            .values(enabled=True)
        )
    items = [replace(p, labels=("summer",) if i < 2 else ()) for i, p in enumerate(catalog(4))]
    world.add_products(items)
    world.enqueue("offers.full", flow="offers")
    stack.run(step=20)
    assert set(world.state.shop_offers(SHOP_ID)) == {"SKU-0", "SKU-1", "SKU-2", "SKU-3"}

    tab.goto("/")
    tab.fill("#token", stack.token)
    tab.get_by_role("button", name="Log in").click()
    expect(tab).to_have_url(re.compile(r"/dashboard$"))
    tab.goto("/dashboard/channels")
    tab.get_by_role("link", name="Product selection").click()
    expect(tab.locator("#current")).to_contain_text("all products")
    tab.fill('textarea[name="labels"]', "summer")
    tab.get_by_role("button", name="Preview").click()
    expect(tab.locator('tr[data-group="updated"] [data-count]')).to_have_text("2")
    expect(tab.locator('tr[data-group="delisted"]')).to_contain_text("SKU-2, SKU-3")
    assert len(world.state.shop_offers(SHOP_ID)) == 4  # a preview sends nothing
    tab.get_by_role("button", name="Apply").click()
    expect(tab.locator(".flash")).to_contain_text("label summer applied — 0 listed, 2 updated, 2 delisted.")
    expect(tab.locator("[data-selected-count]")).to_have_text("2")

    stack.run(step=20)
    assert set(world.state.shop_offers(SHOP_ID)) == {"SKU-0", "SKU-1"}
