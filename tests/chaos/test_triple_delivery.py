"""Every inbound order delivered three times, two workers racing: exactly one order in the merchant
system, every line present.

Marketplace order *webhooks* are not modelled (Mirakl has none for orders; tradelane's generic inbound
webhook only stores events, nothing turns them into orders), so the three deliveries of each order are
the three ways an order reaches tradelane today, all at once: a replay of a dead-lettered poll (the
"replay"), a fresh poll (the "poll") and a second, uncoalesced poll of the same window (standing in for
the webhook). Two in-process workers race on them; the merchant system is the HTTP OMS sandbox on
127.0.0.1, which counts every POST.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from chaos_support import first_error, oms_view, racing_workers, scale, wait_for

from mirakl_world import World, build_world, catalog
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import jobs, order_lines, orders
from tradelane.services.merchant_systems import add_http_system
from tradelane.sync import jobs as jobstore
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.worker import Worker, WorkerConfig

OMS_SECRET = "chaos-oms-signing-secret-0123456789"
ORDERS = scale(12, 150)
SKUS = 6
DEADLINE_SECONDS = scale(60, 600)


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={}, products_count=SKUS)


def _poll_spec(world: World, **extra: Any) -> JobSpec:
    # No dedupe key: the polls must not coalesce, each one delivers every order again.
    return JobSpec(world.tenant_id, "orders.poll", {}, channel_id=world.channel.id, flow="orders", **extra)


def _in_flight(world: World, kind: str) -> int:
    with world.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(jobs)
                .where(jobs.c.kind == kind, jobs.c.state.in_(["queued", "running"]))
            ).scalar_one()
        )


def _delivered(world: World) -> int:
    with world.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(orders)
                .where(orders.c.tenant_id == world.tenant_id, orders.c.merchant_status == "delivered")
            ).scalar_one()
        )


def test_an_order_polled_replayed_and_re_polled_by_racing_workers_reaches_the_oms_once(world: World) -> None:
    products = catalog(SKUS, quantity=100_000)
    world.add_products(products)
    world.enqueue("offers.full", flow="offers")
    world.run(max_rounds=60, step=20)
    skus = [p.sku for p in products]

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
            )
        expected: dict[str, list[tuple[str, int]]] = {}
        for i in range(ORDERS):
            lines = [
                {"offer_sku": skus[(i + k) % SKUS], "quantity": 1 + (i + k) % 3, "unit_price": f"{11 + k}.00"}
                for k in range(3)
            ]
            mid = world.order(lines, payment_delay=timedelta(0), staging_delay=timedelta(0))
            expected[mid] = sorted((str(line["offer_sku"]), int(line["quantity"])) for line in lines)

        # The future "replay": a poll that dies (one attempt, the marketplace answers 500).
        world.state.inject("OR11", "server_error")
        with world.engine.begin() as conn:
            dead_poll = enqueue(conn, _poll_spec(world, max_attempts=1), now=world.clock()).job_id
        world.worker.run(burst=True)
        with world.engine.connect() as conn:
            assert conn.execute(sa.select(jobs.c.state).where(jobs.c.id == dead_poll)).scalar_one() == "dead"

        # Acceptance: one poll sees the orders waiting, tradelane accepts them (OR21); they then move
        # to SHIPPING on the marketplace, ready to be handed to the merchant system.
        world.enqueue("orders.poll")
        world.run(max_rounds=60)
        assert {world.state.order(mid).state.value for mid in expected} == {"SHIPPING"}
        assert _delivered(world) == 0, "nothing may reach the OMS before the race"

        racers = [
            Worker(
                world.engine,
                world.registry,
                world.clock,
                WorkerConfig(schedule=False, lease_seconds=600, batch_size=2, backoff_base=1, backoff_cap=5),
                services={"keyring": world.keyring},
                name=f"chaos-racer-{n}",
            )
            for n in range(2)
        ]
        with racing_workers(racers, tick=world.advance) as errors:
            with world.engine.begin() as conn:
                assert jobstore.replay(conn, world.tenant_id, [dead_poll], now=world.clock()) == [dead_poll]
                enqueue(conn, _poll_spec(world), now=world.clock())
            with world.engine.begin() as conn:
                enqueue(conn, _poll_spec(world), now=world.clock())
            wait_for(
                lambda: (
                    bool(errors)
                    or (
                        _delivered(world) == ORDERS
                        and not _in_flight(world, "orders.poll")
                        and not _in_flight(world, "orders.deliver")
                    )
                ),
                DEADLINE_SECONDS,
                "every order delivered and every poll done",
            )
        assert not errors, first_error(errors)

    view = oms_view(oms_state)
    assert view.orders == dict.fromkeys(expected, 1), "exactly one OMS order per marketplace order"
    assert view.posts == dict.fromkeys(expected, 1), f"an order was POSTed twice: {view.posts}"
    assert view.lines == expected, "every line present, with its quantity"
    with world.engine.connect() as conn:
        stored = dict(
            conn.execute(
                sa.select(orders.c.marketplace_order_id, sa.func.count(order_lines.c.id))
                .join(order_lines, order_lines.c.order_id == orders.c.id)
                .where(orders.c.tenant_id == world.tenant_id)
                .group_by(orders.c.marketplace_order_id)
            ).all()
        )
        polls = conn.execute(
            sa.select(jobs.c.id, jobs.c.state, jobs.c.result).where(jobs.c.kind == "orders.poll")
        ).all()
    assert stored == dict.fromkeys(expected, 3)
    # The replayed poll and the two racing ones all succeeded, each one seeing every order.
    racing = [p for p in polls if p.id == dead_poll or p.id > dead_poll + 1]
    assert len(racing) >= 3, polls
    assert {p.state for p in polls} == {"succeeded"}, polls
    assert [p.result["orders"] for p in racing[:3]] == [ORDERS] * 3, [p.result for p in racing]
