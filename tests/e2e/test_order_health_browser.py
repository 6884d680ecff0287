"""Order Health forms and long raw text in a real browser (headless Chromium, 1280x800):

* a refused SKU mapping / product comes back with every error next to its field and what was typed
  still in the fields; a mapping to a SKU outside the catalog goes through only once the merchant-only
  box is ticked, and the order then reaches the OMS with that SKU;
* a raw URL without spaces in an error cell, a reason, an alert (Overview) or an order's history note
  never makes a table wider than its card.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from dashboard_e2e import Stack
from playwright.sync_api import expect
from test_dashboard_browser import login, merchant_status, publish_catalog, shoot, stack_order_id

from mirakl_world import SHOP_ID, catalog
from tradelane.persistence.tables import offer_bindings, products
from tradelane.services.order_health import QuarantineReason, quarantine
from tradelane.services.orders import add_history, raise_alert
from tradelane.sync import jobs as jobstore

pytestmark = pytest.mark.browser

#: No space and no hyphen (a line-break opportunity): only overflow-wrap can break it.
LONG_URL = (
    "https://oms.example.com/api/v2/orders/import?session="
    + "Zm9vYmFyYmF6" * 30
    + "&callback=https%3A%2F%2Fhub.example.com%2Fapi%2Fv1%2Fmerchant%2Foms%2Fwebhook"
)


def _quarantined_order(stack: Stack) -> str:
    publish_catalog(stack, catalog(3))
    stack.world.state.add_offer(SHOP_ID, "LEGACY-9", "OP-9", Decimal("3.00"), 50)
    stuck = stack.world.order(
        [{"offer_sku": "SKU-1", "quantity": 1}, {"offer_sku": "LEGACY-9", "quantity": 1}]
    )
    stack.import_orders()
    assert merchant_status(stack, stuck) == "quarantined"
    return stuck


def test_refused_fix_forms_show_every_error_and_keep_the_input(stack: Stack, tab: Any) -> None:
    stuck = _quarantined_order(stack)
    login(tab, stack)
    tab.get_by_role("link", name="Order Health").click()
    fix = tab.locator('tr[data-unknown-sku="LEGACY-9"]')
    expect(fix.locator('fieldset.publish input[name="publish"]')).to_have_count(1)  # the one channel
    expect(fix.locator('fieldset.publish input[name="publish"]')).not_to_be_checked()

    mapping = fix.locator('form[data-form="mapping"]')
    mapping.locator('input[name="merchant_sku"]').fill("OMS-ONLY-9")
    mapping.get_by_role("button", name="Add mapping").click()
    fix = tab.locator('tr[data-unknown-sku="LEGACY-9"]')
    mapping = fix.locator('form[data-form="mapping"]')
    expect(mapping.locator(".field-error")).to_contain_text(
        "SKU 'OMS-ONLY-9' is not in the catalog of tenant acme"
    )
    expect(mapping.locator('input[name="merchant_sku"]')).to_have_value("OMS-ONLY-9")

    product = fix.locator('form[data-form="product"]')
    product.locator('input[name="title"]').fill("Legacy nine")
    product.locator('input[name="price"]').fill("3,50")
    product.locator('input[name="currency"]').fill("EUX")
    product.locator('input[name="quantity"]').fill("-2")
    product.get_by_role("button", name="Add product").click()
    product = tab.locator('tr[data-unknown-sku="LEGACY-9"] form[data-form="product"]')
    expect(product.locator(".field-error")).to_have_count(3)  # price, currency, quantity at once
    for name, typed in (("title", "Legacy nine"), ("price", "3,50"), ("currency", "EUX"), ("quantity", "-2")):
        expect(product.locator(f'input[name="{name}"]')).to_have_value(typed)
    expect(product.locator('input[name="price"]')).to_have_attribute("aria-invalid", "true")
    expect(tab.locator(".form-errors li")).to_have_count(3)
    shoot(tab, "orders-health-form-errors")
    with stack.world.engine.connect() as conn:
        assert conn.execute(sa.select(products.c.id).where(products.c.sku == "LEGACY-9")).first() is None

    # The SKU does exist in the OMS: confirm it and map it.
    mapping = tab.locator('tr[data-unknown-sku="LEGACY-9"] form[data-form="mapping"]')
    mapping.locator('input[name="merchant_sku"]').fill("OMS-ONLY-9")
    mapping.locator('input[name="merchant_only"]').check()
    mapping.get_by_role("button", name="Add mapping").click()
    expect(tab.locator(".flash")).to_contain_text(
        "LEGACY-9 now maps to OMS-ONLY-9 (known only to the merchant system) on every channel; "
        "1 order(s) retried."
    )
    expect(tab.locator('#sku-mappings tr[data-mapping="LEGACY-9"]')).to_contain_text("merchant-only")
    stack.run()
    assert merchant_status(stack, stuck) == "delivered"
    received = stack.oms.find(f"order-{stack_order_id(stack, stuck)}")
    assert received is not None
    assert sorted(line["sku"] for line in received.document["lines"]) == ["OMS-ONLY-9", "SKU-1"]
    with stack.world.engine.connect() as conn:  # nothing was published for the SKU
        assert conn.execute(sa.select(sa.func.count()).select_from(offer_bindings)).scalar() == 3


_OVERFLOWING = """() => {
  const wide = [];
  for (const el of document.querySelectorAll("main table, main pre")) {
    const box = el.tagName === "PRE" ? el : el.parentElement;
    if (el.scrollWidth > box.clientWidth + 1 || box.scrollWidth > box.clientWidth + 1) {
      wide.push(`${el.tagName}.${el.className} ${el.scrollWidth}/${box.scrollWidth} > ${box.clientWidth}`);
    }
  }
  return wide;
}"""


def test_long_raw_urls_wrap_inside_tables_and_pre_blocks(stack: Stack, tab: Any) -> None:
    stuck = _quarantined_order(stack)
    world = stack.world
    now = world.clock()
    error = f"HTTP 502 from {LONG_URL}: upstream closed the connection"
    order_id = stack_order_id(stack, stuck)
    with world.engine.begin() as conn:
        job_id = jobstore.enqueue(
            conn, jobstore.JobSpec(world.tenant_id, "test.long", {"url": LONG_URL}), now=now
        ).job_id
        quarantine(
            conn,
            tenant_id=world.tenant_id,
            order_id=order_id,
            reason_code=QuarantineReason.UNKNOWN_SKU,
            reason=f"unknown SKU(s): LEGACY-9 (see {LONG_URL})",
            detail={"skus": ["LEGACY-9"], "url": LONG_URL},
            now=now,
        )
    for attempt in range(2):  # one retry, then dead: two history rows with the long error
        with world.engine.begin() as conn:
            [claimed] = jobstore.claim(conn, worker="w-e2e", now=now, lease_seconds=30, kinds=["test.long"])
            if attempt == 0:
                jobstore.retry_later(conn, claimed, now=now, delay=0, error=error)
            else:
                jobstore.bury(conn, claimed, now=now, error=error, kind=jobstore.ErrorKind.PERMANENT)

    login(tab, stack)
    tab.goto(f"/dashboard/jobs/{job_id}")
    expect(tab.locator("table.compact td.error-cell").first).to_contain_text("HTTP 502 from https://oms")
    assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert tab.evaluate(_OVERFLOWING) == []
    shoot(tab, "job-long-error")
    with world.engine.begin() as conn:  # raw URLs in an alert (Overview) and an order's history note
        raise_alert(
            conn,
            tenant_id=world.tenant_id,
            kind="feed_failing",
            key="test-long-url",
            message=f"shop: RT11 (returns) failed: HTTP 502 from {LONG_URL}",
            now=now,
        )
        add_history(conn, world.tenant_id, order_id, "DELIVERY_FAILED", now=now, note=error)
    for url, name in (
        ("/dashboard/jobs?state=dead", "jobs-long-error"),
        ("/dashboard/order-health", "health-long-reason"),
        ("/dashboard/", "overview-long-alert"),
        (f"/dashboard/orders/{order_id}", "order-long-note"),
    ):
        tab.goto(url)
        expect(tab.locator("main table").first).to_be_visible()
        assert tab.evaluate(_OVERFLOWING) == [], url
        assert tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), url
        shoot(tab, name)
