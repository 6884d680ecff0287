"""Order intake throughput against raw driver inserts of the same rows, same transaction size.

Usage: ``python bench/bench_order_intake.py [--orders N] [--page-size N] [--database-url URL]
[--no-per-order] [--no-repoll] [--rounds N]``

Generates N parsed marketplace orders (state SHIPPING, so each is ready for the merchant system: an
address, 3 lines, a raw OR11-like payload of ~2 kB) and stores them page by page, one transaction per
page (``--page-size``, default 100 = an OR11 page), measuring in the same run:

* ``intake``: :func:`tradelane.services.order_intake.store_orders`, what the poll runs for a
  page: the orders set-wise (one SELECT of the page's ids, then multi-row statements for orders,
  versions, lines, history), then the delivery jobs (one multi-row insert keyed by ``exclusive_key``);
* ``per_order`` (unless ``--no-per-order``): the per-order path the poll ran before (for each order: its
  stored line states, :func:`~tradelane.services.orders.ingest_order`,
  :func:`~tradelane.services.order_health.enqueue_delivery`) — the "before" figure, same run;
* ``raw``: the same rows — the order, its 3 lines, its version (raw payload), its history row and
  its delivery job — with the DB-API cursor (the engine's ``conn.connection.cursor()``): per order an
  ``INSERT ... RETURNING id`` of the order, an ``executemany`` of its lines and one INSERT each for
  the version, the history row and the job. Every value is converted beforehand, outside the timing
  (each through its column type's bind processor; JSON already encoded). This is the baseline of the
  issue ("raw inserts of the same rows, same transaction size", row by row);
* ``raw_batched``: the same converted rows, a statement per table per page (one multi-row INSERT of
  the orders returning their ids, one ``executemany`` each for the other tables): the floor.

Then (unless ``--no-repoll``) the orders already stored, the everyday page of a poll (issue 12: an order
is seen many times as its state moves on, and overlapping polls re-read pages), page by page through
``intake`` and ``per_order``:

* ``repoll``: the very same pages stored again (nothing changed: nothing to write);
* ``new_versions``: every order in a new version (SHIPPED, its lines too, updated an hour later): a
  version row, the order row, 3 line states and a history row each; its delivery job is still queued
  (the one in flight is kept, none added).

``ratio_repoll`` and ``ratio_new_versions`` are those orders/s over ``raw`` orders/s (the issue's
baseline: the same orders inserted row by row, same run); ``ratio_repoll_per_order`` and
``ratio_new_versions_per_order`` the same for the per-order path (the "before" figures).

The sides are interleaved page by page (intake, raw, per-order, intake, ...) so they see the same
background load; ``--rounds`` repeats the whole run and reports the median ratio. Without
``--database-url`` each side gets a fresh, migrated SQLite file; with a PostgreSQL URL (a server to
connect to, e.g. ``postgresql://postgres@127.0.0.1:5432/test``) the run creates its own database there,
migrates it, gives each side its own tenant and channel, and drops the database afterwards.
``ratio`` is intake orders/s over raw orders/s (wall clock); ``ratio_cpu`` the same from process CPU
time (on PostgreSQL the server's work is not counted); ``ratio_vs_batched`` is intake over
``raw_batched``; ``ratio_per_order`` the per-order path over raw.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from tradelane.domain.orders import (
    Address,
    MarketplaceOrder,
    MarketplaceOrderLine,
    MerchantStatus,
    OrderState,
)
from tradelane.logging import configure_logging
from tradelane.persistence import migrate
from tradelane.persistence.db import json_dumps, make_engine, normalize_url
from tradelane.persistence.tables import (
    channels,
    jobs,
    order_history,
    order_lines,
    order_versions,
    orders,
    tenants,
)
from tradelane.services import orders as order_service
from tradelane.services.channels import Channel
from tradelane.services.order_health import DELIVER_KIND, DELIVERY_MAX_ATTEMPTS, enqueue_delivery
from tradelane.services.order_intake import store_orders

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
#: The PostgreSQL server ``make bench`` uses (the run creates and drops its own database there).
DEFAULT_PG = os.environ.get("TRADELANE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def make_order(i: int, prefix: str, *, shipped: bool = False) -> MarketplaceOrder:
    """Order ``i``: SHIPPING, 3 lines, with the raw payload an OR11 page would carry for it;
    ``shipped``: its next version, SHIPPED (order and lines) an hour later."""
    order_id = f"{prefix}-{i:08d}-A"
    created = T0 + timedelta(seconds=i)
    updated = created + timedelta(hours=1) if shipped else created
    raw_state = "SHIPPED" if shipped else "SHIPPING"
    address = {
        "firstname": "Ada",
        "lastname": f"Customer {i}",
        "company": None,
        "street_1": f"{i % 300} rue de la Paix",
        "street_2": None,
        "zip_code": f"75{i % 1000:03d}",
        "city": "Paris",
        "state": None,
        "country_iso_code": "FRA",
        "phone": "+33100000000",
    }
    raw_lines = []
    lines = []
    for n in range(3):
        price = Decimal(f"{(i + n) % 90 + 10}.{(i * 7 + n) % 100:02d}")
        offer_sku = f"SKU-{(i * 3 + n) % 50_000:08d}"
        raw_lines.append(
            {
                "order_line_id": f"{order_id}-{n + 1}",
                "order_line_index": n + 1,
                "order_line_state": raw_state,
                "offer_sku": offer_sku,
                "product_sku": offer_sku,
                "product_title": f"Product {offer_sku} in blue",
                "quantity": 1 + (i + n) % 3,
                "price": float(price),
                "price_unit": float(price),
                "total_price": float(price),
                "commission_fee": 1.5,
                "shipping_price": 0.0,
                "taxes": [{"amount": 1.2, "code": "TVA-20"}],
                "category_code": "shoes",
                "created_date": created.isoformat(),
            }
        )
        lines.append(
            MarketplaceOrderLine(
                line_id=f"{order_id}-{n + 1}",
                offer_sku=offer_sku,
                quantity=1 + (i + n) % 3,
                unit_price=price,
                currency="EUR",
                state=raw_state,
                title=f"Product {offer_sku} in blue",
                product_sku=offer_sku,
            )
        )
    raw = {
        "order_id": order_id,
        "order_state": raw_state,
        "currency_iso_code": "EUR",
        "created_date": created.isoformat(),
        "last_updated_date": updated.isoformat(),
        "acceptance_decision_date": (created + timedelta(minutes=5)).isoformat(),
        "commercial_id": f"{prefix}-{i:08d}",
        "channel": {"code": "FR", "label": "France"},
        "customer": {
            "customer_id": f"C{i}",
            "firstname": "Ada",
            "lastname": f"Customer {i}",
            "shipping_address": address,
            "billing_address": address,
        },
        "shipping_type_code": "STD",
        "shipping_zone_code": "FR",
        "payment_type": "CARD",
        "total_price": sum(line["total_price"] for line in raw_lines),  # type: ignore[misc]
        "order_lines": raw_lines,
        "order_additional_fields": [{"code": "gift", "value": "false"}],
    }
    shipping = Address(
        first_name="Ada",
        last_name=f"Customer {i}",
        street1=address["street_1"],
        zip_code=address["zip_code"],
        city="Paris",
        country="FRA",
        phone="+33100000000",
    )
    return MarketplaceOrder(
        marketplace_order_id=order_id,
        state=OrderState.SHIPPED if shipped else OrderState.TO_SHIP,
        raw_state=raw_state,
        currency="EUR",
        created_at=created,
        updated_at=updated,
        lines=tuple(lines),
        acceptance_deadline=created + timedelta(days=1),
        shipping_address=shipping,
        billing_address=shipping,
        attributes={"commercial_id": f"{prefix}-{i:08d}"},
        raw=raw,
    )


def _new_channel(engine: Engine, now: datetime) -> Channel:
    with engine.begin() as conn:
        tenant_id = conn.execute(
            sa.insert(tenants)
            .values(name=f"bench-{uuid.uuid4().hex[:12]}", created_at=now)
            .returning(tenants.c.id)
        ).scalar_one()
        channel_id = conn.execute(
            sa.insert(channels)
            .values(
                tenant_id=tenant_id,
                name="bench-mirakl",
                connector="mirakl",
                lifecycle_state="live",
                settings={},
                created_at=now,
            )
            .returning(channels.c.id)
        ).scalar_one()
    return Channel(channel_id, tenant_id, "bench-mirakl", "mirakl", "live", {})


class _Side:
    """One way of storing pages: accounts wall and CPU time of each page's transaction only."""

    name = ""

    def __init__(self, engine: Engine, now: datetime) -> None:
        self.engine, self.now = engine, now
        self.channel = _new_channel(engine, now)
        self.prefix = uuid.uuid4().hex[:8]
        self.done = 0
        self.seconds = self.cpu = 0.0
        #: phase ("repoll", "new_versions") → [orders, seconds, CPU seconds] of the known-order pages
        self.again: dict[str, list[float]] = {}

    def prepare(self, page: list[MarketplaceOrder]) -> Any:
        return page

    def write(self, conn: Connection, prepared: Any) -> None:
        raise NotImplementedError

    def store(self, start: int, end: int) -> None:
        prepared = self.prepare([make_order(i, self.prefix) for i in range(start, end)])
        started, cpu_started = time.perf_counter(), time.process_time()
        with self.engine.begin() as conn:
            self.write(conn, prepared)
        self.seconds += time.perf_counter() - started
        self.cpu += time.process_time() - cpu_started
        self.done = end

    def store_again(self, phase: str, start: int, end: int) -> None:
        """Orders ``start``..``end`` (stored before) again: the same versions (``repoll``) or their
        next one (``new_versions``), timed under ``phase``."""
        page = [make_order(i, self.prefix, shipped=phase == "new_versions") for i in range(start, end)]
        prepared = self.prepare(page)
        started, cpu_started = time.perf_counter(), time.process_time()
        with self.engine.begin() as conn:
            self.write(conn, prepared)
        totals = self.again.setdefault(phase, [0, 0.0, 0.0])
        totals[0] += end - start
        totals[1] += time.perf_counter() - started
        totals[2] += time.process_time() - cpu_started

    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = _rates(self.done, self.seconds, self.cpu)
        for phase, (done, seconds, cpu) in self.again.items():
            figures[phase] = _rates(int(done), seconds, cpu)
        return figures


def _rates(done: int, seconds: float, cpu: float) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 3),
        "orders_per_s": round(done / seconds) if seconds > 0 else None,
        "cpu_ms_per_order": round(1000 * cpu / done, 3) if done else None,
    }


class _Intake(_Side):
    name = "intake"

    def write(self, conn: Connection, prepared: list[MarketplaceOrder]) -> None:
        store_orders(conn, self.channel, prepared, now=self.now)


class _PerOrder(_Side):
    """The poll's per-order path before the set-based intake (same functions, one order at a time)."""

    name = "per_order"

    def write(self, conn: Connection, prepared: list[MarketplaceOrder]) -> None:
        for order in prepared:
            order_service.stored_line_states(conn, self.channel.id, order.marketplace_order_id)
            result = order_service.ingest_order(
                conn, tenant_id=self.channel.tenant_id, channel_id=self.channel.id, order=order, now=self.now
            )
            if result.merchant_status == MerchantStatus.PENDING.value:
                enqueue_delivery(
                    conn,
                    tenant_id=self.channel.tenant_id,
                    order_id=result.order_id,
                    channel_id=self.channel.id,
                    now=self.now,
                )


class _Raw(_Side):
    """The same rows through the DB-API cursor, values converted outside the timing."""

    name = "raw"

    def __init__(self, engine: Engine, now: datetime) -> None:
        super().__init__(engine, now)
        dialect = engine.dialect
        self.postgres = dialect.name == "postgresql"
        self.marker = "?" if dialect.paramstyle == "qmark" else "%s"
        self.statements: dict[str, tuple[str, list[sa.Column[Any]], list[Callable[[Any], Any] | None]]] = {}
        for table in (orders, order_lines, order_versions, order_history, jobs):
            columns = [c for c in table.columns if c.name != "id"]
            converters: list[Callable[[Any], Any] | None] = []
            placeholders = []
            for column in columns:
                impl = column.type.dialect_impl(dialect)
                if self.postgres and isinstance(impl, sa.JSON):
                    converters.append(json_dumps)
                    placeholders.append(f"CAST({self.marker} AS JSONB)")
                else:
                    converters.append(impl.bind_processor(dialect))
                    placeholders.append(self.marker)
            sql = (
                f"INSERT INTO {table.name} ({', '.join(c.name for c in columns)}) "
                f"VALUES ({', '.join(placeholders)})"
            )
            if table is orders:
                sql += " RETURNING id"
            self.statements[table.name] = (sql, columns, converters)
        job_columns = [c.name for c in self.statements["jobs"][1]]
        self.job_payload = job_columns.index("payload")
        self.job_dedupe = job_columns.index("dedupe_key")
        self.job_exclusive = job_columns.index("exclusive_key")
        self.encode_json: Callable[[Any], Any] = self.statements["jobs"][2][self.job_payload] or json_dumps
        self.job_template = self._convert(
            "jobs",
            {
                "tenant_id": self.channel.tenant_id,
                "channel_id": self.channel.id,
                "kind": DELIVER_KIND,
                "payload": {},
                "state": "queued",
                "priority": 50,
                "attempts": 0,
                "max_attempts": DELIVERY_MAX_ATTEMPTS,
                "replayed_attempts": 0,
                "run_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )

    def _convert(self, table: str, row: dict[str, Any]) -> list[Any]:
        _sql, columns, converters = self.statements[table]
        values = []
        for column, convert in zip(columns, converters, strict=True):
            value = row.get(column.name)
            values.append(value if convert is None or value is None else convert(value))
        return values

    def prepare(self, page: list[MarketplaceOrder]) -> Any:
        """Per order: converted order row, line rows, version, history and job rows with the order
        id's position left first (filled in at insert time)."""
        t, c, now = self.channel.tenant_id, self.channel.id, self.now
        prepared = []
        for o in page:
            order_row = self._convert(
                "orders",
                {
                    "tenant_id": t,
                    "channel_id": c,
                    "marketplace_order_id": o.marketplace_order_id,
                    "state": o.state.value,
                    "marketplace_state": o.raw_state,
                    "merchant_status": "pending",
                    "currency": o.currency,
                    "acceptance_deadline": o.acceptance_deadline,
                    "shipping_address": o.shipping_address.as_dict() if o.shipping_address else None,
                    "billing_address": o.billing_address.as_dict() if o.billing_address else None,
                    "attributes": dict(o.attributes),
                    "third_party_managed": False,
                    "is_test": False,
                    "marketplace_created_at": o.created_at,
                    "marketplace_updated_at": o.updated_at,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            line_rows = [
                self._convert(
                    "order_lines",
                    {
                        "tenant_id": t,
                        "order_id": 0,
                        "line_id": ln.line_id,
                        "sku": ln.product_sku or ln.offer_sku,
                        "offer_sku": ln.offer_sku,
                        "title": ln.title,
                        "quantity": ln.quantity,
                        "unit_price": ln.unit_price,
                        "currency": ln.currency,
                        "type": "textual",
                        "state": ln.state,
                    },
                )
                for ln in o.lines
            ]
            version = self._convert(
                "order_versions",
                {
                    "tenant_id": t,
                    "order_id": 0,
                    "marketplace_state": o.raw_state,
                    "payload": o.raw,
                    "payload_hash": uuid.uuid4().hex,
                    "received_at": now,
                },
            )
            history = self._convert(
                "order_history",
                {
                    "tenant_id": t,
                    "order_id": 0,
                    "at": now,
                    "state": o.state.value,
                    "note": "seen on marketplace",
                },
            )
            prepared.append((order_row, line_rows, version, history, o.marketplace_order_id))
        return prepared

    def write(self, conn: Connection, prepared: Any) -> None:
        cursor = conn.connection.cursor()
        sql = {name: s[0] for name, s in self.statements.items()}
        try:
            for order_row, line_rows, version, history, _mirakl_id in prepared:
                cursor.execute(sql["orders"], order_row)
                order_id = cursor.fetchone()[0]
                # order_id is the second column of lines, versions and history (after tenant_id)
                cursor.executemany(sql["order_lines"], [[r[0], order_id, *r[2:]] for r in line_rows])
                cursor.execute(sql["order_versions"], [version[0], order_id, *version[2:]])
                cursor.execute(sql["order_history"], [history[0], order_id, *history[2:]])
                key = f"{DELIVER_KIND}:{order_id}"
                job = list(self.job_template)
                job[self.job_payload] = self.encode_json({"order_id": order_id})
                job[self.job_dedupe] = job[self.job_exclusive] = key
                cursor.execute(sql["jobs"], job)
        finally:
            cursor.close()


class _RawBatched(_Raw):
    """The same rows through the DB-API cursor, a statement per table per page: the orders in one
    multi-row ``INSERT ... RETURNING id, marketplace_order_id``, then one ``executemany`` each for
    lines, versions, history and jobs (values converted outside the timing, as for :class:`_Raw`)."""

    name = "raw_batched"

    def write(self, conn: Connection, prepared: Any) -> None:
        cursor = conn.connection.cursor()
        sql = {name: s[0] for name, s in self.statements.items()}
        insert_orders = sql["orders"].removesuffix(" RETURNING id")
        head, _, one_row = insert_orders.partition(" VALUES ")
        many = f"{head} VALUES {', '.join([one_row] * len(prepared))} RETURNING id, marketplace_order_id"
        try:
            cursor.execute(many, [value for item in prepared for value in item[0]])
            ids = {mirakl_id: order_id for order_id, mirakl_id in cursor.fetchall()}
            lines, versions, history, job_rows = [], [], [], []
            for _order_row, line_rows, version, hist, mirakl_id in prepared:
                order_id = ids[mirakl_id]
                lines.extend([r[0], order_id, *r[2:]] for r in line_rows)
                versions.append([version[0], order_id, *version[2:]])
                history.append([hist[0], order_id, *hist[2:]])
                key = f"{DELIVER_KIND}:{order_id}"
                job = list(self.job_template)
                job[self.job_payload] = self.encode_json({"order_id": order_id})
                job[self.job_dedupe] = job[self.job_exclusive] = key
                job_rows.append(job)
            cursor.executemany(sql["order_lines"], lines)
            cursor.executemany(sql["order_versions"], versions)
            cursor.executemany(sql["order_history"], history)
            cursor.executemany(sql["jobs"], job_rows)
        finally:
            cursor.close()


def _check(engine: Engine, side: _Side, expected: int, versions: int = 1) -> dict[str, int]:
    """Row counts the side stored (each must hold ``expected`` orders, 3 lines each, ``versions``
    versions each, one job each)."""
    with engine.connect() as conn:
        ch = side.channel.id
        mine = sa.select(orders.c.id).where(orders.c.channel_id == ch)
        counts = {
            "orders": conn.execute(sa.select(sa.func.count()).select_from(mine.subquery())).scalar_one(),
            "lines": conn.execute(
                sa.select(sa.func.count()).where(order_lines.c.order_id.in_(mine))
            ).scalar_one(),
            "versions": conn.execute(
                sa.select(sa.func.count()).where(order_versions.c.order_id.in_(mine))
            ).scalar_one(),
            "jobs": conn.execute(sa.select(sa.func.count()).where(jobs.c.channel_id == ch)).scalar_one(),
        }
    wanted = {"orders": expected, "lines": 3 * expected, "versions": versions * expected, "jobs": expected}
    if counts != wanted:
        raise RuntimeError(f"{side.name} stored {counts}, expected {expected} orders")
    return counts


def _create_database(admin_url: str) -> tuple[str, str]:
    """A new, empty database on the server of ``admin_url``: (name, URL)."""
    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"tradelane_bench_intake_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = sa.engine.make_url(normalize_url(admin_url)).set(database=name)
    return name, url.render_as_string(hide_password=False)


def _drop_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def run_once(
    orders_count: int, page_size: int, database_url: str | None, per_order: bool, repoll: bool = True
) -> dict[str, Any]:
    now = datetime.now(UTC)
    database = _create_database(database_url) if database_url is not None else None
    with tempfile.TemporaryDirectory(prefix="tradelane-bench-intake-") as tmp:
        engines: list[Engine] = []

        def engine_for(name: str) -> Engine:
            if database is None:
                engine = make_engine(f"sqlite:///{Path(tmp) / name}.db")
                migrate.upgrade(engine)
            else:
                engine = make_engine(database[1])
                if not engines:
                    migrate.upgrade(engine)
            engines.append(engine)
            return engine

        try:
            kinds: list[type[_Side]] = [_Intake, _Raw, _RawBatched] + ([_PerOrder] if per_order else [])
            sides = [kind(engine_for(kind.name), now) for kind in kinds]
            for start in range(0, orders_count, page_size):
                end = min(orders_count, start + page_size)
                for side in sides:
                    side.store(start, end)
            again = [side for side in sides if isinstance(side, _Intake | _PerOrder)] if repoll else []
            for phase in ("repoll", "new_versions"):
                for start in range(0, orders_count, page_size):
                    end = min(orders_count, start + page_size)
                    for side in again:
                        side.store_again(phase, start, end)
            for side in sides:
                _check(side.engine, side, orders_count, versions=2 if side in again else 1)
        finally:
            for engine in engines:
                engine.dispose()
            if database is not None and database_url is not None:
                _drop_database(database_url, database[0])
    figures = {side.name: side.figures() for side in sides}
    intake, raw = sides[0], sides[1]
    figures["ratio"] = round(raw.seconds / intake.seconds, 3)
    figures["ratio_cpu"] = round(raw.cpu / intake.cpu, 3) if intake.cpu else None
    figures["ratio_vs_batched"] = round(sides[2].seconds / intake.seconds, 3)
    if per_order:
        figures["ratio_per_order"] = round(raw.seconds / sides[3].seconds, 3)
    if repoll:  # the same orders over the same raw inserts: orders/s against raw orders/s
        for phase in ("repoll", "new_versions"):
            figures[f"ratio_{phase}"] = round(raw.seconds / intake.again[phase][1], 3)
            if per_order:
                figures[f"ratio_{phase}_per_order"] = round(raw.seconds / sides[3].again[phase][1], 3)
    return figures


def run(
    orders_count: int = 5_000,
    database_url: str | None = None,
    *,
    page_size: int = 100,
    per_order: bool = True,
    rounds: int = 1,
    repoll: bool = True,
) -> dict[str, Any]:
    if not structlog.is_configured():
        configure_logging("WARNING")
    runs = [run_once(orders_count, page_size, database_url, per_order, repoll) for _ in range(rounds)]
    result: dict[str, Any] = {
        "backend": "postgresql" if database_url else "sqlite",
        "orders": orders_count,
        "page_size": page_size,
        "ratio": statistics.median(r["ratio"] for r in runs),
        "ratio_vs_batched": statistics.median(r["ratio_vs_batched"] for r in runs),
        "runs": runs,
    }
    if per_order:
        result["ratio_per_order"] = statistics.median(r["ratio_per_order"] for r in runs)
    if repoll:
        for phase in ("repoll", "new_versions"):
            result[f"ratio_{phase}"] = statistics.median(r[f"ratio_{phase}"] for r in runs)
            if per_order:
                result[f"ratio_{phase}_per_order"] = statistics.median(
                    r[f"ratio_{phase}_per_order"] for r in runs
                )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=5_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-per-order", action="store_true", help="skip the per-order (before) side")
    parser.add_argument("--no-repoll", action="store_true", help="skip the re-poll and new-version pages")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    print(
        json.dumps(
            run(
                args.orders,
                args.database_url,
                page_size=args.page_size,
                per_order=not args.no_per_order,
                rounds=args.rounds,
                repoll=not args.no_repoll,
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
