"""The connector contract suite: what every marketplace connector must pass, against its own sandbox.

The tests live in ``test_connectors.py``; each runs once per registered connector (``WORLDS`` must
cover :data:`tradelane.connectors.registry.CONNECTORS` — a registered connector without a world fails
the suite). Everything is driven the way production drives it: jobs queued on a real database and run
by a :class:`~tradelane.sync.worker.Worker`, the generic handlers resolving the channel's connector
through the registry, the services (order intake, acceptance, offer publishing, fulfilment push)
calling it through a :class:`~tradelane.services.connector_session.ConnectorSession` (durable budgets,
429 holds), and the connector speaking real HTTP to its sandbox on 127.0.0.1. The hub's clock and the
sandbox's clock move together (:meth:`Harness.advance`; the worker's ``sleep`` advances both), so
deadlines, payment delays, Retry-After and rate budgets are deterministic.

Capabilities are checked, not trusted: every connector the services build is wrapped in a
:class:`SpyConnector` (the registry's specs with their factory wrapped — :func:`spied_registry`), which
records each port call with whether the connector declared that operation at the time; the harness
asserts after every test that no undeclared operation was called and that every remote operation the
sandbox saw has a declared rate budget. A case whose operation the connector does not declare still
queues the job: the hub must refuse it with the connector's reason, without calling; then the case is
skipped with that reason.

Adding a connector: add its sandbox, then a :class:`MarketplaceWorld` subclass here (the "world
adapter") and append it to :data:`WORLDS`. The adapter says, for its sandbox:

* how to start it (a seeded state and a server on a free 127.0.0.1 port, clock starting at ``now``)
  and create the channel through the connector's own ``add_channel`` (:meth:`MarketplaceWorld.start`;
  ``published`` True: the sandbox enforces the marketplace's published rate limits and the channel
  keeps its declared budgets; False: neither gets in the way);
* how to seed: catalog products the marketplace knows (:meth:`~MarketplaceWorld.products`), one the
  marketplace's OWN rules reject (:meth:`~MarketplaceWorld.rejected_product`), offers listed directly
  (:meth:`~MarketplaceWorld.list_directly`) and customer orders (:meth:`~MarketplaceWorld.place_order`,
  paid — or awaiting acceptance where the marketplace has that step);
* how to read the marketplace's side: listed offers, an order's acceptance, shipment, cancellation and
  refund, and the sandbox's request log as :class:`Seen` records (authentication calls left out);
* how to misbehave: a 429 storm with Retry-After on an operation, a lasting garbage / truncated route
  on any operation it serves (:meth:`~MarketplaceWorld.served_ops`), a duplicated page on the orders
  listing; :attr:`~MarketplaceWorld.orders_op`, :attr:`~MarketplaceWorld.import_op`,
  :attr:`~MarketplaceWorld.offer_ops` and :attr:`~MarketplaceWorld.ship_ops` name the remote operations
  involved, and
  :attr:`~MarketplaceWorld.shippable_after` how long after intake (and acceptance) an order may ship.

A connector whose capabilities depend on its channel's settings adds a world per setting that changes
them to :data:`VARIANTS` (e.g. a Mirakl shop without multi-shipment declares no partial shipments).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from helpers import FakeClock, make_tenant, put_live
from mirakl_world import API_KEY, GENEROUS, SHOP_ID, sandbox_catalog
from mirakl_world import catalog as mirakl_catalog
from tradelane.bootstrap import register_handlers
from tradelane.connectors.amazon import connector as amazon
from tradelane.connectors.amazon.sandbox import listings as amazon_listings
from tradelane.connectors.amazon.sandbox import operations as amazon_operations
from tradelane.connectors.amazon.sandbox.server import AmazonSandboxServer
from tradelane.connectors.amazon.sandbox.state import AmazonSandboxState, SandboxSettings
from tradelane.connectors.base import (
    Cancellation,
    Capabilities,
    CheckReport,
    Document,
    FeedChanges,
    ImportRef,
    ImportResult,
    LineDecision,
    ListedOffer,
    MarketplaceConnector,
    OfferOutcome,
    OfferUpdate,
    Operation,
    OrderChanges,
    Refund,
    Shipment,
    SubmitMode,
)
from tradelane.connectors.dispatch import register_connectors
from tradelane.connectors.mirakl import connector as mirakl
from tradelane.connectors.mirakl.sandbox import SandboxClock, SandboxServer, SandboxState, Shop
from tradelane.connectors.mirakl.sandbox import operations as mirakl_operations
from tradelane.connectors.registry import CONNECTORS, ConnectorSpec, get_connector
from tradelane.domain.catalog import Product
from tradelane.persistence.tables import jobs, orders, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import Channel
from tradelane.services.offers import list_offers
from tradelane.services.orders import get_order
from tradelane.services.outbox import bind_new_products, mark_offers_dirty
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig

# --- the spy -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    connector: str
    operation: Operation
    declared: bool


@dataclass
class CallLog:
    """Every port call the services made in one test, and the offer outcomes the connectors returned."""

    calls: list[Call] = field(default_factory=list)
    outcomes: list[OfferOutcome] = field(default_factory=list)

    def of(self, operation: Operation) -> list[Call]:
        return [c for c in self.calls if c.operation is operation]

    def undeclared(self) -> list[Call]:
        return [c for c in self.calls if not c.declared]


class SpyConnector:
    """A connector wrapped to record each port call (and whether its operation was declared at the
    time). Everything else (``carrier_codes``, ``document_present``...) passes through, so the
    services see exactly what the wrapped connector offers."""

    def __init__(self, inner: MarketplaceConnector, log: CallLog) -> None:
        self._inner = inner
        self._log = log

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def capabilities(self) -> Capabilities:
        return self._inner.capabilities

    def _record(self, operation: Operation) -> None:
        declared = self._inner.capabilities.supports(operation)
        self._log.calls.append(Call(self._inner.name, operation, declared))

    def __getattr__(self, item: str) -> Any:
        if item.startswith("_"):
            raise AttributeError(item)
        return getattr(self._inner, item)

    def fetch_orders(self, cursor: str | None, *, now: datetime) -> OrderChanges:
        self._record(Operation.FETCH_ORDERS)
        return self._inner.fetch_orders(cursor, now=now)

    def fetch_messages(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        self._record(Operation.FETCH_MESSAGES)
        return self._inner.fetch_messages(cursor, now=now)

    def fetch_returns(self, cursor: str | None, *, now: datetime) -> FeedChanges:
        self._record(Operation.FETCH_RETURNS)
        return self._inner.fetch_returns(cursor, now=now)

    def accept(self, order_id: str, decisions: Sequence[LineDecision]) -> None:
        self._record(Operation.ACCEPT)
        self._inner.accept(order_id, decisions)

    def submit_offers(self, offers: Sequence[OfferUpdate], mode: SubmitMode) -> ImportRef:
        self._record(
            Operation.SUBMIT_OFFERS_FULL if mode is SubmitMode.FULL else Operation.SUBMIT_OFFERS_DELTA
        )
        ref = self._inner.submit_offers(offers, mode)
        if ref.result is not None:
            self._log.outcomes.extend(ref.result.outcomes)
        return ref

    def import_result(self, ref: ImportRef) -> ImportResult:
        self._record(Operation.READ_IMPORT)
        result = self._inner.import_result(ref)
        self._log.outcomes.extend(result.outcomes)
        return result

    def list_offers(self) -> Sequence[ListedOffer]:
        self._record(Operation.LIST_OFFERS)
        return self._inner.list_offers()

    def ship(self, shipment: Shipment) -> None:
        self._record(Operation.SHIP)
        self._inner.ship(shipment)

    def cancel(self, cancellation: Cancellation) -> None:
        self._record(Operation.CANCEL)
        self._inner.cancel(cancellation)

    def refund(self, refund: Refund) -> None:
        self._record(Operation.REFUND)
        self._inner.refund(refund)

    def upload_document(self, document: Document) -> None:
        self._record(Operation.UPLOAD_DOCUMENT)
        self._inner.upload_document(document)

    def set_holiday(self, start: datetime | None, end: datetime | None) -> None:
        self._record(Operation.SET_HOLIDAY)
        self._inner.set_holiday(start, end)

    def check(self) -> CheckReport:
        return self._inner.check()

    def close(self) -> None:
        self._inner.close()


def spied_spec(spec: ConnectorSpec, log: CallLog) -> ConnectorSpec:
    factory = spec.factory
    return replace(spec, factory=lambda env: SpyConnector(factory(env), log))


def spied_registry(
    log: CallLog, adapt: Callable[[ConnectorSpec], ConnectorSpec] | None = None
) -> JobRegistry:
    """The production job registry (bootstrap's), with every connector kind dispatched over the
    registry's specs whose connectors are wrapped in :class:`SpyConnector` (then in what ``adapt``
    makes of the spied spec: a test's misbehaving variant of a connector)."""
    production = JobRegistry()
    register_handlers(production)
    registry = JobRegistry()
    specs = {name: spied_spec(spec, log) for name, spec in CONNECTORS.items()}
    register_connectors(registry, connectors={n: adapt(s) for n, s in specs.items()} if adapt else specs)
    for kind in production.kinds():
        if registry.get(kind) is None:
            handler = production.get(kind)
            assert handler is not None
            registry.register(kind, handler)
    return registry


# --- the world adapter ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request in a sandbox's log: the remote operation, when (sandbox clock), the status, and the
    injected fault if any."""

    op: str
    at: datetime
    status: int
    fault: str | None


@dataclass(frozen=True)
class Shipped:
    """What the marketplace shows shipped of an order: quantities by SKU, and the tracking number."""

    quantities: dict[str, int]
    tracking: str | None


class MarketplaceWorld(ABC):
    """One connector's sandbox, as the suite needs it (see the module docstring)."""

    connector: ClassVar[str]
    #: The remote operation that reads order changes (one request per page).
    orders_op: ClassVar[str]
    #: The remote operation that reads an asynchronous offer import's state.
    import_op: ClassVar[str]
    #: The remote operations a shipment may call, the first one first.
    ship_ops: ClassVar[tuple[str, ...]]
    #: The remote operation submitting offers, by submission mode (``full``, ``delta`` — a delta of a
    #: single changed offer among a few).
    offer_ops: ClassVar[dict[str, str]]
    #: Seconds after intake (and acceptance) before the marketplace lets the order ship.
    shippable_after: ClassVar[float] = 0.0

    @abstractmethod
    def start(
        self, engine: Engine, now: datetime, tenant_id: int, keyring: KeyRing, *, published: bool
    ) -> Iterator[Channel]:
        """Start the sandbox and create the channel (a generator: the sandbox stops after it)."""

    @abstractmethod
    def advance(self, seconds: float) -> None: ...

    @abstractmethod
    def products(self, count: int) -> list[Product]:
        """``count`` catalog products the marketplace knows (the same SKUs on every call: a test
        calls it once)."""

    @abstractmethod
    def rejected_product(self) -> Product:
        """A product whose offer the marketplace's own rules reject (per offer, not the whole batch)."""

    @abstractmethod
    def listed(self) -> dict[str, tuple[Decimal, int]]:
        """SKU → (price, quantity) of the offers on the marketplace now."""

    @abstractmethod
    def list_directly(self, items: Sequence[Product]) -> None:
        """List offers for ``items`` on the marketplace without the hub (to place orders on)."""

    @abstractmethod
    def place_order(self, lines: Sequence[tuple[str, int]]) -> str:
        """A customer order of (SKU, quantity) lines, paid (or awaiting acceptance); its id."""

    def acceptance(self, order_id: str) -> tuple[datetime | None, datetime | None]:
        """(accepted at, acceptance deadline) of an order, where the marketplace has acceptance."""
        return None, None

    @abstractmethod
    def shipped(self, order_id: str) -> Shipped | None: ...

    def cancelled(self, order_id: str) -> bool:
        return False

    def refunded(self, order_id: str) -> bool:
        return False

    @abstractmethod
    def requests(self) -> list[Seen]: ...

    @abstractmethod
    def throttle(self, op: str, count: int, retry_after: int) -> None:
        """The next ``count`` calls of ``op`` answer 429 with ``Retry-After: retry_after``."""

    @abstractmethod
    def break_route(self, op: str, mode: str) -> None:
        """Every call of ``op`` answers ``garbage`` (200, not JSON) or ``truncated`` (half the body)."""

    @abstractmethod
    def heal_route(self, op: str) -> None: ...

    @abstractmethod
    def served_ops(self) -> frozenset[str]:
        """The remote operations the sandbox serves (routes that can be broken)."""

    @abstractmethod
    def duplicate_page(self) -> None:
        """The next page of :attr:`orders_op` serves the previous page again."""


class MiraklWorld(MarketplaceWorld):
    """A Mirakl shop (multi-shipment on) on the Mirakl sandbox."""

    connector = "mirakl"
    orders_op = "OR11"
    ship_ops = ("OR23", "OR24", "ST01")
    offer_ops: ClassVar[dict[str, str]] = {"full": "OF01", "delta": "OF24"}
    import_op = "OF02"
    shippable_after = 120.0  # the sandbox debits the customer 60 s after acceptance
    #: The operator's multi-shipment option (partial shipments declared or not).
    multi_shipment: ClassVar[bool] = True

    state: SandboxState

    def start(
        self, engine: Engine, now: datetime, tenant_id: int, keyring: KeyRing, *, published: bool
    ) -> Iterator[Channel]:
        self.state = SandboxState(
            7,
            shops=[Shop(SHOP_ID, "Suite Shop", API_KEY, multi_shipment=self.multi_shipment)],
            products=sandbox_catalog(12),
            rate_limits=None if published else {},
            start=now,
        )
        with SandboxServer(self.state) as server:
            options: dict[str, Any] = {"multi_shipment": self.multi_shipment}
            if not published:
                options["rate_limits"] = GENEROUS
            with engine.begin() as conn:
                channel = mirakl.add_channel(
                    conn,
                    tenant_id=tenant_id,
                    name="suite-mirakl",
                    hostname=server.url,
                    shop_id=str(SHOP_ID),
                    api_key=API_KEY,
                    keyring=keyring,
                    now=now,
                    options=options,
                )
                put_live(conn, channel.id)
            yield channel

    def advance(self, seconds: float) -> None:
        self.state.advance(seconds)

    def products(self, count: int) -> list[Product]:
        return mirakl_catalog(count)

    def rejected_product(self) -> Product:
        # A GTIN the operator's catalog does not hold: OF01's error report names the offer.
        return Product(
            sku="GHOST",
            title="Unknown",
            gtin="4006381333931",
            price=Decimal("5.00"),
            currency="EUR",
            quantity=1,
        )

    def listed(self) -> dict[str, tuple[Decimal, int]]:
        return {sku: (o.price, o.quantity) for sku, o in self.state.shop_offers(SHOP_ID).items()}

    def list_directly(self, items: Sequence[Product]) -> None:
        for item in items:
            product = self.state.find_product("EAN", item.gtin or "")
            assert product is not None, item
            self.state.add_offer(SHOP_ID, item.sku, product.sku, item.price or Decimal("1"), 100)

    def place_order(self, lines: Sequence[tuple[str, int]]) -> str:
        return self.state.create_order(SHOP_ID, [{"offer_sku": sku, "quantity": q} for sku, q in lines])

    def acceptance(self, order_id: str) -> tuple[datetime | None, datetime | None]:
        order = self.state.order(order_id)
        return order.accepted_at, order.acceptance_deadline

    def shipped(self, order_id: str) -> Shipped | None:
        order = self.state.order(order_id)
        if order.state.value == "SHIPPED":
            quantities = {ln.offer_sku: ln.quantity for ln in order.lines}
        else:
            quantities = {ln.offer_sku: ln.shipped_quantity for ln in order.lines if ln.shipped_quantity}
        if not quantities:
            return None
        return Shipped(quantities, order.tracking.tracking_number if order.tracking else None)

    def cancelled(self, order_id: str) -> bool:
        return self.state.order(order_id).state.value == "CANCELED"

    def refunded(self, order_id: str) -> bool:
        return any(line.refunds for line in self.state.order(order_id).lines)

    def requests(self) -> list[Seen]:
        return [
            Seen(r.op_id, r.at, r.status, r.fault.value if r.fault else None)
            for r in self.state.requests
            if r.op_id is not None
        ]

    def throttle(self, op: str, count: int, retry_after: int) -> None:
        self.state.inject(op, "rate_limit", count, retry_after=retry_after)

    def break_route(self, op: str, mode: str) -> None:
        self.state.set_route(op, mode)

    def heal_route(self, op: str) -> None:
        self.state.clear_route(op)

    def served_ops(self) -> frozenset[str]:
        return mirakl_operations.known_op_ids()

    def duplicate_page(self) -> None:
        self.state.inject("OR11", "duplicate_page")


class MiraklSingleShipmentWorld(MiraklWorld):
    """A Mirakl shop whose operator has no multi-shipment: partial shipments are not declared."""

    multi_shipment = False


class AmazonWorld(MarketplaceWorld):
    """A merchant-fulfilled seller in amazon.de on the SP-API sandbox."""

    connector = "amazon"
    orders_op = "searchOrders"
    import_op = "getFeed"
    ship_ops = ("confirmShipment",)
    offer_ops: ClassVar[dict[str, str]] = {"full": "createFeed", "delta": "patchListingsItem"}
    marketplace_id = "A1PA6795UKMFR9"

    state: AmazonSandboxState

    @property
    def seller_id(self) -> str:
        return next(a.seller_id for a in self.state.accounts.values() if a.region == "eu")

    def start(
        self, engine: Engine, now: datetime, tenant_id: int, keyring: KeyRing, *, published: bool
    ) -> Iterator[Channel]:
        self.state = AmazonSandboxState(
            seed=7,
            rate_limits="published" if published else "generous",
            region="eu",
            products=40,
            settings=SandboxSettings(feed_queue_seconds=1, feed_processing_seconds=1),
            clock=SandboxClock(now),
        )
        app = self.state.application
        seller = self.state.account(self.seller_id)
        with AmazonSandboxServer(self.state) as server:
            with engine.begin() as conn:
                channel = amazon.add_channel(
                    conn,
                    tenant_id=tenant_id,
                    name="suite-amazon",
                    seller_id=seller.seller_id,
                    marketplace_id=self.marketplace_id,
                    client_id=app.client_id,
                    client_secret=app.client_secret,
                    refresh_token=seller.refresh_token,
                    keyring=keyring,
                    now=now,
                    region="eu",
                    endpoint=server.url,
                    token_endpoint=server.url,
                )
                put_live(conn, channel.id)
            yield channel

    def advance(self, seconds: float) -> None:
        self.state.advance(seconds)

    def products(self, count: int) -> list[Product]:
        return [
            Product(
                sku=f"SKU-{i}",
                title=f"Product {i}",
                price=Decimal("10.00") + i,
                currency="EUR",
                quantity=10,
                attributes={"attr:asin": f"B0SBX{i:05d}"},
            )
            for i in range(1, count + 1)
        ]

    def rejected_product(self) -> Product:
        # An ASIN the Amazon catalog does not hold: the listing is refused with its issue.
        return Product(
            sku="GHOST",
            title="Unknown",
            price=Decimal("5.00"),
            currency="EUR",
            quantity=1,
            attributes={"attr:asin": "B0NOSUCH00"},
        )

    def listed(self) -> dict[str, tuple[Decimal, int]]:
        found: dict[str, tuple[Decimal, int]] = {}
        with self.state.lock:
            listings = [
                listing for (seller, _), listing in self.state.listings.items() if seller == self.seller_id
            ]
        for listing in listings:
            price = amazon_listings.offer_price(listing, self.marketplace_id)
            quantity = amazon_listings.quantity(listing)
            if price is not None and quantity is not None:
                found[listing.sku] = (price[0], quantity)
        return found

    def list_directly(self, items: Sequence[Product]) -> None:
        for item in items:
            asin = str(item.attributes["attr:asin"])
            self.state.add_offer(self.seller_id, item.sku, asin, item.price or Decimal("1"), 100)

    def place_order(self, lines: Sequence[tuple[str, int]]) -> str:
        return self.state.create_order(self.seller_id, list(lines), paid=True).order_id

    def shipped(self, order_id: str) -> Shipped | None:
        order = self.state.order(order_id)
        if not order.packages:
            return None
        sku_of = {item.order_item_id: item.sku for item in order.items}
        quantities: dict[str, int] = {}
        for package in order.packages:
            for item_id, quantity in package.items:
                quantities[sku_of[item_id]] = quantities.get(sku_of[item_id], 0) + quantity
        return Shipped(quantities, order.packages[-1].tracking_number)

    def requests(self) -> list[Seen]:
        with self.state.lock:
            records = list(self.state.requests)
        return [Seen(r.op_id, r.at, r.status, r.fault) for r in records if r.op_id not in (None, "lwaToken")]

    def throttle(self, op: str, count: int, retry_after: int) -> None:
        with self.state.lock:
            self.state.faults.inject(op, "throttle", count=count, retry_after=retry_after)

    def break_route(self, op: str, mode: str) -> None:
        self.state.set_route(op, mode)

    def heal_route(self, op: str) -> None:
        self.state.clear_route(op)

    def served_ops(self) -> frozenset[str]:
        return frozenset(amazon_operations.BY_ID)

    def duplicate_page(self) -> None:
        with self.state.lock:
            self.state.faults.inject("searchOrders", "duplicate_page")


#: One world per registered connector.
WORLDS: tuple[type[MarketplaceWorld], ...] = (MiraklWorld, AmazonWorld)
#: Worlds of the same connectors with other declared capabilities (settings-dependent ones).
VARIANTS: tuple[type[MarketplaceWorld], ...] = (MiraklSingleShipmentWorld,)


# --- the harness -----------------------------------------------------------------------------------


@dataclass
class Harness:
    """A tenant with one channel of the world's connector, on a real database, run by a worker whose
    connectors are spied on."""

    engine: Engine
    world: MarketplaceWorld
    clock: FakeClock
    tenant_id: int
    channel: Channel
    keyring: KeyRing
    log: CallLog
    worker: Worker = field(init=False)

    def __post_init__(self) -> None:
        self.rewire(None)

    def rewire(self, adapt: Callable[[ConnectorSpec], ConnectorSpec] | None) -> None:
        """A new worker whose connectors are spied on and, with ``adapt``, replaced by what it makes of
        each spied spec (see :func:`spied_registry`)."""
        self.worker = Worker(
            self.engine,
            spied_registry(self.log, adapt),
            self.clock,
            WorkerConfig(schedule=False, lease_seconds=60, backoff_base=1, backoff_cap=30),
            services={"keyring": self.keyring},
            name="suite-worker",
            sleep=self.advance,
        )

    @property
    def spec(self) -> ConnectorSpec:
        return get_connector(self.world.connector)

    @property
    def capabilities(self) -> Capabilities:
        """What this channel's connector declares."""
        return self.spec.channel_capabilities(self.channel.settings)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.world.advance(seconds)

    def run(self, *, step: float = 0.0, max_rounds: int = 60) -> None:
        """Run ready jobs; with ``step``, keep moving both clocks until nothing is queued."""
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

    def enqueue(self, kind: str, payload: dict[str, Any] | None = None, *, flow: str = "orders") -> int:
        with self.engine.begin() as conn:
            return enqueue(
                conn,
                JobSpec(self.tenant_id, kind, payload or {}, channel_id=self.channel.id, flow=flow),
                now=self.clock(),
            ).job_id

    def jobs(self, kind: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.id)).all())

    def add_products(self, items: Sequence[Product], *, bind: bool = True) -> None:
        """Catalog products of the tenant; ``bind``: bound to the channel as offers (to publish)."""
        now = self.clock()
        with self.engine.begin() as conn:
            ids = [
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
                for p in items
            ]
            if bind:
                bind_new_products(conn, self.tenant_id, ids, now=now)

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

    def offer_statuses(self) -> dict[str, tuple[str, str | None]]:
        with self.engine.connect() as conn:
            rows = list_offers(conn, self.tenant_id, limit=1000)
        return {r["sku"]: (r["status"], r["last_error"]) for r in rows}

    def orders(self) -> dict[str, dict[str, Any]]:
        """The channel's stored orders by marketplace id (each with its lines and history)."""
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(orders.c.id).where(orders.c.channel_id == self.channel.id)).scalars()
            found = [get_order(conn, self.tenant_id, i) for i in ids]
        return {o["marketplace_order_id"]: o for o in found}

    def order_rows(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(orders)
                    .where(orders.c.channel_id == self.channel.id)
                ).scalar_one()
            )

    def stock(self, count: int) -> list[Product]:
        """``count`` catalog products in the hub, listed on the marketplace directly (orders can be
        placed on them without an offers sync; they are not bound, so no offers job runs)."""
        items = self.world.products(count)
        self.add_products(items, bind=False)
        self.world.list_directly(items)
        return items

    def take_orders(self, *lines: Sequence[tuple[str, int]], ready: bool = False) -> list[str]:
        """Orders placed on the marketplace and polled into the hub (accepted where required); with
        ``ready``, polled again once the marketplace lets them ship."""
        ids = [self.world.place_order(order_lines) for order_lines in lines]
        self.enqueue("orders.poll")
        self.run()
        if ready:
            self.advance(self.world.shippable_after)
            self.enqueue("orders.poll")
            self.run()
        return ids

    def assert_honest(self) -> None:
        """No undeclared operation was called; every remote operation used has a declared budget; the
        channel's capabilities are self-consistent."""
        assert self.log.undeclared() == [], self.log.undeclared()
        assert capability_problems(self.capabilities) == []
        budgets = self.capabilities.budgets
        used = {seen.op for seen in self.world.requests()}
        assert used <= set(budgets), f"remote operations without a declared budget: {used - set(budgets)}"

    def assert_refused_without_call(self, kind: str, operation: Operation) -> str:
        """A job of ``kind`` for an undeclared ``operation`` dies with a reason and calls nothing."""
        [job] = self.jobs(kind)
        assert job.state == "dead", (job.state, job.last_error)
        assert job.last_error and not job.last_error.startswith("unexpected error"), job.last_error
        assert self.log.of(operation) == []
        hint = self.capabilities.hints.get(operation.value)
        return f"{self.world.connector} does not declare {operation.value}" + (f": {hint}" if hint else "")


@contextmanager
def open_harness(
    engine: Engine, now: datetime, world_type: type[MarketplaceWorld], *, published: bool = False
) -> Iterator[Harness]:
    """A :class:`Harness` on a fresh sandbox of ``world_type``; asserts :meth:`Harness.assert_honest`
    when the test body succeeded."""
    world = world_type()
    tenant, _ = make_tenant(engine, "suite", now)
    keyring = KeyRing([generate_key()])
    for channel in world.start(engine, now, tenant.id, keyring, published=published):
        harness = Harness(engine, world, FakeClock(now), tenant.id, channel, keyring, CallLog())
        yield harness
        harness.assert_honest()


def capability_problems(caps: Capabilities) -> list[str]:
    """What is inconsistent in ``caps`` (pure): budgets and batch sizes positive, acceptance declared
    with its deadline exactly when required, flags only with their operation, a hint for every
    operation not declared."""
    problems: list[str] = []
    if Operation.FETCH_ORDERS not in caps.operations:
        problems.append("a marketplace connector takes orders in: fetch_orders undeclared")
    if not caps.budgets:
        problems.append("no rate budget declared")
    problems += [f"budget {op}: {b}" for op, b in caps.budgets.items() if b.per_second <= 0 or b.burst < 1]
    problems += [f"max_batch {op.value}: {n}" for op, n in caps.max_batch.items() if n < 1]
    if caps.acceptance_required != (Operation.ACCEPT in caps.operations):
        problems.append("acceptance_required and the accept operation disagree")
    if (caps.acceptance_deadline is not None) != caps.acceptance_required:
        problems.append("an acceptance deadline exactly when acceptance is required")
    offers = {Operation.SUBMIT_OFFERS_FULL, Operation.SUBMIT_OFFERS_DELTA} & caps.operations
    if offers and caps.asynchronous_offer_imports and Operation.READ_IMPORT not in caps.operations:
        problems.append("asynchronous offer imports without read_import")
    if (caps.partial_shipments or caps.tracking_required) and Operation.SHIP not in caps.operations:
        problems.append("shipment flags without ship")
    if caps.line_level_cancellation and Operation.CANCEL not in caps.operations:
        problems.append("line-level cancellation without cancel")
    problems += [
        f"{op.value} undeclared without a hint"
        for op in set(Operation) - caps.operations
        if not caps.hints.get(op.value)
    ]
    return problems


def budget_overruns(seen: Sequence[Seen], capabilities: Capabilities) -> list[str]:
    """Requests beyond each operation's declared token bucket (pure): replays the log against a bucket
    of ``burst`` tokens refilled at ``per_second``; every request, throttled or not, takes a token."""
    overruns: list[str] = []
    by_op: dict[str, list[datetime]] = {}
    for item in seen:
        by_op.setdefault(item.op, []).append(item.at)
    for op, times in by_op.items():
        budget = capabilities.budgets[op]
        tokens, last = float(budget.burst), times[0]
        for at in sorted(times):
            tokens = min(float(budget.burst), tokens + (at - last).total_seconds() * budget.per_second)
            last = at
            tokens -= 1.0
            if tokens < -1e-6:
                overruns.append(
                    f"{op} at {at.isoformat()} beyond {budget.per_second:g}/s burst {budget.burst}"
                )
    return overruns


def retry_after_violations(seen: Sequence[Seen], retry_after: float) -> list[str]:
    """Requests of an operation sent sooner than ``retry_after`` after a throttled (429) answer of the
    same operation (pure)."""
    violations: list[str] = []
    ordered = sorted(seen, key=lambda s: s.at)
    for i, item in enumerate(ordered):
        if item.status != 429:
            continue
        not_before = item.at + timedelta(seconds=retry_after)
        early = [s for s in ordered[i + 1 :] if s.op == item.op and s.at < not_before]
        violations += [f"{s.op} at {s.at.isoformat()} < {not_before.isoformat()}" for s in early]
    return violations


def late_retries(
    seen: Sequence[Seen], capabilities: Capabilities, retry_after: float, slack: float
) -> list[str]:
    """Requests of an operation that followed a throttled (429) answer later than needed (pure): more
    than ``slack`` after the later of the Retry-After moment and the moment the operation's declared
    budget (replayed as in :func:`budget_overruns`) had a token again. ``slack`` is how coarsely the
    test moves its clocks."""
    late: list[str] = []
    ordered = sorted(seen, key=lambda s: s.at)
    tokens: dict[str, tuple[float, datetime]] = {}
    for i, item in enumerate(ordered):
        budget = capabilities.budgets[item.op]
        left, last = tokens.get(item.op, (float(budget.burst), item.at))
        left = min(float(budget.burst), left + (item.at - last).total_seconds() * budget.per_second) - 1.0
        tokens[item.op] = (left, item.at)
        if item.status != 429:
            continue
        nxt = next((s for s in ordered[i + 1 :] if s.op == item.op), None)
        if nxt is None:
            continue
        refill = max(0.0, 1.0 - left) / budget.per_second
        due = item.at + timedelta(seconds=max(retry_after, refill))
        if nxt.at > due + timedelta(seconds=slack):
            late.append(f"{nxt.op} at {nxt.at.isoformat()} > {due.isoformat()} + {slack:g}s")
    return late
