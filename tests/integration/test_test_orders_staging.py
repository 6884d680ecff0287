"""In Testing, a Mirakl channel with a staging account uses that account's own orders: an order placed on
the sandbox's staging shop (`tradelane sandbox order --shop-id`) is polled, accepted and imported like any
order — on the staging shop only, and not marked as a tradelane test order. `sandbox order` places an
Amazon sandbox order too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from helpers import FakeClock, make_tenant
from mirakl_world import GENEROUS, World, catalog, sandbox_catalog
from tradelane.bootstrap import register_handlers
from tradelane.cli import build_app
from tradelane.connectors.amazon.sandbox import AmazonSandboxServer, AmazonSandboxState
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.connectors.mirakl.sandbox import SandboxServer, SandboxState, Shop
from tradelane.domain.channels import LifecycleState
from tradelane.persistence.tables import channels
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.orders import list_orders
from tradelane.sync.registry import JobRegistry

LIVE, STAGING = 2000, 2001
LIVE_KEY, STAGING_KEY = "live-shop-key-0123456789", "staging-shop-key-0123456789"


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    state = SandboxState(
        11,
        shops=[Shop(LIVE, "Live shop", LIVE_KEY), Shop(STAGING, "Staging shop", STAGING_KEY)],
        products=sandbox_catalog(6),
        rate_limits={},
        start=now,
    )
    tenant, _ = make_tenant(engine, "acme", now)
    keyring = KeyRing([generate_key()])
    registry = JobRegistry()
    register_handlers(registry)
    with SandboxServer(state) as server:
        with engine.begin() as conn:
            channel = add_channel(
                conn,
                tenant_id=tenant.id,
                name="shop-fr",
                hostname=server.url,
                shop_id=str(LIVE),
                api_key=LIVE_KEY,
                staging_api_key=STAGING_KEY,
                keyring=keyring,
                now=now,
                options={
                    "staging_hostname": server.url,
                    "staging_shop_id": str(STAGING),
                    "rate_limits": GENEROUS,
                },
            )
            conn.execute(
                sa.update(channels)
                .where(channels.c.id == channel.id)
                .values(lifecycle_state=LifecycleState.TESTING.value)
            )
        yield World(engine, state, server.url, FakeClock(now), tenant.id, channel, keyring, registry)


def test_staging_shop_orders_flow_like_live_ones_in_testing(world: World) -> None:
    skus = [p.sku for p in catalog(2)]
    world.add_products(catalog(2))
    world.enqueue("offers.full", flow="offers")
    world.run(max_rounds=60, step=20)

    placed = CliRunner().invoke(
        build_app(),
        [
            "sandbox",
            "order",
            "--url",
            world.url,
            "--sku",
            skus[1],
            "--quantity",
            "2",
            "--shop-id",
            str(STAGING),
        ],
    )
    assert placed.exit_code == 0, placed.output
    mirakl_id = placed.stdout.split()[1]
    assert placed.stdout.strip() == f"order {mirakl_id} placed on the mirakl sandbox"

    world.enqueue("orders.poll")
    world.run(max_rounds=60)
    world.advance(120)  # the sandbox's payment delay
    world.enqueue("orders.poll")
    world.run(max_rounds=60)

    with world.engine.connect() as conn:
        [order] = list_orders(conn, world.tenant_id)
    assert order["marketplace_order_id"] == mirakl_id and order["is_test"] is False
    assert order["state"] == "to_ship" and order["accepted_at"] is not None
    assert [(ln["sku"], ln["quantity"]) for ln in order["lines"]] == [(skus[1], 2)]
    shops = {
        (r.op_id, r.shop_id) for r in world.state.requests if r.op_id in {"OR11", "OR21", "OF01", "OF24"}
    }
    assert {shop for _, shop in shops} == {STAGING}, shops  # the live shop was never called
    assert ("OR21", STAGING) in shops


def test_sandbox_order_places_an_amazon_order_and_says_what_the_sandbox_refused() -> None:
    state = AmazonSandboxState(3, region="eu", products=3)
    seller = next(iter(state.accounts.values()))
    state.add_offer(seller.seller_id, "DEMO-1", next(iter(state.catalog)), Decimal("9.99"), 5)
    with AmazonSandboxServer(state) as server:
        app = build_app()
        placed = CliRunner().invoke(
            app, ["sandbox", "order", "--kind", "amazon", "--url", server.url, "--sku", "DEMO-1", "--unpaid"]
        )
        refused = CliRunner().invoke(
            app, ["sandbox", "order", "--kind", "amazon", "--url", server.url, "--sku", "NOPE"]
        )
    assert placed.exit_code == 0, placed.output
    [order] = state.orders.values()
    assert placed.stdout.strip() == f"order {order.order_id} placed on the amazon sandbox"
    assert order.status.value == "PENDING" and [(i.sku, i.quantity) for i in order.items] == [("DEMO-1", 1)]
    assert refused.exit_code == 1 and "sandbox refused the order (" in refused.output
