"""`tradelane orders ...` through Typer (same process, real database)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import Result
from typer.testing import CliRunner

from helpers import make_tenant
from order_updates_support import make_order, tiny_pdf
from tradelane.cli import build_app
from tradelane.connectors.mirakl.mapping import MiraklOrderState
from tradelane.persistence.tables import jobs, order_updates
from tradelane.security.crypto import KeyRing, generate_key
from tradelane.services.channels import create_channel


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
def shop(engine, now) -> dict[str, int]:
    tenant, _ = make_tenant(engine, "acme", now)
    other, _ = make_tenant(engine, "globex", now)
    ids: dict[str, int] = {}
    for owner, name, multi in ((tenant.id, "mk", True), (tenant.id, "de", False), (other.id, "mk", False)):
        with engine.begin() as conn:
            channel = create_channel(
                conn,
                tenant_id=owner,
                name=name,
                connector="mirakl",
                settings={"hostname": "shop.example.com", "multi_shipment": multi},
                credentials=None,
                keyring=KeyRing([generate_key()]),
                now=now,
            )
        ids[f"{owner}:{name}"] = channel.id
    ids["M-1"] = make_order(engine, tenant.id, ids[f"{tenant.id}:mk"], "M-1", now, attributes={"tags": "vip"})
    ids["D-1"] = make_order(
        engine, tenant.id, ids[f"{tenant.id}:de"], "D-1", now, state=MiraklOrderState.WAITING_ACCEPTANCE
    )
    ids["G-1"] = make_order(engine, other.id, ids[f"{other.id}:mk"], "G-1", now)
    return ids


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_list_json_is_one_array_with_the_contract_fields(cli, shop):
    out = json.loads(_ok(cli("orders", "list", "--tenant", "acme", "--json")).stdout)
    assert isinstance(out, list) and [o["marketplace_order_id"] for o in out] == ["D-1", "M-1"]
    order = out[1]
    assert {
        "id",
        "channel",
        "marketplace_order_id",
        "state",
        "attributes",
        "shipping_address",
        "lines",
    } <= set(order)
    assert order["channel"] == "mk" and order["state"] == "to_ship" and order["attributes"] == {"tags": "vip"}
    assert order["marketplace_state"] == "SHIPPING"
    assert order["shipping_address"]["city"] == "Paris"
    line = order["lines"][0]
    assert (line["sku"], line["quantity"], line["currency"], line["type"]) == ("SKU-1", 2, "EUR", "textual")
    assert isinstance(line["unit_price"], str) and Decimal(line["unit_price"]) == Decimal("19.90")
    only_de = json.loads(_ok(cli("orders", "list", "--tenant", "acme", "--channel", "de", "--json")).stdout)
    assert [o["marketplace_order_id"] for o in only_de] == ["D-1"]
    waiting = json.loads(
        _ok(cli("orders", "list", "--tenant", "acme", "--state", "awaiting_acceptance", "--json")).stdout
    )
    assert [o["marketplace_order_id"] for o in waiting] == ["D-1"]
    assert (
        json.loads(_ok(cli("orders", "list", "--tenant", "acme", "--state", "CLOSED", "--json")).stdout) == []
    )
    human = _ok(cli("orders", "list", "--tenant", "acme")).stdout
    assert "M-1" in human and "2 order(s)" in human
    assert "to_ship" in human
    raw = cli("orders", "list", "--tenant", "acme", "--state", "SHIPPING")
    assert raw.exit_code == 2 and "to_ship" in raw.output  # filters take the neutral states


def test_ship_retry_and_show(cli, shop, engine):
    args = (
        "orders",
        "ship",
        "--tenant",
        "acme",
        "mk:M-1",
        "--carrier",
        "UPS",
        "--tracking",
        "1Z9",
        "--tracking-url",
        "https://t.example/1Z9",
        "--id",
        "oms-1",
        "--json",
    )
    first = json.loads(_ok(cli(*args)).stdout)
    assert first["status"] == "queued" and first["created"] is True
    again = json.loads(_ok(cli(*args)).stdout)
    assert again["id"] == first["id"] and again["created"] is False
    split = _ok(
        cli("orders", "ship", "--tenant", "acme", str(shop["M-1"]), "--line", "SKU-1:1", "--tracking", "P2")
    )
    assert "shipment" in split.stdout and "queued" in split.stdout
    with engine.connect() as conn:
        kinds = conn.execute(sa.select(jobs.c.kind, jobs.c.payload).order_by(jobs.c.id)).all()
    assert [k.kind for k in kinds] == ["fulfillments.ship", "fulfillments.ship"]
    assert kinds[1].payload["lines"] == [{"sku": "SKU-1", "line_id": "M-1-L1", "quantity": 1}]
    shown = json.loads(
        _ok(cli("orders", "show", "mk:M-1", "--tenant", "acme", "--json", "--payloads")).stdout
    )
    assert [u["status"] for u in shown["updates"]] == ["queued", "queued"]
    assert shown["versions"][0]["payload"]["order_id"] == "M-1"
    assert [h["state"] for h in shown["history"]] == ["to_ship", "SHIPMENT_RECORDED", "SHIPMENT_RECORDED"]
    # Without --tenant: the numeric id is unambiguous; "mk:M-1" exists for one tenant only.
    assert json.loads(_ok(cli("orders", "show", str(shop["M-1"]), "--json")).stdout)["id"] == shop["M-1"]
    human = _ok(cli("orders", "show", "mk:M-1")).stdout
    assert "mk:M-1" in human and "SHIPMENT_RECORDED" in human and "oms-1" in human


def test_customer_cancellation_is_visible_in_show(cli, shop, engine, now):
    with engine.connect() as conn:
        tenant_id = conn.execute(sa.text("select id from tenants where name='acme'")).scalar_one()
    make_order(
        engine,
        tenant_id,
        shop[f"{tenant_id}:mk"],
        "M-1",
        now,
        state=MiraklOrderState.CANCELED,
        updated=timedelta(minutes=3),
    )
    human = _ok(cli("orders", "show", "mk:M-1", "--tenant", "acme")).stdout
    assert "state cancelled (on the marketplace: CANCELED)" in human
    assert "cancelled on the marketplace: the whole order" in human
    late = _ok(cli("orders", "cancel", "--tenant", "acme", "mk:M-1", "--json"))
    assert json.loads(late.stdout)["status"] == "skipped"


def test_cancel_refund_return_and_unsupported(cli, shop, engine):
    line_cancel = json.loads(
        _ok(cli("orders", "cancel", "--tenant", "acme", "mk:M-1", "--line", "SKU-2:1", "--json")).stdout
    )
    assert line_cancel["status"] == "not_supported"
    assert "line-level cancellation is not supported by mirakl" in line_cancel["detail"]
    refund = json.loads(
        _ok(
            cli(
                "orders",
                "refund",
                "--tenant",
                "acme",
                "mk:M-1",
                "--reason-code",
                "DAMAGED",
                "--line",
                "SKU-1:1:4.50",
                "--line",
                "SKU-2:1",
                "--json",
            )
        ).stdout
    )
    assert refund["status"] == "queued"
    assert refund["payload"]["lines"] == [
        {"sku": "SKU-1", "line_id": "M-1-L1", "quantity": 1, "amount": "4.50"},
        {"sku": "SKU-2", "line_id": "M-1-L2", "quantity": 1},
    ]
    returned = _ok(
        cli("orders", "return", "--tenant", "acme", "mk:M-1", "--line", "SKU-1:1", "--status", "refunded")
    )
    assert "return" in returned.stdout and "not_supported" in returned.stdout
    assert "not supported by mirakl" in returned.stdout
    partial = json.loads(
        _ok(cli("orders", "ship", "--tenant", "acme", "de:D-1", "--line", "SKU-1:1", "--json")).stdout
    )
    assert partial["status"] == "not_supported" and "multi_shipment" in partial["detail"]
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(jobs.c.kind)).scalars()) == ["fulfillments.refund"]


def test_refusals_exit_non_zero_and_store_nothing(cli, shop, engine):
    cases = [
        (("orders", "ship", "--tenant", "acme", "mk:NOPE"), "no order 'mk:NOPE'"),
        (("orders", "ship", "--tenant", "acme", "mk:G-1"), "no order"),
        (("orders", "ship", "--tenant", "acme", "mk:M-1", "--line", "SKU-1"), "expected SKU:QTY"),
        (("orders", "ship", "--tenant", "acme", "mk:M-1", "--line", "SKU-1:0"), "positive integer"),
        (("orders", "ship", "--tenant", "acme", "mk:M-1", "--line", "X:1"), "has no SKU 'X'"),
        (
            ("orders", "refund", "--tenant", "acme", "mk:M-1", "--reason-code", "R", "--line", "SKU-2:1:9"),
            "exceeds",
        ),
        (("orders", "show", "G-1:x"), "no order"),
        (("orders", "list", "--tenant", "nobody"), "nobody"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(order_updates)).scalar_one() == 0


def test_label_from_pdf_file(cli, shop, tmp_path: Path, engine):
    pdf = tmp_path / "label.pdf"
    pdf.write_bytes(tiny_pdf("CLI-LABEL"))
    result = json.loads(_ok(cli("orders", "label", "--tenant", "acme", "mk:M-1", str(pdf), "--json")).stdout)
    assert result["kind"] == "label" and result["status"] == "queued"
    assert result["payload"]["type_code"] == "SHIPPING_LABEL"
    shown = json.loads(_ok(cli("orders", "show", "mk:M-1", "--tenant", "acme", "--json")).stdout)
    assert [(d["source_format"], d["size"]) for d in shown["documents"]] == [
        ("pdf", len(tiny_pdf("CLI-LABEL")))
    ]
    bogus = tmp_path / "label.txt"
    bogus.write_text("x")
    assert "pass --format" in cli("orders", "label", "--tenant", "acme", "mk:M-1", str(bogus)).output
    not_pdf = cli("orders", "label", "--tenant", "acme", "mk:M-1", str(bogus), "--format", "pdf")
    assert not_pdf.exit_code != 0 and "not a PDF" in not_pdf.output


def test_html_label_needing_the_network_is_refused_before_rendering(cli, shop, tmp_path: Path):
    """(Rendering itself is covered by the label and API tests; this path never starts a browser.)"""
    remote = tmp_path / "remote.html"
    remote.write_text('<h1>x</h1><img src="http://127.0.0.1:9/x.png">', encoding="utf-8")
    refused = cli("orders", "label", "--tenant", "acme", "mk:M-1", str(remote))
    assert refused.exit_code != 0 and "rendered offline" in refused.output
    assert "http://127.0.0.1:9/x.png" in refused.output
