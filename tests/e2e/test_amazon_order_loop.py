"""The full loop for Amazon, every hop over real HTTP on 127.0.0.1 and one fake clock shared by the hub
and the SP-API sandbox (Amazon's published usage plans enforced):

catalog → ``offers.full`` (JSON_LISTINGS_FEED, processing report) and ``offers.delta``
(``patchListingsItem``) through a 429 storm → the listings are live on Amazon → a buyer orders
(Pending, among more than a page of other orders) → ``orders.poll`` withholds it, through a 429 storm
and a page served twice → payment authorised → the next poll imports it once → delivered to the HTTP
OMS sandbox → the OMS ships (REST API) → ``fulfillments.ship`` (``confirmShipment``, through a 429) →
Amazon shows the order SHIPPED with the carrier and tracking number.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from order_loop_support import serve_app

from helpers import FakeClock, make_tenant, put_live
from tradelane.bootstrap import register_handlers
from tradelane.connectors.amazon import connector as amazon
from tradelane.connectors.amazon.sandbox import (
    AmazonSandboxServer,
    AmazonSandboxState,
    FulfillmentStatus,
    SandboxSettings,
)
from tradelane.connectors.amazon.sandbox.models import SellerAccount
from tradelane.connectors.mirakl.sandbox.clock import SandboxClock
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.merchant.sandbox.callback import send_update
from tradelane.merchant.sandbox.state import CallbackConfig
from tradelane.persistence.tables import jobs, offer_bindings, orders, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import Channel
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.outbox import bind_new_products, mark_offers_dirty
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

OMS_SECRET = "amazon-loop-oms-signing-secret-0123"
DE = "A1PA6795UKMFR9"
#: Rounds of the in-process worker per ``run`` (each moves the shared clock by ``step``).
MAX_ROUNDS = 200


@dataclass
class AmazonWorld:
    """A tenant with an Amazon channel on the SP-API sandbox; the hub's worker sleeps by moving the
    shared clock (so holds, feed processing and budgets play out in simulated time)."""

    engine: Any
    state: AmazonSandboxState
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
            name="amazon-loop-worker",
            sleep=self.advance,
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.state.advance(seconds)

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(jobs)
                    .where(jobs.c.state.in_(["queued", "running"]))
                ).scalar_one()
            )

    def run(self, step: float = 5.0) -> None:
        """Run ready jobs, moving time by ``step`` until nothing is queued (bounded)."""
        for _ in range(MAX_ROUNDS):
            self.worker.run(burst=True)
            if not self.pending():
                return
            self.advance(step)
        raise AssertionError(f"jobs still pending after {MAX_ROUNDS} rounds: {self.job_states()}")

    def enqueue(self, kind: str, flow: str) -> None:
        with self.engine.begin() as conn:
            enqueue(
                conn,
                JobSpec(self.tenant_id, kind, {}, channel_id=self.channel.id, flow=flow),
                now=self.clock(),
            )

    def add_products(self, rows: list[dict[str, Any]]) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            ids = [
                conn.execute(
                    sa.insert(products)
                    .values(
                        tenant_id=self.tenant_id,
                        labels=[],
                        content_hash=row["sku"],
                        created_at=now,
                        updated_at=now,
                        **row,
                    )
                    .returning(products.c.id)
                ).scalar_one()
                for row in rows
            ]
            bind_new_products(conn, self.tenant_id, ids, now=now)

    def change(self, sku: str, **values: Any) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            pid = conn.execute(
                sa.update(products)
                .where(products.c.tenant_id == self.tenant_id, products.c.sku == sku)
                .values(updated_at=now, content_hash=f"{sku}-{now.isoformat()}", **values)
                .returning(products.c.id)
            ).scalar_one()
            mark_offers_dirty(conn, self.tenant_id, [pid], now=now)

    def job_states(self) -> dict[str, list[str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.kind, jobs.c.state)
                .where(jobs.c.tenant_id == self.tenant_id)
                .order_by(jobs.c.id)
            ).all()
        states: dict[str, list[str]] = {}
        for row in rows:
            states.setdefault(row.kind, []).append(row.state)
        return states

    def statuses(self, op: str) -> list[int]:
        return [r.status for r in self.state.calls(op)]


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[AmazonWorld]:
    state = AmazonSandboxState(
        7,
        rate_limits="published",
        region="eu",
        products=6,
        settings=SandboxSettings(feed_queue_seconds=20, feed_processing_seconds=40),
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
                options={"feed_poll_seconds": 30},
            )
            put_live(conn, channel.id)
        yield AmazonWorld(engine, state, FakeClock(now), tenant.id, channel, keyring, registry, seller)


def _catalog(world: AmazonWorld) -> list[dict[str, Any]]:
    """Four catalog products on Amazon's catalog: three matched by GTIN, one by ``attr:asin``."""
    items = list(world.state.catalog.values())
    rows: list[dict[str, Any]] = [
        {
            "sku": f"SKU-{i}",
            "title": f"Product {i}",
            "gtin": item.gtin,
            "price": Decimal("20.00") + i,
            "currency": "EUR",
            "quantity": 10,
            "attributes": {},
        }
        for i, item in enumerate(items[:3], start=1)
    ]
    rows.append(
        {
            "sku": "SKU-4",
            "title": "Product 4",
            "gtin": None,
            "price": Decimal("24.00"),
            "currency": "EUR",
            "quantity": 7,
            "attributes": {"asin": items[3].asin},
        }
    )
    return rows


def _listed(world: AmazonWorld) -> dict[str, tuple[Decimal, int]]:
    """The seller's live offers on Amazon.de: SKU → (our price, quantity)."""
    result = {}
    for (seller_id, sku), listing in world.state.listings.items():
        if seller_id != world.seller.seller_id:
            continue
        [price] = listing.attributes["purchasable_offer"][0]["our_price"][0]["schedule"]
        [available] = listing.attributes["fulfillment_availability"]
        result[sku] = (Decimal(str(price["value_with_tax"])), int(available["quantity"]))
    return result


def test_amazon_listing_order_oms_and_shipment_back(world: AmazonWorld, db_url: str) -> None:
    # -- listings: the full sync goes as one feed; its processing report publishes every offer.
    world.add_products(_catalog(world))
    world.enqueue("offers.full", flow="offers")
    world.run(step=10)
    assert _listed(world) == {
        "SKU-1": (Decimal("21.00"), 10),
        "SKU-2": (Decimal("22.00"), 10),
        "SKU-3": (Decimal("23.00"), 10),
        "SKU-4": (Decimal("24.00"), 7),
    }
    assert world.statuses("createFeed") == [202]
    with world.engine.connect() as conn:
        bound = conn.execute(sa.select(offer_bindings.c.status)).scalars().all()
    assert sorted(bound) == ["published"] * 4

    # -- a price delta through a 429 storm: patchListingsItem, held and retried, lands once.
    world.state.faults.inject("patchListingsItem", "throttle", count=3, retry_after=2)
    world.change("SKU-2", price=Decimal("19.50"))
    world.enqueue("offers.delta", flow="offers")
    world.run(step=1)
    assert _listed(world)["SKU-2"] == (Decimal("19.50"), 10)
    patches = world.state.calls("patchListingsItem")
    assert [r.status for r in patches] == [429, 429, 429, 200]
    assert all((b.at - a.at).total_seconds() >= 2 for a, b in itertools.pairwise(patches))

    oms_state = OmsSandboxState(OMS_SECRET, clock=world.clock)
    with OmsSandboxServer(oms_state) as oms, serve_app(world, db_url) as app:  # type: ignore[arg-type]
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
        oms_state.callback = CallbackConfig(app.url, api_token=app.token, merchant_name="oms")

        # -- orders: ours is Pending among more than a page (100) of other buyers' Pending orders.
        seller = world.seller.seller_id
        noise = [world.state.create_order(seller, [("SKU-1", 1)]).order_id for _ in range(100)]
        ours = world.state.create_order(seller, [("SKU-2", 2), ("SKU-4", 1)], buyer_name="Erika Muster")
        world.advance(5)
        world.state.faults.inject("searchOrders", "throttle", count=2, retry_after=30)
        world.state.faults.inject("searchOrders", "duplicate_page")
        world.enqueue("orders.poll", flow="orders")
        world.run(step=10)
        assert [r.fault for r in world.state.calls("searchOrders")].count("duplicate_page") == 1
        assert world.statuses("searchOrders").count(429) == 2
        searches = world.state.calls("searchOrders")
        for i, call in enumerate(searches[:-1]):  # Retry-After honoured: no call within 30 s of a 429
            if call.status == 429:
                assert (searches[i + 1].at - call.at).total_seconds() >= 30
        with world.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one() == 0

        world.state.pay(ours.order_id)
        for order_id in noise[:3]:
            world.state.cancel(order_id)
        world.advance(60)
        world.enqueue("orders.poll", flow="orders")
        world.run(step=10)
        world.advance(200)
        world.enqueue("orders.poll", flow="orders")  # overlaps the previous read
        world.run(step=10)

        with world.engine.connect() as conn:
            stored = conn.execute(sa.select(orders.c.marketplace_order_id, orders.c.merchant_status)).all()
        # ours once, delivered; the three cancelled before payment are kept (never delivered); the
        # 97 still Pending are withheld.
        assert dict(stored) == {ours.order_id: "delivered", **dict.fromkeys(noise[:3], "not_ready")}
        [received] = oms_state.orders()
        assert received.ref == f"amazon-de:{ours.order_id}"
        doc = received.document
        assert sorted((ln["sku"], ln["quantity"], Decimal(ln["unit_price"])) for ln in doc["lines"]) == [
            ("SKU-2", 2, Decimal("19.50")),
            ("SKU-4", 1, Decimal("24.00")),
        ]
        assert doc["currency"] == "EUR" and doc["shipping_address"]["city"]

        # -- the OMS ships; confirmShipment goes out through a 429.
        world.state.faults.inject("confirmShipment", "throttle", count=1, retry_after=5)
        answer = send_update(
            oms_state,
            received,
            "shipment",
            {"carrier": "DHL Express", "tracking_number": "JD014600006281230704"},
            via="api",
        )
        assert answer.status_code == 201, answer.text
        world.run(step=5)

        shipped = world.state.order(ours.order_id)
        assert shipped.status is FulfillmentStatus.SHIPPED
        [package] = shipped.packages
        assert (package.carrier_code, package.tracking_number) == ("DHL", "JD014600006281230704")
        assert sorted(qty for _item, qty in package.items) == [1, 2]
        assert world.statuses("confirmShipment") == [429, 204]

        detail = app.order(received.ref)
        [update] = detail["updates"]
        assert (update["kind"], update["status"]) == ("shipment", "sent")
        assert app.dead_letters() == []
    # The hub's budgets kept every call within Amazon's usage plans: the only 429s are the injected ones.
    assert [r.op_id for r in world.state.requests if r.status == 429 and r.fault != "throttle"] == []
    states = world.job_states()
    assert {s for kind in states.values() for s in kind} == {"succeeded"}, states
    assert states["fulfillments.ship"] == ["succeeded"] and states["orders.deliver"] == ["succeeded"]
