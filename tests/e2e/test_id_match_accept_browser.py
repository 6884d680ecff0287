"""Accepting ours on the unique-ID match page (headless Chromium): two conflicts block go-live; one is
accepted with its own button and a reason, the other with "Accept ours for all"; the page then shows who
accepted each and why, and says go-live is no longer blocked by them."""

from __future__ import annotations

from typing import Any

import pytest
from dashboard_e2e import Stack
from playwright.sync_api import expect
from test_dashboard_browser import login

from tradelane.services import id_match

pytestmark = pytest.mark.browser


def test_accept_ours_one_then_all(stack: Stack, tab: Any) -> None:
    world = stack.world
    with world.engine.begin() as conn:
        rows = [
            id_match.MatchRow(id_match.CONFLICT, sku=sku, their_sku=sku, our_group="P-1", their_group="X")
            for sku in ("SKU-1", "SKU-2")
        ]
        id_match.store_run(conn, world.channel, 2, rows, actor="cli:tester", now=world.clock())

    login(tab, stack)
    tab.goto(f"/dashboard/channels/{world.channel.name}/id-match")
    expect(tab.locator("[data-blocked]")).to_contain_text("2 conflict(s) unresolved")
    one = tab.locator('form[data-form="accept"][data-sku="SKU-1"]')
    one.locator('input[name="reason"]').fill("the merchant regrouped it")
    one.get_by_role("button", name="Accept ours").click()
    expect(tab.locator(".flash").first).to_contain_text("Accepted ours for SKU-1")
    expect(tab.locator('[data-accepted="SKU-1"]')).to_contain_text("(the merchant regrouped it)")
    expect(tab.locator("[data-blocked]")).to_contain_text("1 conflict(s) unresolved")

    every = tab.locator('form[data-form="accept-all"]')
    every.locator('input[name="reason"]').fill("agreed with the previous integrator")
    every.get_by_role("button", name="Accept ours for all").click()
    expect(tab.locator(".flash").first).to_contain_text("Accepted ours for SKU-2")
    expect(tab.locator("[data-blocked]")).to_have_count(0)
    expect(tab.locator("[data-accepted-all]")).to_contain_text("every one accepted")
    with world.engine.connect() as conn:
        assert id_match.unresolved_conflicts(conn, world.channel.id) == 0
