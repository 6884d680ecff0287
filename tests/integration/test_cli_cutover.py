"""`tradelane cutover plan|run|status|revert|log` through Typer against a Mirakl sandbox (real clock):
the plan's counts, step 1 refused without the confirmation, `run --no-wait` resumable and its JSON
status, the audit log as CSV, and a revert restoring the shop's offers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_cli_channels import cli, sandbox  # noqa: F401  (fixtures)

from mirakl_world import API_KEY, GENEROUS, SHOP_ID, catalog, sandbox_catalog
from tradelane.cli.channels import resolve_channel
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.connectors.mirakl.sandbox import SandboxConfig, SandboxServer, SandboxState, Shop
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.db import make_engine
from tradelane.persistence.tables import channels, products
from tradelane.services import cutover
from tradelane.services.merchant_systems import add_http_system
from tradelane.services.order_updates import record_shipment
from tradelane.services.outbox import bind_new_products
from tradelane.services.tenants import create_tenant

OMS_SECRET = "cutover-oms-signing-secret-0123456789"


@pytest.fixture
def shop(cli, sandbox, db_url):  # noqa: F811
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            tenant, _ = create_tenant(conn, "acme", now=now)
            channel = add_channel(
                conn,
                tenant_id=tenant.id,
                name="shop-fr",
                hostname=sandbox.url,
                shop_id=str(SHOP_ID),
                api_key=API_KEY,
                keyring=cli.keyring,
                now=now,
                options={"rate_limits": GENEROUS | {"OF21": [1000, 1], "OF02": [1000, 1], "A02": [1000, 1]}},
            )
            conn.execute(
                sa.update(channels).where(channels.c.id == channel.id).values(lifecycle_state="live")
            )
        sandbox.state.add_offer(SHOP_ID, "THEIRS-1", "OP-0", Decimal("12.50"), 4)
        sandbox.state.add_offer(SHOP_ID, "THEIRS-2", "OP-1", Decimal("13.50"), 6)
        yield sandbox.state
    finally:
        engine.dispose()


def test_cutover_commands(cli, shop, tmp_path: Path) -> None:  # noqa: F811
    planned = json.loads(cli("cutover", "plan", "shop-fr", "--tenant", "acme", "--json"))
    assert planned["offers_listed"] == 2 and planned["outstanding_orders"]["total"] == 0
    assert planned["holiday_mode"] == "closing_period"
    assert shop.calls("A02") == []

    refused = cli("cutover", "run", "shop-fr", "--tenant", "acme", "--no-wait", code=2)
    assert "--previous-integrator-disabled" in refused

    cli("cutover", "run", "shop-fr", "--tenant", "acme", "--previous-integrator-disabled", "--no-wait")
    status = json.loads(cli("cutover", "status", "shop-fr", "--tenant", "acme", "--json"))
    assert status["step"] >= 3 and status["steps"][0]["state"] == "done", (status["message"], status["steps"])
    assert status["steps"][1]["state"] == "done"  # closed, nothing outstanding
    assert shop.shop(SHOP_ID).closed_from is not None
    assert [o["step"] for o in status["steps"]] == [1, 2, 3, 4, 5, 6]
    assert status["step_state"] == status["steps"][status["step"] - 1]["state"]

    log_file = tmp_path / "cutover.csv"
    cli("cutover", "log", "shop-fr", "--tenant", "acme", "--csv", str(log_file))
    text = log_file.read_text(encoding="utf-8")
    assert text.startswith("id,at,actor,action,reason,details") and "cutover.holiday" in text

    reverted = cli(
        "cutover", "revert", "shop-fr", "--tenant", "acme", "--poll-seconds", "0.5", "--wait-minutes", "1"
    )
    assert "reverted: 2 of 2 offers restored" in reverted
    offers = shop.shop_offers(SHOP_ID)
    assert (offers["THEIRS-1"].price, offers["THEIRS-1"].quantity) == (Decimal("12.50"), 4)
    assert (offers["THEIRS-2"].price, offers["THEIRS-2"].quantity) == (Decimal("13.50"), 6)
    assert shop.shop(SHOP_ID).closed_from is None
    after = json.loads(cli("cutover", "status", "shop-fr", "--tenant", "acme", "--json"))
    assert after["status"] == "reverted" and after["revert_report"]["restored"] == 2


@pytest.fixture
def live_shop(cli, db_url):  # noqa: F811
    """A live shop on a sandbox that follows the wall clock (the CLI's clock), with the other
    integrator's offer, our 2-SKU catalog and an OMS that takes orders; yields (sandbox, engine)."""
    state = SandboxState(
        7,
        shops=[Shop(SHOP_ID, "CLI Shop", API_KEY)],
        products=sandbox_catalog(3),
        rate_limits={},
        follow_wall_time=True,
        config=SandboxConfig(import_polls=0),  # an import is done on its first OF02 poll
    )
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    oms_state = OmsSandboxState(OMS_SECRET, clock=lambda: datetime.now(UTC))
    with SandboxServer(state) as server, OmsSandboxServer(oms_state) as oms:
        with engine.begin() as conn:
            tenant, _ = create_tenant(conn, "acme", now=now)
            channel = add_channel(
                conn,
                tenant_id=tenant.id,
                name="shop-fr",
                hostname=server.url,
                shop_id=str(SHOP_ID),
                api_key=API_KEY,
                keyring=cli.keyring,
                now=now,
                options={"rate_limits": GENEROUS | {"OF21": [1000, 1], "OF02": [1000, 1], "A02": [1000, 1]}},
            )
            conn.execute(
                sa.update(channels).where(channels.c.id == channel.id).values(lifecycle_state="live")
            )
            ids = [
                conn.execute(
                    sa.insert(products)
                    .values(
                        tenant_id=tenant.id, sku=p.sku, title=p.title, gtin=p.gtin, price=p.price,
                        currency=p.currency, quantity=p.quantity, labels=[], attributes={},
                        content_hash=p.content_hash(), created_at=now, updated_at=now,
                    )
                    .returning(products.c.id)
                ).scalar_one()
                for p in catalog(2)
            ]  # fmt: skip
            bind_new_products(conn, tenant.id, ids, now=now)
            add_http_system(
                conn,
                tenant_id=tenant.id,
                name="oms",
                url=oms.orders_url,
                secret=OMS_SECRET,
                keyring=cli.keyring,
                now=now,
                timeout_seconds=5,
            )
        state.add_offer(SHOP_ID, "THEIRS-1", "OP-2", Decimal("12.50"), 4)
        try:
            yield state, engine
        finally:
            engine.dispose()


def _status(cli) -> dict:  # noqa: F811
    return json.loads(cli("cutover", "status", "shop-fr", "--tenant", "acme", "--json"))


def test_run_alone_finishes_the_cutover_and_refuses_while_another_run_works(cli, live_shop) -> None:  # noqa: F811
    shop, engine = live_shop
    run = ("cutover", "run", "shop-fr", "--tenant", "acme", "--poll-seconds", "0.5")
    cli(*run, "--previous-integrator-disabled", "--no-wait")
    status = _status(cli)

    # another run holds the cutover: `run` and `revert` say so, exit 3, and do nothing
    with engine.connect() as conn:
        channel = resolve_channel(conn, "shop-fr", "acme")
    other = cutover.Deps(
        engine=engine, clock=lambda: datetime.now(UTC), keyring=cli.keyring, actor="cli:other"
    )
    held = cutover.claim(other, channel, status["id"])
    busy = cli(*run, "--no-wait", code=3)
    assert f"another run (cli:other) is working on step {status['step']} of the cutover of shop-fr" in busy
    assert "try again" in busy
    assert "another run (cli:other)" in cli("cutover", "revert", "shop-fr", "--tenant", "acme", code=3)
    assert _status(cli)["steps"] == status["steps"]
    cutover.release(engine, held.id, held.data["claim"]["token"])

    for _ in range(20):  # steps 3-5: the imports and the initial sync run in the CLI's process
        if _status(cli)["step"] == 6:
            break
        cli(*run, "--wait-minutes", "0.02")
    waiting = _status(cli)
    assert (waiting["step"], waiting["status"]) == (6, "waiting"), waiting["message"]

    # a live test order: no worker runs anywhere, `run` polls, accepts, imports and delivers it itself
    live = shop.create_order(SHOP_ID, [{"offer_sku": "SKU-1", "quantity": 1}], payment_delay=timedelta(0))
    for _ in range(20):
        out = cli(*run, "--wait-minutes", "0.02")
        if f"test order {live} delivered ✓" in out:
            break
    assert f"test order {live} delivered ✓" in out, out
    with engine.begin() as conn:
        record_shipment(
            conn,
            tenant_id=channel.tenant_id,
            order_ref=f"shop-fr:{live}",
            carrier="UPS",
            tracking_number="TEST-1",
            tracking_url=None,
            lines=None,
            external_id="dummy-1",
            now=datetime.now(UTC),
        )
    # the shipment pushed and confirmed by the next poll, all in this one command
    assert "cutover done" in cli(*run, "--wait-minutes", "0.5")
    done = _status(cli)
    assert done["status"] == "done" and done["steps"][5]["state"] == "done"
    assert shop.order(live).state == "SHIPPED"
