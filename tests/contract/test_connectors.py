"""The connector contract suite (see ``connector_suite.py``): every registered marketplace connector,
against its own sandbox, through the hub's services, jobs and worker on a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from connector_suite import (
    VARIANTS,
    WORLDS,
    Call,
    CallLog,
    Harness,
    MarketplaceWorld,
    Seen,
    Shipped,
    SpyConnector,
    budget_overruns,
    capability_problems,
    late_retries,
    open_harness,
    retry_after_violations,
)
from sqlalchemy.engine import Engine

from tradelane.connectors.base import (
    Cancellation,
    Capabilities,
    CheckReport,
    ConnectorEnv,
    Document,
    ImportRef,
    LineDecision,
    MarketplaceConnector,
    OfferUpdate,
    Operation,
    OrderChanges,
    RateBudget,
    Refund,
    RefundLine,
    Shipment,
    SubmitMode,
    UnsupportedOperation,
)
from tradelane.connectors.registry import CONNECTORS, ConnectorSpec, get_connector
from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.http_edge import Exchange
from tradelane.services.channels import channel_credentials
from tradelane.services.fulfilment_push import CarrierDirectory, DocumentLedger

IDS = [w.connector for w in WORLDS]


@pytest.fixture(params=WORLDS, ids=IDS)
def hub(request: pytest.FixtureRequest, engine: Engine, now: datetime) -> Iterator[Harness]:
    with open_harness(engine, now, request.param) as harness:
        yield harness


def test_every_registered_connector_has_a_world() -> None:
    assert sorted(CONNECTORS) == sorted(IDS)


@pytest.mark.parametrize("world_type", WORLDS + VARIANTS, ids=[*IDS, *(v.__name__ for v in VARIANTS)])
def test_capabilities_are_self_consistent(world_type: type[MarketplaceWorld]) -> None:
    """The registry's capabilities of each connector (each harness checks its channel's too)."""
    assert capability_problems(get_connector(world_type.connector).capabilities) == []


def test_offers_full_and_delta_land_and_per_offer_errors_come_back(hub: Harness) -> None:
    caps = hub.capabilities
    if Operation.SUBMIT_OFFERS_FULL not in caps.operations:
        hub.enqueue("offers.full", flow="offers")
        hub.run()
        pytest.skip(hub.assert_refused_without_call("offers.full", Operation.SUBMIT_OFFERS_FULL))
    good = hub.world.products(4)
    rejected = hub.world.rejected_product()
    hub.add_products([*good, rejected])
    hub.enqueue("offers.full", flow="offers")
    hub.run(step=20)
    statuses = hub.offer_statuses()
    assert {statuses[p.sku][0] for p in good} == {"published"}, statuses
    assert statuses[rejected.sku][0] == "error" and statuses[rejected.sku][1], statuses
    [outcome] = [o for o in hub.log.outcomes if o.sku == rejected.sku]
    assert not outcome.ok and outcome.errors
    listed = hub.world.listed()
    assert {p.sku for p in good} <= set(listed) and rejected.sku not in listed
    assert listed[good[1].sku] == (good[1].price, good[1].quantity)

    if Operation.SUBMIT_OFFERS_DELTA not in caps.operations:
        hub.change(good[0].sku, price=Decimal("99.00"))
        hub.enqueue("offers.delta", flow="offers")
        hub.run()
        pytest.skip(hub.assert_refused_without_call("offers.delta", Operation.SUBMIT_OFFERS_DELTA))
    for price in ("20.00", "21.00", "22.50"):  # coalesced: one change goes out
        hub.change(good[0].sku, price=Decimal(price))
    hub.change(good[2].sku, quantity=0)
    hub.change(rejected.sku, quantity=2)  # still refused by the marketplace
    hub.enqueue("offers.delta", flow="offers")
    hub.run(step=20)
    refused = [o for o in hub.log.outcomes if o.sku == rejected.sku]
    assert len(refused) == 2 and not refused[-1].ok and refused[-1].errors, refused
    assert hub.offer_statuses()[rejected.sku][0] == "error"
    listed = hub.world.listed()
    assert listed[good[0].sku] == (Decimal("22.50"), good[0].quantity)
    assert listed[good[2].sku] == (good[2].price, 0)
    assert listed[good[1].sku] == (good[1].price, good[1].quantity)  # untouched
    assert hub.offer_statuses()[good[0].sku][0] == "published"
    assert len(hub.log.of(Operation.SUBMIT_OFFERS_DELTA)) == 1
    assert len(hub.log.of(Operation.SUBMIT_OFFERS_FULL)) == 1


def test_orders_arrive_once_through_overlapping_polls_and_a_duplicated_page(hub: Harness) -> None:
    items = hub.stock(3)
    first = [hub.world.place_order([(items[i % 3].sku, 1)]) for i in range(5)]
    hub.enqueue("orders.poll")
    hub.run()
    assert hub.order_rows() == 5
    hub.advance(5)
    # More than one page on the next poll, whose overlapping window also covers the first orders.
    second = [hub.world.place_order([(items[i % 3].sku, 2)]) for i in range(101)]
    hub.world.duplicate_page()
    hub.enqueue("orders.poll")
    hub.run()
    hub.advance(5)
    hub.enqueue("orders.poll")  # overlaps the previous read again
    hub.run()
    assert [s for s in hub.world.requests() if s.fault == "duplicate_page"], "the fault was not served"
    stored = hub.orders()
    assert hub.order_rows() == len(stored) == 106
    assert set(stored) == set(first) | set(second)
    assert all(len(o["lines"]) == 1 for o in stored.values())
    assert [j.state for j in hub.jobs("orders.poll")] == ["succeeded"] * 3
    assert len(hub.log.of(Operation.FETCH_ORDERS)) == 3


def test_acceptance_before_the_deadline_where_required(hub: Harness) -> None:
    items = hub.stock(2)
    [order_id] = hub.take_orders([(items[0].sku, 1), (items[1].sku, 2)])
    stored = hub.orders()[order_id]
    if not hub.capabilities.acceptance_required:
        assert hub.log.of(Operation.ACCEPT) == [] and hub.jobs("orders.accept") == []
        assert stored["accepted_at"] is None
        return
    accepted_at, deadline = hub.world.acceptance(order_id)
    assert accepted_at is not None and deadline is not None and accepted_at <= deadline
    assert stored["accepted_at"] is not None
    assert stored["accepted_at"] <= stored["acceptance_deadline"]
    assert stored["acceptance_deadline"] <= deadline  # the hub never thinks it has more time
    assert len(hub.log.of(Operation.ACCEPT)) == 1
    assert [j.state for j in hub.jobs("orders.accept")] == ["succeeded"]


def _ship(hub: Harness, order: dict, **payload: object) -> None:
    hub.enqueue("fulfillments.ship", {"order_id": order["id"], **payload}, flow="fulfillments")
    hub.run(step=5, max_rounds=5)


def _ship_requests(hub: Harness) -> int:
    return len([s for s in hub.world.requests() if s.op in hub.world.ship_ops])


def test_ship_with_and_without_tracking(hub: Harness) -> None:
    items = hub.stock(2)
    tracked, untracked = hub.take_orders([(items[0].sku, 1)], [(items[1].sku, 2)], ready=True)
    stored = hub.orders()
    if Operation.SHIP not in hub.capabilities.operations:
        _ship(hub, stored[tracked], carrier="UPS", tracking_number="1Z999")
        pytest.skip(hub.assert_refused_without_call("fulfillments.ship", Operation.SHIP))
    _ship(hub, stored[tracked], carrier="UPS", tracking_number="1Z999AA10123456784")
    [job] = hub.jobs("fulfillments.ship")
    assert job.state == "succeeded", job.last_error
    assert hub.world.shipped(tracked) == Shipped({items[0].sku: 1}, "1Z999AA10123456784")

    before = _ship_requests(hub)
    _ship(hub, stored[untracked])  # no carrier either: a known carrier may require tracking
    job = hub.jobs("fulfillments.ship")[-1]
    if hub.capabilities.tracking_required:
        assert job.state == "dead" and "tracking" in (job.last_error or "").lower(), job.last_error
        assert _ship_requests(hub) == before  # refused before any call
        assert hub.world.shipped(untracked) is None
    else:
        assert job.state == "succeeded", job.last_error
        shipped = hub.world.shipped(untracked)
        assert shipped is not None and shipped.quantities == {items[1].sku: 2} and not shipped.tracking


class _TrackingRequired:
    """A connector declaring ``tracking_required`` whose ``ship()`` sends anyway, tracking or not (a
    fake around the world's own connector): the hub alone must keep an untracked shipment back."""

    def __init__(self, inner: MarketplaceConnector) -> None:
        self._inner = inner

    @property
    def capabilities(self) -> Capabilities:
        return replace(self._inner.capabilities, tracking_required=True)

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        return getattr(self._inner, item)

    def ship(self, shipment: Shipment) -> None:
        self._inner.ship(shipment)


def _tracking_required(spec: ConnectorSpec) -> ConnectorSpec:
    factory, declared = spec.factory, spec.channel_capabilities
    return replace(
        spec,
        factory=lambda env: _TrackingRequired(factory(env)),
        channel_capabilities=lambda settings: replace(declared(settings), tracking_required=True),
    )


def test_a_shipment_without_tracking_is_refused_before_any_call_where_tracking_is_required(
    hub: Harness,
) -> None:
    if Operation.SHIP not in hub.capabilities.operations:
        pytest.skip(f"{hub.world.connector} does not declare ship")
    items = hub.stock(1)
    [order_id] = hub.take_orders([(items[0].sku, 1)], ready=True)
    hub.rewire(_tracking_required)
    before = len(hub.world.requests())
    _ship(hub, hub.orders()[order_id], carrier="UPS")
    [job] = hub.jobs("fulfillments.ship")
    assert job.state == "dead" and "tracking" in (job.last_error or "").lower(), job.last_error
    assert hub.log.of(Operation.SHIP) == []  # the connector was never asked to ship
    assert len(hub.world.requests()) == before and hub.world.shipped(order_id) is None
    _ship(hub, hub.orders()[order_id], carrier="UPS", tracking_number="1Z999AA10123456784")
    assert hub.jobs("fulfillments.ship")[-1].state == "succeeded"
    assert hub.world.shipped(order_id) == Shipped({items[0].sku: 1}, "1Z999AA10123456784")


@pytest.mark.parametrize("world_type", WORLDS + VARIANTS, ids=[*IDS, *(v.__name__ for v in VARIANTS)])
def test_partial_shipment_only_where_declared(
    engine: Engine, now: datetime, world_type: type[MarketplaceWorld]
) -> None:
    with open_harness(engine, now, world_type) as hub:
        _partial_shipment(hub)


def _partial_shipment(hub: Harness) -> None:
    items = hub.stock(2)
    [order_id] = hub.take_orders([(items[0].sku, 2), (items[1].sku, 1)], ready=True)
    order = hub.orders()[order_id]
    before = _ship_requests(hub)
    _ship(hub, order, carrier="UPS", tracking_number="PART1", lines=[{"sku": items[0].sku, "quantity": 1}])
    [job] = hub.jobs("fulfillments.ship")
    if not hub.capabilities.partial_shipments:
        assert job.state == "dead" and "partial" in (job.last_error or ""), job.last_error
        assert _ship_requests(hub) == before and hub.world.shipped(order_id) is None
        return
    assert job.state == "succeeded", job.last_error
    shipped = hub.world.shipped(order_id)
    assert shipped is not None and shipped.quantities == {items[0].sku: 1}
    hub.enqueue("orders.poll")  # the hub sees the partial shipment
    hub.run(step=60, max_rounds=3)
    _ship(hub, hub.orders()[order_id], carrier="UPS", tracking_number="PART2")  # the rest
    job = hub.jobs("fulfillments.ship")[-1]
    assert job.state == "succeeded", job.last_error
    shipped = hub.world.shipped(order_id)
    assert shipped is not None and shipped.quantities == {items[0].sku: 2, items[1].sku: 1}  # no more


def test_cancel_where_declared(hub: Harness) -> None:
    items = hub.stock(1)
    [order_id] = hub.take_orders([(items[0].sku, 1)], ready=True)
    hub.enqueue("fulfillments.cancel", {"order_id": hub.orders()[order_id]["id"]}, flow="fulfillments")
    hub.run()
    if Operation.CANCEL not in hub.capabilities.operations:
        assert not hub.world.cancelled(order_id)
        pytest.skip(hub.assert_refused_without_call("fulfillments.cancel", Operation.CANCEL))
    [job] = hub.jobs("fulfillments.cancel")
    assert job.state == "succeeded", job.last_error
    assert hub.world.cancelled(order_id)
    assert len(hub.log.of(Operation.CANCEL)) == 1


def test_refund_where_declared(hub: Harness) -> None:
    items = hub.stock(1)
    [order_id] = hub.take_orders([(items[0].sku, 2)], ready=True)
    order = hub.orders()[order_id]
    if Operation.SHIP in hub.capabilities.operations:  # refunds follow shipping
        _ship(hub, order, carrier="UPS", tracking_number="R1")
    hub.enqueue(
        "fulfillments.refund",
        {
            "order_id": order["id"],
            "reason_code": "REFUND_DAMAGED_ITEM",
            "lines": [{"sku": items[0].sku, "quantity": 1}],
        },
        flow="fulfillments",
    )
    hub.run()
    if Operation.REFUND not in hub.capabilities.operations:
        assert not hub.world.refunded(order_id)
        pytest.skip(hub.assert_refused_without_call("fulfillments.refund", Operation.REFUND))
    [job] = hub.jobs("fulfillments.refund")
    assert job.state == "succeeded", job.last_error
    assert hub.world.refunded(order_id)


def _storm_checks(hub: Harness, op: str) -> None:
    """Four 429s on ``op``, each honoured (nothing sooner than its Retry-After, nothing needlessly
    later — the clocks move in 45 s steps), no declared budget exceeded by any operation."""
    seen = hub.world.requests()
    storm = [s for s in seen if s.op == op]
    assert [s.status for s in storm].count(429) == 4 and storm[-1].status < 300, storm
    assert retry_after_violations(seen, 45) == []
    assert budget_overruns(seen, hub.capabilities) == []
    assert late_retries(seen, hub.capabilities, 45, slack=45) == []


@pytest.mark.parametrize("world_type", WORLDS, ids=IDS)
def test_429_storm_on_the_orders_poll_honours_retry_after_within_declared_budgets(
    engine: Engine, now: datetime, world_type: type[MarketplaceWorld]
) -> None:
    with open_harness(engine, now, world_type, published=True) as hub:
        items = hub.stock(2)
        placed = [hub.world.place_order([(items[i % 2].sku, 1)]) for i in range(3)]
        hub.world.throttle(hub.world.orders_op, 4, retry_after=45)
        hub.enqueue("orders.poll")
        hub.run(step=45, max_rounds=40)
        _storm_checks(hub, hub.world.orders_op)
        assert set(hub.orders()) == set(placed)
        [poll] = hub.jobs("orders.poll")
        assert poll.state == "succeeded" and poll.attempts <= 2, (poll.state, poll.attempts)


@pytest.mark.parametrize("world_type", WORLDS, ids=IDS)
def test_429_storm_on_a_shipment_honours_retry_after_and_ships_once(
    engine: Engine, now: datetime, world_type: type[MarketplaceWorld]
) -> None:
    with open_harness(engine, now, world_type, published=True) as hub:
        if Operation.SHIP not in hub.capabilities.operations:
            pytest.skip(f"{hub.world.connector} does not declare ship")
        items = hub.stock(1)
        [order_id] = hub.take_orders([(items[0].sku, 2)], ready=True)
        op = hub.world.ship_ops[0]
        hub.world.throttle(op, 4, retry_after=45)
        payload = {"order_id": hub.orders()[order_id]["id"], "carrier": "UPS", "tracking_number": "STORM1"}
        hub.enqueue("fulfillments.ship", payload, flow="fulfillments")
        hub.run(step=45, max_rounds=40)
        _storm_checks(hub, op)
        [job] = hub.jobs("fulfillments.ship")
        assert job.state == "succeeded" and job.attempts <= 2, (job.state, job.attempts, job.last_error)
        assert hub.world.shipped(order_id) == Shipped({items[0].sku: 2}, "STORM1")  # once, not twice


@pytest.mark.parametrize("world_type", WORLDS, ids=IDS)
@pytest.mark.parametrize("mode", [SubmitMode.FULL, SubmitMode.DELTA], ids=["full", "delta"])
def test_429_storm_on_offer_submission_honours_retry_after_and_lands_once(
    engine: Engine, now: datetime, world_type: type[MarketplaceWorld], mode: SubmitMode
) -> None:
    operation = Operation.SUBMIT_OFFERS_FULL if mode is SubmitMode.FULL else Operation.SUBMIT_OFFERS_DELTA
    with open_harness(engine, now, world_type, published=True) as hub:
        if operation not in hub.capabilities.operations:
            pytest.skip(f"{hub.world.connector} does not declare {operation.value}")
        items = hub.world.products(3)
        hub.add_products(items)
        op = hub.world.offer_ops[mode.value]
        if mode is SubmitMode.DELTA:
            hub.enqueue("offers.full", flow="offers")
            hub.run(step=45, max_rounds=40)
            assert {s for s, _ in hub.offer_statuses().values()} == {"published"}, hub.offer_statuses()
            hub.change(items[0].sku, price=Decimal("31.50"))
        hub.world.throttle(op, 4, retry_after=45)
        hub.enqueue(f"offers.{mode.value}", flow="offers")
        hub.run(step=45, max_rounds=40)
        _storm_checks(hub, op)
        assert len([s for s in hub.world.requests() if s.op == op]) == 5  # four refused, one landed
        done = [(j.state, j.attempts, j.last_error) for j in hub.jobs(f"offers.{mode.value}")]
        assert done and {state for state, _, _ in done} == {"succeeded"}, done  # a change queues one too
        assert {s for s, _ in hub.offer_statuses().values()} == {"published"}, hub.offer_statuses()
        listed = hub.world.listed()
        expected = Decimal("31.50") if mode is SubmitMode.DELTA else items[0].price
        assert listed[items[0].sku] == (expected, items[0].quantity)
        assert listed[items[1].sku] == (items[1].price, items[1].quantity)


@pytest.mark.parametrize("mode", ["garbage", "truncated"])
def test_garbage_and_truncated_bodies_are_classified_and_the_worker_survives(hub: Harness, mode: str) -> None:
    items = hub.stock(1)
    order_id = hub.world.place_order([(items[0].sku, 1)])
    hub.world.break_route(hub.world.orders_op, mode)
    hub.enqueue("orders.poll")
    hub.run()
    [poll] = hub.jobs("orders.poll")
    assert poll.state == "queued" and poll.last_error, (poll.state, poll.last_error)
    assert not poll.last_error.startswith("unexpected error"), poll.last_error  # classified at the edge
    assert hub.order_rows() == 0  # nothing half-stored
    hub.world.heal_route(hub.world.orders_op)
    hub.run(step=30, max_rounds=10)  # the same worker runs the retry
    [poll] = hub.jobs("orders.poll")
    assert poll.state == "succeeded", poll.last_error
    assert set(hub.orders()) == {order_id}


# --- the suite's own checks can fail ---------------------------------------------------------------


class _Bare:
    """A connector declaring only the orders poll (a fake: the spy must flag anything else)."""

    name = "bare"
    capabilities = Capabilities(operations=frozenset({Operation.FETCH_ORDERS}), hints={})

    def fetch_orders(self, cursor: str | None, *, now: datetime) -> OrderChanges:
        return OrderChanges(orders=[], cursor=cursor)

    def cancel(self, cancellation: Cancellation) -> None:
        raise UnsupportedOperation(self.name, Operation.CANCEL)

    def carrier_codes(self) -> set[str]:
        return {"UPS"}


def test_the_spy_flags_an_undeclared_call_and_passes_the_rest_through(now: datetime) -> None:
    log = CallLog()
    spy = SpyConnector(_Bare(), log)  # type: ignore[arg-type]
    spy.fetch_orders(None, now=now)
    with pytest.raises(UnsupportedOperation):
        spy.cancel(Cancellation("O-1", None, "test"))
    assert [(c.operation, c.declared) for c in log.calls] == [
        (Operation.FETCH_ORDERS, True),
        (Operation.CANCEL, False),
    ]
    assert log.undeclared() == [Call("bare", Operation.CANCEL, False)]
    assert isinstance(spy, CarrierDirectory) and spy.carrier_codes() == {"UPS"}
    assert not isinstance(spy, DocumentLedger)  # the wrapped connector has none: neither has the spy


def test_budget_and_retry_after_checks_catch_offenders(now: datetime) -> None:
    caps = Capabilities(operations=frozenset(), budgets={"op": RateBudget(0.5, 2)})

    def at(seconds: float, status: int = 200) -> Seen:
        return Seen("op", now + timedelta(seconds=seconds), status, None)

    assert budget_overruns([at(0), at(0), at(2), at(4)], caps) == []
    assert len(budget_overruns([at(0), at(0), at(1)], caps)) == 1  # a third call before the refill
    assert retry_after_violations([at(0, 429), at(30)], 30) == []
    assert len(retry_after_violations([at(0, 429), at(29)], 30)) == 1
    assert late_retries([at(0, 429), at(30)], caps, 30, slack=0) == []  # the budget had a token left
    assert len(late_retries([at(0, 429), at(31)], caps, 30, slack=0)) == 1
    assert late_retries([at(0), at(0, 429), at(31)], caps, 30, slack=1) == []
    assert len(late_retries([at(0), at(0, 429), at(36)], caps, 30, slack=0)) == 1  # due at 30 s
    assert late_retries([at(0), at(0, 429), at(2)], caps, 1, slack=0) == []  # the budget's moment
    assert len(late_retries([at(0), at(0, 429), at(2.5)], caps, 1, slack=0)) == 1


@pytest.mark.parametrize("mode", ["garbage", "truncated"])
def test_unreadable_import_results_are_classified_and_read_again(hub: Harness, mode: str) -> None:
    caps = hub.capabilities
    if not caps.asynchronous_offer_imports:
        pytest.skip(f"{hub.world.connector} reads no import result later (synchronous imports)")
    items = hub.world.products(2)
    hub.add_products(items)
    hub.enqueue("offers.full", flow="offers")
    hub.run()
    hub.world.break_route(hub.world.import_op, mode)
    hub.run(step=20, max_rounds=4)
    [check] = hub.jobs("offers.import_check")
    assert check.state == "queued" and check.last_error, (check.state, check.last_error)
    assert not check.last_error.startswith("unexpected error"), check.last_error
    assert {status for status, _ in hub.offer_statuses().values()} == {"submitted"}
    hub.world.heal_route(hub.world.import_op)
    hub.run(step=20)
    [check] = hub.jobs("offers.import_check")
    assert check.state == "succeeded", check.last_error
    assert {status for status, _ in hub.offer_statuses().values()} == {"published"}


def _every_operation(
    connector: MarketplaceConnector, order_id: str, ref: ImportRef, now: datetime
) -> dict[Operation, Callable[[], object]]:
    offer = OfferUpdate(sku="SKU-1", price=Decimal("12.00"), currency="EUR", quantity=3)
    return {
        Operation.FETCH_ORDERS: lambda: connector.fetch_orders(None, now=now),
        Operation.FETCH_MESSAGES: lambda: connector.fetch_messages(None, now=now),
        Operation.FETCH_RETURNS: lambda: connector.fetch_returns(None, now=now),
        Operation.ACCEPT: lambda: connector.accept(order_id, [LineDecision(f"{order_id}-1", True)]),
        Operation.SUBMIT_OFFERS_FULL: lambda: connector.submit_offers([offer], SubmitMode.FULL),
        Operation.SUBMIT_OFFERS_DELTA: lambda: connector.submit_offers([offer], SubmitMode.DELTA),
        Operation.READ_IMPORT: lambda: connector.import_result(ref),
        Operation.LIST_OFFERS: lambda: connector.list_offers(),
        Operation.SHIP: lambda: connector.ship(
            Shipment(order_id, None, carrier_code="UPS", tracking_number="1Z1", shipped_at=now)
        ),
        Operation.CANCEL: lambda: connector.cancel(Cancellation(order_id, None, "out of stock")),
        Operation.REFUND: lambda: connector.refund(
            Refund(order_id, [RefundLine(f"{order_id}-1", 1, Decimal("1.00"), "EUR")], "REFUND_DAMAGED_ITEM")
        ),
        Operation.UPLOAD_DOCUMENT: lambda: connector.upload_document(
            Document(order_id, "label.pdf", b"%PDF-1.4 suite", "application/pdf")
        ),
        Operation.SET_HOLIDAY: lambda: connector.set_holiday(now, now + timedelta(days=1)),
    }


@pytest.mark.parametrize("mode", ["garbage", "truncated"])
def test_every_operation_classifies_garbage_and_truncated_bodies(hub: Harness, mode: str) -> None:
    """Called directly, every declared operation of a connector whose every remote route answers
    garbage (or half its body) ends in a classified error or a result, never another exception; an
    undeclared one raises UnsupportedOperation without a request."""
    items = hub.stock(1)
    order_id = hub.world.place_order([(items[0].sku, 1)])
    with hub.engine.connect() as conn:
        credentials = channel_credentials(conn, hub.channel, hub.keyring)
    exchanges: list[Exchange] = []
    env = ConnectorEnv(
        channel_id=hub.channel.id,
        channel_name=hub.channel.name,
        settings=hub.channel.settings,
        credentials={k: str(v) for k, v in credentials.items() if v is not None},
        now=hub.clock,
        throttle=lambda _op: None,
        on_exchange=exchanges.append,
    )
    connector = hub.spec.factory(env)
    try:
        caps = connector.capabilities
        ref = ImportRef("0", SubmitMode.FULL, 1)
        if Operation.SUBMIT_OFFERS_FULL in caps.operations:  # a real reference to read back
            ref = connector.submit_offers(
                [
                    OfferUpdate(
                        sku=items[0].sku,
                        price=Decimal("12.00"),
                        currency="EUR",
                        quantity=3,
                        attributes=items[0].attributes,
                        gtin=items[0].gtin,
                    )
                ],
                SubmitMode.FULL,
            )
        for op in set(caps.budgets) & hub.world.served_ops():
            hub.world.break_route(op, mode)
        outcomes: dict[str, str] = {}
        for operation, call in _every_operation(connector, order_id, ref, hub.clock()).items():
            before = len(hub.world.requests())
            try:
                call()
            except (RetryableError, PermanentError) as exc:
                outcomes[operation.value] = "retryable" if isinstance(exc, RetryableError) else "permanent"
                assert operation in caps.operations, (operation, exc)
            except UnsupportedOperation:
                outcomes[operation.value] = "unsupported"
                assert operation not in caps.operations
                assert len(hub.world.requests()) == before, f"{operation.value} called the marketplace"
            else:
                outcomes[operation.value] = "ok"
                assert operation in caps.operations
        assert outcomes[Operation.FETCH_ORDERS.value] in ("retryable", "permanent"), outcomes
        assert isinstance(connector.check(), CheckReport)  # a check never raises
    finally:
        connector.close()


def test_capability_problems_are_found() -> None:
    bad = Capabilities(
        operations=frozenset({Operation.ACCEPT}),
        budgets={"op": RateBudget(1.0, 1)},
        max_batch={Operation.SHIP: 0},
        partial_shipments=True,
    )
    problems = capability_problems(bad)
    assert any("fetch_orders" in p for p in problems)
    assert any("max_batch ship" in p for p in problems)
    assert any("acceptance_required" in p for p in problems)
    assert any("shipment flags" in p for p in problems)
    assert any("cancel undeclared without a hint" in p for p in problems)
