"""Exactly once with a slow merchant system: Mirakl sandbox orders, an HTTP OMS sandbox answering
each POST after ~1 s, three workers on threads and re-polls that keep seeing the same orders while
their deliveries run. Every order must be POSTed exactly once (counted per order, whatever the
``Idempotency-Key`` says), and no ``external_ref`` overwritten."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from order_loop_support import sync_offers

from mirakl_world import World, build_world
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import jobs, order_deliveries, orders
from tradelane.services.merchant_systems import add_http_system
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.worker import Worker, WorkerConfig

OMS_SECRET = "slow-oms-signing-secret-0123456789"
ORDERS = 12
WORKERS = 3
OMS_LATENCY = 1.0
ORDER_EVERY = 0.5
POLL_EVERY = 0.25
#: Wall-clock bound of the concurrent phase.
DEADLINE_SECONDS = 45.0


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    yield from build_world(engine, now, sandbox_limits={})


def _enqueue_poll(world: World) -> None:
    # Coalesced like the scheduler's polls: one pending at a time. Orders trickle in, so a worker is
    # often free to poll while another waits on the OMS (the race).
    spec = JobSpec(
        world.tenant_id,
        "orders.poll",
        {},
        channel_id=world.channel.id,
        flow="orders",
        dedupe_key=f"orders.poll:{world.channel.id}",
    )
    with world.engine.begin() as conn:
        enqueue(conn, spec, now=world.clock())


def _statuses(world: World) -> Counter[str]:
    with world.engine.connect() as conn:
        rows = conn.execute(sa.select(orders.c.merchant_status).where(orders.c.tenant_id == world.tenant_id))
        return Counter(r.merchant_status for r in rows)


def _deliveries_in_flight(world: World) -> int:
    in_flight = jobs.c.state.in_(["queued", "running"])
    with world.engine.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(jobs).where(jobs.c.kind == "orders.deliver", in_flight)
        return int(conn.execute(stmt).scalar_one())


def test_a_slow_oms_with_three_workers_and_re_polls_gets_every_order_exactly_once(world: World) -> None:
    skus = sync_offers(world, 3)
    oms_state = OmsSandboxState(OMS_SECRET, clock=world.clock, latency_seconds=OMS_LATENCY)
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
                timeout_seconds=10,
            )
        mirakl_ids: list[str] = []

        workers = [
            Worker(
                world.engine,
                world.registry,
                world.clock,
                WorkerConfig(schedule=False, lease_seconds=600, batch_size=1, backoff_base=1, backoff_cap=5),
                services={"keyring": world.keyring},
                name=f"slow-oms-worker-{n}",
            )
            for n in range(WORKERS)
        ]
        stop = threading.Event()
        errors: list[BaseException] = []

        def loop(worker: Worker) -> None:
            try:
                while not stop.is_set():
                    if worker.run_once() == 0:
                        time.sleep(0.02)
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        def tick() -> None:  # both fake clocks follow the wall clock (rate limits, payment staging)
            while not stop.is_set():
                time.sleep(0.05)
                world.advance(0.05)

        threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
        threads.append(threading.Thread(target=tick, daemon=True))
        for t in threads:
            t.start()
        polls = 0
        deadline = time.monotonic() + DEADLINE_SECONDS
        try:
            # A customer orders every ORDER_EVERY seconds (paid at once); tradelane polls every
            # POLL_EVERY seconds, so each order is seen again while its delivery waits on the OMS.
            while time.monotonic() < deadline and not errors:
                if len(mirakl_ids) < ORDERS:
                    if polls % round(ORDER_EVERY / POLL_EVERY) == 0:
                        line = {"offer_sku": skus[len(mirakl_ids) % 3], "quantity": 1, "unit_price": "11.00"}
                        mirakl_ids.append(
                            world.order([line], payment_delay=timedelta(0), staging_delay=timedelta(0))
                        )
                elif _statuses(world)["delivered"] == ORDERS and not _deliveries_in_flight(world):
                    break
                _enqueue_poll(world)
                polls += 1
                time.sleep(POLL_EVERY)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors, errors
        assert len(mirakl_ids) == ORDERS

        received = oms_state.orders()
        per_order = {o.document["marketplace_order_id"]: o.deliveries for o in received}
        assert sorted(per_order) == sorted(mirakl_ids), "every order reached the OMS"
        assert per_order == dict.fromkeys(mirakl_ids, 1), f"orders POSTed more than once: {per_order}"
        posts = Counter(r["idempotency_key"] for r in oms_state.requests())
        assert set(posts.values()) == {1}, posts
        assert _statuses(world) == Counter({"delivered": ORDERS})
        with world.engine.connect() as conn:
            refs = conn.execute(sa.select(order_deliveries.c.external_ref, order_deliveries.c.status)).all()
            deliver_states = Counter(
                conn.execute(sa.select(jobs.c.state).where(jobs.c.kind == "orders.deliver")).scalars()
            )
        assert sorted(r.external_ref for r in refs) == sorted(o.oms_id for o in received)
        assert {r.status for r in refs} == {"delivered"}
        assert set(deliver_states) == {"succeeded"}, deliver_states
