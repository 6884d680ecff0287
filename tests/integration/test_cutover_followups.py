"""Cutover follow-ups against the Mirakl sandbox (one fake clock for the hub and the sandbox):

* local test orders (``orders create-test``) count neither as outstanding (step 2) nor as step 6's
  live test order;
* the emails of a complete cutover reach a local SMTP server (aiosmtpd), one per completed step and per
  problem (a refused offer at step 5), in order, naming the channel, the step and what happened;
* the cutover's own flow changes are audited (``flow.pause`` / ``flow.resume`` with ``cutover step N``);
* two runs at the same time: the second (another ``advance``, the engine's ``cutover.advance`` job) does
  nothing while the first works on a step, says so, and the job looks again later.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from cutover_support import advance_until, deps, drain, put_live

from mirakl_world import SHOP_ID, World, build_world, catalog
from notifications_support import SmtpServer, free_port
from tradelane.connectors.base import ConnectorEnv, MarketplaceConnector
from tradelane.connectors.mirakl.connector import SPEC as MIRAKL
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import jobs, notification_settings, orders, products
from tradelane.services import audit, cutover, cutover_jobs
from tradelane.services import notifications as notes
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.notification_transport import SmtpConfig
from tradelane.services.order_updates import record_shipment
from tradelane.services.test_orders import create_test_order
from tradelane.sync.worker import Worker, WorkerConfig

OMS_SECRET = "cutover-oms-signing-secret-0123456789"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def world(engine: Any, now: datetime, smtp: SmtpServer) -> Iterator[World]:
    """A live Mirakl shop with another integrator's offers, our 4-SKU catalog, an email recipient, and
    a worker that mails through the local SMTP server."""
    for w in build_world(engine, now, sandbox_limits={}):
        put_live(w)
        w.state.add_offer(SHOP_ID, "SKU-0", "OP-0", Decimal("31.50"), 5)
        w.state.add_offer(SHOP_ID, "LEGACY-9", "OP-9", Decimal("99.00"), 3)
        w.add_products(catalog(4))
        with engine.begin() as conn:
            conn.execute(
                sa.insert(notification_settings).values(
                    tenant_id=w.tenant_id, emails=["ops@example.com"], created_at=now, updated_at=now
                )
            )
        transport = notes.Transport(
            SmtpConfig(host="127.0.0.1", port=smtp.port, sender="hub@tradelane.test"), w.keyring
        )
        w.worker = Worker(
            w.engine,
            w.registry,
            w.clock,
            WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
            services={"keyring": w.keyring, notes.TRANSPORT: transport},
            name="cutover-worker",
            sleep=w.advance,
        )
        yield w


def _oms(world: World, oms: OmsSandboxServer) -> None:
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


def _to_step_6(world: World) -> cutover.Cutover:
    """Steps 1-5 done, step 6 waiting (reopened, flows enabled)."""
    advance_until(world, world.channel, lambda c: c.step == 6)
    waiting = cutover.advance(deps(world), world.channel)
    assert (waiting.status, waiting.step) == ("waiting", 6), waiting.message
    return waiting


def _merchant_status(world: World, marketplace_order_id: str) -> str:
    with world.engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(orders.c.merchant_status).where(
                    orders.c.marketplace_order_id == marketplace_order_id
                )
            ).scalar_one()
        )


# --- 1. test orders do not count -------------------------------------------------------------------


def test_a_test_order_waiting_to_ship_is_not_outstanding(world: World) -> None:
    with world.engine.begin() as conn:
        test = create_test_order(conn, world.channel, actor="cli:tester", now=world.clock())
    assert test["state"] == "to_ship"  # it would wait forever: nobody ships a test order on Mirakl
    found = cutover.advance(deps(world), world.channel, previous_integrator_disabled=True)
    assert found.steps["2"]["state"] == "done", found.steps["2"]
    assert found.data["outstanding"]["total"] == 0


def test_a_test_order_is_not_the_live_test_order(world: World) -> None:
    _to_step_6(world)
    with OmsSandboxServer(OmsSandboxState(OMS_SECRET, clock=world.clock)) as oms:
        _oms(world, oms)
        world.advance(5)
        with world.engine.begin() as conn:
            test = create_test_order(conn, world.channel, actor="cli:tester", now=world.clock())
        drain(world)
        assert _merchant_status(world, test["marketplace_order_id"]) == "delivered"  # after the cutoff
        found = cutover.advance(deps(world), world.channel)
    assert (found.status, found.step) == ("waiting", 6)
    assert found.data["confirmations"]["test_order"] is None
    assert "place a live test order" in found.message


# --- 2. the emails, 5. the audited flow changes ----------------------------------------------------


def test_emails_of_a_complete_cutover_reach_the_smtp_server(world: World, smtp: SmtpServer) -> None:
    channel = world.channel
    with world.engine.begin() as conn:  # a product the marketplace does not know: refused at step 5
        gtin = conn.execute(sa.select(products.c.gtin).where(products.c.sku == "SKU-3")).scalar_one()
        conn.execute(sa.update(products).where(products.c.sku == "SKU-3").values(gtin="4000000009999"))
    stopped = advance_until(world, channel, lambda c: c.status == "stopped")
    assert stopped.step == 5
    with world.engine.begin() as conn:  # the operator fixes the product
        conn.execute(sa.update(products).where(products.c.sku == "SKU-3").values(gtin=gtin))
    _to_step_6(world)
    with OmsSandboxServer(OmsSandboxState(OMS_SECRET, clock=world.clock)) as oms:
        _oms(world, oms)
        live = world.order([{"offer_sku": "SKU-1", "quantity": 1}])
        for _ in range(3):
            world.enqueue("orders.poll")
            drain(world)
            world.advance(120)
        with world.engine.begin() as conn:
            record_shipment(
                conn,
                tenant_id=world.tenant_id,
                order_ref=f"{channel.name}:{live}",
                carrier="UPS",
                tracking_number="TEST-1",
                tracking_url=None,
                lines=None,
                external_id="dummy-1",
                now=world.clock(),
            )
        drain(world)
        world.advance(60)
        world.enqueue("orders.poll")
        drain(world)
        done = cutover.advance(deps(world), channel)
    assert done.status == "done", done.message
    world.run(step=20)  # the last notifications.send jobs

    mails = [m.message for m in smtp.received]
    assert all(m["To"] == "ops@example.com" for m in mails)
    subjects = [str(m["Subject"]).replace("\r\n", "") for m in mails]  # unfolded
    name = channel.name
    assert subjects == [
        f"[{name}] cutover step 1 (schedule) done",
        f"[{name}] cutover step 2 (holiday) done",
        f"[{name}] cutover step 3 (snapshot) done",
        f"[{name}] cutover step 4 (cutoff) done",
        f"[{name}] cutover stopped at step 5 (sync): the marketplace refused 1 of 4 offers",
        f"[{name}] cutover step 5 (sync) done",
        f"[{name}] cutover step 6 (live) done",
    ]
    bodies = [m.get_payload(decode=True).decode().replace("\r\n", "\n") for m in mails]
    for body in bodies:
        assert f"of channel {name} (mirakl)" in body and f"Channel: {name}" in body
    assert "step 2 of 6 done: Store on holiday" in bodies[1] and "no outstanding order" in bodies[1]
    assert "2 offers stored; every quantity set to 0" in bodies[2]
    assert "stopped at step 5 of 6: Initial sync" in bodies[4]
    assert "Refused offers (1):\n  - SKU-3: " in bodies[4] and "cutover revert marketplace-x" in bodies[4]
    assert "4 offers published" in bodies[5]
    assert f"test order {live} delivered to the merchant system" in bodies[6]
    assert "The cutover is complete" in bodies[6]

    with world.engine.connect() as conn:
        flows = [
            (e.action, e.reason, e.actor, e.details["flows"])
            for e in audit.history(conn, channel.id, prefix="flow.", limit=None)
        ]
    assert flows[0] == ("flow.pause", "cutover step 1", "cli:tester", ["offers", "orders"])
    assert ("flow.resume", "cutover step 5", "cli:tester", ["offers"]) in flows
    assert flows[-1] == ("flow.resume", "cutover step 6", "cli:tester", ["orders"])


# --- 3. one run at a time --------------------------------------------------------------------------


class _Blocking:
    """Wraps a connector: ``set_holiday`` (step 2) waits until ``go`` is set, after ``entered``."""

    def __init__(self, inner: MarketplaceConnector, entered: threading.Event, go: threading.Event) -> None:
        self._inner, self._entered, self._go = inner, entered, go

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def set_holiday(self, start: datetime | None, end: datetime | None) -> None:
        self._entered.set()
        assert self._go.wait(30)
        self._inner.set_holiday(start, end)


def test_a_second_run_waits_for_the_first(world: World) -> None:
    channel = world.channel
    entered, go = threading.Event(), threading.Event()

    def factory(env: ConnectorEnv) -> MarketplaceConnector:
        return _Blocking(MIRAKL.factory(env), entered, go)  # type: ignore[return-value]

    results: list[cutover.Cutover] = []
    first = threading.Thread(
        target=lambda: results.append(
            cutover.advance(
                deps(world, factory, actor="cli:first"), channel, previous_integrator_disabled=True
            )
        )
    )
    first.start()
    try:
        assert entered.wait(30)
        with pytest.raises(cutover.CutoverBusy) as busy:
            cutover.advance(deps(world, actor="cli:second"), channel, previous_integrator_disabled=True)
        assert str(busy.value).startswith("another run (cli:first) is working on step 2 of the cutover of")
        assert "try again" in str(busy.value)
        with pytest.raises(cutover.CutoverBusy):
            cutover.revert(deps(world, actor="cli:second"), channel, reason="test")
        # the engine's job: does nothing, looks again later
        with world.engine.begin() as conn:
            running = cutover.current(conn, channel.id)
            assert running is not None
            job_id = cutover_jobs.look_again(conn, running, now=world.clock(), after=0)
        world.advance(1)
        world.worker.run(burst=True)
        with world.engine.connect() as conn:
            job = conn.execute(sa.select(jobs.c.state, jobs.c.result).where(jobs.c.id == job_id)).one()
            again = conn.execute(
                sa.select(jobs.c.run_at).where(jobs.c.kind == cutover_jobs.KIND, jobs.c.state == "queued")
            ).scalar_one()
        assert job.state == "succeeded" and "another run (cli:first)" in job.result["busy"]
        assert (again - world.clock()).total_seconds() == cutover_jobs.POLL_SECONDS
    finally:
        go.set()
        first.join(30)
    assert results and results[0].step >= 3, results
    assert len(world.state.calls("A02")) == 1  # the shop was closed once
    with world.engine.connect() as conn:
        holiday = [e.actor for e in cutover.log(conn, channel.id) if e.action == "cutover.holiday"]
    assert set(holiday) == {"cli:first"}
    # the claim is released: the next run goes on
    later = cutover.advance(deps(world, actor="cli:second"), channel)
    assert later.step >= results[0].step
