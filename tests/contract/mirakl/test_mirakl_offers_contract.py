"""Offers flow of the Mirakl connector against the sandbox: OF01 full sync, OF02/OF03 outcomes,
OF24 deltas coalescing every change, republishing after a fix."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from mirakl_world import SHOP_ID, catalog
from tradelane.domain.catalog import Product
from tradelane.persistence.tables import jobs
from tradelane.services.offers import list_offers, republish


def _statuses(world) -> dict[str, tuple[str, str | None]]:
    with world.engine.connect() as conn:
        rows = list_offers(conn, world.tenant_id, limit=1000)
    return {r["sku"]: (r["status"], r["last_error"]) for r in rows}


def test_full_sync_publishes_and_reports_errors_per_offer(world):
    good = catalog(4)
    unknown_product = Product(
        sku="GHOST",
        title="Not in the operator catalog",
        gtin="4006381333931",
        price=Decimal("5.00"),
        currency="EUR",
        quantity=1,
    )
    no_price = Product(sku="NOPRICE", title="No price yet", gtin=good[0].gtin, quantity=1)
    world.add_products([*good, unknown_product, no_price])
    world.enqueue("offers.full", flow="offers")
    world.run()
    statuses = _statuses(world)
    assert statuses["NOPRICE"][0] == "blocked" and "no price" in statuses["NOPRICE"][1]
    assert {statuses[p.sku][0] for p in good} == {"submitted"}
    world.run(step=20)  # let the import finish and be checked (OF02 then OF03)
    statuses = _statuses(world)
    assert {statuses[p.sku][0] for p in good} == {"published"}
    assert statuses["GHOST"][0] == "error" and statuses["GHOST"][1]
    offers = world.state.shop_offers(SHOP_ID)
    assert sorted(offers) == sorted(p.sku for p in good)
    assert offers["SKU-2"].price == Decimal("12.00") and offers["SKU-2"].quantity == 10
    assert len(world.state.calls("OF01")) == 1


def test_delta_coalesces_changes_into_one_call(world):
    world.add_products(catalog(5))
    world.enqueue("offers.full", flow="offers")
    world.run(step=20)
    before = len(world.state.calls("OF24"))
    for price in ("20.00", "21.00", "22.50"):  # three changes of one product, one of another
        world.change("SKU-1", price=Decimal(price))
    world.change("SKU-3", quantity=0)
    world.run(step=20)
    calls = world.state.calls("OF24")
    assert len(calls) == before + 1  # one OF24 for all four changes
    offers = world.state.shop_offers(SHOP_ID)
    assert offers["SKU-1"].price == Decimal("22.50")
    assert offers["SKU-3"].quantity == 0
    assert offers["SKU-2"].price == Decimal("12.00")  # untouched
    assert _statuses(world)["SKU-1"][0] == "published"


def test_republish_failed_offer_after_fix(world):
    world.add_products(
        [Product(sku="BAD", title="t", gtin="4006381333931", price=Decimal("1"), currency="EUR", quantity=1)]
    )
    world.enqueue("offers.full", flow="offers")
    world.run(step=20)
    assert _statuses(world)["BAD"][0] == "error"
    world.change("BAD", gtin=catalog(1)[0].gtin)  # fix: a GTIN the operator knows
    with world.engine.begin() as conn:
        assert (
            republish(conn, world.tenant_id, world.channel.id, skus=None, failed_only=True, now=world.clock())
            == 1
        )
    world.run(step=20)
    assert _statuses(world)["BAD"][0] == "published"
    assert "BAD" in world.state.shop_offers(SHOP_ID)


def test_delta_with_nothing_dirty_calls_nothing(world):
    world.enqueue("offers.delta", flow="offers")
    world.run()
    assert world.state.calls("OF24") == []
    with world.engine.connect() as conn:
        assert conn.execute(sa.select(jobs.c.state)).scalars().all() == ["succeeded"]
