"""Order Health fixes are checked: a SKU mapping must name a catalog SKU (or be confirmed as known only
to the merchant system), a product added to release an order is published only where the operator
asked, and a form's problems are all reported at once — through the service, the REST API and the CLI.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import sqlalchemy as sa
import typer
from merchant_support import (
    add_product,
    ingest,
    marketplace_order,
    order_row,
    quarantine_row,
    run_worker,
)
from typer.testing import CliRunner

from tradelane.cli import build_app
from tradelane.domain.errors import ValidationError
from tradelane.persistence.sku_mappings import list_sku_mappings, put_sku_mapping
from tradelane.persistence.tables import (
    catalog_imports,
    channels,
    jobs,
    offer_bindings,
    products,
    sku_mappings,
)
from tradelane.services.catalog_import import import_catalog
from tradelane.services.channels import create_channel
from tradelane.services.order_health import enqueue_delivery
from tradelane.services.sku_fixes import FormErrors, add_catalog_product, map_sku, product_form_errors

NOT_IN_CATALOG = "SKU 'NOPE' is not in the catalog of tenant acme"


def _mappings(container) -> list[tuple]:
    with container.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(
                    sku_mappings.c.marketplace_sku, sku_mappings.c.merchant_sku, sku_mappings.c.merchant_only
                ).order_by(sku_mappings.c.id)
            )
        ]


def _deliver(container, shop, clock, order_id) -> None:
    with container.engine.begin() as conn:
        enqueue_delivery(
            conn, tenant_id=shop.tenant_id, order_id=order_id, channel_id=shop.channel_id, now=container.now()
        )
    run_worker(container, clock)


# --- service ------------------------------------------------------------------------------------


def test_a_mapping_to_a_sku_that_exists_nowhere_is_refused(container, shop, now):
    with container.engine.begin() as conn, pytest.raises(ValidationError) as refused:
        put_sku_mapping(
            conn,
            tenant_id=shop.tenant_id,
            channel_id=None,
            marketplace_sku="M1",
            merchant_sku="NOPE",
            now=now,
        )
    assert NOT_IN_CATALOG in str(refused.value)
    assert _mappings(container) == []

    add_product(container.engine, shop.tenant_id, "REAL", now)
    with container.engine.begin() as conn:
        checked = put_sku_mapping(
            conn,
            tenant_id=shop.tenant_id,
            channel_id=None,
            marketplace_sku="M1",
            merchant_sku="REAL",
            now=now,
        )
        confirmed = put_sku_mapping(
            conn,
            tenant_id=shop.tenant_id,
            channel_id=None,
            marketplace_sku="M2",
            merchant_sku="NOPE",
            merchant_only=True,
            now=now,
        )
        listed = list_sku_mappings(conn, shop.tenant_id)
    assert (checked.merchant_only, confirmed.merchant_only) == (False, True)
    assert _mappings(container) == [("M1", "REAL", False), ("M2", "NOPE", True)]
    assert [(m["marketplace_sku"], m["merchant_only"], m["in_catalog"], m["effective"]) for m in listed] == [
        ("M1", False, True, True),
        ("M2", True, False, True),
    ]


def test_another_tenants_catalog_does_not_count(container, shop, now):
    from merchant_support import make_shop

    other = make_shop(container, "globex", "shop-de", now)
    add_product(container.engine, other.tenant_id, "NOPE", now)
    with container.engine.begin() as conn, pytest.raises(ValidationError, match=NOT_IN_CATALOG):
        put_sku_mapping(
            conn,
            tenant_id=shop.tenant_id,
            channel_id=None,
            marketplace_sku="M1",
            merchant_sku="NOPE",
            now=now,
        )


def test_order_validation_accepts_a_merchant_only_mapping_but_never_a_bogus_one(
    container, shop, merchant, oms, clock, now
):
    order_id = ingest(container, shop, marketplace_order("O-1", [("LEGACY", 1, "5.00")], now=now), now)
    with container.engine.begin() as conn:
        # A mapping stored before mappings were checked (or whose catalog SKU is gone): not a resolution.
        conn.execute(
            sa.insert(sku_mappings).values(
                tenant_id=shop.tenant_id,
                channel_id=shop.channel_id,
                marketplace_sku="LEGACY",
                merchant_sku="BOGUS",
                created_at=now,
            )
        )
    _deliver(container, shop, clock, order_id)
    q = quarantine_row(container.engine, order_id)
    assert q is not None and q.reason_code == "unknown_sku" and q.detail["skus"] == ["LEGACY"]
    assert oms.state.requests() == []  # the bogus SKU never reached the OMS
    with container.engine.connect() as conn:
        [listed] = list_sku_mappings(conn, shop.tenant_id)
    assert (listed["merchant_only"], listed["in_catalog"], listed["effective"]) == (False, False, False)

    with container.engine.begin() as conn:
        fix = map_sku(
            conn,
            tenant_id=shop.tenant_id,
            channel="shop-fr",
            marketplace_sku="LEGACY",
            merchant_sku="OMS-ONLY-7",
            merchant_only=True,
            now=now,
        )
    assert fix.orders_retried == 1 and fix.mapping is not None and fix.mapping.merchant_only
    run_worker(container, clock)
    assert order_row(container.engine, order_id).merchant_status == "delivered"
    [received] = oms.state.orders()
    assert [ln["sku"] for ln in received.document["lines"]] == ["OMS-ONLY-7"]


def test_map_sku_reports_every_problem_at_once_and_writes_nothing(container, shop, now):
    with container.engine.begin() as conn, pytest.raises(FormErrors) as refused:
        map_sku(
            conn,
            tenant_id=shop.tenant_id,
            channel="shop-xx",
            marketplace_sku="LEGACY",
            merchant_sku="NOPE",
            now=now,
        )
    assert refused.value.errors == {
        "merchant_sku": refused.value.errors["merchant_sku"],
        "channel": "no channel named 'shop-xx'",
    }
    assert NOT_IN_CATALOG in refused.value.errors["merchant_sku"]
    with container.engine.begin() as conn, pytest.raises(FormErrors) as blank:
        map_sku(conn, tenant_id=shop.tenant_id, channel=None, marketplace_sku=" ", merchant_sku="", now=now)
    assert set(blank.value.errors) == {"marketplace_sku", "merchant_sku"}
    assert _mappings(container) == []


def _second_channel(container, shop, now) -> int:
    with container.engine.begin() as conn:
        return create_channel(
            conn,
            tenant_id=shop.tenant_id,
            name="shop-de",
            connector="mirakl",
            settings={},
            credentials={"api_key": "k"},
            keyring=container.keyring,
            now=now,
        ).id


def _bindings(container, sku: str) -> list[str]:
    with container.engine.connect() as conn:
        return sorted(
            conn.execute(
                sa.select(channels.c.name)
                .select_from(
                    offer_bindings.join(products, products.c.id == offer_bindings.c.product_id).join(
                        channels, channels.c.id == offer_bindings.c.channel_id
                    )
                )
                .where(products.c.sku == sku)
            ).scalars()
        )


def _delta_jobs(container) -> list[int | None]:
    with container.engine.connect() as conn:
        return sorted(
            conn.execute(sa.select(jobs.c.channel_id).where(jobs.c.kind == "offers.delta")).scalars()
        )


def test_a_product_added_to_release_an_order_is_published_only_where_asked(container, shop, now):
    de = _second_channel(container, shop, now)
    row = {"sku": "LEGACY", "title": "Legacy", "price": "9.90", "currency": "EUR", "quantity": "2"}
    fix = add_catalog_product(container.engine, tenant_id=shop.tenant_id, row=row, now=now)
    assert fix.published_to == []
    assert _bindings(container, "LEGACY") == []  # in the catalog, on no marketplace
    assert _delta_jobs(container) == []

    row2 = {**row, "sku": "LEGACY-2"}
    fix2 = add_catalog_product(
        container.engine, tenant_id=shop.tenant_id, row=row2, publish_to=["shop-de"], now=now
    )
    assert fix2.published_to == ["shop-de"]
    assert _bindings(container, "LEGACY-2") == ["shop-de"]
    assert _delta_jobs(container) == [de]


def test_add_product_reports_every_problem_at_once_and_writes_nothing(container, shop, now):
    add_product(container.engine, shop.tenant_id, "TAKEN", now)
    row = {"sku": "NEW", "title": "x", "price": "12,5", "currency": "EURO", "quantity": "-1", "gtin": "123"}
    with pytest.raises(FormErrors) as refused:
        add_catalog_product(
            container.engine, tenant_id=shop.tenant_id, row=row, publish_to=["nowhere"], now=now
        )
    assert list(refused.value.errors) == ["price", "currency", "quantity", "gtin", "publish_to"]
    assert "no channel named 'nowhere'" in refused.value.errors["publish_to"]
    with pytest.raises(FormErrors) as taken:
        add_catalog_product(container.engine, tenant_id=shop.tenant_id, row={"sku": "TAKEN"}, now=now)
    assert "already in the catalog" in taken.value.errors["sku"]
    with container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(catalog_imports)).scalar() == 0
        assert conn.execute(sa.select(products.c.sku)).scalars().all() == ["TAKEN"]


def test_a_create_only_import_never_overwrites_a_stored_product(container, shop, now, tmp_path):
    """What "add product" relies on when the SKU is added between its check and its import."""
    add_product(container.engine, shop.tenant_id, "TAKEN", now)
    path = tmp_path / "rows.jsonl"
    path.write_text('{"sku": "TAKEN", "title": "overwritten?"}\n{"sku": "FRESH", "title": "new"}\n')
    summary = import_catalog(
        container.engine, tenant_id=shop.tenant_id, path=path, now=now, create_only=True, publish_to=[]
    )
    assert (summary.created, summary.updated, summary.rejected) == (1, 0, 1)
    assert [(e.line, e.sku, e.error) for e in summary.errors] == [
        (1, "TAKEN", "SKU 'TAKEN' is already in the catalog")
    ]
    with container.engine.connect() as conn:
        titles = dict(conn.execute(sa.select(products.c.sku, products.c.title)).all())
    assert titles == {"TAKEN": "Product TAKEN", "FRESH": "new"}
    assert _bindings(container, "FRESH") == []


def test_product_form_errors_pair_price_and_currency():
    assert product_form_errors({"sku": "A", "price": "1.00"}) == {
        "currency": "a currency is required with a price (ISO 4217, e.g. EUR)"
    }
    assert product_form_errors({"sku": "A", "currency": "EUR"}) == {
        "price": "a price is required with currency EUR"
    }
    assert product_form_errors({"sku": "", "title": "x"}) == {"sku": "sku is required"}
    assert product_form_errors({"sku": "A", "price": "1", "currency": "eur", "quantity": "3"}) == {}


# --- REST API -----------------------------------------------------------------------------------


def test_api_refuses_a_bogus_mapping_and_stores_a_confirmed_merchant_only_one(client, container, shop, now):
    auth = {"Authorization": f"Bearer {shop.token}"}
    refused = client.post(
        "/api/v1/sku-mappings", json={"marketplace_sku": "M1", "merchant_sku": "NOPE"}, headers=auth
    )
    assert refused.status_code == 422 and NOT_IN_CATALOG in refused.json()["detail"]
    assert _mappings(container) == []
    accepted = client.post(
        "/api/v1/sku-mappings",
        json={"marketplace_sku": "M1", "merchant_sku": "NOPE", "merchant_only": True},
        headers=auth,
    )
    assert accepted.status_code == 201 and accepted.json()["merchant_only"] is True
    add_product(container.engine, shop.tenant_id, "REAL", now)
    checked = client.post(
        "/api/v1/sku-mappings", json={"marketplace_sku": "M2", "merchant_sku": "REAL"}, headers=auth
    )
    assert checked.status_code == 201 and checked.json()["merchant_only"] is False
    assert _mappings(container) == [("M1", "NOPE", True), ("M2", "REAL", False)]


# --- CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def cli(db_url, monkeypatch, tmp_path, container):
    monkeypatch.setenv("TRADELANE_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADELANE_SECRET_KEYS", ",".join(container.settings.key_list()))
    monkeypatch.setenv("TRADELANE_LOG_LEVEL", "WARNING")
    monkeypatch.chdir(tmp_path)
    app: typer.Typer = build_app()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input)

    return invoke


def test_cli_sku_map_add_checks_the_catalog_and_confirms_merchant_only(cli, container, shop, now: datetime):
    bogus = cli("sku-map", "add", "--tenant", "acme", "M1", "NOPE")
    assert bogus.exit_code == 1 and NOT_IN_CATALOG in " ".join(bogus.output.split())
    declined = cli("sku-map", "add", "--tenant", "acme", "--merchant-only", "M1", "NOPE", input="n\n")
    assert declined.exit_code == 1 and "not confirmed" in declined.output
    assert _mappings(container) == []
    confirmed = cli(
        "sku-map", "add", "--tenant", "acme", "--merchant-only", "M1", "NOPE", "--json", input="y\n"
    )
    assert confirmed.exit_code == 0, confirmed.output
    assert _mappings(container) == [("M1", "NOPE", True)]
    scripted = cli("sku-map", "add", "--tenant", "acme", "--merchant-only", "--yes", "M2", "OMS-2", "--json")
    assert scripted.exit_code == 0, scripted.output
    assert json.loads(scripted.stdout)["merchant_only"] is True
    listed = json.loads(cli("sku-map", "list", "--tenant", "acme", "--json").stdout)
    assert [(m["marketplace_sku"], m["merchant_only"]) for m in listed] == [("M1", True), ("M2", True)]
    table = cli("sku-map", "list", "--tenant", "acme")
    assert "merchant-only" in table.output
