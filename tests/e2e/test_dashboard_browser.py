"""The dashboard in a real browser: fix a quarantined order's unknown SKU and watch it reach the OMS,
replay a dead letter, republish a rejected offer. Screenshots of each page go to ``docs/screenshots``."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from dashboard_e2e import SCREENSHOTS, Stack
from playwright.sync_api import expect

from mirakl_world import SHOP_ID, catalog
from tradelane.connectors.mirakl.sandbox import Product as SandboxProduct
from tradelane.domain.catalog import Product
from tradelane.persistence.tables import jobs, offer_bindings, orders, products
from tradelane.sync.jobs import JobSpec, enqueue

pytestmark = pytest.mark.browser

GHOST_GTIN = "4006381333931"  # valid, but not in the operator's catalog until the test adds it


def login(page: Any, stack: Stack) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next=%2Fdashboard$"))
    page.fill("#token", stack.token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.locator(".flash")).to_contain_text("Logged in as acme")


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def publish_catalog(stack: Stack, items: list[Product]) -> None:
    stack.world.add_products(items)
    stack.world.enqueue("offers.full", flow="offers")
    stack.run(step=20)


def merchant_status(stack: Stack, marketplace_order_id: str) -> str | None:
    with stack.world.engine.connect() as conn:
        return conn.execute(
            sa.select(orders.c.merchant_status).where(orders.c.marketplace_order_id == marketplace_order_id)
        ).scalar()


def test_quarantined_order_releases_itself_once_its_sku_is_mapped(stack: Stack, tab: Any) -> None:
    world = stack.world
    publish_catalog(stack, catalog(6))
    world.state.add_offer(SHOP_ID, "LEGACY-9", "OP-9", Decimal("3.00"), 50)  # sold, but unknown to the OMS
    for hour in range(8):  # a morning of business, for the charts
        for n in range(1 + hour % 3):
            world.order([{"offer_sku": f"SKU-{(hour + n) % 6}", "quantity": 1 + n % 2}])
        stack.import_orders()
        world.advance(3600 - 120)
    stuck = world.order([{"offer_sku": "SKU-1", "quantity": 1}, {"offer_sku": "LEGACY-9", "quantity": 2}])
    stack.import_orders()
    assert merchant_status(stack, stuck) == "quarantined"
    assert len(stack.oms.orders()) == sum(1 + h % 3 for h in range(8))

    login(tab, stack)
    expect(tab.locator(".kpi").filter(has_text="Quarantined orders")).to_contain_text("1")
    expect(tab.locator("svg.chart rect.s-orders").first).to_be_visible()
    shoot(tab, "overview")

    tab.get_by_role("link", name="Channels", exact=True).click()
    expect(tab.locator("section.channel h2")).to_contain_text("marketplace-x")
    expect(tab.locator("section.channel")).to_contain_text("mirakl:OR11")
    shoot(tab, "channels")

    tab.get_by_role("link", name="Order Health").click()
    row = tab.locator(f'tr[data-order="{stuck}"]')
    expect(row).to_contain_text("unknown SKU(s): LEGACY-9")
    shoot(tab, "orders-health")

    fix = tab.locator('tr[data-unknown-sku="LEGACY-9"]')
    fix.locator('input[name="merchant_sku"]').fill("SKU-2")
    fix.get_by_role("button", name="Add mapping").click()
    expect(tab.locator(".flash")).to_contain_text(
        "LEGACY-9 now maps to SKU-2 on every channel; 1 order(s) retried."
    )

    stack.run()  # the worker delivers the order now that every SKU resolves
    tab.reload()
    expect(tab.locator(".card").first).to_contain_text("Every order reached the merchant system")
    tab.get_by_role("link", name="Orders", exact=True).click()
    tab.fill('input[name="ref"]', stuck)  # the bare marketplace order id is enough
    tab.get_by_role("button", name="Open").click()
    expect(tab.locator("h1")).to_contain_text("sent to OMS")
    expect(tab.locator("table.compact")).to_contain_text("SKUs now resolve: delivery retried")
    shoot(tab, "order")
    received = stack.oms.find(f"order-{stack_order_id(stack, stuck)}")
    assert received is not None
    assert sorted(line["sku"] for line in received.document["lines"]) == ["SKU-1", "SKU-2"]


def stack_order_id(stack: Stack, marketplace_order_id: str) -> int:
    with stack.world.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(orders.c.id).where(orders.c.marketplace_order_id == marketplace_order_id)
            ).scalar_one()
        )


def test_replay_a_dead_letter(stack: Stack, tab: Any) -> None:
    world = stack.world
    publish_catalog(stack, catalog(3))
    placed = world.order([{"offer_sku": "SKU-0", "quantity": 1}])
    world.state.inject("OR11", "html_error")  # the marketplace's gateway fails the poll once
    with world.engine.begin() as conn:
        job_id = enqueue(
            conn,
            JobSpec(
                world.tenant_id, "orders.poll", {}, channel_id=world.channel.id, flow="orders", max_attempts=1
            ),
            now=world.clock(),
        ).job_id
    stack.run()
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job_id)).scalar() == "dead"

    login(tab, stack)
    tab.get_by_role("link", name="Jobs", exact=True).click()
    tab.get_by_role("link", name=re.compile(r"^dead \d+")).click()
    row = tab.locator(f'tr[data-job="{job_id}"]')
    expect(row).to_contain_text("orders.poll")
    expect(row).to_contain_text("exhausted")
    shoot(tab, "jobs")

    row.get_by_role("link", name=str(job_id), exact=True).click()
    expect(tab.locator("pre.error-block")).to_contain_text("gave up after 1 attempts")
    tab.get_by_role("button", name="Replay this job").click()
    expect(tab.locator(".flash")).to_contain_text(f"Job {job_id} (orders.poll) queued again.")

    stack.run()
    tab.reload()
    expect(tab.locator("h1")).to_contain_text("succeeded")
    tab.get_by_role("link", name="Orders", exact=True).click()
    expect(tab.locator(f'tr[data-order="{placed}"]')).to_contain_text("awaiting acceptance")


def test_republish_a_failed_offer(stack: Stack, tab: Any) -> None:
    world = stack.world
    ghost = Product(
        sku="GHOST",
        title="Not in the operator catalog yet",
        gtin=GHOST_GTIN,
        price=Decimal("5.00"),
        currency="EUR",
        quantity=4,
    )
    publish_catalog(stack, [*catalog(3), ghost])
    with world.engine.connect() as conn:
        status = conn.execute(
            sa.select(offer_bindings.c.status)
            .join(products, products.c.id == offer_bindings.c.product_id)
            .where(products.c.sku == "GHOST")
        ).scalar()
    assert status == "error"
    # The operator fixes its catalog; nothing changed on the merchant's side, so only a republish helps.
    world.state.add_product(
        SandboxProduct("OP-GHOST", "Ghost", "home", "Home", references=(("EAN", GHOST_GTIN),))
    )

    login(tab, stack)
    tab.get_by_role("link", name="Offers", exact=True).click()
    expect(tab.locator('tr[data-sku="SKU-0"]')).to_contain_text("published")
    shoot(tab, "offers")
    tab.select_option('select[name="status"]', "error")
    tab.get_by_role("button", name="Search").click()
    row = tab.locator('tr[data-sku="GHOST"]')
    expect(row).to_contain_text("error")
    expect(tab.locator("tbody tr")).to_have_count(1)

    row.get_by_role("link", name="GHOST").click()
    expect(tab.locator("h1")).to_contain_text("error")
    expect(tab.locator(".card").filter(has_text="Marketplace errors")).to_contain_text(
        "does not exist in the catalog"
    )
    shoot(tab, "offer")
    tab.get_by_role("button", name="Republish this offer").click()
    expect(tab.locator(".flash")).to_contain_text("GHOST on marketplace-x: 1 offer queued for republishing.")
    expect(tab.locator("h1")).to_contain_text("pending")

    stack.run(step=20)
    tab.reload()
    expect(tab.locator("h1")).to_contain_text("published")
    assert "GHOST" in world.state.shop_offers(SHOP_ID)
