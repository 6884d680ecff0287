"""The merchant adapter contract suite: one set of checks every order-receiving merchant adapter must
pass, driven through the :class:`~tradelane.merchant.base.MerchantAdapter` port only (and, where the
kind declares ``send_stock``, the :class:`~tradelane.merchant.base.StockSource` port), against the
adapter's own sandbox on 127.0.0.1.

Between the adapter and its sandbox sits a :class:`FaultProxy`: it forwards every request unchanged and
records it, unless a :class:`Fault` is queued for the next matching request — then it answers a given
status/body without forwarding (429 with ``Retry-After``, 5xx, 408, 425, 4xx with a message, HTML...),
or forwards (the sandbox does the work) and then loses the answer (connection closed mid-response,
garbage or truncated body, an answer slower than the adapter's timeout). The same faults are thus
injected, byte for byte, whatever the adapter's protocol.

A :class:`MerchantWorld` is one (adapter, sandbox) pair: how to build the adapter from its factory
(:data:`tradelane.merchant.capabilities.ADAPTERS`), an order document the sandbox can take, how many
merchant orders the sandbox holds for it, which requests are the order's *write* (the one faults
target), and the requests each declared capability may make. :data:`WORLDS` lists every world: each
kind in ``ADAPTERS``, and one more per declaration its settings can change (an HTTP OMS without
cancellations). :data:`CHECKS` is the suite; ``test_merchant_adapters.py`` runs every check in every
world, ``test_merchant_suite_catches.py`` shows the checks failing deliberately broken adapters.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import httpx

from tradelane.domain.errors import PermanentError, RetryableError
from tradelane.merchant.base import (
    AdapterFactory,
    Capability,
    DeliveryOutcome,
    MerchantAdapter,
    MerchantCapabilities,
    MerchantSystem,
    OutcomeKind,
    StockSource,
)
from tradelane.merchant.capabilities import ADAPTERS, DECLARATIONS, describe_capabilities
from tradelane.merchant.http_oms import HTTP_KIND
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.merchant.schema import OmsAddress, OmsOrder, OmsOrderLine
from tradelane.merchant.shopify.adapter import shopify_adapter
from tradelane.merchant.shopify.mapping import tradelane_order_id
from tradelane.merchant.shopify.sandbox import ShopifySandboxServer, ShopifySandboxState
from tradelane.merchant.shopify.settings import SHOPIFY_KIND, ShopifySettings

#: Every adapter in the suite gets this request timeout (seconds): a "slow partner" answers later.
ADAPTER_TIMEOUT = 1.0
#: How much slower than :data:`ADAPTER_TIMEOUT` the slow partner is.
SLOW_BY = 3.0
_HOP_HEADERS = {"connection", "content-length", "transfer-encoding", "keep-alive", "date", "server"}


# ------------------------------------------------------------------------------------------ the proxy


@dataclass(frozen=True)
class Fault:
    """What the proxy does instead of relaying the next request of ``method`` (any method when None)
    whose path contains ``path``.

    ``answer``: raw bytes written instead of the sandbox's answer (then the connection is closed);
    ``forward``: the request reaches the sandbox first (its work is done, its answer is lost);
    ``cut``: the sandbox's answer is sent with its full ``Content-Length`` but only half its body, then
    the connection is closed; ``delay``: seconds the (relayed or replaced) answer is held back."""

    method: str | None = None
    path: str = ""
    answer: bytes | None = None
    forward: bool = False
    cut: bool = False
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self.path in path


def raw_answer(status: int, body: bytes | str = b"", *, headers: dict[str, str] | None = None) -> bytes:
    """An HTTP/1.1 answer as bytes (``Content-Length`` of the body, ``Connection: close``)."""
    content = body.encode("utf-8") if isinstance(body, str) else body
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += [f"Content-Length: {len(content)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content


def json_answer(status: int, payload: Any, *, headers: dict[str, str] | None = None) -> bytes:
    return raw_answer(
        status, json.dumps(payload), headers={"Content-Type": "application/json", **(headers or {})}
    )


@dataclass(frozen=True)
class Seen:
    """One request that reached the proxy (whether or not it was relayed)."""

    method: str
    path: str
    headers: dict[str, str]
    faulted: bool


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` (a base URL), with queued faults::

    with FaultProxy(sandbox.url) as proxy:
        proxy.fail(Fault("POST", answer=raw_answer(503)))
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.seen: list[Seen] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._client = httpx.Client(base_url=self.upstream, timeout=10.0)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fault-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def fail(self, *faults: Fault) -> None:
        """Queue faults; each applies once, to the first request it matches."""
        with self._lock:
            self._faults.extend(faults)

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def requests(self, method: str | None = None, path: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if (method is None or s.method == method) and path in s.path]

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    return self._faults.pop(index)
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        method, path = handler.command, handler.path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        fault = self._take(method, path.split("?", 1)[0])
        with self._lock:
            self.seen.append(Seen(method, path, headers, fault is not None))
        answer: bytes
        if fault is None or fault.forward or fault.cut or fault.answer is None:
            answer = self._relay(method, path, headers, body)
        if fault is not None and fault.answer is not None:
            answer = fault.answer
        if fault is not None and fault.cut:
            head, _, rest = answer.partition(b"\r\n\r\n")
            answer = head + b"\r\n\r\n" + rest[: len(rest) // 2]
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        try:
            handler.wfile.write(answer)
            handler.wfile.flush()
        except OSError:  # the client gave up (timeout) before the answer
            pass
        handler.close_connection = True
        if fault is not None and fault.cut:
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _relay(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
        sent = {k: v for k, v in headers.items() if k not in _HOP_HEADERS and k != "host"}
        response = self._client.request(method, path, headers=sent, content=body)
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
        return raw_answer(response.status_code, response.content, headers=kept)


# ------------------------------------------------------------------------------------------ the worlds


class MerchantWorld(Protocol):
    """One adapter kind against its sandbox, through a :class:`FaultProxy`."""

    kind: str
    proxy: FaultProxy
    #: The requests that write the order (faults aimed at "the delivery" target these).
    write: Fault
    #: The requests each declared capability may make: (method, path part).
    routes: dict[str, list[tuple[str, str]]]
    #: None: the kind's factory in ``ADAPTERS``. Set only to show that the suite fails a bad adapter.
    factory: AdapterFactory | None

    def system(self) -> MerchantSystem: ...

    def credentials(self) -> dict[str, Any]: ...

    def document(self, order_id: int, *, now: datetime) -> OmsOrder: ...

    def refusal(self, message: str) -> bytes:
        """A 4xx answer carrying ``message`` the way this merchant system words its refusals."""
        ...

    def held(self, document: OmsOrder) -> list[str]:
        """The merchant system's order ids holding ``document`` (the sandbox's own records)."""
        ...

    def cancellations(self, document: OmsOrder) -> int:
        """Cancellations the merchant system recorded for ``document``."""
        ...

    def stock_item(self, sku: str) -> int:
        """The inventory item id of ``sku`` (kinds declaring ``send_stock``)."""
        ...

    def set_stock(self, sku: str, by_location: list[int]) -> None:
        """``sku``'s stock at as many locations as given (kinds declaring ``send_stock``)."""
        ...

    def stock_reads(self) -> list[Seen]:
        """The requests a stock read made (kinds declaring ``send_stock``)."""
        ...


def adapter_of(world: MerchantWorld) -> MerchantAdapter:
    """The world's adapter, built by the factory the composition root hands to the delivery service
    (or by the world's own ``factory``, which only the suite's tests of itself set)."""
    factory = world.factory or ADAPTERS[world.kind]
    return factory(world.system(), world.credentials())


def declared(world: MerchantWorld) -> MerchantCapabilities:
    return DECLARATIONS[world.kind](world.system().settings)


#: Stock sources by kind, as the composition root wires them (``bootstrap``: the Shopify adapter is
#: the ``shopify.inventory`` job's stock source). A kind declaring ``send_stock`` must be here.
STOCK_SOURCES: dict[str, Callable[[MerchantSystem, dict[str, Any]], StockSource]] = {
    SHOPIFY_KIND: shopify_adapter,
}

SKUS = ("MUG-RED", "MUG-BLUE")
ADDRESS = OmsAddress(
    first_name="Ada",
    last_name="Lovelace",
    street1="1 Rue de Rivoli",
    zip_code="75001",
    city="Paris",
    country="FRA",
)


def order_document(order_id: int, *, now: datetime, channel: str = "shop-fr") -> OmsOrder:
    """A two-line order, as the delivery service would build it."""
    mid = f"M-{order_id}-A"
    return OmsOrder(
        id=order_id,
        ref=f"{channel}:{mid}",
        channel=channel,
        marketplace_order_id=mid,
        state="to_ship",
        currency="EUR",
        total_price="45.80",
        attributes={},
        customer_message=None,
        shipping_address=ADDRESS,
        billing_address=ADDRESS,
        lines=[
            OmsOrderLine(
                line_id=f"{mid}-1",
                sku=SKUS[0],
                marketplace_sku=SKUS[0],
                offer_sku=SKUS[0],
                title="Red mug",
                quantity=2,
                unit_price="20.90",
                line_total="41.80",
                currency="EUR",
                type="product",
            ),
            OmsOrderLine(
                line_id=f"{mid}-2",
                sku=SKUS[1],
                marketplace_sku=SKUS[1],
                offer_sku=SKUS[1],
                title="Blue mug",
                quantity=1,
                unit_price="4.00",
                line_total="4.00",
                currency="EUR",
                type="product",
            ),
        ],
        created_at=now - timedelta(minutes=5),
    )


OMS_SECRET = "merchant-suite-signing-secret-0123"


@dataclass
class HttpOmsWorld:
    """The generic HTTP OMS adapter against the HTTP OMS sandbox (:mod:`tradelane.merchant.sandbox`)."""

    proxy: FaultProxy
    state: OmsSandboxState
    kind: str = HTTP_KIND
    write: Fault = field(default_factory=lambda: Fault("POST", "/orders"))
    factory: AdapterFactory | None = None
    routes: dict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: {
            Capability.RECEIVE_ORDERS: [("POST", "/orders")],
            Capability.RECEIVE_CANCELLATIONS: [("POST", "/cancellations")],
        }
    )
    #: Settings beyond the URL and the timeout (e.g. ``{"cancellations": False}``).
    extra_settings: dict[str, Any] = field(default_factory=dict)

    def system(self) -> MerchantSystem:
        settings = {
            "url": f"{self.proxy.url}/orders",
            "timeout_seconds": ADAPTER_TIMEOUT,
            **self.extra_settings,
        }
        return MerchantSystem(1, 1, "oms", HTTP_KIND, settings, True)

    def credentials(self) -> dict[str, Any]:
        return {"secret": OMS_SECRET}

    def document(self, order_id: int, *, now: datetime) -> OmsOrder:
        return order_document(order_id, now=now)

    def refusal(self, message: str) -> bytes:
        return json_answer(422, {"error": "invalid_order", "message": message})

    def held(self, document: OmsOrder) -> list[str]:
        return [o.oms_id for o in self.state.orders() if o.document.get("id") == document.id]

    def cancellations(self, document: OmsOrder) -> int:
        return sum(len(o.cancellations) for o in self.state.orders() if o.document.get("id") == document.id)

    def stock_item(self, sku: str) -> int:
        raise AssertionError("the HTTP OMS does not declare send_stock")

    def set_stock(self, sku: str, by_location: list[int]) -> None:
        raise AssertionError("the HTTP OMS does not declare send_stock")

    def stock_reads(self) -> list[Seen]:
        raise AssertionError("the HTTP OMS does not declare send_stock")


@dataclass
class ShopifyWorld:
    """The Shopify adapter against the Shopify sandbox (:mod:`tradelane.merchant.shopify.sandbox`)."""

    proxy: FaultProxy
    state: ShopifySandboxState
    kind: str = SHOPIFY_KIND
    write: Fault = field(default_factory=lambda: Fault("POST", "/orders.json"))
    factory: AdapterFactory | None = None
    routes: dict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: {
            Capability.RECEIVE_ORDERS: [
                ("GET", "/orders.json"),
                ("GET", "/products.json"),
                ("POST", "/orders.json"),
            ],
            Capability.SEND_STOCK: [("GET", "/inventory_items/"), ("GET", "/inventory_levels.json")],
        }
    )

    def system(self) -> MerchantSystem:
        settings = ShopifySettings(
            shop_domain=self.state.shop_domain,
            api_url=self.proxy.url,
            api_version=self.state.api_version,
            currency="EUR",
            timeout_seconds=ADAPTER_TIMEOUT,
        ).as_settings()
        return MerchantSystem(2, 1, "shopify", SHOPIFY_KIND, settings, True)

    def credentials(self) -> dict[str, Any]:
        return {"access_token": self.state.access_token, "webhook_secret": self.state.webhook_secret}

    def document(self, order_id: int, *, now: datetime) -> OmsOrder:
        return order_document(order_id, now=now)

    def refusal(self, message: str) -> bytes:
        return json_answer(422, {"errors": {"line_items": [message]}})

    def held(self, document: OmsOrder) -> list[str]:
        with self.state.lock:
            return [str(i) for i, o in self.state.orders.items() if tradelane_order_id(o) == document.id]

    def cancellations(self, document: OmsOrder) -> int:
        with self.state.lock:
            return sum(
                1
                for o in self.state.orders.values()
                if tradelane_order_id(o) == document.id and o.get("cancelled_at")
            )

    def stock_item(self, sku: str) -> int:
        return self.state.variant(sku).inventory_item_id

    def set_stock(self, sku: str, by_location: list[int]) -> None:
        item = self.stock_item(sku)
        with self.state.lock:
            now = self.state.clock()
            for key in [k for k in self.state.catalog.levels if k[0] == item]:
                del self.state.catalog.levels[key]
            for n, available in enumerate(by_location):
                location = self.state.location_id if n == 0 else self.state.new_id()
                self.state.catalog.locations.setdefault(location, f"Warehouse {n}")
                self.state.catalog.set_available(item, location, available, now)

    def stock_reads(self) -> list[Seen]:
        return self.proxy.requests("GET", "/inventory_")


ACCESS_TOKEN = "shpat_merchant_suite_token"
WEBHOOK_SECRET = "merchant-suite-webhook-secret"


@contextmanager
def http_oms_world(**extra_settings: Any) -> Iterator[HttpOmsWorld]:
    state = OmsSandboxState(OMS_SECRET)
    with OmsSandboxServer(state) as server, FaultProxy(server.url) as proxy:
        yield HttpOmsWorld(proxy, state, extra_settings=extra_settings)


@contextmanager
def shopify_world() -> Iterator[ShopifyWorld]:
    state = ShopifySandboxState(ACCESS_TOKEN, WEBHOOK_SECRET)
    for sku in SKUS:
        state.add_product(f"Product {sku}", [{"sku": sku, "price": "20.90", "quantity": 7}])
    with ShopifySandboxServer(state) as server, FaultProxy(server.url) as proxy:
        yield ShopifyWorld(proxy, state)


@dataclass(frozen=True)
class WorldSpec:
    kind: str
    build: Callable[[], AbstractContextManager[Any]]


#: Every world the suite runs in, by name. Every kind in ``ADAPTERS`` must have one; a kind whose
#: declarations depend on its settings has one per declaration.
WORLDS: dict[str, WorldSpec] = {
    "http": WorldSpec(HTTP_KIND, http_oms_world),
    "http-without-cancellations": WorldSpec(HTTP_KIND, partial(http_oms_world, cancellations=False)),
    "shopify": WorldSpec(SHOPIFY_KIND, shopify_world),
}


def wall_now() -> datetime:
    """The sandboxes keep wall-clock time (the OMS checks signature times against it)."""
    return datetime.now(UTC)


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


# ------------------------------------------------------------------------------------------ the checks
#
# Each check takes a world and fails with an AssertionError naming what the adapter got wrong. Every
# call through the port is timed: a check never waits longer than the adapter's own timeout allows.

#: The longest one port call may take in the suite (a few requests, each bounded by ADAPTER_TIMEOUT).
MAX_CALL_SECONDS = 4 * ADAPTER_TIMEOUT + 1.0


def deliver(world: MerchantWorld, document: OmsOrder, *, now: datetime | None = None) -> DeliveryOutcome:
    """One delivery through the port, with a fresh adapter (as the delivery service builds one per
    attempt), bounded in time and never raising."""
    adapter = adapter_of(world)
    started = time.monotonic()
    try:
        outcome = adapter.deliver_order(
            document, idempotency_key=f"order-{document.id}", now=now or wall_now()
        )
    finally:
        adapter.close()
    elapsed = time.monotonic() - started
    assert elapsed < MAX_CALL_SECONDS, f"deliver_order took {elapsed:.1f}s (hang?)"
    assert isinstance(outcome, DeliveryOutcome), outcome
    assert outcome.reason and outcome.reason.strip(), f"no human reason: {outcome!r}"
    return outcome


def notify(world: MerchantWorld, document: OmsOrder, lines: list[str] | None = None) -> DeliveryOutcome:
    adapter = adapter_of(world)
    started = time.monotonic()
    try:
        outcome = adapter.notify_cancellation(
            document, lines=lines, idempotency_key=f"cancel-{document.id}", now=wall_now()
        )
    finally:
        adapter.close()
    assert time.monotonic() - started < MAX_CALL_SECONDS, "notify_cancellation hung"
    assert isinstance(outcome, DeliveryOutcome), outcome
    assert outcome.reason and outcome.reason.strip(), f"no human reason: {outcome!r}"
    return outcome


def _write_fault(world: MerchantWorld, **changes: Any) -> Fault:
    return replace(world.write, **changes)


def check_delivered_once(world: MerchantWorld) -> None:
    """An order is delivered once; a re-delivery with the same idempotency key creates nothing and
    says "already there" with the merchant system's reference."""
    document = world.document(101, now=wall_now())
    first = deliver(world, document)
    assert first.kind is OutcomeKind.DELIVERED, first
    assert not first.already_held, first
    held = world.held(document)
    assert len(held) == 1, f"the merchant system holds {held} for one delivery"
    assert first.external_ref == held[0], (first.external_ref, held)
    again = deliver(world, document)
    assert again.kind is OutcomeKind.DELIVERED, again
    assert again.already_held, f"a re-delivery must say the order was already there: {again!r}"
    assert again.external_ref == held[0], (again.external_ref, held)
    assert world.held(document) == held, "a re-delivery created another merchant order"


def check_answer_lost_after_write(world: MerchantWorld) -> None:
    """The merchant system took the order but the connection closed mid-answer: retryable (never an
    exception); the retry finds the order already there — one merchant order."""
    document = world.document(102, now=wall_now())
    world.proxy.fail(_write_fault(world, cut=True))
    lost = deliver(world, document)
    assert lost.kind is OutcomeKind.RETRY, lost
    assert len(world.held(document)) == 1
    retried = deliver(world, document)
    assert retried.kind is OutcomeKind.DELIVERED and retried.already_held, retried
    assert [retried.external_ref] == world.held(document)


def check_slow_partner(world: MerchantWorld) -> None:
    """An answer slower than the adapter's timeout is retryable, within the timeout (never a hang);
    the work the partner did meanwhile is found by the retry."""
    document = world.document(103, now=wall_now())
    world.proxy.fail(_write_fault(world, forward=True, delay=ADAPTER_TIMEOUT + SLOW_BY))
    started = time.monotonic()
    slow = deliver(world, document)
    assert time.monotonic() - started < ADAPTER_TIMEOUT + SLOW_BY, "the adapter waited for the slow answer"
    assert slow.kind is OutcomeKind.RETRY, slow
    assert slow.status_code is None, slow
    assert "timed out" in slow.reason, slow.reason
    retried = deliver(world, document)
    assert retried.kind is OutcomeKind.DELIVERED, retried
    assert len(world.held(document)) == 1


def check_unreachable(world: MerchantWorld) -> None:
    """Nothing listening (connection refused) → retryable, with the reason."""
    document = world.document(104, now=wall_now())
    world.proxy.fail(Fault(answer=b""))  # the first request gets no answer at all
    closed = deliver(world, document)
    assert closed.kind is OutcomeKind.RETRY, closed
    assert world.held(document) == []


def check_throttled_retry_after_seconds(world: MerchantWorld) -> None:
    """429 with ``Retry-After: <seconds>`` → retryable with that wait; nothing created."""
    document = world.document(105, now=wall_now())
    world.proxy.fail(
        _write_fault(world, answer=json_answer(429, {"errors": "slow down"}, headers={"Retry-After": "7"}))
    )
    outcome = deliver(world, document)
    assert outcome.kind is OutcomeKind.RETRY, outcome
    assert outcome.retry_after == 7, outcome
    assert outcome.status_code == 429
    assert world.held(document) == []


def check_throttled_retry_after_date(world: MerchantWorld) -> None:
    """429 with ``Retry-After: <HTTP date>`` → retryable with the wait until that date, counted from
    the ``now`` handed to the port (not the machine's clock)."""
    now = wall_now() + timedelta(days=3)  # a clock the adapter can only know from the port
    document = world.document(106, now=wall_now())
    date = http_date(now + timedelta(seconds=90))
    world.proxy.fail(
        _write_fault(world, answer=json_answer(429, {"errors": "slow down"}, headers={"Retry-After": date}))
    )
    outcome = deliver(world, document, now=now)
    assert outcome.kind is OutcomeKind.RETRY, outcome
    assert outcome.retry_after is not None and abs(outcome.retry_after - 90) <= 1, outcome


#: Statuses that mean "try again later", whatever the body.
TRANSIENT = (500, 502, 503, 504, 408, 425)


def check_transient_statuses(world: MerchantWorld) -> None:
    """5xx, 408 and 425 → retryable (a 503's ``Retry-After`` honoured too); nothing created."""
    document = world.document(107, now=wall_now())
    for status in TRANSIENT:
        world.proxy.fail(_write_fault(world, answer=json_answer(status, {"error": "busy"})))
        outcome = deliver(world, document)
        assert outcome.kind is OutcomeKind.RETRY, (status, outcome)
        assert outcome.status_code == status, (status, outcome)
    world.proxy.fail(
        _write_fault(world, answer=json_answer(503, {"error": "maintenance"}, headers={"Retry-After": "30"}))
    )
    outcome = deliver(world, document)
    assert (outcome.kind, outcome.retry_after) == (OutcomeKind.RETRY, 30), outcome
    assert world.held(document) == []


def check_refused_with_message(world: MerchantWorld) -> None:
    """A 4xx carrying the partner's message → refused, with that message in the reason."""
    document = world.document(108, now=wall_now())
    message = "SKU MUG-RED is blocked for sale"
    world.proxy.fail(_write_fault(world, answer=world.refusal(message)))
    outcome = deliver(world, document)
    assert outcome.kind is OutcomeKind.REJECTED, outcome
    assert outcome.status_code == 422, outcome
    assert message in outcome.reason, f"the partner's message is not in the reason: {outcome.reason!r}"
    assert world.held(document) == []


HTML = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad</h1></body></html>"
#: Answers that are not what any partner API sends, each with what it must be read as.
BROKEN_ANSWERS: list[tuple[str, bytes, OutcomeKind]] = [
    ("HTML 502", raw_answer(502, HTML, headers={"Content-Type": "text/html"}), OutcomeKind.RETRY),
    ("HTML 404", raw_answer(404, HTML, headers={"Content-Type": "text/html"}), OutcomeKind.REJECTED),
    (
        "garbage 500",
        raw_answer(500, b"\x00\xff\xfe garbage", headers={"Content-Type": "application/json"}),
        OutcomeKind.RETRY,
    ),
    ("not HTTP at all", b"SSH-2.0-OpenSSH_9.6\r\n", OutcomeKind.RETRY),
    (
        "undecodable gzip 200",
        raw_answer(200, b"not gzip", headers={"Content-Encoding": "gzip"}),
        OutcomeKind.RETRY,
    ),
]
#: A 2xx whose body does not acknowledge the order: the order may or may not exist; never reported
#: as created without a reference the merchant system gave.
BROKEN_ACKNOWLEDGEMENTS: list[tuple[str, bytes]] = [
    ("HTML 200", raw_answer(200, HTML, headers={"Content-Type": "text/html"})),
    ("garbage 200", raw_answer(200, b"\x00\xff\xfe\x00", headers={"Content-Type": "application/json"})),
    (
        "truncated JSON 201",
        raw_answer(201, '{"id": "OMS-9", "order": {"id": 9', headers={"Content-Type": "application/json"}),
    ),
]


def check_broken_answers(world: MerchantWorld) -> None:
    """Garbage, HTML, a truncated JSON body, something that is not HTTP → classified outcomes, never
    an exception; a broken 2xx is never "delivered" on the strength of a reference nobody gave."""
    document = world.document(109, now=wall_now())
    for name, answer, expected in BROKEN_ANSWERS:
        world.proxy.fail(_write_fault(world, answer=answer))
        outcome = deliver(world, document)
        assert outcome.kind is expected, (name, outcome)
    assert world.held(document) == []
    for name, answer in BROKEN_ACKNOWLEDGEMENTS:
        world.proxy.fail(_write_fault(world, answer=answer))
        outcome = deliver(world, document)
        assert outcome.kind is not OutcomeKind.DELIVERED, (name, outcome)
        assert outcome.external_ref is None, (name, outcome)
    assert world.held(document) == [], "nothing reached the merchant system"
    delivered = deliver(world, document)
    assert delivered.kind is OutcomeKind.DELIVERED and delivered.external_ref, delivered


def check_broken_answer_after_write(world: MerchantWorld) -> None:
    """The partner created the order but its acknowledgement is garbage: not reported as created
    without a reference; the next attempt ends with exactly one merchant order and its reference."""
    document = world.document(110, now=wall_now())
    world.proxy.fail(_write_fault(world, forward=True, answer=raw_answer(200, "OK<html>")))
    first = deliver(world, document)
    assert first.external_ref is None or first.external_ref in world.held(document), first
    assert len(world.held(document)) == 1
    if first.kind is not OutcomeKind.DELIVERED:
        again = deliver(world, document)
        assert again.kind is OutcomeKind.DELIVERED and again.already_held, again
        assert [again.external_ref] == world.held(document)


def check_cancellation_notices(world: MerchantWorld) -> None:
    """Where ``receive_cancellations`` is declared: a notice lands once (a repeat with the key records
    nothing new), transient failures are retryable, a refusal (a 404: the module is missing) refused with
    the status. Where it is not: refused at once with a reason, and not one request sent."""
    document = world.document(111, now=wall_now())
    assert deliver(world, document).kind is OutcomeKind.DELIVERED
    before = len(world.proxy.requests())
    if Capability.RECEIVE_CANCELLATIONS not in declared(world):
        outcome = notify(world, document)
        assert outcome.kind is OutcomeKind.REJECTED, outcome
        assert "cancel" in outcome.reason, outcome.reason
        assert len(world.proxy.requests()) == before, "an undeclared operation reached the partner"
        assert world.cancellations(document) == 0
        return
    [(method, path)] = world.routes[Capability.RECEIVE_CANCELLATIONS]
    world.proxy.fail(Fault(method, path, answer=json_answer(503, {"error": "busy"})))
    assert notify(world, document).kind is OutcomeKind.RETRY
    assert world.cancellations(document) == 0
    done = notify(world, document, lines=[document.lines[0].line_id])
    assert done.kind is OutcomeKind.DELIVERED, done
    again = notify(world, document, lines=[document.lines[0].line_id])
    assert again.kind is OutcomeKind.DELIVERED, again
    assert world.cancellations(document) == 1, "a repeated cancellation notice was recorded twice"
    world.proxy.fail(Fault(method, path, answer=raw_answer(404, HTML, headers={"Content-Type": "text/html"})))
    missing = notify(world, document)
    assert missing.kind is OutcomeKind.REJECTED, missing
    assert "404" in missing.reason, missing.reason


def _stock_source(world: MerchantWorld) -> StockSource:
    return STOCK_SOURCES[world.kind](world.system(), world.credentials())


def _read_stock(world: MerchantWorld, item: int) -> tuple[str | None, int] | None:
    """One read with a fresh source (as each ``shopify.inventory`` job builds one)."""
    source = _stock_source(world)
    started = time.monotonic()
    try:
        return source.read_stock(item)
    finally:
        source.close()
        assert time.monotonic() - started < MAX_CALL_SECONDS, "read_stock hung"


def check_stock_reads(world: MerchantWorld) -> None:
    """Where ``send_stock`` is declared: an item's SKU and its stock summed over every location,
    however many pages the levels take; None for an item the system no longer has; failures are
    classified errors (retryable with the wait, or permanent), never anything else."""
    if Capability.SEND_STOCK not in declared(world):
        return
    sku = SKUS[0]
    item = world.stock_item(sku)
    levels = [3, 0, 5] + [1] * 297  # 300 locations: more than one page of levels
    world.set_stock(sku, levels)
    reads = len(world.stock_reads())
    assert _read_stock(world, item) == (sku, sum(levels))
    assert len(world.stock_reads()) - reads >= 3, "the levels were not read page by page"
    assert _read_stock(world, 999_999_999) is None
    world.proxy.fail(Fault("GET", "/inventory_", answer=json_answer(429, {}, headers={"Retry-After": "4"})))
    try:
        _read_stock(world, item)
    except RetryableError as exc:
        assert exc.retry_after == 4, exc
    else:
        raise AssertionError("a throttled stock read returned a value")
    broken = (raw_answer(200, HTML), raw_answer(200, '{"inventory_levels": [{"avail'), b"junk", b"")
    for route in ("/inventory_items/", "/inventory_levels"):
        for answer in broken:
            world.proxy.fail(Fault("GET", route, answer=answer))
            try:
                _read_stock(world, item)
            except (RetryableError, PermanentError):
                pass
            else:
                raise AssertionError(f"a broken stock answer was read as stock: {answer[:40]!r}")


#: Which port methods each capability stands for (``send_catalog`` and ``send_shipments`` arrive at
#: tradelane by webhooks and files: no port call; their own tests cover them).
PORT_METHODS: dict[Capability, tuple[str, ...]] = {
    Capability.RECEIVE_ORDERS: ("deliver_order", "close"),
    Capability.RECEIVE_CANCELLATIONS: ("notify_cancellation", "close"),
    Capability.SEND_STOCK: ("read_stock", "close"),
}


def check_capabilities_honest(world: MerchantWorld) -> None:
    """Every declared capability has its port (adapter factory, stock source) and works through it;
    after every declared operation ran, no request the partner saw belongs to anything undeclared."""
    capabilities = declared(world)
    assert Capability.RECEIVE_ORDERS in capabilities, "an adapter in ADAPTERS must receive orders"
    assert world.kind in ADAPTERS
    assert (Capability.SEND_STOCK in capabilities) == (world.kind in STOCK_SOURCES), capabilities
    for capability, methods in PORT_METHODS.items():
        if capability not in capabilities:
            continue
        port: Any = _stock_source(world) if capability is Capability.SEND_STOCK else adapter_of(world)
        try:
            for method in methods:
                assert callable(getattr(port, method, None)), f"{capability} declared, {method} missing"
        finally:
            port.close()
    check_delivered_once(world)
    check_cancellation_notices(world)
    check_stock_reads(world)
    allowed = [
        route for name, routes in world.routes.items() if name in capabilities.names() for route in routes
    ]
    for seen in world.proxy.requests():
        path = seen.path.split("?", 1)[0]
        assert any(seen.method == m and part in path for m, part in allowed), (
            f"{seen.method} {seen.path} belongs to no declared capability of {world.kind} "
            f"({describe_capabilities(capabilities)})"
        )


#: The suite: every check, by name (the test module runs each one against every world).
CHECKS: dict[str, Callable[[MerchantWorld], None]] = {
    "delivered_once": check_delivered_once,
    "answer_lost_after_write": check_answer_lost_after_write,
    "slow_partner": check_slow_partner,
    "no_answer": check_unreachable,
    "retry_after_seconds": check_throttled_retry_after_seconds,
    "retry_after_http_date": check_throttled_retry_after_date,
    "transient_statuses": check_transient_statuses,
    "refused_with_message": check_refused_with_message,
    "broken_answers": check_broken_answers,
    "broken_answer_after_write": check_broken_answer_after_write,
    "cancellation_notices": check_cancellation_notices,
    "stock_reads": check_stock_reads,
    "capabilities_honest": check_capabilities_honest,
}
