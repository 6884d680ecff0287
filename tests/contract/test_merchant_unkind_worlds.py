"""Merchant systems that are not kind, through the delivery service and real workers (both databases):

* an OMS that *ignores* ``Idempotency-Key`` (every POST creates a new order): two racing workers, and
  re-polls queueing the same deliveries again while they run, still POST each order exactly once in a
  fault-free run — exactly-once there rests on tradelane alone (one delivery in flight per order, a
  held order never sent again), not on the OMS deduplicating;
* an OMS whose cancellations module is missing (``POST .../cancellations`` answers 404 although the
  adapter sends cancellations there): the notice ends at once as a clear refusal — an alert and a
  history row naming the 404, one request, no retry loop — and orders keep flowing to it.

The OMS is a fake HTTP server on 127.0.0.1 written here (no sandbox would behave this badly).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from helpers import FakeClock
from tradelane.bootstrap import Container, build
from tradelane.config import Settings
from tradelane.domain.orders import Address, MarketplaceOrder, MarketplaceOrderLine, OrderState
from tradelane.persistence.tables import alerts, jobs, merchant_systems, order_history, orders, products
from tradelane.security.crypto import generate_key
from tradelane.services.channels import create_channel
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.order_delivery import NOTIFY_CANCELLATION_KIND, enqueue_cancellation_notice
from tradelane.services.order_health import enqueue_delivery
from tradelane.services.orders import ingest_order
from tradelane.services.tenants import create_tenant
from tradelane.sync.worker import Worker, WorkerConfig

SECRET = "unkind-oms-signing-secret-0123456789"
SKUS = ("MUG-RED", "MUG-BLUE", "MUG-GREEN")
ORDERS = 16
DEADLINE_SECONDS = 60
ADDRESS = Address(
    first_name="Ada",
    last_name="Lovelace",
    street1="1 Rue de Rivoli",
    zip_code="75001",
    city="Paris",
    country="FRA",
)


@dataclass
class CarelessOms:
    """An OMS that creates a new order for every POST it receives (``Idempotency-Key`` ignored) and,
    with ``cancellations_missing``, answers 404 to ``POST .../cancellations`` as a web framework does
    for a route it does not have."""

    cancellations_missing: bool = False
    #: Seconds each order POST takes (deliveries overlap the re-polls).
    latency: float = 0.03
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: tradelane order id -> OMS order ids created for it.
    created: dict[int, list[str]] = field(default_factory=dict)
    cancellation_posts: int = 0

    def handle(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if path.endswith("/cancellations"):
            with self.lock:
                self.cancellation_posts += 1
            if self.cancellations_missing:
                return 404, {"detail": "Not Found"}
            return 201, {"status": "cancelled"}
        document = json.loads(body)
        time.sleep(self.latency)
        with self.lock:
            oms_id = f"OMS-{sum(len(v) for v in self.created.values()) + 1}"
            self.created.setdefault(int(document["id"]), []).append(oms_id)
        return 201, {"id": oms_id}

    def posts(self) -> Counter[int]:
        with self.lock:
            return Counter({order: len(ids) for order, ids in self.created.items()})


@pytest.fixture
def careless() -> Iterator[tuple[CarelessOms, str]]:
    oms = CarelessOms()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = oms.handle(self.path, body)
            content = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield oms, f"http://127.0.0.1:{server.server_address[1]}/api/orders"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Hub:
    container: Container
    clock: FakeClock
    tenant_id: int
    channel_id: int

    def order(self, n: int) -> int:
        """Ingest a two-line SHIPPING order (ready to deliver); its tradelane id."""
        mid = f"UNKIND-{n}"
        order = MarketplaceOrder(
            marketplace_order_id=mid,
            state=OrderState.TO_SHIP,
            raw_state="SHIPPING",
            currency="EUR",
            created_at=self.clock() - timedelta(hours=1),
            updated_at=self.clock(),
            lines=tuple(
                MarketplaceOrderLine(
                    line_id=f"{mid}-{k + 1}",
                    offer_sku=f"offer-{sku}",
                    quantity=1 + k,
                    unit_price=Decimal("9.90"),
                    currency="EUR",
                    state="SHIPPING",
                    title=f"Product {sku}",
                    product_sku=sku,
                )
                for k, sku in enumerate((SKUS[n % 3], SKUS[(n + 1) % 3]))
            ),
            shipping_address=ADDRESS,
            billing_address=ADDRESS,
            customer_message=None,
            attributes={},
            raw={"order_id": mid},
        )
        with self.container.engine.begin() as conn:
            return ingest_order(
                conn, tenant_id=self.tenant_id, channel_id=self.channel_id, order=order, now=self.clock()
            ).order_id

    def enqueue_delivery(self, order_id: int) -> None:
        with self.container.engine.begin() as conn:
            enqueue_delivery(
                conn,
                tenant_id=self.tenant_id,
                order_id=order_id,
                channel_id=self.channel_id,
                now=self.clock(),
            )

    def worker(self, name: str) -> Worker:
        config = WorkerConfig(schedule=False, lease_seconds=600, batch_size=2, backoff_base=1, backoff_cap=5)
        return Worker(
            self.container.engine,
            self.container.registry,
            self.clock,
            config,
            services=self.container.extras,
            name=name,
        )

    def merchant_status(self, order_id: int) -> str:
        with self.container.engine.connect() as conn:
            return str(
                conn.execute(sa.select(orders.c.merchant_status).where(orders.c.id == order_id)).scalar_one()
            )


@pytest.fixture
def hub(db_url: str, now: datetime, careless: tuple[CarelessOms, str]) -> Iterator[Hub]:
    container = build(Settings(database_url=db_url, secret_keys=generate_key()), configure_logs=False)
    clock = FakeClock(now)
    container.clock = clock
    with container.engine.begin() as conn:
        tenant, _ = create_tenant(conn, "acme", now=now)
        channel = create_channel(
            conn,
            tenant_id=tenant.id,
            name="shop-fr",
            connector="mirakl",
            settings={"hostname": "shop-fr.example"},
            credentials={"api_key": "k"},
            keyring=container.keyring,
            now=now,
        )
        for sku in SKUS:
            conn.execute(
                sa.insert(products).values(
                    tenant_id=tenant.id,
                    sku=sku,
                    title=f"Product {sku}",
                    price=Decimal("9.90"),
                    currency="EUR",
                    quantity=50,
                    labels=[],
                    attributes={},
                    content_hash="0" * 64,
                    created_at=now,
                    updated_at=now,
                )
            )
        add_http_system(
            conn,
            tenant_id=tenant.id,
            name="careless-oms",
            url=careless[1],
            secret=SECRET,
            keyring=container.keyring,
            now=now,
            timeout_seconds=5,
        )
    try:
        yield Hub(container, clock, tenant.id, channel.id)
    finally:
        container.close()


def _in_flight(hub: Hub) -> int:
    with hub.container.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(jobs.c.state.in_(["queued", "running"]))
            ).scalar_one()
        )


def test_an_oms_ignoring_idempotency_keys_gets_one_post_per_order_from_racing_workers(
    hub: Hub, careless: tuple[CarelessOms, str]
) -> None:
    oms, _ = careless
    order_ids = [hub.order(n) for n in range(ORDERS)]
    for order_id in order_ids:
        hub.enqueue_delivery(order_id)
    stop = threading.Event()
    errors: list[BaseException] = []
    ran: Counter[str] = Counter()

    def run(worker: Worker) -> None:
        try:
            while not stop.is_set():
                done = worker.run_once()
                ran[worker.name] += done
                if done == 0:
                    time.sleep(0.02)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def re_poll() -> None:
        # A poll seeing the orders again while their deliveries run queues them again (coalesced).
        try:
            while not stop.is_set():
                for order_id in order_ids:
                    hub.enqueue_delivery(order_id)
                hub.clock.advance(0.05)
                time.sleep(0.05)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(hub.worker(f"racer-{n}"),), daemon=True) for n in range(2)]
    threads.append(threading.Thread(target=re_poll, daemon=True))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while time.monotonic() < deadline and not errors:
            if all(hub.merchant_status(o) == "delivered" for o in order_ids):
                break
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, repr(errors[0])
    assert [hub.merchant_status(o) for o in order_ids] == ["delivered"] * ORDERS
    assert ran["racer-0"] and ran["racer-1"], f"both workers must have run deliveries: {ran}"
    # Deliveries queued by the last re-poll round find the orders held and send nothing.
    hub.worker("drain").run(burst=True, max_jobs=200)
    assert _in_flight(hub) == 0
    with hub.container.engine.connect() as conn:
        deliveries = conn.execute(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.kind == "orders.deliver")
        )
        assert deliveries.scalar_one() > ORDERS, "the re-polls never queued a delivery again"
    assert oms.posts() == Counter(dict.fromkeys(order_ids, 1)), "an order was POSTed twice"


def test_an_oms_without_a_cancellations_module_gets_a_clear_refusal_and_orders_keep_flowing(
    hub: Hub, careless: tuple[CarelessOms, str]
) -> None:
    oms, _ = careless
    oms.cancellations_missing = True
    first = hub.order(1)
    hub.enqueue_delivery(first)
    hub.worker("w").run(burst=True, max_jobs=20)
    assert hub.merchant_status(first) == "delivered"

    with hub.container.engine.begin() as conn:
        enqueue_cancellation_notice(
            conn,
            tenant_id=hub.tenant_id,
            order_id=first,
            channel_id=hub.channel_id,
            lines=None,
            now=hub.clock(),
        )
    second = hub.order(2)
    hub.enqueue_delivery(second)
    hub.worker("w").run(burst=True, max_jobs=20)

    with hub.container.engine.connect() as conn:
        notice = conn.execute(
            sa.select(jobs.c.state, jobs.c.attempts, jobs.c.result).where(
                jobs.c.kind == NOTIFY_CANCELLATION_KIND
            )
        ).one()
        raised = conn.execute(
            sa.select(alerts.c.kind, alerts.c.message, alerts.c.order_id).where(
                alerts.c.tenant_id == hub.tenant_id
            )
        ).all()
        notes = conn.execute(
            sa.select(order_history.c.state, order_history.c.note).where(order_history.c.order_id == first)
        ).all()
    assert notice.state == "succeeded" and notice.attempts == 1, notice
    assert oms.cancellation_posts == 1, "a missing cancellations route must not be retried"
    [alert] = raised
    assert alert.kind == "cancellation_not_accepted" and alert.order_id == first
    assert "careless-oms" in alert.message and "404" in alert.message, alert.message
    assert "by hand" in alert.message, alert.message
    assert any(state == "CANCELLATION_REFUSED" and "404" in (note or "") for state, note in notes), notes
    # The order flow is unaffected: the order stays delivered, the next one is delivered once.
    assert hub.merchant_status(first) == "delivered"
    assert hub.merchant_status(second) == "delivered"
    assert oms.posts() == Counter({first: 1, second: 1})


def test_an_oms_declared_without_cancellations_is_never_sent_one_and_the_alert_says_why(
    hub: Hub, careless: tuple[CarelessOms, str]
) -> None:
    oms, url = careless
    with hub.container.engine.begin() as conn:
        conn.execute(
            sa.update(merchant_systems)
            .where(merchant_systems.c.tenant_id == hub.tenant_id)
            .values(settings={"url": url, "timeout_seconds": 5, "cancellations": False})
        )
    order_id = hub.order(1)
    hub.enqueue_delivery(order_id)
    hub.worker("w").run(burst=True, max_jobs=20)
    assert hub.merchant_status(order_id) == "delivered"
    with hub.container.engine.begin() as conn:
        enqueue_cancellation_notice(
            conn,
            tenant_id=hub.tenant_id,
            order_id=order_id,
            channel_id=hub.channel_id,
            lines=None,
            now=hub.clock(),
        )
    hub.worker("w").run(burst=True, max_jobs=20)
    assert oms.cancellation_posts == 0, "an undeclared cancellations module was called"
    with hub.container.engine.connect() as conn:
        [alert] = conn.execute(
            sa.select(alerts.c.kind, alerts.c.message).where(alerts.c.order_id == order_id)
        ).all()
    assert alert.kind == "cancellation_not_accepted"
    assert "declares no cancellations module" in alert.message and "by hand" in alert.message, alert.message
    assert hub.merchant_status(order_id) == "delivered"


def test_cli_adds_an_http_oms_without_cancellations(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    from tradelane.cli import build_app

    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner, app = CliRunner(), build_app()
    assert runner.invoke(app, ["tenant", "create", "acme"]).exit_code == 0
    add = [
        "merchant",
        "add",
        "http",
        "--tenant",
        "acme",
        "--url",
        "https://oms.example/orders",
        "--secret-stdin",
    ]
    secret = f"{SECRET}\n"
    plain = runner.invoke(app, [*add, "--name", "full", "--json"], input=secret)
    bare = runner.invoke(app, [*add, "--name", "bare", "--no-cancellations", "--json"], input=secret)
    assert plain.exit_code == 0 and bare.exit_code == 0, plain.output + bare.output
    assert "cancellations" not in json.loads(plain.stdout)["settings"]
    assert json.loads(bare.stdout)["settings"]["cancellations"] is False
    listed = runner.invoke(app, ["merchant", "list", "--tenant", "acme", "--json"])
    assert {s["name"]: s["capabilities"] for s in json.loads(listed.stdout)} == {
        "bare": ["receive_orders", "send_shipments"],
        "full": ["receive_orders", "receive_cancellations", "send_shipments"],
    }
