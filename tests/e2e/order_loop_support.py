"""Support of the full order-loop tests (:mod:`test_order_loop`): the Mirakl test world
(:func:`mirakl_world.build_world`) plus tradelane's own app served on a real socket, all sharing one
engine, one key ring, one job registry and one fake clock.

The world's worker decrypts channel credentials and merchant-system secrets with ``world.keyring``; the
app verifies merchant signatures with ``container.keyring``. :func:`serve_app` therefore builds the
app's container *from the world* (same key ring, registry and clock) instead of from settings, so a
secret written by either side is readable by the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from mirakl_world import World, catalog
from tradelane.background_server import BackgroundServer
from tradelane.bootstrap import Container
from tradelane.config import Settings
from tradelane.persistence.tables import jobs
from tradelane.services.orders import list_orders
from tradelane.services.tenants import issue_token
from tradelane.web.app import create_app

#: Seconds the Mirakl sandbox keeps an accepted order in WAITING_DEBIT_PAYMENT before SHIPPING.
PAYMENT_DELAY = 120
#: Bound on each ``world.run`` (rounds of the in-process worker).
MAX_ROUNDS = 60


@dataclass
class App:
    """Tradelane's app on ``url`` (127.0.0.1), an API ``token`` of the world's tenant and a client."""

    url: str
    token: str
    http: httpx.Client

    def order(self, ref: str) -> dict[str, Any]:
        """``GET /api/v1/orders/{ref}`` (raises on a non-2xx answer)."""
        response = self.http.get(f"/api/v1/orders/{ref}", params={"payloads": "false"})
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def dead_letters(self) -> list[dict[str, Any]]:
        """``GET /api/v1/jobs/dead``: the tenant's dead-lettered jobs (first page)."""
        response = self.http.get("/api/v1/jobs/dead")
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@contextmanager
def serve_app(world: World, db_url: str) -> Iterator[App]:
    """Serve ``create_app`` over the world's engine, key ring, registry and clock until exit."""
    container = Container(
        settings=Settings(database_url=db_url),
        engine=world.engine,
        keyring=world.keyring,
        registry=world.registry,
        clock=world.clock,
        extras={"keyring": world.keyring},
    )
    with world.engine.begin() as conn:
        token = issue_token(conn, world.tenant_id, now=world.clock(), label="order-loop-e2e")
    with BackgroundServer(create_app(container), name="order-loop-app") as server:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as http:
            yield App(server.url, token, http)


def sync_offers(world: World, count: int) -> list[str]:
    """Put ``count`` catalog products into tradelane and publish them (``offers.full``); their SKUs."""
    products = catalog(count)
    world.add_products(products)
    world.enqueue("offers.full", flow="offers")
    world.run(max_rounds=MAX_ROUNDS, step=20)
    return [p.sku for p in products]


def order_through_payment(world: World, lines: list[dict[str, Any]]) -> str:
    """Place an order on the Mirakl sandbox, poll (tradelane accepts it), let the payment go through
    and poll again (tradelane imports it and hands it to the merchant side). The Mirakl order id."""
    mirakl_id = world.order(lines)
    world.enqueue("orders.poll")
    world.run(max_rounds=MAX_ROUNDS)
    world.advance(PAYMENT_DELAY)
    world.enqueue("orders.poll")
    world.run(max_rounds=MAX_ROUNDS)
    return mirakl_id


def tradelane_order(world: World, mirakl_id: str) -> dict[str, Any]:
    """Tradelane's read model of the imported order (exactly one must match)."""
    with world.engine.connect() as conn:
        found = [o for o in list_orders(conn, world.tenant_id) if o["marketplace_order_id"] == mirakl_id]
    [order] = found
    return order


def job_states(world: World) -> dict[str, list[str]]:
    """Every job of the world's tenant: kind → states, in creation order."""
    with world.engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.kind, jobs.c.state)
            .where(jobs.c.tenant_id == world.tenant_id)
            .order_by(jobs.c.id)
        ).all()
    states: dict[str, list[str]] = {}
    for row in rows:
        states.setdefault(row.kind, []).append(row.state)
    return states


def shipment_calls(world: World) -> list[str]:
    """The Mirakl operations of the shipment (OR23 tracking, OR24 ship) in the order they arrived."""
    return [r.op_id for r in world.state.requests if r.op_id in {"OR23", "OR24"}]
