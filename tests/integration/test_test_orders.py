"""Test orders: `tradelane orders create-test|test-report` through Typer (same process, real database),
the ``is_test`` mark in lists, the order-id numbering, the refusals, overview figures without test
orders, and migration 0019 down and up. (The whole round trip over HTTP: tests/e2e/test_test_orders_loop.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic import command
from click.testing import Result
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from helpers import make_tenant
from order_updates_support import make_order
from tradelane.bootstrap import register_handlers
from tradelane.cli import build_app
from tradelane.persistence import migrate
from tradelane.persistence.tables import channels, offer_bindings, products
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import create_channel, get_channel
from tradelane.services.order_updates import record_shipment
from tradelane.services.outbox import bind_new_products
from tradelane.services.overview import orders_per_hour
from tradelane.services.test_orders import LineSpec, create_test_order, report
from tradelane.sync.registry import JobRegistry
from tradelane.sync.worker import Worker, WorkerConfig


@pytest.fixture
def cli(db_url, engine, now, monkeypatch, tmp_path) -> Callable[..., Result]:
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    app = build_app()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args))

    return invoke


@pytest.fixture
def shop(engine: Engine, now: datetime) -> int:
    """Tenant acme: channel ``mk`` offering SKU-A (no stock), SKU-B and SKU-C; SKU-X in the catalog only
    (bound to no channel: it is created after the channel and unbound here). Returns the tenant id."""
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:
        channel = create_channel(
            conn,
            tenant_id=tenant.id,
            name="mk",
            connector="mirakl",
            settings={"hostname": "shop.example.com"},
            credentials=None,
            keyring=KeyRing([generate_key()]),
            now=now,
        )
        ids = []
        for sku, quantity in (("SKU-A", 0), ("SKU-B", 3), ("SKU-C", 7)):
            ids.append(
                conn.execute(
                    sa.insert(products)
                    .values(
                        tenant_id=tenant.id,
                        sku=sku,
                        title=f"Product {sku}",
                        price=Decimal("12.50"),
                        currency="EUR",
                        quantity=quantity,
                        labels=[],
                        attributes={},
                        content_hash="0" * 64,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(products.c.id)
                ).scalar_one()
            )
        bind_new_products(conn, tenant.id, ids, now=now)
        conn.execute(
            sa.insert(products).values(
                tenant_id=tenant.id,
                sku="SKU-X",
                price=Decimal("1"),
                currency="EUR",
                quantity=1,
                labels=[],
                attributes={},
                content_hash="0" * 64,
                created_at=now,
                updated_at=now,
            )
        )
    assert channel.id
    return tenant.id


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_create_test_cli_default_line_explicit_lines_and_numbering(cli, shop, engine, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the orders table on one line per order
    first = json.loads(_ok(cli("orders", "create-test", "mk", "--tenant", "acme", "--json")).stdout)
    assert first["marketplace_order_id"] == "TEST-mk-1" and first["is_test"] is True
    lines = [(ln["sku"], ln["quantity"], Decimal(ln["unit_price"])) for ln in first["lines"]]
    assert lines == [("SKU-B", 1, Decimal("12.50"))]
    assert (first["state"], first["merchant_status"]) == ("to_ship", "pending")

    out = _ok(
        cli(
            "orders",
            "create-test",
            "mk",
            "--tenant",
            "acme",
            "--sku",
            "SKU-A",
            "--quantity",
            "2",
            "--sku",
            "SKU-C",
        )
    ).stdout
    assert "TEST order" in out and "(mk:TEST-mk-2) created: never sent to mk" in out
    assert "2 × SKU-A at 12.5" in out and "1 × SKU-C at 12.5" in out

    listed = json.loads(_ok(cli("orders", "list", "--tenant", "acme", "--json")).stdout)
    assert [(o["marketplace_order_id"], o["is_test"]) for o in listed] == [
        ("TEST-mk-2", True),
        ("TEST-mk-1", True),
    ]

    table = _ok(cli("orders", "list", "--tenant", "acme")).stdout
    assert "TEST-mk-2 [TEST]" in table and "TEST-mk-1 [TEST]" in table
    shown = _ok(cli("orders", "show", "mk:TEST-mk-1", "--tenant", "acme")).stdout
    assert "TEST order: never sent to the marketplace (`tradelane orders test-report mk:TEST-mk-1`)" in shown

    unknown = cli("orders", "create-test", "mk", "--tenant", "acme", "--sku", "NOPE")
    assert unknown.exit_code == 1 and "SKU 'NOPE' is not in the catalog" in unknown.output
    unbound = cli("orders", "create-test", "mk", "--tenant", "acme", "--sku", "SKU-X")
    assert unbound.exit_code == 1 and "SKU 'SKU-X' is not offered on channel mk" in unbound.output
    with engine.begin() as conn:  # SKU-B leaves the selection (reconciler off: left on the marketplace)
        conn.execute(
            sa.update(offer_bindings)
            .where(offer_bindings.c.product_id.in_(sa.select(products.c.id).where(products.c.sku == "SKU-B")))
            .values(selection_state="left")
        )
    left = cli("orders", "create-test", "mk", "--tenant", "acme", "--sku", "SKU-B")
    assert left.exit_code == 1 and "SKU 'SKU-B' is no longer selected on channel mk (left)" in left.output
    third = json.loads(_ok(cli("orders", "create-test", "mk", "--tenant", "acme", "--json")).stdout)
    assert [ln["sku"] for ln in third["lines"]] == ["SKU-C"]  # the first selected SKU with stock now
    orphan = cli("orders", "create-test", "mk", "--tenant", "acme", "--quantity", "2")
    assert orphan.exit_code == 2 and "--quantity given without its --sku" in orphan.output


def test_test_report_cli_says_what_is_missing_and_refuses_a_real_order(cli, shop, engine, now):
    _ok(cli("orders", "create-test", "mk", "--tenant", "acme"))
    report = cli("orders", "test-report", "mk:TEST-mk-1", "--tenant", "acme")
    assert report.exit_code == 1
    assert "TEST: never sent to mk" in report.stdout
    assert "merchant system: not delivered" in report.stdout
    assert "PROBLEM: not delivered to a merchant system yet" in report.stdout
    as_json = json.loads(cli("orders", "test-report", "TEST-mk-1", "--tenant", "acme", "--json").stdout)
    assert as_json["ok"] is False and as_json["order"] == "mk:TEST-mk-1" and as_json["updates"] == []

    with engine.connect() as conn:
        channel_id = conn.execute(sa.select(channels.c.id).where(channels.c.name == "mk")).scalar_one()
    make_order(engine, shop, channel_id, "M-1", now)
    real = cli("orders", "test-report", "mk:M-1", "--tenant", "acme")
    assert real.exit_code == 1 and "order mk:M-1 is not a test order" in real.output


def test_test_orders_stay_out_of_the_orders_per_hour_figure(engine, shop, now):
    with engine.begin() as conn:
        channel = get_channel(conn, shop, "mk")
        create_test_order(conn, channel, lines=[LineSpec("SKU-C", 2)], actor="cli:tester", now=now)
    make_order(engine, shop, channel.id, "M-1", now)
    with engine.connect() as conn:
        series = orders_per_hour(conn, shop, now=now + timedelta(minutes=1), hours=3)
    assert sum(series.values["orders"]) == 1


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()


def test_migration_0019_adds_and_removes_orders_is_test(engine, shop, now):
    with engine.connect() as conn:
        channel_id = conn.execute(sa.select(channels.c.id).where(channels.c.name == "mk")).scalar_one()
    make_order(engine, shop, channel_id, "M-1", now)
    try:
        _alembic(engine, "downgrade", "0018")
        assert "is_test" not in {c["name"] for c in sa.inspect(engine).get_columns("orders")}
        _alembic(engine, "upgrade", "0019")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT is_test FROM orders")).scalars().all() == [False]
    finally:
        _alembic(engine, "upgrade", "head")


def test_in_setup_a_test_orders_update_is_not_checked_and_the_report_says_why(engine, shop, now):
    """Setup sends nothing: the dispatcher completes the update's job as skipped (no connector built)."""
    with engine.begin() as conn:
        channel = get_channel(conn, shop, "mk")
        assert channel.lifecycle_state == "setup"
        order = create_test_order(conn, channel, actor="cli:tester", now=now)
        record_shipment(
            conn,
            tenant_id=shop,
            order_ref=str(order["id"]),
            carrier="ups",
            tracking_number="1Z",
            tracking_url=None,
            lines=None,
            external_id="s-1",
            now=now,
        )
    registry = JobRegistry()
    register_handlers(registry)
    keyring = KeyRing([generate_key()])
    Worker(engine, registry, lambda: now, WorkerConfig(schedule=False), services={"keyring": keyring}).run(
        burst=True
    )
    with engine.connect() as conn:
        result = report(conn, shop, str(order["id"]))
    [update] = result["updates"]
    assert update["status"] == "skipped" and update["would_send"] == []
    assert (
        "shipment s-1: not checked (skipped): channel mk is in setup: nothing is sent to the marketplace "
        "before `tradelane channel activate mk`"
    ) in result["problems"]
