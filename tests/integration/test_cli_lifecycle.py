"""`tradelane channel activate|promote|flow|history|frequency|state` on the Mirakl sandbox: Setup ->
Testing (credentials checked) -> Live, flow switches, the audit trail as JSON and CSV."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from helpers import make_tenant
from mirakl_world import API_KEY, SHOP_ID, sandbox_catalog
from tradelane.cli import build_app
from tradelane.connectors.mirakl.sandbox import SandboxServer, SandboxState, Shop
from tradelane.security.crypto import generate_key


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path):
    monkeypatch.delenv("TRADELANE_MIRAKL_API_KEY", raising=False)
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner, app = CliRunner(), build_app()

    def run(*args: str, code: int = 0, input: str | None = None) -> str:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, (result.output, result.exception)
        return " ".join(result.output.split())

    return run


@pytest.fixture
def sandbox():
    state = SandboxState(
        7, shops=[Shop(SHOP_ID, "CLI Shop", API_KEY)], products=sandbox_catalog(3), rate_limits={},
        start=datetime.now(UTC),
    )  # fmt: skip
    with SandboxServer(state) as server:
        yield server


def test_a_channel_walks_from_setup_to_live_with_its_history(cli, engine, sandbox, tmp_path) -> None:
    make_tenant(engine, "acme", datetime.now(UTC))
    common = ("--tenant", "acme", "--hostname", sandbox.url, "--shop-id", str(SHOP_ID))
    cli("channel", "add", "mirakl", *common, "--name", "shop", "--api-key-stdin", input=f"{API_KEY}\n")
    cli("channel", "add", "mirakl", *common, "--name", "wrong", "--api-key-stdin", input="bad-key\n")

    shown = cli("channel", "state", "shop")
    assert shown.startswith("shop: setup") and "a full sync takes 0 s (budget)" in shown
    refused = cli("channel", "activate", "wrong", code=1)
    assert "wrong stays in setup: the credentials check failed" in refused

    out = cli("channel", "activate", "shop", "--testing-days", "10", "--reason", "go")
    assert "shop: testing for 10 days" in out
    assert "already" in cli("channel", "flow", "shop", "offers", "on")  # all on but the reconciler
    assert "fulfillments now off" in cli("channel", "flow", "shop", "fulfillments", "off", "--reason", "3PL")
    refused = cli("channel", "flow", "shop", "reconciler", "on", code=1)
    assert "only after its dry run" in refused
    assert "tradelane channel reconcile shop --enable REPORT_ID" in " ".join(refused.split())
    assert "unknown flow 'listing'" in cli("channel", "flow", "shop", "listing", "on", code=1)
    assert "shop: live" in cli("channel", "promote", "shop")
    assert "needs a reason" in cli("channel", "flow", "shop", "orders", "off", code=1)
    assert "orders now off" in cli("channel", "flow", "shop", "orders", "off", "--reason", "holiday")
    assert "shop: paused offers" in cli("channel", "pause", "shop", "--flow", "offers")
    shown = cli("channel", "frequency", "shop")
    assert "orders are seen within — (the Orders flow is off)" in shown
    # what the stock-change figure is made of, each part with its basis
    assert "the marketplace processes the OF24 import" in shown and "[declared]" in shown
    assert "[configured]" in shown and "[budget]" in shown
    frequency = json.loads(cli("channel", "frequency", "shop", "--json"))
    assert frequency["orders_seen"] == {
        "seconds": None,
        "basis": "off",
        "text": None,
        "parts": [],
        "notes": [],
    }
    assert "needs a reason" in cli("channel", "state", "shop", "setup", code=1)
    assert cli("channel", "state", "shop", "setup", "--reason", "rework").startswith("shop: setup")

    history = json.loads(cli("channel", "history", "shop", "--json"))
    assert [(e["action"], e["reason"]) for e in history] == [
        ("lifecycle.activate", "go"),
        ("flow.disable", "3PL"),
        ("lifecycle.promote", None),
        ("flow.disable", "holiday"),
        ("flow.pause", None),
        ("lifecycle.setup", "rework"),
    ]
    assert {e["actor"] for e in history} == {history[0]["actor"]} and history[0]["actor"].startswith("cli:")
    target = tmp_path / "history.csv"
    assert "6 event(s) written" in cli("channel", "history", "shop", "--csv", str(target))
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["action"] for r in rows] == [e["action"] for e in history]
    table = cli("channel", "history", "shop")
    assert "action" in table and "rework" in table


def test_testing_period_change_and_the_removal_of_a_live_channel_need_a_reason(cli, engine, sandbox) -> None:
    make_tenant(engine, "acme", datetime.now(UTC))
    common = ("--tenant", "acme", "--hostname", sandbox.url, "--shop-id", str(SHOP_ID))
    cli("channel", "add", "mirakl", *common, "--name", "shop", "--api-key-stdin", input=f"{API_KEY}\n")
    cli("channel", "add", "mirakl", *common, "--name", "trial", "--api-key-stdin", input=f"{API_KEY}\n")
    assert "only a channel in testing" in cli(
        "channel", "testing", "shop", "--days", "5", "--reason", "x", code=1
    )
    cli("channel", "activate", "shop", "--testing-days", "30")
    assert "needs a reason" in cli("channel", "testing", "shop", "--days", "5", code=1)
    out = cli("channel", "testing", "shop", "--days", "5", "--reason", "merchant is ready")
    assert "shop: testing for 5 days, until" in out and "already over" not in out
    [event] = [
        e
        for e in json.loads(cli("channel", "history", "shop", "--json"))
        if e["action"] == "lifecycle.testing_period"
    ]
    assert (event["reason"], event["details"]["from_days"], event["details"]["to_days"]) == (
        "merchant is ready",
        30,
        5,
    )

    cli("channel", "promote", "shop")
    refused = cli("channel", "remove", "shop", "--yes", code=1)
    assert "shop is live: removing it needs a reason" in refused
    assert "shop" in cli("channel", "list", "--tenant", "acme")  # nothing changed
    assert "shop: removed" in cli("channel", "remove", "shop", "--yes", "--reason", "merchant left")
    assert "trial: removed" in cli("channel", "remove", "trial", "--yes")  # in setup: no reason needed
