"""A complete cutover of an Amazon seller account run by another integrator, then its revert, with the
process "dying" right after each marketplace call they make (issue 11, "a crash injected after every
step resumes correctly"), step-agnostic: a first run counts the calls (N, each with the step it was
made at, or "revert"); then, for every call index k (all of them while N is small, else a sample
keeping the first and the last call of each step), a fresh world runs the whole cutover with the k-th
call going out and its answer lost, each later attempt being a fresh service (a restarted process)
on the same store.

Every run must end the same way: the cutover done; neither of the previous integrator's orders
(placed before the cutoff) imported, the live order placed after the cutoff imported; the snapshot is
the account as found; our catalog listed, the listing tradelane does not manage at 0; and a revert
then restores every price and quantity per SKU and deletes the listing the initial sync created.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from cutover_support import InjectedCrash, deps, drain, put_live
from test_cutover_amazon import DE, OMS_SECRET, AmazonWorld

from helpers import FakeClock, make_tenant
from tradelane.bootstrap import register_handlers
from tradelane.connectors.amazon import connector as amazon
from tradelane.connectors.amazon.sandbox import AmazonSandboxServer, AmazonSandboxState, SandboxSettings
from tradelane.connectors.base import ConnectorEnv, ConnectorFactory, MarketplaceConnector, Shipment
from tradelane.connectors.mirakl.sandbox.clock import SandboxClock
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import jobs, orders, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services import cutover
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.order_updates import record_shipment
from tradelane.services.outbox import bind_new_products
from tradelane.sync.registry import JobRegistry

# connector methods that make no marketplace call (local planning, bookkeeping)
LOCAL = frozenset({"close", "staging_account", "plan", "plan_ship", "plan_cancel", "budget", "capabilities"})
MAX_RUNS = 40  # a bound on the crash runs (each ~1 s): all indices below it, else a sample


class CallLog:
    """Wraps every connector the cutover service opens: records each marketplace call (method, the
    cutover's step at the time) and, at the ``crash_at``-th call (1-based, counted across connector
    instances and steps), lets it go out and then raises :class:`InjectedCrash` (the answer is lost)."""

    def __init__(self, step_of: Callable[[], str], crash_at: int | None = None) -> None:
        self.step_of = step_of
        self.crash_at = crash_at
        self.calls: list[tuple[str, str]] = []
        self.fired = False

    def factory(self, inner: ConnectorFactory) -> ConnectorFactory:
        def build(env: ConnectorEnv) -> MarketplaceConnector:
            return _Recorded(inner(env), self)  # type: ignore[return-value]

        return build


class _Recorded:
    def __init__(self, inner: MarketplaceConnector, log: CallLog) -> None:
        self._inner = inner
        self._log = log

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or name in LOCAL or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            log = self._log
            log.calls.append((name, log.step_of()))
            result = value(*args, **kwargs)
            if len(log.calls) == log.crash_at and not log.fired:
                log.fired = True
                raise InjectedCrash(f"crash after {name}, call {log.crash_at}")
            return result

        return call


@contextmanager
def _world(engine: Any, now: datetime, tenant: str) -> Iterator[AmazonWorld]:
    """The world of test_cutover_amazon (a live seller account with another integrator's listings of
    SKU-1..3 and THEIRS-9; our catalog SKU-1..4), for tenant ``tenant`` — several on one store — with
    an OMS (the merchant system step 6's live test order is delivered to)."""
    state = AmazonSandboxState(
        7,
        rate_limits="generous",
        region="eu",
        products=6,
        settings=SandboxSettings(feed_queue_seconds=5, feed_processing_seconds=5),
        clock=SandboxClock(now),
    )
    seller = next(a for a in state.accounts.values() if DE in a.marketplace_ids)
    made, _ = make_tenant(engine, tenant, now)
    keyring = KeyRing([generate_key()])
    registry = JobRegistry()
    register_handlers(registry)
    clock = FakeClock(now)
    with (
        AmazonSandboxServer(state) as server,
        OmsSandboxServer(OmsSandboxState(OMS_SECRET, clock=clock)) as oms,
    ):
        with engine.begin() as conn:
            channel = amazon.add_channel(
                conn,
                tenant_id=made.id,
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
            add_http_system(
                conn,
                tenant_id=made.id,
                name="oms",
                url=oms.orders_url,
                secret=OMS_SECRET,
                keyring=keyring,
                now=now,
                timeout_seconds=5,
            )
        w = AmazonWorld(engine, state, server.url, clock, made.id, channel, keyring, registry, seller)
        put_live(w)
        items = list(state.catalog.values())
        for i, item in enumerate(items[:3], start=1):
            state.add_offer(seller.seller_id, f"SKU-{i}", item.asin, Decimal(f"4{i}.90"), 5 + i)
        state.add_offer(seller.seller_id, "THEIRS-9", items[5].asin, Decimal("99.00"), 2)
        with engine.begin() as conn:
            ids = [
                conn.execute(
                    sa.insert(products)
                    .values(
                        tenant_id=made.id,
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
            bind_new_products(conn, made.id, ids, now=now)
        try:
            yield w
        finally:  # this world's servers stop: none of its jobs may be left for the next world's worker
            with engine.begin() as conn:
                conn.execute(sa.delete(jobs).where(jobs.c.tenant_id == made.id))


def _stored(world: AmazonWorld) -> list[str]:
    with world.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(orders.c.marketplace_order_id)
                .where(orders.c.channel_id == world.channel.id)
                .order_by(orders.c.id)
            ).scalars()
        )


def _step_of(world: AmazonWorld) -> Callable[[], str]:
    def step() -> str:
        with world.engine.connect() as conn:
            found = cutover.current(conn, world.channel.id)
        if found is None:
            return "none"
        return "revert" if found.status in (cutover.DONE, cutover.REVERTING) else str(found.step)

    return step


def _run(world: AmazonWorld, log: CallLog) -> dict[str, Any]:
    """The whole cutover, each attempt a fresh service through ``log``'s connectors; the previous
        integrator processes its two orders (before the cutoff) after the first attempt; the live test order
        is placed once the cutoff is set; the merchant system ships it at step 6. Then the revert, through
    the same connectors (a crash there is resumed by the next ``revert``)."""
    channel = world.channel
    seller = world.seller.seller_id
    pending = world.state.create_order(seller, [("SKU-1", 1)]).order_id  # withheld (Pending)
    paid = world.state.create_order(seller, [("THEIRS-9", 1)], paid=True).order_id
    world.advance(5)
    found = world.listed()
    factory = log.factory(amazon.SPEC.factory)
    processed = shipped = False
    live: str | None = None
    crashes = 0
    state: cutover.Cutover | None = None
    for _ in range(80):
        try:
            state = cutover.advance(deps(world, factory), channel, previous_integrator_disabled=True)
        except InjectedCrash:
            crashes += 1
            state = None
        if not processed:  # the previous integrator: the buyer cancels the Pending one, the paid one ships
            world.state.cancel(pending)
            other = world.other_integrator()
            other.ship(Shipment(paid, None, carrier_code="DHL", tracking_number="PREV-1"))
            other.close()
            processed = True
            world.advance(5)
        with world.engine.connect() as conn:
            current = cutover.current(conn, channel.id)
        assert current is not None
        if current.orders_cutoff is not None and live is None:
            live = world.state.create_order(seller, [("SKU-2", 1)], paid=True).order_id
            world.advance(5)
        if state is not None and state.status == cutover.DONE:
            break
        if current.step == 6 and current.status == cutover.WAITING:
            world.enqueue("orders.poll")
            if not shipped and live in _stored(world):
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
                shipped = True
        drain(world, 10)
        world.advance(30)
    assert state is not None and state.status == cutover.DONE, current.as_json()
    with world.engine.connect() as conn:
        taken = {o.sku: (o.price, o.quantity) for o in cutover.snapshot(conn, state.id)}
    at_done = world.listed()
    stored = _stored(world)
    reverted = None
    for _ in range(40):  # the revert, through the same connectors: a crash there resumes too
        try:
            reverted = cutover.revert(deps(world, factory), channel, reason="test")
        except InjectedCrash:
            crashes += 1
            continue
        if reverted.status == cutover.REVERTED:
            break
        world.advance(20)
    assert reverted is not None and reverted.status == cutover.REVERTED, reverted
    return {
        "found": found,
        "taken": taken,
        "at_done": at_done,
        "stored": stored,
        "live": live,
        "before_cutoff": [pending, paid],
        "crashes": crashes,
        "after_revert": world.listed(),
        "report": reverted.revert_report or {},
    }


def _check(outcome: dict[str, Any], label: str) -> None:
    found = outcome["found"]
    assert outcome["taken"] == found, label
    assert outcome["stored"] == [outcome["live"]], label  # none before the cutoff, the one after
    assert not set(outcome["before_cutoff"]) & set(outcome["stored"]), label
    at_done = outcome["at_done"]
    for i in range(1, 5):  # our catalog, ours at the end
        assert at_done[f"SKU-{i}"] == (Decimal("20.00") + i, 10), (label, at_done)
    assert at_done["THEIRS-9"] == (Decimal("99.00"), 0), label  # not ours: zeroed, left at 0
    for sku, value in found.items():  # the revert puts every listing back as found
        assert outcome["after_revert"][sku] == value, (label, sku)
    assert "SKU-4" not in outcome["after_revert"], label
    assert outcome["report"]["deleted"] == ["SKU-4"], label


def _sample(calls: list[tuple[str, str]]) -> list[int]:
    """1-based call indices to crash at: all of them up to MAX_RUNS, else the first and the last call of
    each step plus evenly spread ones."""
    n = len(calls)
    if n <= MAX_RUNS:
        return list(range(1, n + 1))
    chosen: set[int] = set()
    for step in {s for _, s in calls}:
        at = [i for i, (_, s) in enumerate(calls, start=1) if s == step]
        chosen.update((at[0], at[-1]))
    spread = max(1, n // (MAX_RUNS - len(chosen)))
    chosen.update(range(1, n + 1, spread))
    return sorted(chosen)


@pytest.mark.sqlite_only(
    reason="store-agnostic crash matrix: the cutover's store code (claims, step transactions, the"
    " snapshot) runs on both stores in the complete cutover and step-transaction tests"
)
def test_a_crash_after_every_marketplace_call_resumes(engine: Any, now: datetime) -> None:
    with _world(engine, now, "acme-0") as w:
        counted = CallLog(_step_of(w))
        outcome = _run(w, counted)
    _check(outcome, "no crash")
    calls = counted.calls
    methods = {m for m, _ in calls}
    assert {"list_offers", "submit_offers", "fetch_orders"} <= methods, calls  # snapshot, zero, cutoff read
    assert calls[-1][1] == "revert", calls  # the revert's calls are counted (and crashed at) too
    indices = _sample(calls)
    for k in indices:
        with _world(engine, now, f"acme-{k}") as w:
            log = CallLog(_step_of(w), crash_at=k)
            outcome = _run(w, log)
        label = f"crash after call {k} of {len(calls)}: {calls[k - 1]}"
        assert log.fired and outcome["crashes"] == 1, label
        _check(outcome, label)
