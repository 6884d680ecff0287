"""The demo: everything in one process, on an embedded SQLite store under ``data_dir``.

Started pieces (each on 127.0.0.1): the Mirakl sandbox with two marketplace shops, the Amazon SP-API
sandbox with one seller in Amazon.de, the HTTP OMS sandbox, tradelane's API + dashboard, and one
worker. The demo creates a tenant, imports a sample catalog, connects the channels (every connector of
the registry: two Mirakl shops, one Amazon channel) and the OMS, runs the initial offer sync (Amazon's
catalog knows the sample catalog's GTINs, so the offers land on its ASINs), then keeps simulating
customers ordering on the marketplaces (some with unknown SKUs, some with messages, some cancelled by
the merchant; Amazon orders are Pending until their payment is authorised a few seconds later) and the
OMS shipping what it received. Ctrl-C (or ``--minutes``) stops it cleanly.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tradelane.bootstrap import Container, build
from tradelane.config import Settings
from tradelane.connectors.amazon import connector as amazon
from tradelane.connectors.amazon.sandbox import AmazonSandboxServer, AmazonSandboxState, SandboxSettings
from tradelane.connectors.amazon.sandbox.models import Catalog, CatalogItem, FulfillmentStatus, SellerAccount
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.connectors.mirakl.sandbox import Product as SandboxProduct
from tradelane.connectors.mirakl.sandbox import SandboxConfig, SandboxServer, SandboxState, Shop
from tradelane.demo.catalog import ean13, sample_rows, write_csv
from tradelane.domain.channels import Flow
from tradelane.merchant.sandbox import CallbackConfig, OmsSandboxServer, OmsSandboxState
from tradelane.merchant.sandbox.callback import send_update
from tradelane.persistence import migrate
from tradelane.persistence.tables import channels as channel_table
from tradelane.persistence.tables import offer_bindings, order_history, orders
from tradelane.services.catalog_import import import_catalog
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.offers import OFFER_SYNC_PROGRESS, OFFERS_FULL, OfferSyncProgress
from tradelane.services.tenants import create_tenant
from tradelane.sync.jobs import JobSpec, enqueue
from tradelane.sync.worker import Worker, WorkerConfig
from tradelane.web.app import make_server

SHOPS = [(2001, "Marketplace FR", "EUR"), (2002, "Marketplace UK", "GBP")]
#: Offers the marketplaces list but the merchant's catalog does not know (they quarantine orders).
LEGACY_OFFERS = ["LEGACY-001", "LEGACY-002"]
#: The demo polls fast; the sandboxes allow it (real operators publish slower budgets).
DEMO_LIMITS = {op: [30, 60] for op in ("OR11", "OF24", "OF01", "OF02", "OF03", "M01", "RT11")}
#: The Amazon channel: one seller of the sandbox's EU account in Amazon.de (EUR, like the catalog).
AMAZON_CHANNEL = "amazon-de"
AMAZON_MARKETPLACE = "A1PA6795UKMFR9"
#: The demo polls Amazon's orders every few seconds; its sandbox allows it (Amazon's published plan is
#: one searchOrders call per 180 s after a burst of 20).
AMAZON_DEMO_LIMITS = {"searchOrders": [1, 20]}
#: Seconds an Amazon order stays Pending before the buyer's payment is authorised.
AMAZON_PAYMENT_DELAY = 5.0


@dataclass
class DemoOptions:
    data_dir: Path = Path("var/demo")
    host: str = "127.0.0.1"
    port: int = 8000
    minutes: float | None = None
    seed: int = 7
    order_every: float = 3.0
    poll_every: float = 8.0


@dataclass
class Demo:
    options: DemoOptions
    console: Console

    def run(self) -> dict[str, Any]:
        opts = self.options
        rng = random.Random(opts.seed)
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        db = opts.data_dir / "tradelane.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        app = build(
            Settings(database_url=f"sqlite:///{db}", data_dir=opts.data_dir, log_level="WARNING"),
            configure_logs=True,
        )
        migrate.upgrade(app.engine)
        now = app.now()
        with app.engine.begin() as conn:
            tenant, token = create_tenant(conn, "demo", now=now)
        rows = sample_rows(opts.seed)
        self._import(app, tenant.id, write_csv(rows, opts.data_dir / "catalog.csv"))

        mirakl = self._mirakl_sandbox(rows)
        amazon_state = self._amazon_sandbox(rows)
        oms_secret = secrets.token_urlsafe(24)
        oms = OmsSandboxState(
            oms_secret,
            callback=CallbackConfig(f"http://{opts.host}:{opts.port}", api_token=token, merchant_name="oms"),
        )
        stop = threading.Event()
        with (
            SandboxServer(mirakl) as mirakl_server,
            AmazonSandboxServer(amazon_state) as amazon_server,
            OmsSandboxServer(oms) as oms_server,
        ):
            channels = self._connect(
                app, tenant.id, mirakl, mirakl_server.url, oms_server.orders_url, oms_secret
            )
            channels.append(self._connect_amazon(app, tenant.id, amazon_state, amazon_server.url))
            self._take_live(app, channels)
            worker = Worker(
                app.engine,
                app.registry,
                app.now,
                WorkerConfig(batch_size=20, lease_seconds=60, poll_seconds=0.5),
                services=app.extras,
                name="demo-worker",
            )
            self._initial_sync(app, worker, tenant.id, channels)
            server = make_server(app, opts.host, opts.port)
            threads = [
                threading.Thread(target=server.run, name="api", daemon=True),
                threading.Thread(target=worker.run, name="worker", daemon=True),
            ]
            for t in threads:
                t.start()
            self._banner(token)
            try:
                self._simulate(app, tenant.id, channels, mirakl, amazon_state, oms, rng, stop)
            except KeyboardInterrupt:
                self.console.print("\nstopping…")
            finally:
                worker.request_stop()
                server.should_exit = True
                for t in threads:
                    t.join(timeout=15)
            summary = self._summary(app, mirakl, amazon_state)
        app.close()
        return summary

    # --- set-up -------------------------------------------------------------------------------------
    def _import(self, app: Container, tenant_id: int, path: Path) -> None:
        with _progress(self.console) as progress:
            task = progress.add_task("importing the sample catalog", total=path.stat().st_size)
            summary = import_catalog(
                app.engine,
                tenant_id=tenant_id,
                path=path,
                now=app.now(),
                progress=lambda rows, done, total: progress.update(task, completed=done, total=total),
            )
            progress.update(task, completed=path.stat().st_size)
        self.console.print(f"catalog: {summary.created} products created")

    def _mirakl_sandbox(self, rows: list[dict[str, str]]) -> SandboxState:
        products = [
            SandboxProduct(
                sku=f"OP-{r['sku']}",
                title=r["title"],
                category_code="demo",
                category_label="Demo",
                references=(("EAN", r["gtin"]),),
                brand=r["brand"],
            )
            for r in rows
        ]
        legacy = [
            SandboxProduct(
                sku=f"OP-{sku}",
                title=f"Old listing {sku}",
                category_code="demo",
                category_label="Demo",
                references=(("EAN", ean13(900_000 + i)),),
            )
            for i, sku in enumerate(LEGACY_OFFERS)
        ]
        state = SandboxState(
            self.options.seed,
            shops=[
                Shop(shop_id, name, f"demo-key-{shop_id}", currency=cur, multi_shipment=True)
                for shop_id, name, cur in SHOPS
            ],
            products=products + legacy,
            rate_limits={},
            follow_wall_time=True,
            config=SandboxConfig(
                payment_delay=timedelta(seconds=6),
                import_polls=1,
                import_delay=timedelta(seconds=2),
                acceptance_delay=timedelta(minutes=10),
            ),
        )
        for shop_id, _name, _cur in SHOPS:
            for sku in LEGACY_OFFERS:
                state.add_offer(shop_id, sku, f"OP-{sku}", Decimal("19.90"), 500)
        return state

    def _amazon_sandbox(self, rows: list[dict[str, str]]) -> AmazonSandboxState:
        """The Amazon sandbox, its catalog made of the sample catalog's GTINs (one ASIN each) and the
        legacy listings, which the seller has listed already (orders of them are quarantined)."""
        state = AmazonSandboxState(
            self.options.seed,
            rate_limits="generous",
            region="eu",
            products=0,
            settings=SandboxSettings(feed_queue_seconds=1.0, feed_processing_seconds=1.0),
            follow_wall_time=True,
        )
        items = [
            CatalogItem(f"B0DEMO{i:04d}", r["title"], "PRODUCT", r["gtin"], (AMAZON_MARKETPLACE,))
            for i, r in enumerate(rows, start=1)
        ]
        legacy = [
            CatalogItem(
                f"B0LEGACY{i:02d}", f"Old listing {sku}", "PRODUCT", ean13(900_000 + i), (AMAZON_MARKETPLACE,)
            )
            for i, sku in enumerate(LEGACY_OFFERS)
        ]
        state.catalog = Catalog(items + legacy)
        seller = _amazon_seller(state)
        for item, sku in zip(legacy, LEGACY_OFFERS, strict=True):
            state.add_offer(seller.seller_id, sku, item.asin, Decimal("19.90"), 500)
        return state

    def _connect_amazon(self, app: Container, tenant_id: int, state: AmazonSandboxState, url: str) -> Any:
        seller = _amazon_seller(state)
        with app.engine.begin() as conn:
            channel = amazon.add_channel(
                conn,
                tenant_id=tenant_id,
                name=AMAZON_CHANNEL,
                seller_id=seller.seller_id,
                marketplace_id=AMAZON_MARKETPLACE,
                client_id=state.application.client_id,
                client_secret=state.application.client_secret,
                refresh_token=seller.refresh_token,
                keyring=app.keyring,
                now=app.now(),
                region="eu",
                endpoint=url,
                token_endpoint=url,
                options={
                    "rate_limits": AMAZON_DEMO_LIMITS,
                    "feed_poll_seconds": 2,
                    "max_patch_seconds": 10,
                    "carrier_map": {"ups": "UPS", "dhl": "DHL"},
                },
            )
        self.console.print(f"connected the Amazon channel {channel.name} (seller {seller.seller_id})")
        return channel

    def _take_live(self, app: Container, channels: list[Any]) -> None:
        """Save and activate each channel (its credentials checked on the sandbox), then promote it:
        a channel in setup sends nothing."""
        from tradelane.connectors.registry import check_channel
        from tradelane.services import audit, channel_lifecycle

        for channel in channels:
            with app.engine.connect() as conn:
                checked = check_channel(conn, channel, app.keyring)
            with app.engine.begin() as conn:
                actor, now = audit.cli_actor(), app.now()
                channel_lifecycle.activate(
                    conn, channel, checked=checked, actor=actor, now=now, reason="demo"
                )
                channel_lifecycle.promote(
                    conn, channel, actor=actor, now=now, reason="demo: sandbox accounts"
                )
        self.console.print(f"activated {len(channels)} channels (credentials checked) and took them live")

    def _connect(
        self, app: Container, tenant_id: int, mirakl: SandboxState, url: str, oms_url: str, oms_secret: str
    ) -> list[Any]:
        now = app.now()
        channels = []
        with app.engine.begin() as conn:
            for shop_id, name, currency in SHOPS:
                channels.append(
                    add_channel(
                        conn,
                        tenant_id=tenant_id,
                        name=name.lower().replace(" ", "-"),
                        hostname=url,
                        shop_id=str(shop_id),
                        api_key=f"demo-key-{shop_id}",
                        keyring=app.keyring,
                        now=now,
                        options={
                            "rate_limits": DEMO_LIMITS,
                            "multi_shipment": True,
                            "acceptance_window_seconds": 600,
                            "carrier_map": {"ups": "UPS", "dhl": "DHL"},
                            "offer": {"currency": currency} if currency == "EUR" else {},
                        },
                    )
                )
            add_http_system(
                conn,
                tenant_id=tenant_id,
                name="oms",
                url=oms_url,
                secret=oms_secret,
                keyring=app.keyring,
                now=now,
            )
        self.console.print(f"connected {len(channels)} Mirakl channels and the HTTP OMS")
        return channels

    def _initial_sync(self, app: Container, worker: Worker, tenant_id: int, channels: list[Any]) -> None:
        """One full sync per channel. The first bar advances as each channel's offers are submitted to
        its marketplace (the full sync reports each submission), the second as the marketplace reports
        the imports."""
        with app.engine.begin() as conn:
            for ch in channels:
                enqueue(
                    conn,
                    JobSpec(
                        tenant_id,
                        OFFERS_FULL,
                        {},
                        channel_id=ch.id,
                        flow=Flow.OFFERS.value,
                        dedupe_key=f"{OFFERS_FULL}:{ch.id}",
                    ),
                    now=app.now(),
                )
        with app.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(offer_bindings)).scalar_one()
        with _progress(self.console) as progress:
            sending = progress.add_task("initial offer sync: offers sent", total=total)
            reported = progress.add_task("marketplace import reports", total=total)
            per_channel: dict[int, int] = {}

            def report(step: OfferSyncProgress) -> None:
                if step.stage != "sent":  # building is in memory (fast); the bar shows the upload
                    return
                per_channel[step.channel_id] = step.done
                progress.update(sending, completed=sum(per_channel.values()))

            worker.services[OFFER_SYNC_PROGRESS] = report
            try:
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    worker.run(burst=True)
                    with app.engine.connect() as conn:
                        done = conn.execute(
                            sa.select(sa.func.count())
                            .select_from(offer_bindings)
                            .where(offer_bindings.c.status.in_(["published", "error", "blocked"]))
                        ).scalar_one()
                    progress.update(reported, completed=done)
                    if done >= total:
                        break
                    time.sleep(0.5)
            finally:
                worker.services.pop(OFFER_SYNC_PROGRESS, None)

    def _banner(self, token: str) -> None:
        opts = self.options
        self.console.rule("[bold]tradelane demo is running")
        self.console.print(f"dashboard  http://{opts.host}:{opts.port}/   (log in with the token below)")
        self.console.print(f"API        http://{opts.host}:{opts.port}/docs")
        self.console.print(f"demo token {token}")
        until = f"for {opts.minutes:g} minute(s)" if opts.minutes else "until Ctrl-C"
        self.console.print(f"simulating customers and the OMS {until}")

    # --- traffic ------------------------------------------------------------------------------------
    def _simulate(
        self,
        app: Container,
        tenant_id: int,
        channels: list[Any],
        mirakl: SandboxState,
        amazon_state: AmazonSandboxState,
        oms: OmsSandboxState,
        rng: random.Random,
        stop: threading.Event,
    ) -> None:
        opts = self.options
        end = time.monotonic() + opts.minutes * 60 if opts.minutes else None
        next_order = next_poll = time.monotonic()
        handled: set[str] = set()
        unpaid: list[tuple[float, str]] = []  # (when its payment is authorised, Amazon order id)
        placed = 0
        while end is None or time.monotonic() < end:
            tick = time.monotonic()
            if tick >= next_order:
                if placed % 3 == 2:
                    order_id = self._place_amazon_order(amazon_state, rng, placed)
                    if order_id is not None:
                        unpaid.append((tick + AMAZON_PAYMENT_DELAY, order_id))
                        placed += 1
                else:
                    placed += self._place_order(mirakl, rng, placed)
                next_order = tick + opts.order_every
            while unpaid and unpaid[0][0] <= tick:
                amazon_state.pay(unpaid.pop(0)[1])
            if tick >= next_poll:
                with app.engine.begin() as conn:
                    for ch in channels:
                        enqueue(
                            conn,
                            JobSpec(
                                tenant_id,
                                "orders.poll",
                                {"demo": True},
                                channel_id=ch.id,
                                flow=Flow.ORDERS.value,
                                dedupe_key=f"orders.poll:{ch.id}",
                            ),
                            now=app.now(),
                        )
                next_poll = tick + opts.poll_every
            self._oms_work(oms, rng, handled)
            time.sleep(0.5)

    def _place_order(self, mirakl: SandboxState, rng: random.Random, placed: int) -> int:
        shop_id, _name, currency = rng.choice(SHOPS)
        offers = [o for o in mirakl.shop_offers(shop_id).values() if o.quantity > 3]
        known = [o for o in offers if o.shop_sku not in LEGACY_OFFERS]
        if not known:
            return 0
        lines = []
        for offer in rng.sample(known, k=min(len(known), rng.randint(1, 3))):
            line: dict[str, Any] = {"offer_sku": offer.shop_sku, "quantity": rng.randint(1, 2)}
            if currency != "EUR":
                line["unit_price"] = str((offer.price * Decimal("0.86")).quantize(Decimal("0.01")))
            lines.append(line)
        if placed % 7 == 3:  # now and then, an offer the merchant's catalog does not know
            lines.append(
                {
                    "offer_sku": rng.choice(LEGACY_OFFERS),
                    "quantity": 1,
                    **({"unit_price": "16.90"} if currency != "EUR" else {}),
                }
            )
        message = rng.choice([None, None, "Gift wrap please", "Please deliver after 6pm"])
        try:
            mirakl.create_order(shop_id, lines, currency=currency, customer_message=message)
        except ValueError:
            return 0
        return 1

    def _place_amazon_order(self, state: AmazonSandboxState, rng: random.Random, placed: int) -> str | None:
        """A buyer orders 1-2 listed offers on Amazon (now and then with a legacy listing the catalog
        does not know); the order is Pending until paid. None when nothing is listed yet."""
        seller = _amazon_seller(state)
        with state.lock:
            listed = sorted(sku for (sid, sku) in state.listings if sid == seller.seller_id)
        known = [sku for sku in listed if sku not in LEGACY_OFFERS]
        if not known:
            return None
        lines = [(sku, rng.randint(1, 2)) for sku in rng.sample(known, k=min(len(known), rng.randint(1, 2)))]
        if placed % 5 == 0:
            lines.append((rng.choice(LEGACY_OFFERS), 1))
        try:
            return state.create_order(seller.seller_id, lines, buyer_name=rng.choice(BUYERS)).order_id
        except ValueError:
            return None

    def _oms_work(self, oms: OmsSandboxState, rng: random.Random, handled: set[str]) -> None:
        for received in oms.orders():
            if received.oms_id in handled:
                continue
            age = (oms.clock() - received.received_at).total_seconds()
            if age < 2:
                continue
            handled.add(received.oms_id)
            lines = received.document.get("lines") or []
            try:
                # Amazon has no seller cancellation (its capabilities say so): those orders ship.
                if rng.random() < 0.1 and not received.ref.startswith(f"{AMAZON_CHANNEL}:"):
                    response = send_update(
                        oms, received, "cancellation", {"reason": "out of stock"}, via="api"
                    )
                else:
                    response = send_update(
                        oms,
                        received,
                        "shipment",
                        {
                            "carrier": rng.choice(["ups", "dhl"]),
                            "tracking_number": f"TRK{rng.randint(10**7, 10**8)}",
                            "lines": [{"sku": ln["sku"], "quantity": ln["quantity"]} for ln in lines],
                        },
                        via="api",
                    )
                if response.status_code >= 400:
                    self.console.print(
                        f"[yellow]tradelane answered the OMS {response.status_code}: {response.text[:200]}[/]"
                    )
            except Exception as exc:  # the demo keeps going; the failure is visible in tradelane
                self.console.print(f"[yellow]OMS callback failed: {exc}[/]")

    # --- result -------------------------------------------------------------------------------------
    def _summary(
        self, app: Container, mirakl: SandboxState, amazon_state: AmazonSandboxState
    ) -> dict[str, Any]:
        with app.engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(orders)).scalar_one()
            accepted = conn.execute(
                sa.select(sa.func.count()).select_from(orders).where(orders.c.accepted_at.is_not(None))
            ).scalar_one()
            statuses = dict(
                conn.execute(
                    sa.select(orders.c.merchant_status, sa.func.count()).group_by(orders.c.merchant_status)
                )
                .tuples()
                .all()
            )
            shipments_sent = conn.execute(
                sa.select(sa.func.count())
                .select_from(order_history)
                .where(order_history.c.state == "SHIPMENT_SENT")
            ).scalar_one()
            amazon_channel = conn.execute(
                sa.select(channel_table.c.id).where(channel_table.c.name == AMAZON_CHANNEL)
            ).scalar_one()
            amazon_seen = conn.execute(
                sa.select(sa.func.count()).select_from(orders).where(orders.c.channel_id == amazon_channel)
            ).scalar_one()
            amazon_published = conn.execute(
                sa.select(sa.func.count())
                .select_from(offer_bindings)
                .where(offer_bindings.c.channel_id == amazon_channel, offer_bindings.c.status == "published")
            ).scalar_one()
        seller = _amazon_seller(amazon_state)
        with amazon_state.lock:
            amazon_orders = list(amazon_state.orders.values())
            amazon_listed = sum(1 for (sid, _sku) in amazon_state.listings if sid == seller.seller_id)
        placed = len(mirakl.orders) + len(amazon_orders)
        shipped_on_marketplace = sum(1 for o in mirakl.orders.values() if o.state.value == "SHIPPED")
        amazon_shipped = sum(1 for o in amazon_orders if o.status is FulfillmentStatus.SHIPPED)
        summary = {
            "orders_placed_on_marketplaces": placed,
            "orders_seen": total,
            "orders_accepted": accepted,
            "orders_imported": statuses.get("delivered", 0),
            "orders_quarantined": statuses.get("quarantined", 0),
            "shipments_sent": shipments_sent,
            "orders_shipped_on_marketplace": shipped_on_marketplace + amazon_shipped,
            "amazon_offers_published": amazon_published,
            "amazon_listings": amazon_listed,
            "amazon_orders_placed": len(amazon_orders),
            "amazon_orders_paid": sum(1 for o in amazon_orders if o.status is not FulfillmentStatus.PENDING),
            "amazon_orders_seen": amazon_seen,
            "amazon_orders_shipped_on_marketplace": amazon_shipped,
        }
        self.console.rule("demo summary")
        for key, value in summary.items():
            self.console.print(f"{key.replace('_', ' '):38} {value}")
        return summary


BUYERS = ["Jane Doe", "Max Mustermann", "Erika Musterfrau", "Lena Weber"]


def _amazon_seller(state: AmazonSandboxState) -> SellerAccount:
    """The sandbox's EU seller (it sells in Amazon.de)."""
    return next(a for a in state.accounts.values() if AMAZON_MARKETPLACE in a.marketplace_ids)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    )
