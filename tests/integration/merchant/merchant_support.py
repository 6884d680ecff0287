"""Builders shared by the merchant-side tests: a tenant with a channel, marketplace orders ingested
through the real service, a worker run in-process, and database reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from helpers import put_live
from tradelane.bootstrap import Container
from tradelane.connectors.mirakl.mapping import MiraklOrderState, neutral_state
from tradelane.domain.orders import Address, MarketplaceOrder, MarketplaceOrderLine
from tradelane.merchant.base import MerchantSystem
from tradelane.persistence.db import read_only
from tradelane.persistence.tables import (
    jobs,
    order_deliveries,
    order_history,
    order_quarantine,
    orders,
    products,
)
from tradelane.services.channels import create_channel
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.orders import ingest_order
from tradelane.services.tenants import create_tenant
from tradelane.sync.worker import Worker, WorkerConfig, WorkerStats

SECRET = "sandbox-signing-secret-0123456789"
FULL_ADDRESS = Address(
    first_name="Ada",
    last_name="Lovelace",
    street1="1 Rue de Rivoli",
    zip_code="75001",
    city="Paris",
    country="FRA",
)


@dataclass
class Shop:
    tenant_id: int
    tenant: str
    token: str
    channel_id: int
    channel: str


def marketplace_order(
    order_id: str,
    lines: list[tuple[str, int, str]],
    *,
    now: datetime,
    state: MiraklOrderState = MiraklOrderState.SHIPPING,
    address: Address | None = FULL_ADDRESS,
) -> MarketplaceOrder:
    """An order version as a connector would map it: ``lines`` are (sku, quantity, unit price)."""
    return MarketplaceOrder(
        marketplace_order_id=order_id,
        state=neutral_state(state),
        raw_state=state.value,
        currency="EUR",
        created_at=now - timedelta(hours=1),
        updated_at=now,
        lines=tuple(
            MarketplaceOrderLine(
                line_id=f"{order_id}-{i + 1}",
                offer_sku=f"offer-{sku}",
                quantity=qty,
                unit_price=Decimal(price),
                currency="EUR",
                state=state.value,
                title=f"Product {sku}",
                product_sku=sku,
            )
            for i, (sku, qty, price) in enumerate(lines)
        ),
        shipping_address=address,
        billing_address=address,
        customer_message="leave at the door",
        attributes={"source": "test"},
        raw={"order_id": order_id, "lines": [list(line) for line in lines]},
    )


def ingest(container: Container, shop: Shop, order: MarketplaceOrder, now: datetime, **kwargs: Any) -> int:
    with container.engine.begin() as conn:
        return ingest_order(
            conn, tenant_id=shop.tenant_id, channel_id=shop.channel_id, order=order, now=now, **kwargs
        ).order_id


def add_product(engine: Engine, tenant_id: int, sku: str, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(products).values(
                tenant_id=tenant_id,
                sku=sku,
                title=f"Product {sku}",
                price=Decimal("1.00"),
                currency="EUR",
                quantity=5,
                labels=[],
                attributes={},
                content_hash="0" * 64,
                created_at=now,
                updated_at=now,
            )
        )


def run_worker(container: Container, clock: Any) -> WorkerStats:
    """Run every ready job in-process until nothing is ready (bounded by ``max_jobs``)."""
    worker = Worker(
        container.engine,
        container.registry,
        clock,
        WorkerConfig(schedule=False, lease_seconds=30),
        services=container.extras,
    )
    return worker.run(burst=True, max_jobs=50)


def read(engine: Engine, stmt: Any) -> list[Any]:
    with read_only(engine) as conn:
        return list(conn.execute(stmt).all())


def order_row(engine: Engine, order_id: int) -> Any:
    [row] = read(engine, sa.select(orders).where(orders.c.id == order_id))
    return row


def quarantine_row(engine: Engine, order_id: int) -> Any | None:
    rows = read(engine, sa.select(order_quarantine).where(order_quarantine.c.order_id == order_id))
    return rows[0] if rows else None


def delivery_rows(engine: Engine, order_id: int) -> list[Any]:
    return read(engine, sa.select(order_deliveries).where(order_deliveries.c.order_id == order_id))


def history(engine: Engine, order_id: int) -> list[tuple[str, str | None]]:
    rows = read(
        engine,
        sa.select(order_history.c.state, order_history.c.note)
        .where(order_history.c.order_id == order_id)
        .order_by(order_history.c.id),
    )
    return [(r.state, r.note) for r in rows]


def deliver_jobs(engine: Engine) -> list[Any]:
    return read(engine, sa.select(jobs).where(jobs.c.kind == "orders.deliver").order_by(jobs.c.id))


def make_shop(container: Container, tenant: str, channel: str, now: datetime) -> Shop:
    with container.engine.begin() as conn:
        t, token = create_tenant(conn, tenant, now=now)
        ch = create_channel(
            conn,
            tenant_id=t.id,
            name=channel,
            connector="mirakl",
            settings={},
            credentials={"api_key": "k"},
            keyring=container.keyring,
            now=now,
        )
        put_live(conn, ch.id)
    return Shop(t.id, t.name, token, ch.id, ch.name)


def register_oms(
    container: Container, shop: Shop, url: str, name: str = "oms", secret: str = SECRET
) -> MerchantSystem:
    with container.engine.begin() as conn:
        return add_http_system(
            conn,
            tenant_id=shop.tenant_id,
            name=name,
            url=url,
            secret=secret,
            keyring=container.keyring,
            now=container.now(),
            timeout_seconds=5,
        )
