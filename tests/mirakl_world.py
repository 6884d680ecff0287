"""Test world: a tradelane tenant with a Mirakl channel wired to a live sandbox on 127.0.0.1.

Both clocks (the engine's and the sandbox's) start at the same instant and move together through
``world.advance``, so deadlines, payment delays and rate limits are deterministic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from helpers import FakeClock, make_tenant, put_live
from tradelane.bootstrap import register_handlers
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.connectors.mirakl.sandbox import Product as SandboxProduct
from tradelane.connectors.mirakl.sandbox import SandboxServer, SandboxState, Shop
from tradelane.domain.catalog import Product
from tradelane.persistence.tables import jobs, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import Channel
from tradelane.services.outbox import bind_new_products, mark_offers_dirty
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

SHOP_ID = 2000
API_KEY = "sandbox-key-for-tests"
GENEROUS = {
    op: [1000, 1]
    for op in (
        "OR11",
        "OR21",
        "OR23",
        "OR24",
        "OR28",
        "OR29",
        "OF01",
        "OF02",
        "OF03",
        "OF24",
        "SH21",
        "ST01",
        "RT11",
        "M01",
        "A01",
        "OR74",
    )
}


def ean(n: int) -> str:
    body = f"400{n:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


@dataclass
class World:
    engine: Any
    state: SandboxState
    url: str
    clock: FakeClock
    tenant_id: int
    channel: Channel
    keyring: KeyRing
    registry: JobRegistry
    worker: Worker = field(init=False)

    def __post_init__(self) -> None:
        self.worker = Worker(
            self.engine,
            self.registry,
            self.clock,
            WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
            services={"keyring": self.keyring},
            name="contract-worker",
            sleep=self.advance,
        )

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.state.advance(seconds)

    def run(self, max_rounds: int = 50, step: float = 0.0) -> None:
        """Run ready jobs; with ``step``, keep moving time until nothing is left queued."""
        for _ in range(max_rounds):
            self.worker.run(burst=True)
            if not step or not self.pending():
                return
            self.advance(step)

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(jobs)
                    .where(jobs.c.state.in_(["queued", "running"]))
                ).scalar_one()
            )

    def enqueue(self, kind: str, payload: dict[str, Any] | None = None, flow: str = "orders") -> int:
        with self.engine.begin() as conn:
            return enqueue(
                conn,
                JobSpec(self.tenant_id, kind, payload or {}, channel_id=self.channel.id, flow=flow),
                now=self.clock(),
            ).job_id

    def add_products(self, items: list[Product]) -> list[int]:
        now = self.clock()
        with self.engine.begin() as conn:
            ids = []
            for p in items:
                ids.append(
                    conn.execute(
                        sa.insert(products)
                        .values(
                            tenant_id=self.tenant_id,
                            sku=p.sku,
                            parent_sku=p.parent_sku,
                            title=p.title,
                            gtin=p.gtin,
                            price=p.price,
                            currency=p.currency,
                            quantity=p.quantity,
                            labels=list(p.labels),
                            attributes=dict(p.attributes),
                            content_hash=p.content_hash(),
                            created_at=now,
                            updated_at=now,
                        )
                        .returning(products.c.id)
                    ).scalar_one()
                )
            bind_new_products(conn, self.tenant_id, ids, now=now)
        return ids

    def change(self, sku: str, **values: Any) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            pid = conn.execute(
                sa.update(products)
                .where(products.c.tenant_id == self.tenant_id, products.c.sku == sku)
                .values(updated_at=now, **values)
                .returning(products.c.id)
            ).scalar_one()
            mark_offers_dirty(conn, self.tenant_id, [pid], now=now)

    def order(self, lines: list[dict[str, Any]], **kwargs: Any) -> str:
        return self.state.create_order(SHOP_ID, lines, **kwargs)


def catalog(count: int, *, prefix: str = "SKU", quantity: int = 10) -> list[Product]:
    return [
        Product(
            sku=f"{prefix}-{i}",
            title=f"Product {i}",
            gtin=ean(i),
            price=Decimal("10.00") + i,
            currency="EUR",
            quantity=quantity,
        )
        for i in range(count)
    ]


def sandbox_catalog(count: int) -> list[SandboxProduct]:
    return [
        SandboxProduct(
            sku=f"OP-{i}",
            title=f"Operator product {i}",
            category_code="home",
            category_label="Home",
            references=(("EAN", ean(i)),),
        )
        for i in range(count)
    ]


def build_world(
    engine: Any,
    now: datetime,
    *,
    sandbox_limits: dict[str, Any] | None,
    channel_limits: dict[str, list[float]] | None = None,
    options: dict[str, Any] | None = None,
    products_count: int = 12,
    multi_shipment: bool = True,
) -> Iterator[World]:
    state = SandboxState(
        7,
        shops=[Shop(SHOP_ID, "Contract Shop", API_KEY, multi_shipment=multi_shipment)],
        products=sandbox_catalog(products_count),
        rate_limits=sandbox_limits,
        start=now,
    )
    clock = FakeClock(now)
    tenant, _ = make_tenant(engine, "acme", now)
    keyring = KeyRing([generate_key()])
    registry = JobRegistry()
    register_handlers(registry)
    with SandboxServer(state) as server:
        settings = {
            "rate_limits": GENEROUS if channel_limits is None else channel_limits,
            "multi_shipment": multi_shipment,
            **(options or {}),
        }
        with engine.begin() as conn:
            channel = add_channel(
                conn,
                tenant_id=tenant.id,
                name="marketplace-x",
                hostname=server.url,
                shop_id=str(SHOP_ID),
                api_key=API_KEY,
                keyring=keyring,
                now=now,
                options=settings,
            )
            put_live(conn, channel.id)
        yield World(engine, state, server.url, clock, tenant.id, channel, keyring, registry)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
