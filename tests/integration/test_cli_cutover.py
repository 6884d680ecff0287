"""`tradelane cutover plan|run|status|revert|log` through Typer against a Mirakl sandbox (real clock):
the plan's counts, step 1 refused without the confirmation, `run --no-wait` resumable and its JSON
status, the audit log as CSV, and a revert restoring the shop's offers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_cli_channels import cli, sandbox  # noqa: F401  (fixtures)

from mirakl_world import API_KEY, GENEROUS, SHOP_ID
from tradelane.connectors.mirakl.connector import add_channel
from tradelane.persistence.db import make_engine
from tradelane.persistence.tables import channels
from tradelane.services.tenants import create_tenant


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
