"""A complete cutover of a live Amazon seller account run by another integrator, against the SP-API
sandbox over HTTP (one fake clock): Amazon has no holiday mode, so the closest equivalent — zero stock
— is what step 3 sets, and the step says so; orders before the cutoff (another integrator's, Pending
ones withheld included) are never imported, the live test order after it is; ``revert`` restores every
price and quantity; a crash injected in the zeroing resumes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from cutover_support import (
    CrashPlan,
    InjectedCrash,
    advance_until,
    deps,
    drain,
    put_live,
    revert_until_done,
)

from helpers import FakeClock, make_tenant
from tradelane.bootstrap import register_handlers
from tradelane.connectors.amazon import connector as amazon
from tradelane.connectors.amazon.sandbox import AmazonSandboxServer, AmazonSandboxState, SandboxSettings
from tradelane.connectors.amazon.sandbox.models import SellerAccount
from tradelane.connectors.base import ConnectorEnv, Shipment
from tradelane.connectors.mirakl.sandbox.clock import SandboxClock
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import orders, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import cutover
from tradelane.services.channels import Channel
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.order_updates import record_shipment
from tradelane.services.outbox import bind_new_products
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

DE = "A1PA6795UKMFR9"
OMS_SECRET = "cutover-amazon-oms-secret-0123456789"


@dataclass
class AmazonWorld:
    engine: Any
    state: AmazonSandboxState
    url: str
    clock: FakeClock
    tenant_id: int
    channel: Channel
    keyring: KeyRing
    registry: JobRegistry
    seller: SellerAccount
    worker: Worker = field(init=False)

    def __post_init__(self) -> None:
        self.worker = Worker(
            self.engine,
            self.registry,
            self.clock,
            WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
            services={"keyring": self.keyring},
            name="cutover-worker",
            sleep=self.advance,
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.state.advance(seconds)

    def enqueue(self, kind: str, flow: str = "orders") -> None:
        with self.engine.begin() as conn:
            enqueue(
                conn,
                JobSpec(self.tenant_id, kind, {}, channel_id=self.channel.id, flow=flow),
                now=self.clock(),
            )

    def listed(self) -> dict[str, tuple[Decimal, int]]:
        result = {}
        for (seller_id, sku), listing in self.state.listings.items():
            if seller_id != self.seller.seller_id:
                continue
            [price] = listing.attributes["purchasable_offer"][0]["our_price"][0]["schedule"]
            [available] = listing.attributes["fulfillment_availability"]
            result[sku] = (Decimal(str(price["value_with_tax"])), int(available["quantity"]))
        return result

    def other_integrator(self) -> amazon.AmazonConnector:
        """The previous integrator's own connection to the same seller account."""
        app = self.state.application
        return amazon.AmazonConnector(
            ConnectorEnv(
                channel_id=None,
                channel_name="previous-integrator",
                settings={
                    "seller_id": self.seller.seller_id,
                    "marketplace_id": DE,
                    "region": "eu",
                    "endpoint": self.url,
                    "token_endpoint": self.url,
                },
                credentials={
                    "client_id": app.client_id,
                    "client_secret": app.client_secret,
                    "refresh_token": self.seller.refresh_token,
                },
                now=self.state.now,
                throttle=lambda _op: None,
                on_exchange=lambda _ex: None,
            )
        )


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[AmazonWorld]:
    state = AmazonSandboxState(
        7,
        rate_limits="generous",
        region="eu",
        products=6,
        settings=SandboxSettings(feed_queue_seconds=5, feed_processing_seconds=5),
        clock=SandboxClock(now),
    )
    seller = next(a for a in state.accounts.values() if DE in a.marketplace_ids)
    tenant, _ = make_tenant(engine, "acme", now)
    keyring = KeyRing([generate_key()])
    registry = JobRegistry()
    register_handlers(registry)
    with AmazonSandboxServer(state) as server:
        with engine.begin() as conn:
            channel = amazon.add_channel(
                conn,
                tenant_id=tenant.id,
                name="amazon-de",
                seller_id=seller.seller_id,
                marketplace_id=DE,
                client_id=state.application.client_id,
                client_secret=state.application.client_secret,
                refresh_token=seller.refresh_token,
                keyring=keyring,
                now=now,
                region="eu",
                endpoint=server.url,
                token_endpoint=server.url,
                options={"feed_poll_seconds": 10},
            )
        w = AmazonWorld(
            engine, state, server.url, FakeClock(now), tenant.id, channel, keyring, registry, seller
        )
        put_live(w)
        items = list(state.catalog.values())
        # the other integrator's listings: three of our SKUs and one tradelane does not know
        for i, item in enumerate(items[:3], start=1):
            state.add_offer(seller.seller_id, f"SKU-{i}", item.asin, Decimal(f"4{i}.90"), 5 + i)
        state.add_offer(seller.seller_id, "THEIRS-9", items[5].asin, Decimal("99.00"), 2)
        with engine.begin() as conn:  # our catalog: SKU-1..SKU-3 as listed, SKU-4 new to the account
            ids = [
                conn.execute(
                    sa.insert(products)
                    .values(
                        tenant_id=tenant.id,
                        sku=f"SKU-{i}",
                        title=f"Product {i}",
                        gtin=item.gtin if i < 4 else None,
                        price=Decimal("20.00") + i,
                        currency="EUR",
                        quantity=10,
                        labels=[],
                        attributes={} if i < 4 else {"asin": item.asin},
                        content_hash=f"SKU-{i}",
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(products.c.id)
                ).scalar_one()
                for i, item in enumerate(items[:4], start=1)
            ]
            bind_new_products(conn, tenant.id, ids, now=now)
        yield w


def _stored(world: AmazonWorld) -> list[str]:
    with world.engine.connect() as conn:
        return list(conn.execute(sa.select(orders.c.marketplace_order_id).order_by(orders.c.id)).scalars())


def test_complete_cutover_then_revert(world: AmazonWorld) -> None:
    channel = world.channel
    seller = world.seller.seller_id
    pending = world.state.create_order(seller, [("SKU-1", 1)]).order_id  # withheld (Pending)
    paid = world.state.create_order(seller, [("THEIRS-9", 1)], paid=True).order_id
    world.advance(5)
    found = world.listed()

    planned = cutover.plan(deps(world), channel)
    assert planned["holiday_mode"] == "none" and "zero stock" in planned["steps"][1]["does"]
    assert planned["offers_listed"] == 4 and planned["outstanding_orders"]["total"] == 2

    waiting = cutover.advance(deps(world), channel, previous_integrator_disabled=True)
    assert (waiting.status, waiting.step) == ("waiting", 2)
    assert "no holiday mode" in waiting.message and "zero stock" in waiting.message
    assert waiting.data["outstanding"] == {
        "total": 2,
        "marketplace": {"to_ship": 1},
        "withheld": 1,
        "local": 0,
        "complete": True,
        "scope": "searchOrders: orders updated in the last 90 days",
    }

    # the previous integrator: the buyer cancels the Pending one, the paid one is shipped
    world.state.cancel(pending)
    other = world.other_integrator()
    other.ship(Shipment(paid, None, carrier_code="DHL", tracking_number="PREV-1"))
    other.close()
    world.advance(5)

    at_live = advance_until(world, channel, lambda c: c.step == 6, step_seconds=10)
    with world.engine.connect() as conn:
        taken = {o.sku: (o.price, o.quantity) for o in cutover.snapshot(conn, at_live.id)}
    assert taken == found
    assert world.listed()["THEIRS-9"][1] == 0  # zero stock: the holiday equivalent
    assert world.listed()["SKU-4"] == (Decimal("24.00"), 10)

    oms_state = OmsSandboxState(OMS_SECRET, clock=world.clock)
    with OmsSandboxServer(oms_state) as oms:
        with world.engine.begin() as conn:
            add_http_system(
                conn,
                tenant_id=world.tenant_id,
                name="oms",
                url=oms.orders_url,
                secret=OMS_SECRET,
                keyring=world.keyring,
                now=world.clock(),
                timeout_seconds=5,
            )
        state = cutover.advance(deps(world), channel)
        assert (state.status, state.step) == ("waiting", 6)
        live = world.state.create_order(seller, [("SKU-2", 1)], paid=True).order_id
        world.advance(5)
        world.enqueue("orders.poll")
        drain(world, 10)
        assert _stored(world) == [live]
        with world.engine.begin() as conn:
            record_shipment(
                conn,
                tenant_id=world.tenant_id,
                order_ref=f"{channel.name}:{live}",
                carrier="DHL",
                tracking_number="TEST-1",
                tracking_url=None,
                lines=None,
                external_id="dummy-1",
                now=world.clock(),
            )
        drain(world, 10)
        world.advance(60)
        world.enqueue("orders.poll")
        drain(world, 10)
        done = cutover.advance(deps(world), channel)
    assert done.status == "done", done.message
    assert _stored(world) == [live]  # never the other integrator's, before the cutoff

    reverted = revert_until_done(world, channel)
    now_listed = world.listed()
    for sku, value in taken.items():
        assert now_listed[sku] == value, sku
    report = reverted.revert_report or {}
    assert report["created_by_sync"] == ["SKU-4"]
    assert report["deleted"] == ["SKU-4"] and "SKU-4" not in now_listed  # deleteListingsItem
    assert report["orders_after_cutoff"] == [live]


def test_a_crash_while_zeroing_resumes(world: AmazonWorld) -> None:
    channel = world.channel
    found = world.listed()
    plan = CrashPlan("submit_offers", 1, after=True)
    factory = plan.factory(amazon.SPEC.factory)
    state = None
    for _ in range(40):
        try:
            state = cutover.advance(deps(world, factory), channel, previous_integrator_disabled=True)
        except InjectedCrash:
            continue
        if state.step == 6:
            break
        drain(world, 10)
        world.advance(10)
    assert plan.fired and state is not None and state.step == 6, state
    with world.engine.connect() as conn:
        taken = {o.sku: (o.price, o.quantity) for o in cutover.snapshot(conn, state.id)}
    assert taken == found
    revert_until_done(world, channel)
    for sku, value in taken.items():
        assert world.listed()[sku] == value
