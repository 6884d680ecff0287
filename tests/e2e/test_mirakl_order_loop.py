"""The full loop for Mirakl, every hop over real HTTP on 127.0.0.1 and one fake clock shared by the hub,
the Mirakl sandbox and the OMS sandbox, with Mirakl's published budgets on both sides (the sandbox
answers 429 to any call beyond them, the hub's channel uses its default limits):

catalog → ``offers.full`` (OF01, import tracked with OF02) → the offers are live on the shop →
``offers.delta`` (OF24) through a 429 storm with Retry-After → 31 buyers order → ``orders.poll`` (OR11)
accepts every order before its deadline (OR21) → payment → the next poll imports each order once, and
an overlapping poll whose page OR11 serves twice imports nothing again → each delivered once to the
HTTP OMS sandbox → the OMS ships ours (REST API) → ``fulfillments.ship`` (OR23 then OR24, each through
a 429) → Mirakl shows the order SHIPPED with its tracking.

And a backlog of more than one OR11 page (101 orders) under the published once-a-minute OR11 guidance:
each page takes a token, a poll stopped by the budget keeps what it read and continues the scan with
the next token (before, the hub budgeted a listing as one call, the sandbox refused its second page
every time and orders past the first 100 were never accepted).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from order_loop_support import App, job_states, serve_app, shipment_calls

from mirakl_world import SHOP_ID, World, build_world, catalog
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.merchant.sandbox.callback import send_update
from tradelane.merchant.sandbox.state import CallbackConfig
from tradelane.persistence.tables import jobs, orders
from tradelane.services.merchant_systems import add_http_system

OMS_SECRET = "mirakl-loop-oms-signing-secret-0123"
#: Other buyers' orders placed alongside ours (with ours, within one OR11 page of 100: see
#: :func:`test_mirakl_poll_of_more_than_a_page_under_published_budget` for more).
NOISE_ORDERS = 30
#: Rounds of the in-process worker per drain (each moves the shared clock by ``step``).
MAX_ROUNDS = 200
#: Seconds the sandbox keeps an accepted order in WAITING_DEBIT_PAYMENT (its default is 60).
PAYMENT_WAIT = 120


@pytest.fixture
def world(engine: Any, now: datetime) -> Iterator[World]:
    # sandbox_limits=None: the sandbox enforces Mirakl's published guidance (OR11/OF01/OF24 once a
    # minute, OR21 100 a minute); channel_limits={}: the hub runs on its default Mirakl budgets.
    yield from build_world(engine, now, sandbox_limits=None, channel_limits={})


def _drain(world: World, step: float) -> None:
    """Run the worker, moving time by ``step`` between rounds, until no job is queued or running."""
    for _ in range(MAX_ROUNDS):
        world.worker.run(burst=True)
        if not world.pending():
            return
        world.advance(step)
    with world.engine.connect() as conn:
        errors = conn.execute(sa.select(jobs.c.kind, jobs.c.last_error).where(jobs.c.state == "queued")).all()
    raise AssertionError(f"jobs still pending after {MAX_ROUNDS} rounds: {job_states(world)} {errors}")


def _listed(world: World) -> dict[str, tuple[Decimal, int]]:
    """The shop's live offers on the sandbox: SKU → (price, quantity)."""
    return {sku: (o.price, o.quantity) for sku, o in world.state.shop_offers(SHOP_ID).items()}


def _statuses(world: World, op: str) -> list[int]:
    return [r.status for r in world.state.calls(op)]


def test_mirakl_listing_order_oms_and_shipment_back(world: World, db_url: str) -> None:
    # -- listings: the full sync goes as one OF01 import; its OF02 status publishes every offer.
    products = catalog(3, quantity=200)
    skus = [p.sku for p in products]
    world.add_products(products)
    world.enqueue("offers.full", flow="offers")
    _drain(world, step=10)
    assert _listed(world) == {
        "SKU-0": (Decimal("10.00"), 200),
        "SKU-1": (Decimal("11.00"), 200),
        "SKU-2": (Decimal("12.00"), 200),
    }
    assert _statuses(world, "OF01") == [201]

    # -- a price delta through a 429 storm: OF24, held by each Retry-After, lands once.
    world.state.inject("OF24", "rate_limit", count=3, retry_after=7)
    world.change("SKU-1", price=Decimal("9.50"))
    world.enqueue("offers.delta", flow="offers")
    _drain(world, step=5)
    assert _listed(world)["SKU-1"] == (Decimal("9.50"), 200)
    updates = world.state.calls("OF24")
    assert [r.status for r in updates] == [429, 429, 429, 201]
    assert all((b.at - a.at).total_seconds() >= 7 for a, b in itertools.pairwise(updates))

    oms_state = OmsSandboxState(OMS_SECRET, clock=world.clock)
    with OmsSandboxServer(oms_state) as oms, serve_app(world, db_url) as app:
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
        _orders_accepted_imported_and_delivered(world, oms_state, app, skus)
    # The hub's budgets kept every call within Mirakl's published limits: the only 429s are injected.
    assert [(r.op_id, r.at) for r in world.state.requests if r.status == 429 and r.fault is None] == []
    states = job_states(world)
    assert {s for kind in states.values() for s in kind} == {"succeeded"}, states
    assert states["fulfillments.ship"] == ["succeeded"]


def _orders_accepted_imported_and_delivered(
    world: World, oms_state: OmsSandboxState, app: App, skus: list[str]
) -> None:
    noise = [
        world.order([{"offer_sku": skus[0], "quantity": 1, "unit_price": "10.00"}])
        for _ in range(NOISE_ORDERS)
    ]
    ours = world.order(
        [
            {"offer_sku": skus[1], "quantity": 2, "unit_price": "9.50"},
            {"offer_sku": skus[2], "quantity": 1, "unit_price": "12.00"},
        ]
    )
    everyone = [*noise, ours]
    world.enqueue("orders.poll")
    _drain(world, step=5)
    accepted = Counter(r.path.split("/")[3] for r in world.state.calls("OR21") if r.status == 204)
    assert accepted == dict.fromkeys(everyone, 1)
    for order_id in everyone:
        order = world.state.order(order_id)
        assert order.accepted_at is not None and order.accepted_at < order.acceptance_deadline

    world.advance(PAYMENT_WAIT)
    world.enqueue("orders.poll")
    _drain(world, step=5)
    # The next poll overlaps the previous read, and OR11 serves the page it served last time again.
    world.advance(400)
    world.state.inject("OR11", "duplicate_page")
    world.enqueue("orders.poll")
    _drain(world, step=5)
    assert [r.fault for r in world.state.calls("OR11")].count("duplicate_page") == 1

    # Each order imported once and received once by the OMS (a list: a second delivery would show).
    refs = sorted(f"{world.channel.name}:{order_id}" for order_id in everyone)
    assert sorted(o.ref for o in oms_state.orders()) == refs
    with world.engine.connect() as conn:
        stored = conn.execute(sa.select(orders.c.marketplace_order_id, orders.c.merchant_status)).all()
    assert sorted(stored) == sorted((order_id, "delivered") for order_id in everyone)
    received = {o.ref: o for o in oms_state.orders()}
    mine = received[f"{world.channel.name}:{ours}"]
    assert sorted(
        (ln["sku"], ln["quantity"], Decimal(ln["unit_price"])) for ln in mine.document["lines"]
    ) == [
        ("SKU-1", 2, Decimal("9.50")),
        ("SKU-2", 1, Decimal("12.00")),
    ]
    assert mine.document["shipping_address"]["city"]
    assert shipment_calls(world) == []

    # -- the OMS ships ours; OR23 and OR24 each go out through a 429.
    world.state.inject("OR23", "rate_limit", retry_after=5)
    world.state.inject("OR24", "rate_limit", retry_after=5)
    tracking = "8R41234567890"
    answer = send_update(
        oms_state, mine, "shipment", {"carrier": "UPS", "tracking_number": tracking}, via="api"
    )
    assert answer.status_code == 201, answer.text
    _drain(world, step=5)

    # OR24's 429 retries the whole shipment, tracking included: OR23 goes again with the same tracking
    # (harmless, Mirakl keeps the last tracking), then OR24 once.
    assert _statuses(world, "OR23") == [429, 204, 204]
    assert _statuses(world, "OR24") == [429, 204]
    for op in ("OR23", "OR24"):  # Retry-After honoured
        refused, retried = world.state.calls(op)[:2]
        assert (retried.at - refused.at).total_seconds() >= 5
    assert shipment_calls(world)[-2:] == ["OR23", "OR24"]
    shipped = world.state.order(ours)
    assert shipped.state.value == "SHIPPED"
    assert shipped.tracking is not None
    assert (shipped.tracking.carrier_code, shipped.tracking.tracking_number) == ("UPS", tracking)
    [update] = app.order(mine.ref)["updates"]
    assert (update["kind"], update["status"]) == ("shipment", "sent")
    assert app.dead_letters() == []


def test_mirakl_poll_of_more_than_a_page_under_published_budget(world: World) -> None:
    products = catalog(1, quantity=200)
    world.add_products(products)
    world.enqueue("offers.full", flow="offers")
    _drain(world, step=10)
    placed = [
        world.order([{"offer_sku": products[0].sku, "quantity": 1, "unit_price": "10.00"}])
        for _ in range(101)
    ]
    world.enqueue("orders.poll")
    for _ in range(60):  # five minutes of simulated time: five OR11 budgets
        world.worker.run(burst=True)
        if not world.pending():
            break
        world.advance(5)
    assert all(world.state.order(order_id).accepted_at is not None for order_id in placed)
    assert [r.op_id for r in world.state.requests if r.status == 429] == []
