"""The sandbox's whole world and its programmatic control surface.

:class:`SandboxState` holds shops, catalog, offers, imports, orders (and their shipments, messages,
returns, documents), the clock, pending faults, rate limits and the request log. Tests drive it
directly (``create_order``, ``advance``, ``inject``...) or over the ``/_sandbox`` HTTP endpoints; the
seller API reads and mutates it through the same methods. Every public method takes the state lock,
so the real-HTTP server thread and a test thread can share one state.

Determinism: ids and generated data come from one ``random.Random(seed)``; with a frozen clock the
same seed and the same sequence of calls give byte-identical responses.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal

from tradelane.connectors.mirakl.sandbox import operations, seeddata
from tradelane.connectors.mirakl.sandbox.clock import SandboxClock
from tradelane.connectors.mirakl.sandbox.config import OrderLineSpec, SandboxConfig, decimals, line_spec
from tradelane.connectors.mirakl.sandbox.errors import SandboxApiError
from tradelane.connectors.mirakl.sandbox.faults import (
    MANIFEST_RATE_LIMITS,
    Fault,
    FaultBook,
    FaultKind,
    RateLimit,
    RateLimiter,
    RequestRecord,
    RouteMode,
    RouteOverride,
)
from tradelane.connectors.mirakl.sandbox.models import (
    AdditionalField,
    Address,
    Customer,
    ImportStatus,
    LineState,
    Message,
    Offer,
    OfferImport,
    Order,
    OrderDocument,
    OrderLine,
    OrderState,
    Product,
    ReturnLine,
    ReturnRequest,
    ReturnState,
    Shipment,
    Shop,
)
from tradelane.connectors.mirakl.sandbox.money import is_currency, minor_units
from tradelane.connectors.mirakl.sandbox.offers import process_import
from tradelane.connectors.mirakl.sandbox.orders import Released, customer_cancel, operator_transition, settle


class SandboxState:
    """Everything the Mirakl sandbox knows. See the module docstring for the threading contract."""

    def __init__(
        self,
        seed: int = 0,
        *,
        shops: Sequence[Shop] | None = None,
        products: int | Sequence[Product] = 20,
        config: SandboxConfig | None = None,
        rate_limits: Mapping[str, RateLimit] | None = None,
        start: datetime | None = None,
        follow_wall_time: bool = False,
    ) -> None:
        """Build a sandbox world.

        ``shops``: defaults to one EUR shop (id 2000) with a key derived from ``seed``.
        ``products``: a count of generated catalog products, or the products themselves.
        ``rate_limits``: per-operation budgets; ``None`` applies the published Mirakl guidance
        (OR11 / OF01 / OF24 once a minute, OR21 100 a minute), ``{}`` disables rate limiting.
        """
        self.seed = seed
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self.config = config or SandboxConfig()
        self.clock = SandboxClock(start, follow_wall_time=follow_wall_time)
        self.faults = FaultBook()
        if rate_limits is None:
            rate_limits = {op: RateLimit(*budget) for op, budget in MANIFEST_RATE_LIMITS.items()}
        self.limiter = RateLimiter(dict(rate_limits))
        self._requests: list[RequestRecord] = []
        self.created = self.clock.now()
        self.shops: dict[int, Shop] = {}
        self._access: dict[str, list[int]] = {}
        self._offers: dict[int, dict[str, Offer]] = {}
        for shop in shops or [Shop(2000, "Sandbox Shop", seeddata.make_api_key(self._rng))]:
            self.add_shop(shop)
        self.catalog: dict[str, Product] = {}
        self._by_reference: dict[tuple[str, str], Product] = {}
        generated = seeddata.make_products(self._rng, products) if isinstance(products, int) else products
        for product in generated:
            self.add_product(product)
        self.imports: dict[int, OfferImport] = {}
        self.orders: dict[str, Order] = {}
        self.shipments: dict[str, Shipment] = {}
        self.messages: list[Message] = []
        self.returns: dict[str, ReturnRequest] = {}
        self.documents: dict[int, OrderDocument] = {}
        self.last_page_offset: dict[tuple[int, str], int] = {}
        self._counters: dict[str, int] = {}

    # --- ids ------------------------------------------------------------------------------------

    def next_number(self, kind: str, start: int) -> int:
        value = self._counters.get(kind, start - 1) + 1
        self._counters[kind] = value
        return value

    def new_import_id(self) -> int:
        """File (OF01) and JSON (OF24) imports share one id sequence."""
        return self.next_number("import", 3001)

    def new_uuid(self) -> str:
        return seeddata.make_uuid(self._rng)

    def _new_commercial_id(self) -> str:
        while True:
            candidate = f"{self._rng.randint(10_000_000, 99_999_999)}"
            if f"{candidate}-A" not in self.orders:
                return candidate

    # --- clock ----------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward; time-driven transitions happen lazily as of their due time."""
        with self.lock:
            now = self.clock.advance(seconds)
            self.tick()
            return now

    def set_now(self, when: datetime) -> datetime:
        with self.lock:
            now = self.clock.set_now(when)
            self.tick()
            return now

    def tick(self) -> None:
        """Apply every time-driven transition due now (orders, refunds, imports)."""
        with self.lock:
            now = self.clock.now()
            for order in self.orders.values():
                self._release(order.shop_id, settle(order, now))
            delay = self.config.import_delay
            if delay is not None:
                for imp in sorted(self.imports.values(), key=lambda i: i.import_id):
                    if (
                        imp.status in (ImportStatus.WAITING, ImportStatus.RUNNING)
                        and now >= imp.created + delay
                    ):
                        self.complete_import(imp)

    # --- shops, access, catalog -----------------------------------------------------------------

    def add_shop(self, shop: Shop) -> Shop:
        with self.lock:
            if shop.shop_id in self.shops:
                raise ValueError(f"shop {shop.shop_id} already exists")
            if not is_currency(shop.currency):
                raise ValueError(f"unknown currency {shop.currency!r}")
            self.shops[shop.shop_id] = shop
            self._access.setdefault(shop.api_key, []).append(shop.shop_id)
            self._offers[shop.shop_id] = {}
            return shop

    def grant_access(self, api_key: str, shop_id: int) -> None:
        """Let ``api_key`` (a user of several shops) address ``shop_id`` with the ``shop_id`` parameter."""
        with self.lock:
            if shop_id not in self.shops:
                raise ValueError(f"unknown shop {shop_id}")
            shops = self._access.setdefault(api_key, [])
            if shop_id not in shops:
                shops.append(shop_id)

    def shops_for_key(self, api_key: str) -> list[int]:
        """The shops ``api_key`` may act for, its default shop first (empty: unknown key)."""
        return list(self._access.get(api_key, []))

    def set_multi_shipment(self, shop_id: int, enabled: bool) -> None:
        with self.lock:
            self.shop(shop_id).multi_shipment = enabled

    def shop(self, shop_id: int) -> Shop:
        try:
            return self.shops[shop_id]
        except KeyError:
            raise ValueError(f"unknown shop {shop_id}") from None

    def add_product(self, product: Product) -> Product:
        """Add a catalog product offers can attach to (by its SKU or any of its references)."""
        with self.lock:
            if product.sku in self.catalog:
                raise ValueError(f"product {product.sku} already exists")
            self.catalog[product.sku] = product
            self._by_reference[("SKU", product.sku)] = product
            for kind, value in product.references:
                self._by_reference[(kind, value)] = product
            return product

    def find_product(self, reference_type: str, reference: str) -> Product | None:
        return self._by_reference.get((reference_type, reference))

    # --- offers ---------------------------------------------------------------------------------

    @property
    def offers(self) -> list[Offer]:
        """Every shop's current offers (after due imports), by shop then SKU."""
        with self.lock:
            self.tick()
            return [o for shop_id in sorted(self._offers) for _, o in sorted(self._offers[shop_id].items())]

    def shop_offers(self, shop_id: int) -> dict[str, Offer]:
        """The live offer map of a shop (shop SKU -> offer); mutate only under :attr:`lock`."""
        return self._offers[shop_id]

    def offer(self, shop_id: int, sku: str) -> Offer | None:
        with self.lock:
            self.tick()
            return self._offers[shop_id].get(sku)

    def add_offer(
        self,
        shop_id: int,
        shop_sku: str,
        product_sku: str,
        price: Decimal,
        quantity: int,
        *,
        state_code: str = "11",
        logistic_class: str | None = None,
        leadtime_to_ship: int | None = None,
    ) -> Offer:
        """Seed an offer directly (what a completed import would have created), for test set-up."""
        with self.lock:
            shop = self.shop(shop_id)
            product = self.catalog.get(product_sku)
            if product is None:
                raise ValueError(f"unknown product {product_sku!r}")
            if shop_sku in self._offers[shop_id]:
                raise ValueError(f"shop {shop_id} already has an offer with sku {shop_sku!r}")
            if price <= 0 or quantity < 0 or state_code not in self.config.offer_states:
                raise ValueError("invalid price, quantity or offer state")
            now = self.clock.now()
            offer = Offer(
                offer_id=self.next_number("offer", 2001),
                shop_id=shop_id,
                shop_sku=shop_sku,
                product=product,
                product_id=product.sku,
                product_id_type="SKU",
                price=price,
                quantity=quantity,
                state_code=state_code,
                logistic_class=logistic_class or self.config.offer_rules().default_logistic_class,
                leadtime_to_ship=shop.leadtime_to_ship if leadtime_to_ship is None else leadtime_to_ship,
                date_created=now,
                last_updated=now,
            )
            self._offers[shop_id][shop_sku] = offer
            return offer

    def add_import(self, imp: OfferImport) -> OfferImport:
        with self.lock:
            self.imports[imp.import_id] = imp
            return imp

    def poll_import(self, imp: OfferImport) -> None:
        """One OF02 poll: WAITING, then RUNNING on the last unfinished poll, then the import ends."""
        with self.lock:
            if imp.status in (ImportStatus.COMPLETE, ImportStatus.FAILED):
                return
            imp.polls += 1
            if imp.polls > self.config.import_polls:
                self.complete_import(imp)
            elif imp.polls == self.config.import_polls:
                imp.status = ImportStatus.RUNNING

    def complete_import(self, imp: OfferImport) -> None:
        """Finish ``imp`` (and, first, every older unfinished import of the same shop)."""
        with self.lock:
            for older in sorted(self.imports.values(), key=lambda i: i.import_id):
                if older.import_id >= imp.import_id:
                    break
                if older.shop_id == imp.shop_id and older.status in (
                    ImportStatus.WAITING,
                    ImportStatus.RUNNING,
                ):
                    self._finish(older)
            if imp.status in (ImportStatus.WAITING, ImportStatus.RUNNING):
                self._finish(imp)

    def _finish(self, imp: OfferImport) -> None:
        now = self.clock.now()
        if imp.failure_reason is not None:
            imp.status = ImportStatus.FAILED
            imp.completed_at = now
            return
        shop = self.shops[imp.shop_id]
        process_import(
            imp,
            self._offers[imp.shop_id],
            shop=shop,
            rules=self.config.offer_rules(),
            lookup=self.find_product,
            now=now,
            new_offer_id=lambda: self.next_number("offer", 2001),
        )

    def _release(self, shop_id: int, released: Released) -> None:
        offers = self._offers.get(shop_id, {})
        for sku, quantity in released:
            offer = offers.get(sku)
            if offer is not None:
                offer.quantity += quantity

    def release_stock(self, shop_id: int, released: Released) -> None:
        with self.lock:
            self._release(shop_id, released)

    # --- orders ---------------------------------------------------------------------------------

    def create_order(
        self,
        shop_id: int,
        lines: Sequence[OrderLineSpec | Mapping[str, object]],
        currency: str | None = None,
        customer_message: str | None = None,
        *,
        additional_fields: Mapping[str, str] | None = None,
        acceptance_deadline: datetime | None = None,
        payment_delay: timedelta | None = None,
        staging_delay: timedelta | None = None,
        payment_refused: bool = False,
        customer: Customer | None = None,
        shipping_address: Address | None = None,
        billing_address: Address | None = None,
        customer_reference: str | None = None,
        leadtime_to_ship: int | None = None,
    ) -> str:
        """Place a customer order on offers of ``shop_id``; returns its order id.

        The offers' quantities are reserved (and given back on refusal or cancellation). Lines are
        :class:`OrderLineSpec` or mappings with the same keys. ``customer_message`` becomes a
        customer message on the order (M01, ``has_customer_message``); ``additional_fields`` become
        ``order_additional_fields``. Addresses are generated when not given and only shown from
        SHIPPING on. Raises ``ValueError`` for unknown offers, stock shortfalls or bad amounts.
        """
        with self.lock:
            self.tick()
            shop = self.shop(shop_id)
            now = self.clock.now()
            money = currency or shop.currency
            if not is_currency(money):
                raise ValueError(f"unknown currency {money!r}")
            specs = [spec if isinstance(spec, OrderLineSpec) else line_spec(spec) for spec in lines]
            if not specs:
                raise ValueError("an order needs at least one line")
            offers = self._offers[shop_id]
            needed: dict[str, int] = {}
            for spec in specs:
                offer = offers.get(spec.offer_sku)
                if offer is None:
                    raise ValueError(f"shop {shop_id} has no offer with sku {spec.offer_sku!r}")
                if spec.quantity < 1:
                    raise ValueError("line quantities must be at least 1")
                needed[spec.offer_sku] = needed.get(spec.offer_sku, 0) + spec.quantity
                if needed[spec.offer_sku] > offer.quantity:
                    raise ValueError(f"offer {spec.offer_sku!r} has only {offer.quantity} in stock")
                if spec.unit_price is None and money != shop.currency:
                    raise ValueError(
                        f"unit_price is required for an order in {money} (shop currency {shop.currency})"
                    )
                for amount in (spec.unit_price, spec.shipping_price):
                    if amount is not None and (amount < 0 or decimals(amount) > minor_units(money)):
                        raise ValueError(f"invalid amount {amount} for {money}")
            commercial_id = self._new_commercial_id()
            order_id = f"{commercial_id}-A"
            who = customer or seeddata.make_customer(self._rng)
            staging = self.config.staging_delay if staging_delay is None else staging_delay
            order_lines = []
            for index, spec in enumerate(specs, start=1):
                offer = offers[spec.offer_sku]
                offer.quantity -= spec.quantity
                order_lines.append(
                    OrderLine(
                        line_id=f"{order_id}-{index}",
                        index=index,
                        offer_id=offer.offer_id,
                        offer_sku=offer.shop_sku,
                        product=offer.product,
                        offer_state_code=offer.state_code,
                        quantity=spec.quantity,
                        unit_price=spec.unit_price if spec.unit_price is not None else offer.price,
                        shipping_price=spec.shipping_price,
                        state=LineState.STAGING,
                        created=now,
                        last_updated=now,
                        commission_rate=shop.commission_rate,
                        additional_fields=[AdditionalField(k, v) for k, v in spec.additional_fields.items()],
                    )
                )
            order = Order(
                order_id=order_id,
                commercial_id=commercial_id,
                shop_id=shop_id,
                currency=money,
                created=now,
                last_updated=now,
                state=OrderState.STAGING,
                customer=who,
                shipping_address=shipping_address or seeddata.make_address(self._rng, who, money),
                billing_address=billing_address or seeddata.make_address(self._rng, who, money),
                lines=order_lines,
                acceptance_deadline=acceptance_deadline or now + self.config.acceptance_delay,
                staging_delay=staging,
                payment_delay=self.config.payment_delay if payment_delay is None else payment_delay,
                leadtime_to_ship=shop.leadtime_to_ship if leadtime_to_ship is None else leadtime_to_ship,
                payment_refused=payment_refused,
                customer_message=customer_message,
                additional_fields=[AdditionalField(k, v) for k, v in (additional_fields or {}).items()],
                customer_reference=customer_reference,
            )
            if order.acceptance_deadline.tzinfo is None:
                raise ValueError("acceptance_deadline must be timezone-aware")
            self.orders[order_id] = order
            if customer_message:
                self._add_message(
                    order, customer_message, subject="Message from the customer", from_type="CUSTOMER"
                )
            self.tick()
            return order_id

    def order(self, order_id: str) -> Order:
        """The order as of now (time-driven transitions applied); ``KeyError`` when unknown."""
        with self.lock:
            self.tick()
            return self.orders[order_id]

    def transition_order(self, order_id: str, state: OrderState | str) -> Order:
        """Customer / operator side moves after shipment: TO_COLLECT, RECEIVED, CLOSED."""
        with self.lock:
            order = self.order(order_id)
            try:
                operator_transition(order, OrderState(state), self.clock.now())
            except SandboxApiError as exc:
                raise ValueError(exc.message) from None
            return order

    def cancel_by_customer(self, order_id: str, line_ids: Collection[str] | None = None) -> Order:
        """The customer cancels the order, or only the lines ``line_ids`` (order line ids), before
        anything shipped; their stock goes back to the offers. ``ValueError`` when it cannot be."""
        with self.lock:
            order = self.order(order_id)
            try:
                released = customer_cancel(
                    order, self.clock.now(), lambda: str(self.next_number("cancelation", 6001)), line_ids
                )
            except SandboxApiError as exc:
                raise ValueError(exc.message) from None
            self._release(order.shop_id, released)
            return order

    def add_message(
        self, order_id: str, body: str, *, subject: str = "Question", from_type: str = "CUSTOMER"
    ) -> int:
        """A message on an order, received by the shop (M01); returns its id."""
        with self.lock:
            if from_type not in ("CUSTOMER", "OPERATOR"):
                raise ValueError("messages received by the shop come from CUSTOMER or OPERATOR")
            return self._add_message(
                self.order(order_id), body, subject=subject, from_type=from_type
            ).message_id

    def _add_message(self, order: Order, body: str, *, subject: str, from_type: str) -> Message:
        customer_name = f"{order.customer.firstname} {order.customer.lastname}"
        message = Message(
            message_id=self.next_number("message", 5001),
            shop_id=order.shop_id,
            order_id=order.order_id,
            commercial_id=order.commercial_id,
            subject=subject,
            body=body,
            from_type=from_type,
            from_id=order.customer.customer_id if from_type == "CUSTOMER" else "1",
            from_name=customer_name if from_type == "CUSTOMER" else "Operator",
            to_customer_id=order.customer.customer_id,
            to_customer_name=customer_name,
            created=self.clock.now(),
        )
        self.messages.append(message)
        return message

    def create_return(
        self,
        order_id: str,
        lines: Sequence[tuple[str, int, str]],
        *,
        method_code: str = "RETURN_METHOD_BY_MAIL",
        reason_code: str | None = None,
    ) -> str:
        """A customer return request (RT11) on shipped lines: ``(order_line_id, quantity, reason)``."""
        with self.lock:
            order = self.order(order_id)
            if order.state not in (
                OrderState.SHIPPED,
                OrderState.TO_COLLECT,
                OrderState.RECEIVED,
                OrderState.CLOSED,
            ):
                raise ValueError(
                    f"order {order_id} is {order.state.value}: only shipped orders can be returned"
                )
            by_id = {line.line_id: line for line in order.lines}
            for line_id, quantity, _ in lines:
                if line_id not in by_id or not 1 <= quantity <= by_id[line_id].quantity:
                    raise ValueError(f"invalid return line {line_id} x{quantity}")
            now = self.clock.now()
            ret = ReturnRequest(
                return_id=self.new_uuid(),
                shop_id=order.shop_id,
                order_id=order.order_id,
                commercial_id=order.commercial_id,
                customer_id=order.customer.customer_id,
                lines=[ReturnLine(line_id, quantity, reason) for line_id, quantity, reason in lines],
                state=ReturnState.WAITING_ACCEPTANCE,
                created=now,
                last_updated=now,
                method_code=method_code,
                return_address=seeddata.make_address(
                    self._rng, order.customer, self.shops[order.shop_id].currency
                ),
                rma=f"RMA-{self.next_number('rma', 1)}",
                reason_code=reason_code,
            )
            self.returns[ret.return_id] = ret
            return ret.return_id

    def add_document(self, order: Order, file_name: str, type_code: str, content: bytes) -> OrderDocument:
        with self.lock:
            document = OrderDocument(
                self.next_number("document", 7001),
                order.shop_id,
                order.order_id,
                file_name,
                type_code,
                content,
                self.clock.now(),
            )
            self.documents[document.document_id] = document
            return document

    # --- faults, rate limits, request log --------------------------------------------------------

    def inject(
        self,
        op_id: str,
        fault: FaultKind | str,
        count: int = 1,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        delay: float | None = None,
    ) -> Fault:
        """Make the next ``count`` calls to ``op_id`` (``"*"``: any operation) misbehave.

        Kinds: ``server_error`` (``status``, default 500), ``rate_limit`` (429 + ``Retry-After:
        retry_after``), ``timeout`` (held ``delay`` seconds then processed), ``html_error`` (an HTML
        page, ``status`` default 502), ``truncated_json``, ``duplicate_page`` (OR11 / OF21 / M01).
        """
        with self.lock:
            return self.faults.inject(
                op_id, fault, count=count, status=status, retry_after=retry_after, delay=delay
            )

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def set_route(self, op_id: str, mode: RouteMode | str, *, status: int | None = None) -> RouteOverride:
        """Make every call to ``op_id`` behave as ``mode`` until :meth:`clear_route`: ``off`` (404, an
        operator without the module), ``status`` (that 4xx/5xx), ``garbage`` (a non-JSON body, status
        default 200) or ``truncated`` (half of the real JSON body). Sandbox configuration, kept in
        ``config.routes``."""
        if op_id not in operations.known_op_ids():
            raise ValueError(
                f"unknown operation {op_id!r} (expected one of: {sorted(operations.known_op_ids())})"
            )
        override = RouteOverride.build(mode, status)
        with self.lock:
            self.config.routes[op_id] = override
        return override

    def clear_route(self, op_id: str | None = None) -> None:
        """Restore ``op_id`` (``None``: every operation) to its normal behaviour."""
        with self.lock:
            if op_id is None:
                self.config.routes.clear()
            else:
                self.config.routes.pop(op_id, None)

    def route(self, op_id: str) -> RouteOverride | None:
        with self.lock:
            return self.config.routes.get(op_id)

    def set_rate_limit(self, op_id: str, calls: int, per_seconds: float) -> None:
        """Allow ``calls`` calls to ``op_id`` per ``per_seconds`` (sliding window, per shop)."""
        with self.lock:
            self.limiter.set(op_id, calls, per_seconds)

    def remove_rate_limit(self, op_id: str) -> None:
        with self.lock:
            self.limiter.remove(op_id)

    def clear_rate_limits(self) -> None:
        with self.lock:
            self.limiter.limits.clear()

    def record(self, entry: RequestRecord) -> None:
        with self.lock:
            self._requests.append(entry)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first (a copy)."""
        with self.lock:
            return list(self._requests)

    def calls(self, op_id: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.op_id == op_id]

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state lock and bring time-driven transitions up to date."""
        with self.lock:
            self.tick()
            yield
