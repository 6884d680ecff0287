"""Order intake, acceptance and secondary feeds driven through the marketplace port by a FAKE connector
(an in-memory marketplace, no Mirakl anywhere): the services are connector-neutral. The jobs run in a
real worker over the generic dispatcher, on the test database."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import FakeClock, make_tenant, put_live
from tradelane.connectors.base import (
    AcceptanceSettled,
    Capabilities,
    CheckOutcome,
    CheckReport,
    ConnectorEnv,
    FeedChanges,
    FeedItem,
    LineDecision,
    MarketplaceConnector,
    Operation,
    OrderChanges,
    RateBudget,
    UnsupportedOperation,
)
from tradelane.connectors.dispatch import register_connectors
from tradelane.connectors.mirakl.mapping import MiraklOrderState, neutral_state
from tradelane.connectors.registry import ConnectorSpec, CustomerMessages
from tradelane.domain.errors import PermanentError
from tradelane.domain.orders import MarketplaceOrder, MarketplaceOrderLine
from tradelane.http_edge import Exchange
from tradelane.persistence.tables import (
    alerts,
    channel_cursors,
    exchanges,
    jobs,
    order_messages,
    orders,
    rate_buckets,
)
from tradelane.persistence.tables import returns as returns_table
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import Channel, create_channel
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

BASIC = frozenset({Operation.FETCH_ORDERS, Operation.FETCH_RETURNS})


@dataclass
class Marketplace:
    """The fake marketplace's state, shared by every connector instance (one per job)."""

    orders: list[MarketplaceOrder] = field(default_factory=list)
    returns: list[FeedItem] = field(default_factory=list)
    messages: list[FeedItem] = field(default_factory=list)
    cursors_seen: list[str | None] = field(default_factory=list)
    accepted: dict[str, list[LineDecision]] = field(default_factory=dict)
    settle_acceptance_as: MiraklOrderState | None = None
    returns_fail: bool = False


class FakeConnector:
    """An in-memory :class:`MarketplaceConnector`: orders carry a sequence number as their cursor."""

    name = "fake"

    def __init__(self, env: ConnectorEnv, market: Marketplace, operations: frozenset[Operation]) -> None:
        self.env = env
        self.market = market
        self.capabilities = Capabilities(
            operations=operations,
            acceptance_required=Operation.ACCEPT in operations,
            budgets={
                "list": RateBudget(per_second=100.0, burst=10),
                "accept": RateBudget(per_second=100.0, burst=10),
            },
        )

    def _exchange(self, op: str) -> None:
        self.env.on_exchange(Exchange(op, "GET", f"fake://{op}", None, 200, "{}", 1.0))

    def fetch_orders(self, cursor: str | None, *, now: datetime) -> OrderChanges:
        self.env.throttle("list")
        self._exchange("list")
        self.market.cursors_seen.append(cursor)
        start = int(cursor or 0)
        found = self.market.orders[start:]
        return OrderChanges(orders=found, cursor=str(len(self.market.orders)), fetched=len(found))

    def fetch_messages(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        self.env.throttle("list")
        return FeedChanges(items=self.market.messages, cursor=None)

    def fetch_returns(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        self.env.throttle("list")
        self._exchange("returns")
        if self.market.returns_fail:
            raise PermanentError("returns are not offered to this seller")
        return FeedChanges(items=self.market.returns, cursor=str(len(self.market.returns)))

    def accept(self, order_id: str, decisions: Sequence[LineDecision]) -> None:
        if Operation.ACCEPT not in self.capabilities.operations:
            raise UnsupportedOperation(self.name, Operation.ACCEPT)
        self.env.throttle("accept")
        if self.market.settle_acceptance_as is not None:
            state = self.market.settle_acceptance_as
            raise AcceptanceSettled(
                order_id, neutral_state(state), accepted=state is MiraklOrderState.SHIPPING, evidence="fake"
            )
        self.market.accepted[order_id] = list(decisions)

    def _unsupported(self, operation: Operation) -> Any:
        raise UnsupportedOperation(self.name, operation)

    def submit_offers(self, offers: Any, mode: Any) -> Any:
        return self._unsupported(Operation.SUBMIT_OFFERS_FULL)

    def import_result(self, ref: Any) -> Any:
        return self._unsupported(Operation.READ_IMPORT)

    def list_offers(self) -> Any:
        return self._unsupported(Operation.LIST_OFFERS)

    def ship(self, shipment: Any) -> None:
        self._unsupported(Operation.SHIP)

    def cancel(self, cancellation: Any) -> None:
        self._unsupported(Operation.CANCEL)

    def refund(self, refund: Any) -> None:
        self._unsupported(Operation.REFUND)

    def upload_document(self, document: Any) -> None:
        self._unsupported(Operation.UPLOAD_DOCUMENT)

    def set_holiday(self, start: datetime | None, end: datetime | None) -> None:
        self._unsupported(Operation.SET_HOLIDAY)

    def check(self) -> CheckReport:
        return CheckReport(CheckOutcome.OK, "fake")

    def close(self) -> None:
        pass


def fake_spec(market: Marketplace, operations: frozenset[Operation]) -> ConnectorSpec:
    def factory(env: ConnectorEnv) -> MarketplaceConnector:
        return FakeConnector(env, market, operations)

    probe = Capabilities(operations=operations, acceptance_required=Operation.ACCEPT in operations)
    return ConnectorSpec(
        name="fake",
        title="Fake",
        capabilities=probe,
        factory=factory,
        validate_settings=lambda settings, _credentials: dict(settings),
        channel_capabilities=lambda _settings: probe,
        customer_messages=CustomerMessages(
            attribute=":FakeNote", is_customer=lambda raw: raw.get("who") == "buyer"
        ),
    )


@dataclass
class Hub:
    engine: Any
    clock: FakeClock
    channel: Channel
    market: Marketplace
    worker: Worker

    def poll(self) -> None:
        self.enqueue("orders.poll")
        self.worker.run(burst=True)

    def enqueue(self, kind: str, payload: dict[str, Any] | None = None) -> None:
        with self.engine.begin() as conn:
            enqueue(
                conn,
                JobSpec(
                    tenant_id=self.channel.tenant_id,
                    kind=kind,
                    payload=payload or {},
                    channel_id=self.channel.id,
                    flow="orders",
                ),
                now=self.clock(),
            )

    def jobs(self, kind: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.id)))


def build_hub(engine: Any, now: datetime, operations: frozenset[Operation]) -> Hub:
    market = Marketplace()
    tenant, _ = make_tenant(engine, "acme", now)
    keyring = KeyRing([generate_key()])
    with engine.begin() as conn:
        channel = create_channel(
            conn,
            tenant_id=tenant.id,
            name="fake-shop",
            connector="fake",
            settings={},
            credentials={"token": "t"},
            keyring=keyring,
            now=now,
        )
        put_live(conn, channel.id)
    registry = JobRegistry()
    register_connectors(registry, {"fake": fake_spec(market, operations)})
    clock = FakeClock(now)
    worker = Worker(
        engine,
        registry,
        clock,
        WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
        services={"keyring": keyring},
        name="fake-worker",
        sleep=clock.advance,
    )
    return Hub(engine, clock, channel, market, worker)


def make_order(
    n: int, now: datetime, state: MiraklOrderState = MiraklOrderState.SHIPPING
) -> MarketplaceOrder:
    return MarketplaceOrder(
        marketplace_order_id=f"F-{n}",
        state=neutral_state(state),
        raw_state=state.value,
        currency="EUR",
        created_at=now,
        updated_at=now,
        lines=(MarketplaceOrderLine(f"F-{n}-1", "SKU-1", 2, Decimal("9.90"), "EUR", state.value),),
        acceptance_deadline=now + timedelta(hours=1)
        if state is MiraklOrderState.WAITING_ACCEPTANCE
        else None,
    )


@pytest.fixture
def hub(engine: Any, now: datetime) -> Iterator[Hub]:
    yield build_hub(engine, now, BASIC)


def test_orders_arrive_once_through_the_port_with_the_cursor_handed_back(hub: Hub, now: datetime) -> None:
    hub.market.orders = [make_order(1, now), make_order(2, now)]
    hub.poll()
    hub.market.orders.append(make_order(3, now))
    hub.poll()
    hub.poll()
    assert hub.market.cursors_seen == [None, "2", "3"]
    with hub.engine.connect() as conn:
        ids = conn.execute(sa.select(orders.c.marketplace_order_id).order_by(orders.c.id)).scalars().all()
        cursor = conn.execute(
            sa.select(channel_cursors.c.value).where(channel_cursors.c.name == "fake.orders.cursor")
        ).scalar_one()
        recorded = conn.execute(sa.select(exchanges.c.subject, exchanges.c.operation)).all()
        buckets = conn.execute(sa.select(rate_buckets.c.bucket)).scalars().all()
    assert ids == ["F-1", "F-2", "F-3"] and cursor == "3"
    assert set(recorded) == {("orders.poll", "list")} and len(recorded) == 3
    assert "fake:list" in buckets
    # no acceptance step on this marketplace; every order goes to the merchant side once
    assert hub.jobs("orders.accept") == []
    assert len(hub.jobs("orders.deliver")) == 3
    # only the feeds the connector declares are read (returns yes, messages no)
    assert len(hub.jobs("orders.returns")) >= 1 and hub.jobs("orders.messages") == []
    [summary] = [j.result for j in hub.jobs("orders.poll")][:1]
    assert summary == {
        "fetched": 2,
        "orders": 2,
        "created": 2,
        "to_accept": 0,
        "cancellations": 0,
        "alerts": 0,
    }


def test_an_undeclared_operation_is_never_called(hub: Hub, now: datetime) -> None:
    hub.market.orders = [make_order(1, now, MiraklOrderState.WAITING_ACCEPTANCE)]
    hub.poll()
    assert hub.jobs("orders.accept") == []  # acceptance is not declared: no job queued
    hub.enqueue("orders.accept", {"order_id": 1})
    hub.worker.run(burst=True)
    [job] = hub.jobs("orders.accept")
    assert job.state == "dead" and "does not support orders.accept" in job.last_error
    assert hub.market.accepted == {}


def test_acceptance_through_the_port_and_a_settled_one(engine: Any, now: datetime) -> None:
    hub = build_hub(engine, now, BASIC | {Operation.ACCEPT})
    hub.market.orders = [
        make_order(1, now, MiraklOrderState.WAITING_ACCEPTANCE),
        make_order(2, now, MiraklOrderState.WAITING_ACCEPTANCE),
    ]
    hub.market.settle_acceptance_as = None
    hub.enqueue("orders.poll")
    # accept the first order normally, then let the marketplace report the second as already accepted
    hub.worker.run(burst=True)
    assert set(hub.market.accepted) == {"F-1", "F-2"}
    assert hub.market.accepted["F-1"] == [LineDecision("F-1-1", True, None)]
    with hub.engine.connect() as conn:
        accepted = conn.execute(sa.select(orders.c.accepted_at).order_by(orders.c.id)).scalars().all()
    assert all(a is not None for a in accepted)
    hub.market.orders.append(make_order(3, now, MiraklOrderState.WAITING_ACCEPTANCE))
    hub.market.settle_acceptance_as = MiraklOrderState.SHIPPING
    hub.poll()
    with hub.engine.connect() as conn:
        third_id = conn.execute(
            sa.select(orders.c.id).where(orders.c.marketplace_order_id == "F-3")
        ).scalar_one()
    third = [j for j in hub.jobs("orders.accept") if j.payload["order_id"] == third_id]
    assert [j.result for j in third] == [{"found_accepted": "to_ship"}]


def test_a_failing_feed_alerts_and_never_holds_orders_back(hub: Hub, now: datetime) -> None:
    hub.market.returns_fail = True
    hub.market.orders = [make_order(1, now)]
    hub.poll()
    [feed_job] = hub.jobs("orders.returns")
    assert (
        feed_job.state == "succeeded"
        and feed_job.result["failed"] == "returns are not offered to this seller"
    )
    with hub.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one() == 1
        kinds = conn.execute(sa.select(alerts.c.kind)).scalars().all()
        kept = (
            conn.execute(sa.select(exchanges.c.subject).where(exchanges.c.operation == "returns"))
            .scalars()
            .all()
        )
    assert "feed_failing" in kinds and kept == ["feed:returns"]
    # recovered: the backoff over, the next read stores the returns and resolves the alert
    hub.market.returns_fail = False
    hub.market.returns = [
        FeedItem(
            "F-1",
            "R-1",
            now,
            {"id": "R-1"},
            {
                "state": "OPEN",
                "rma": "RMA-1",
                "lines": [{"order_line_id": "F-1-1", "quantity": 1, "reason_code": "x"}],
            },
        )
    ]
    hub.clock.advance(3_600)
    hub.poll()
    with hub.engine.connect() as conn:
        stored = conn.execute(
            sa.select(returns_table.c.marketplace_return_id, returns_table.c.order_id)
        ).all()
        open_alerts = conn.execute(
            sa.select(sa.func.count()).where(alerts.c.resolved_at.is_(None))
        ).scalar_one()
        order_id = conn.execute(sa.select(orders.c.id)).scalar_one()
    assert [tuple(r) for r in stored] == [("R-1", order_id)] and open_alerts == 0


def test_customer_messages_join_their_order_whichever_came_first(engine: Any, now: datetime) -> None:
    hub = build_hub(engine, now, BASIC | {Operation.FETCH_MESSAGES})
    hub.market.messages = [
        FeedItem(
            "F-1", "M-1", now, {"who": "buyer"}, {"author": "Anna", "subject": "s", "body": "Gift wrap"}
        ),
        FeedItem("F-1", "M-2", now, {"who": "operator"}, {"author": "Op", "subject": "s", "body": "Noted"}),
    ]
    hub.enqueue("orders.messages")  # the messages arrive before their order
    hub.worker.run(burst=True)
    hub.market.orders = [replace(make_order(1, now), attributes={"x": "y"})]
    hub.poll()
    with hub.engine.connect() as conn:
        order_id, attributes, message = conn.execute(
            sa.select(orders.c.id, orders.c.attributes, orders.c.customer_message)
        ).one()
        linked = conn.execute(sa.select(order_messages.c.order_id)).scalars().all()
    assert attributes[":FakeNote"] == "Gift wrap" and message == "Gift wrap" and attributes["x"] == "y"
    assert linked == [order_id, order_id]


@pytest.mark.parametrize("cancelled", ["CANCELED", "CANCELLED", "REFUSED"])
def test_a_line_cancelled_after_delivery_is_noticed_whatever_the_marketplace_calls_it(
    hub: Hub, now: datetime, cancelled: str
) -> None:
    """Lines keep their raw state: Mirakl says CANCELED, Amazon CANCELLED; both take the line away."""
    first = make_order(1, now)
    two_lines = replace(
        first, lines=(*first.lines, replace(first.lines[0], line_id="F-1-2", offer_sku="SKU-2"))
    )
    hub.market.orders = [two_lines]
    hub.poll()
    with hub.engine.begin() as conn:
        conn.execute(sa.update(orders).values(merchant_status="delivered"))
    later = replace(
        two_lines,
        updated_at=now + timedelta(minutes=5),
        lines=(two_lines.lines[0], replace(two_lines.lines[1], state=cancelled)),
    )
    hub.market.orders.append(later)  # the next version, after the cursor
    hub.clock.advance(300)
    hub.poll()
    notices = hub.jobs("orders.notify_cancellation")
    assert [n.payload["lines"] for n in notices] == [["F-1-2"]]
