"""Merchant systems by what they can do: orders go only to systems that receive orders, and an order a
merchant system accepted is never quarantined afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from merchant_support import (
    SECRET,
    add_product,
    deliver_jobs,
    delivery_rows,
    history,
    ingest,
    marketplace_order,
    order_row,
    quarantine_row,
    register_oms,
    run_worker,
)

from tradelane.domain.errors import ValidationError
from tradelane.merchant.base import Capability, MerchantCapabilities, MerchantSystem
from tradelane.merchant.capabilities import capabilities_of
from tradelane.merchant.files.capabilities import parse_sends
from tradelane.merchant.files.settings import FilesSettings
from tradelane.merchant.sandbox import OmsSandboxServer, OmsSandboxState
from tradelane.persistence.tables import alerts, order_deliveries, orders
from tradelane.services.files_scan import add_files_system
from tradelane.services.order_health import enqueue_delivery


def _deliver(container, shop, clock, order_id) -> None:
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=container.now()
        )
    run_worker(container, clock)


def _drop_folder(container, shop, tmp_path: Path, sends: list[str] | None = None) -> MerchantSystem:
    with container.engine.begin() as conn:
        return add_files_system(
            conn,
            tenant_id=shop.tenant_id,
            name="drop",
            folder=tmp_path / "drop",
            keyring=container.keyring,
            now=container.now(),
            sends=sends,
        )


def _alerts(container, order_id: int) -> list[tuple[str, str]]:
    with container.engine.connect() as conn:
        rows = conn.execute(sa.select(alerts.c.kind, alerts.c.message).where(alerts.c.order_id == order_id))
        return [(r.kind, r.message) for r in rows]


# --- declarations -------------------------------------------------------------------------------


def _system(kind: str, settings: dict | None = None) -> MerchantSystem:
    return MerchantSystem(1, 1, "s", kind, settings or {}, True)


def test_each_kind_declares_what_it_does():
    http = capabilities_of(_system("http", {"url": "https://oms.example/orders"}))
    assert http.names() == ["receive_orders", "receive_cancellations", "send_shipments"]
    assert Capability.RECEIVE_ORDERS in http and Capability.SEND_CATALOG not in http
    assert capabilities_of(_system("shopify")).names() == [
        c.value for c in Capability if c is not Capability.RECEIVE_CANCELLATIONS
    ]
    assert capabilities_of(_system("files", {"folder": "/x"})).names() == ["send_catalog", "send_stock"]
    assert capabilities_of(_system("files", {"folder": "/x", "sends": ["catalog"]})).names() == [
        "send_catalog"
    ]
    assert capabilities_of(_system("files", {"folder": "/x", "sends": ["stock"]})).names() == ["send_stock"]
    # Unknown kinds and settings that no longer declare validly take part in nothing.
    assert capabilities_of(_system("ftp")) == MerchantCapabilities()
    assert capabilities_of(_system("files", {"sends": "catalog"})) == MerchantCapabilities()


def test_files_sends_setting_is_validated():
    assert parse_sends(None) == ["catalog", "stock"]
    assert parse_sends(["STOCK", "catalog"]) == ["catalog", "stock"]
    for bad, message in [([], "at least one"), (["orders"], "not orders"), ("catalog", "must be a list")]:
        with pytest.raises(ValueError, match=message):
            parse_sends(bad)
    with pytest.raises(ValidationError, match="not shipments"):
        FilesSettings.from_settings({"folder": "/x", "sends": ["shipments"]})
    assert FilesSettings.from_settings({"folder": "/x"}).as_settings() == {
        "folder": "/x",
        "every_seconds": 60,
    }
    assert FilesSettings.from_settings({"folder": "/x", "sends": ["catalog"]}).as_settings()["sends"] == [
        "catalog"
    ]


# --- delivery targets ---------------------------------------------------------------------------


@pytest.mark.parametrize("sends", [["catalog"], None])
def test_a_drop_folder_beside_the_oms_gets_no_orders_and_the_order_is_delivered(
    container, shop, merchant, oms, clock, now, tmp_path, sends
):
    drop = _drop_folder(container, shop, tmp_path, sends)
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("C-1", [("A", 1, "5")], now=now), now)

    _deliver(container, shop, clock, order_id)

    assert order_row(container.engine, order_id).merchant_status == "delivered"
    assert quarantine_row(container.engine, order_id) is None
    [received] = oms.state.orders()
    assert received.deliveries == 1
    [row] = delivery_rows(container.engine, order_id)
    assert (row.merchant_system_id, row.status, row.external_ref) == (
        merchant.id,
        "delivered",
        received.oms_id,
    )
    assert all(d.merchant_system_id != drop.id for d in delivery_rows(container.engine, order_id))
    assert [s for s, _ in history(container.engine, order_id) if s == "QUARANTINED"] == []


def test_a_tenant_whose_only_system_is_a_drop_folder_quarantines_with_a_clear_reason(
    container, shop, clock, now, tmp_path
):
    _drop_folder(container, shop, tmp_path, ["catalog"])
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("C-2", [("A", 1, "5")], now=now), now)

    _deliver(container, shop, clock, order_id)

    q = quarantine_row(container.engine, order_id)
    assert q.reason_code == "no_merchant_system"
    assert q.reason == "no enabled merchant system receives orders (enabled: drop (files): send_catalog)"
    assert q.detail == {
        "merchant_systems": [{"name": "drop", "kind": "files", "capabilities": ["send_catalog"]}]
    }
    assert delivery_rows(container.engine, order_id) == []


# --- never quarantined once accepted ------------------------------------------------------------


def test_an_order_one_system_accepted_is_not_quarantined_when_another_refuses_it(
    container, shop, merchant, oms, clock, now
):
    second = OmsSandboxState(SECRET, clock=clock)
    with OmsSandboxServer(second) as oms2:
        warehouse = register_oms(container, shop, oms2.orders_url, name="warehouse")
        add_product(container.engine, shop.tenant_id, "A", now)
        order_id = ingest(container, shop, marketplace_order("C-3", [("A", 1, "5")], now=now), now)
        second.fail_next(1, status=422)

        _deliver(container, shop, clock, order_id)

    assert order_row(container.engine, order_id).merchant_status == "delivered"
    assert quarantine_row(container.engine, order_id) is None
    rows = {d.merchant_system_id: d for d in delivery_rows(container.engine, order_id)}
    assert (rows[merchant.id].status, rows[merchant.id].external_ref) == ("delivered", "OMS-1")
    assert rows[warehouse.id].status == "quarantined" and "422" in rows[warehouse.id].last_response
    states = [s for s, _ in history(container.engine, order_id)]
    assert "QUARANTINED" not in states and states[-2:] == ["DELIVERED", "DELIVERY_INCOMPLETE"]
    [(kind, message)] = _alerts(container, order_id)
    assert kind == "delivery_incomplete"
    assert message.startswith(
        "order C-3 was accepted by oms (OMS-1) but not delivered everywhere: warehouse:"
    )
    assert deliver_jobs(container.engine)[-1].result["status"] == "incomplete"


def test_a_rerun_after_the_last_hand_over_neither_re_sends_nor_quarantines(
    container, shop, merchant, oms, clock, now
):
    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("C-4", [("A", 1, "5")], now=now), now)
    _deliver(container, shop, clock, order_id)
    [row] = delivery_rows(container.engine, order_id)
    assert row.external_ref == "OMS-1"
    # As if the worker died after the OMS answered and the answer was recorded, but before the job's
    # completion committed; meanwhile the SKU's catalog entry went away (validation would now fail).
    with container.engine.begin() as conn:
        conn.execute(sa.update(orders).where(orders.c.id == order_id).values(merchant_status="pending"))
        conn.execute(sa.text("DELETE FROM products"))

    _deliver(container, shop, clock, order_id)

    assert order_row(container.engine, order_id).merchant_status == "delivered"
    assert quarantine_row(container.engine, order_id) is None
    assert [o.deliveries for o in oms.state.orders()] == [1]  # not POSTed again
    [again] = delivery_rows(container.engine, order_id)
    assert (again.external_ref, again.attempts, again.delivered_at) == ("OMS-1", 1, row.delivered_at)


def test_a_rerun_after_the_holder_was_disabled_completes_instead_of_quarantining(
    container, shop, merchant, oms, clock, now
):
    from tradelane.persistence.merchant_systems import set_enabled

    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("C-6", [("A", 1, "5")], now=now), now)
    _deliver(container, shop, clock, order_id)
    with container.engine.begin() as conn:  # crash before completion, then the OMS is disabled
        conn.execute(sa.update(orders).where(orders.c.id == order_id).values(merchant_status="pending"))
        set_enabled(conn, merchant, False)

    _deliver(container, shop, clock, order_id)

    assert order_row(container.engine, order_id).merchant_status == "delivered"
    assert quarantine_row(container.engine, order_id) is None
    assert [o.deliveries for o in oms.state.orders()] == [1]


def test_a_delivered_row_keeps_its_first_external_ref(container, shop, merchant, oms, clock, now):
    from tradelane.merchant.base import DeliveryOutcome, OutcomeKind
    from tradelane.services.order_delivery import _record_attempt

    add_product(container.engine, shop.tenant_id, "A", now)
    order_id = ingest(container, shop, marketplace_order("C-5", [("A", 1, "5")], now=now), now)
    _deliver(container, shop, clock, order_id)
    late = DeliveryOutcome(OutcomeKind.DELIVERED, "created", request="POST again", external_ref="OMS-99")
    with container.engine.begin() as conn:
        _record_attempt(
            conn, tenant_id=shop.tenant_id, order_id=order_id, system=merchant, outcome=late, now=now
        )
        retry = DeliveryOutcome(OutcomeKind.RETRY, "503", request="POST again")
        _record_attempt(
            conn, tenant_id=shop.tenant_id, order_id=order_id, system=merchant, outcome=retry, now=now
        )
    with container.engine.connect() as conn:
        row = conn.execute(sa.select(order_deliveries).where(order_deliveries.c.order_id == order_id)).one()
    assert (row.status, row.external_ref, row.attempts) == ("delivered", "OMS-1", 1)


# --- a drop folder that sends one kind of file ----------------------------------------------------


def test_a_catalog_only_drop_folder_rejects_stock_files(container, shop, clock, tmp_path):
    import os
    import time

    drop = _drop_folder(container, shop, tmp_path, ["catalog"])
    inbox = Path(drop.settings["folder"]) / "inbox"
    for name, content in [("stock-1.csv", "sku,quantity\nA,3\n"), ("catalog.csv", "sku,title\nA,Apple\n")]:
        path = inbox / name
        path.write_text(content)
        stamp = time.time() - 60
        os.utime(path, (stamp, stamp))

    run_worker(container, clock)

    root = Path(drop.settings["folder"])
    assert sorted(p.name for p in (root / "rejected").iterdir()) == ["stock-1.csv", "stock-1.csv.error.txt"]
    error = (root / "rejected" / "stock-1.csv.error.txt").read_text()
    assert error.startswith("stock-1.csv: this drop folder sends catalog files only (its 'sends' setting)")
    assert sorted(p.name for p in (root / "processed").iterdir()) == [
        "catalog.csv",
        "catalog.csv.result.json",
    ]


def test_cli_merchant_add_files_sends(db_url, monkeypatch, tmp_path):
    import json

    from typer.testing import CliRunner

    from tradelane.cli import build_app
    from tradelane.security.crypto import generate_key

    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", generate_key())
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    runner, app = CliRunner(), build_app()
    assert runner.invoke(app, ["tenant", "create", "acme"]).exit_code == 0
    add = ["merchant", "add", "files", "--tenant", "acme", "--folder", str(tmp_path / "d"), "--json"]
    ok = runner.invoke(app, [*add, "--name", "cat", "--sends", "catalog"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["settings"]["sends"] == ["catalog"]
    bad = runner.invoke(app, [*add, "--name", "bad", "--sends", "orders"])
    assert bad.exit_code == 1 and "a drop folder sends catalog and/or stock, not orders" in bad.output
    listed = runner.invoke(app, ["merchant", "list", "--tenant", "acme", "--json"])
    assert [(s["name"], s["capabilities"]) for s in json.loads(listed.stdout)] == [("cat", ["send_catalog"])]
    table = runner.invoke(app, ["merchant", "list", "--tenant", "acme"], terminal_width=200)
    assert "send_catalog" in table.output
