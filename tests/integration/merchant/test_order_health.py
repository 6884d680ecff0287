"""Order Health: listing grouped by reason, retry (one, by reason, all), release — through the service,
the REST API and the CLI."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
import typer
from merchant_support import (
    SECRET,
    add_product,
    deliver_jobs,
    history,
    ingest,
    make_shop,
    marketplace_order,
    order_row,
    quarantine_row,
    run_worker,
)
from typer.testing import CliRunner

from tradelane.cli import build_app
from tradelane.cli.merchant import register_orders_commands
from tradelane.domain.errors import ConflictError, NotFoundError, ValidationError
from tradelane.persistence.tables import merchant_systems, sku_mappings
from tradelane.services.order_health import (
    QuarantineReason,
    enqueue_delivery,
    health_report,
    quarantine,
    release_order,
    retry_orders,
    retry_quarantined,
)


def _quarantine(container, shop, mid: str, code: QuarantineReason, at) -> int:
    order_id = ingest(container, shop, marketplace_order(mid, [("A", 1, "1")], now=at), at)
    with container.engine.begin() as conn:
        quarantine(
            conn,
            tenant_id=shop.tenant_id,
            order_id=order_id,
            reason_code=code,
            reason=f"because {mid}",
            detail={"skus": ["A"]} if code is QuarantineReason.UNKNOWN_SKU else {},
            now=at,
        )
    return order_id


@pytest.fixture
def quarantined(container, shop, now):
    """Three unknown_sku orders (1 h, 2 h, 3 h old) and one oms_rejected (30 min old)."""
    ids = {
        "U1": _quarantine(container, shop, "U1", QuarantineReason.UNKNOWN_SKU, now - timedelta(hours=1)),
        "U2": _quarantine(container, shop, "U2", QuarantineReason.UNKNOWN_SKU, now - timedelta(hours=3)),
        "U3": _quarantine(container, shop, "U3", QuarantineReason.UNKNOWN_SKU, now - timedelta(hours=2)),
        "R1": _quarantine(container, shop, "R1", QuarantineReason.OMS_REJECTED, now - timedelta(minutes=30)),
    }
    return ids


def test_report_groups_by_reason_with_counts_and_ages(container, shop, quarantined, now):
    other = make_shop(container, "globex", "shop-de", now)
    _quarantine(container, other, "G1", QuarantineReason.MISSING_FIELD, now)
    with container.engine.connect() as conn:
        groups = health_report(conn, shop.tenant_id, now=now)
    assert [(g.reason_code, g.count, g.oldest_age_seconds) for g in groups] == [
        ("unknown_sku", 3, 3 * 3600),
        ("oms_rejected", 1, 1800),
    ]
    assert [o.ref for o in groups[0].orders] == ["shop-fr:U2", "shop-fr:U3", "shop-fr:U1"]  # oldest first
    assert [o.age_seconds for o in groups[0].orders] == [10800, 7200, 3600]
    assert groups[0].orders[0].reason == "because U2" and groups[0].orders[0].detail == {"skus": ["A"]}


def test_retry_by_reason_all_and_refs(container, shop, quarantined, now):
    with container.engine.begin() as conn:
        by_reason = retry_quarantined(conn, tenant_id=shop.tenant_id, reason_code="oms_rejected", now=now)
        assert by_reason == [quarantined["R1"]]
        everything = retry_quarantined(conn, tenant_id=shop.tenant_id, reason_code=None, now=now)
        assert sorted(everything) == sorted(quarantined.values())
        with pytest.raises(ValidationError):
            retry_quarantined(conn, tenant_id=shop.tenant_id, reason_code="nope", now=now)
        with pytest.raises(NotFoundError):
            retry_orders(conn, tenant_id=shop.tenant_id, refs=["shop-fr:NOPE"], now=now)
        with pytest.raises(NotFoundError):
            retry_orders(conn, tenant_id=shop.tenant_id, refs=["9" * 30], now=now)
    # One queued delivery per order, however often it was asked for.
    assert sorted(j.payload["order_id"] for j in deliver_jobs(container.engine)) == sorted(
        quarantined.values()
    )


def test_release_hands_the_order_over_and_keeps_its_history(container, shop, quarantined, clock, now):
    order_id = quarantined["U1"]
    with container.engine.begin() as conn:
        assert release_order(conn, tenant_id=shop.tenant_id, ref="shop-fr:U1", now=now) == order_id
        with pytest.raises(ConflictError):
            release_order(conn, tenant_id=shop.tenant_id, ref="shop-fr:U1", now=now)
        with pytest.raises(ConflictError):
            retry_orders(conn, tenant_id=shop.tenant_id, refs=[str(order_id)], now=now)
    assert order_row(container.engine, order_id).merchant_status == "released"
    assert quarantine_row(container.engine, order_id) is None
    states = history(container.engine, order_id)
    assert states[-2][0] == "QUARANTINED" and states[-1][0] == "RELEASED"
    assert "unknown_sku" in states[-1][1] and "because U1" in states[-1][1]
    with container.engine.connect() as conn:
        groups = health_report(conn, shop.tenant_id, now=now)
    assert [o.ref for g in groups for o in g.orders if o.reason_code == "unknown_sku"] == [
        "shop-fr:U2",
        "shop-fr:U3",
    ]
    # A delivery job queued earlier does nothing to a released order.
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=now
        )
    run_worker(container, clock)
    assert deliver_jobs(container.engine)[-1].result["reason"] == "released to the operator"


# --- REST API -------------------------------------------------------------------------------------


def _auth(shop) -> dict[str, str]:
    return {"Authorization": f"Bearer {shop.token}"}


def test_api_lists_retries_and_releases(client, container, shop, quarantined, now):
    assert client.get("/api/v1/order-health").status_code == 401
    body = client.get("/api/v1/order-health", headers=_auth(shop)).json()
    assert body["total"] == 4
    assert [(g["reason_code"], g["count"]) for g in body["groups"]] == [
        ("unknown_sku", 3),
        ("oms_rejected", 1),
    ]
    first = body["groups"][0]["orders"][0]
    assert first["ref"] == "shop-fr:U2" and first["age_seconds"] == 10800 and first["reason"] == "because U2"

    bad = client.post(
        "/api/v1/order-health/retry", headers=_auth(shop), json={"all": True, "reason": "unknown_sku"}
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert client.post("/api/v1/order-health/retry", headers=_auth(shop), json={}).status_code == 422
    r = client.post("/api/v1/order-health/retry", headers=_auth(shop), json={"reason": "oms_rejected"})
    assert r.json() == {"queued": [quarantined["R1"]], "count": 1}
    r = client.post("/api/v1/order-health/retry", headers=_auth(shop), json={"refs": ["shop-fr:U1"]})
    assert r.json() == {"queued": [quarantined["U1"]], "count": 1}
    assert (
        client.post(
            "/api/v1/order-health/retry", headers=_auth(shop), json={"refs": ["shop-fr:X"]}
        ).status_code
        == 404
    )

    released = client.post("/api/v1/order-health/shop-fr:U3/release", headers=_auth(shop))
    assert released.json() == {"order_id": quarantined["U3"], "merchant_status": "released"}
    again = client.post("/api/v1/order-health/shop-fr:U3/release", headers=_auth(shop))
    assert again.status_code == 409 and again.json()["status"] == 409
    assert client.get("/api/v1/order-health", headers=_auth(shop)).json()["total"] == 3


def test_api_is_tenant_scoped(client, container, shop, quarantined, now):
    other = make_shop(container, "globex", "shop-fr-2", now)
    assert client.get("/api/v1/order-health", headers=_auth(other)).json() == {"total": 0, "groups": []}
    ref = str(quarantined["U1"])
    assert client.post(f"/api/v1/order-health/{ref}/release", headers=_auth(other)).status_code == 404
    assert (
        client.post("/api/v1/order-health/retry", headers=_auth(other), json={"refs": [ref]}).status_code
        == 404
    )
    assert client.get(f"/api/v1/orders/{ref}/oms-document", headers=_auth(other)).status_code == 404
    assert order_row(container.engine, quarantined["U1"]).merchant_status == "quarantined"


def test_oms_document_endpoint_and_its_published_schema(client, container, shop, now):
    add_product(container.engine, shop.tenant_id, "KNOWN", now)
    order_id = ingest(
        container, shop, marketplace_order("D-1", [("KNOWN", 2, "1.25"), ("ODD", 1, "3")], now=now), now
    )
    r = client.get("/api/v1/orders/shop-fr:D-1/oms-document", headers=_auth(shop))
    assert r.status_code == 200 and r.headers["x-unknown-skus"] == "ODD"
    doc = r.json()
    assert doc["id"] == order_id and doc["ref"] == "shop-fr:D-1"
    assert [(ln["sku"], ln["unit_price"], ln["line_total"]) for ln in doc["lines"]] == [
        ("KNOWN", "1.25", "2.5"),
        ("ODD", "3", "3"),
    ]
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    oms = schemas["OmsOrder"]
    required = set(oms["required"])
    assert {
        "id",
        "channel",
        "marketplace_order_id",
        "attributes",
        "lines",
        "currency",
        "created_at",
    } <= required
    assert {"shipping_address", "billing_address", "customer_message"} <= set(oms["properties"])
    line = schemas["OmsOrderLine"]
    assert {"sku", "quantity", "unit_price", "currency", "type"} <= set(line["required"])
    assert line["properties"]["unit_price"]["type"] == "string"


# --- CLI ------------------------------------------------------------------------------------------


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path, container):
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", ",".join(container.settings.key_list()))
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    app = build_app()
    orders = typer.Typer()
    register_orders_commands(orders)
    app.add_typer(orders, name="orders-health-test")
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args))
        return result

    return invoke


def test_cli_merchant_add_and_list_never_show_the_secret(cli, container, shop):
    r = cli(
        "merchant",
        "add",
        "http",
        "--tenant",
        "acme",
        "--name",
        "oms",
        "--url",
        "http://127.0.0.1:9/orders",
        "--secret",
        SECRET,
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["settings"] == {"url": "http://127.0.0.1:9/orders"}
    listed = cli("merchant", "list", "--tenant", "acme", "--json")
    assert [s["name"] for s in json.loads(listed.stdout)] == ["oms"]
    assert SECRET not in r.output + listed.output
    with container.engine.connect() as conn:
        token = conn.execute(sa.select(merchant_systems.c.credentials)).scalar_one()
    assert SECRET.encode() not in token and container.keyring.decrypt(token) == {"secret": SECRET}
    dup = cli(
        "merchant",
        "add",
        "http",
        "--tenant",
        "acme",
        "--name",
        "oms",
        "--url",
        "http://x/",
        "--secret",
        SECRET,
    )
    assert dup.exit_code == 1 and "already exists" in dup.output
    bad = cli(
        "merchant", "add", "http", "--tenant", "acme", "--name", "o2", "--url", "ftp://x", "--secret", SECRET
    )
    assert bad.exit_code == 1 and "http(s)" in bad.output


def test_cli_sku_map_add_retries_what_it_unblocks(cli, container, shop, quarantined):
    for sku in ("M-A", "M-B", "M-C"):
        add_product(container.engine, shop.tenant_id, sku, container.now())
    r = cli("sku-map", "add", "--tenant", "acme", "--channel", "shop-fr", "A", "M-A", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {
        "marketplace_sku": "A",
        "merchant_sku": "M-A",
        "channel": "shop-fr",
        "merchant_only": False,
        "orders_retried": 3,
    }
    r = cli("sku-map", "add", "--tenant", "acme", "A", "M-B", "--json")  # tenant-wide; replace it next
    assert cli("sku-map", "add", "--tenant", "acme", "A", "M-C").exit_code == 0
    with container.engine.connect() as conn:
        rows = conn.execute(sa.select(sku_mappings.c.channel_id, sku_mappings.c.merchant_sku)).all()
    assert sorted(rows, key=lambda r: r.merchant_sku) == [(shop.channel_id, "M-A"), (None, "M-C")]
    listed = json.loads(cli("sku-map", "list", "--tenant", "acme", "--json").stdout)
    assert {(m["channel"], m["merchant_sku"]) for m in listed} == {(None, "M-C"), ("shop-fr", "M-A")}


def test_cli_orders_health_retry_release(cli, container, shop, quarantined):
    r = cli("orders-health-test", "health", "--tenant", "acme", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["total"] == 4 and [g["reason_code"] for g in out["groups"]] == ["unknown_sku", "oms_rejected"]
    text = cli("orders-health-test", "health", "--tenant", "acme")
    assert "unknown_sku" in text.output and "shop-fr:U2" in text.output

    assert cli("orders-health-test", "retry", "--tenant", "acme").exit_code == 1
    assert cli("orders-health-test", "retry", "--tenant", "acme", "--all", "--reason", "x").exit_code == 1
    r = cli("orders-health-test", "retry", "--tenant", "acme", "--reason", "oms_rejected", "--json")
    assert json.loads(r.stdout) == {"queued": [quarantined["R1"]], "count": 1}
    r = cli("orders-health-test", "retry", "--tenant", "acme", "shop-fr:U1", str(quarantined["U2"]), "--json")
    assert json.loads(r.stdout)["queued"] == [quarantined["U1"], quarantined["U2"]]
    r = cli("orders-health-test", "retry", "--tenant", "acme", "--all", "--json")
    assert json.loads(r.stdout)["count"] == 4

    r = cli("orders-health-test", "release", "--tenant", "acme", "shop-fr:U3", "--json")
    assert json.loads(r.stdout) == {"order_id": quarantined["U3"], "merchant_status": "released"}
    again = cli("orders-health-test", "release", "--tenant", "acme", "shop-fr:U3")
    assert again.exit_code == 1 and "not quarantined" in again.output
