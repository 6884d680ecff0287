"""Selecting products by label against the Mirakl sandbox: only selected offers are sent; a catalog
import that adds the label lists the product, one that removes it delists it (reconciler on: deleted
from the marketplace, binding removed) or leaves it there, never updated again (reconciler off)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from mirakl_world import SHOP_ID, World, ean
from tradelane.connectors.mirakl import port
from tradelane.domain.channels import Flow
from tradelane.domain.selection import ALL, selection
from tradelane.persistence.tables import channel_flows, channels, offer_bindings, products
from tradelane.services import audit
from tradelane.services import selection as selection_service
from tradelane.services.catalog_import import import_catalog
from tradelane.services.offers import list_offers


@pytest.fixture(autouse=True)
def _live(world: World) -> None:
    """The channel sends offers (a channel starts in Setup, where nothing is sent; its lifecycle is not
    what these tests are about)."""
    with world.engine.begin() as conn:
        conn.execute(
            sa.update(channels).where(channels.c.id == world.channel.id).values(lifecycle_state="live")
        )


HEADER = "sku,title,gtin,price,currency,quantity,labels,attr:color\n"


def _import(world: World, tmp_path: Path, rows: dict[str, tuple[str, str]], *, price: str = "10.00") -> None:
    """Import SKU -> (labels, color); SKU-i carries GTIN ean(i), which the sandbox catalog knows."""
    lines = [
        f"{sku},Product {sku},{ean(int(sku.split('-')[1]))},{price},EUR,5,{labels},{color}\n"
        for sku, (labels, color) in rows.items()
    ]
    path = tmp_path / f"catalog-{world.clock().timestamp()}.csv"
    path.write_text(HEADER + "".join(lines))
    summary = import_catalog(world.engine, tenant_id=world.tenant_id, path=path, now=world.clock())
    assert summary.rejected == 0, summary.errors


def _select(world: World, *labels: str, where: tuple[str, ...] = ()) -> selection_service.SelectionPreview:
    with world.engine.begin() as conn:
        return selection_service.set_selection(
            conn, world.channel, selection(labels, where), actor="test:ops", now=world.clock()
        )


def _reconciler(world: World, enabled: bool) -> None:
    with world.engine.begin() as conn:
        conn.execute(
            sa.update(channel_flows)
            .where(
                channel_flows.c.channel_id == world.channel.id, channel_flows.c.flow == Flow.RECONCILER.value
            )
            .values(enabled=enabled)
        )


def _on_marketplace(world: World) -> set[str]:
    return set(world.state.shop_offers(SHOP_ID))


def _states(world: World) -> dict[str, str]:
    with world.engine.connect() as conn:
        rows = conn.execute(
            sa.select(products.c.sku, offer_bindings.c.selection_state).join(
                offer_bindings, offer_bindings.c.product_id == products.c.id
            )
        ).all()
    return {sku: state for sku, state in rows}


CATALOG = {
    "SKU-0": ("summer", "red"),
    "SKU-1": ("summer;sale", "blue"),
    "SKU-2": ("summer", "red"),
    "SKU-3": ("winter", "red"),
    "SKU-4": ("", "red"),
}


def test_only_selected_offers_are_sent_and_the_change_is_audited(world: World, tmp_path: Path) -> None:
    _import(world, tmp_path, CATALOG)  # bound to the channel (every product) before any sync
    applied = _select(world, "summer", where=("color=red",))
    # Nothing was ever sent: the three products no longer selected are simply unbound.
    assert applied.counts() == {"listed": 0, "updated": 2, "delisted": 3, "left_on_marketplace": 0}
    assert applied.updated.sample == ("SKU-0", "SKU-2")
    world.run(step=20)
    assert _on_marketplace(world) == {"SKU-0", "SKU-2"}
    with world.engine.connect() as conn:
        assert selection_service.selected_count(conn, world.channel.id) == 2
        assert selection_service.get_selection(conn, world.channel.id) == selection(["summer"], ["color=red"])
        [event] = audit.history(conn, world.channel.id, prefix="selection.")
    assert event.actor == "test:ops" and event.action == "selection.set"
    assert event.details["selection"]["labels"] == ["summer"]
    assert event.details["selection"]["where"] == [["color", "red"]]
    assert (event.details["listed"], event.details["updated"], event.details["delisted"]) == (0, 2, 3)

    # A new product with the label is bound at import; one without it is not.
    _import(world, tmp_path, {"SKU-5": ("summer", "red"), "SKU-6": ("winter", "red")})
    world.run(step=20)
    assert _on_marketplace(world) == {"SKU-0", "SKU-2", "SKU-5"}
    assert "SKU-6" not in _states(world)


def test_adding_the_label_lists_removing_it_delists_with_the_reconciler_on(
    world: World, tmp_path: Path
) -> None:
    _reconciler(world, True)
    _select(world, "summer")
    _import(world, tmp_path, CATALOG)
    world.run(step=20)
    assert _on_marketplace(world) == {"SKU-0", "SKU-1", "SKU-2"}

    changed = {**CATALOG, "SKU-0": ("", "red"), "SKU-3": ("winter;summer", "red")}
    before = len(world.state.calls("OF24"))
    _import(world, tmp_path, changed)
    assert _states(world)["SKU-0"] == "delisting" and _states(world)["SKU-3"] == "selected"
    world.run(step=20)
    assert _on_marketplace(world) == {"SKU-1", "SKU-2", "SKU-3"}
    assert len(world.state.calls("OF24")) == before + 1  # the listing and the deletion in one delta
    assert "SKU-0" not in _states(world)  # binding removed once Mirakl accepted the deletion
    with world.engine.connect() as conn:
        assert selection_service.selected_count(conn, world.channel.id) == 3

    # Back to every product: SKU-0 and SKU-4 are listed again.
    with world.engine.begin() as conn:
        restored = selection_service.set_selection(
            conn, world.channel, ALL, actor="test:ops", now=world.clock()
        )
    assert restored.listed.sample == ("SKU-0", "SKU-4")
    world.run(step=20)
    assert _on_marketplace(world) == {"SKU-0", "SKU-1", "SKU-2", "SKU-3", "SKU-4"}


def test_removing_the_label_leaves_the_offer_with_the_reconciler_off(world: World, tmp_path: Path) -> None:
    _reconciler(world, False)
    _select(world, "summer")
    _import(world, tmp_path, CATALOG)
    world.run(step=20)
    assert _on_marketplace(world) == {"SKU-0", "SKU-1", "SKU-2"}

    _import(world, tmp_path, {**CATALOG, "SKU-0": ("", "red")})
    assert _states(world)["SKU-0"] == "left"
    world.run(step=20)
    assert _on_marketplace(world) == {"SKU-0", "SKU-1", "SKU-2"}  # left there

    # Never updated again: a new price reaches SKU-1, not SKU-0.
    _import(world, tmp_path, {**CATALOG, "SKU-0": ("", "red")}, price="12.00")
    world.run(step=20)
    offers = world.state.shop_offers(SHOP_ID)
    assert offers["SKU-1"].price == Decimal("12.00")
    assert offers["SKU-0"].price == Decimal("10.00")
    with world.engine.connect() as conn:
        rows = {r["sku"]: r for r in list_offers(conn, world.tenant_id)}
        current = selection_service.preview(conn, world.channel)
    assert rows["SKU-0"]["selection_state"] == "left" and not rows["SKU-0"]["dirty"]
    assert current.left_on_marketplace.sample == ("SKU-0",)

    # Selecting it again resumes its updates.
    _import(world, tmp_path, {**CATALOG, "SKU-0": ("summer", "red")}, price="12.00")
    world.run(step=20)
    assert world.state.shop_offers(SHOP_ID)["SKU-0"].price == Decimal("12.00")
    assert _states(world)["SKU-0"] == "selected"


def test_preview_counts_are_exact_and_change_nothing(world: World, tmp_path: Path) -> None:
    _reconciler(world, True)
    _import(world, tmp_path, CATALOG)
    world.run(step=20)  # every product listed
    assert _on_marketplace(world) == set(CATALOG)
    proposed = selection(["sale", "winter"])
    with world.engine.connect() as conn:
        shown = selection_service.preview(conn, world.channel, proposed)
        current = selection_service.preview(conn, world.channel)
    assert current.selection == ALL
    assert current.counts() == {"listed": 0, "updated": 5, "delisted": 0, "left_on_marketplace": 0}
    assert shown.counts() == {"listed": 0, "updated": 2, "delisted": 3, "left_on_marketplace": 0}
    assert shown.updated.sample == ("SKU-1", "SKU-3")
    assert shown.delisted.sample == ("SKU-0", "SKU-2", "SKU-4")
    assert shown.delist_action == "delete"
    assert _states(world) == {sku: "selected" for sku in CATALOG}  # a preview writes nothing
    with world.engine.begin() as conn:
        applied = selection_service.set_selection(
            conn, world.channel, proposed, actor="test:ops", now=world.clock()
        )
    assert applied.counts() == shown.counts()
    world.run(step=20)
    assert _on_marketplace(world) == {"SKU-1", "SKU-3"}
    with world.engine.connect() as conn:
        again = selection_service.preview(conn, world.channel, selection(["summer"]))
    # SKU-0 and SKU-2 would be listed again, SKU-1 stays, SKU-3 goes.
    assert again.counts() == {"listed": 2, "updated": 1, "delisted": 1, "left_on_marketplace": 0}
    assert again.listed.sample == ("SKU-0", "SKU-2")


def test_a_full_sync_carries_the_deletions_too(world: World, tmp_path: Path) -> None:
    _reconciler(world, True)
    _import(world, tmp_path, CATALOG)
    world.run(step=20)
    assert _on_marketplace(world) == set(CATALOG)
    deltas = len(world.state.calls("OF24"))
    _select(world, "winter")
    world.enqueue("offers.full", flow="offers")  # supersedes the delta: the deletions go in its OF01 file
    world.run(step=20)
    assert _on_marketplace(world) == {"SKU-3"}
    assert set(_states(world)) == {"SKU-3"}
    assert len(world.state.calls("OF01")) == 2  # the first sync and this one
    assert len(world.state.calls("OF24")) == deltas  # no delta sent them


def test_a_connector_that_cannot_delete_leaves_the_offer_and_says_why(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = port.mirakl_capabilities
    monkeypatch.setattr(
        port, "mirakl_capabilities", lambda settings: replace(declared(settings), delete_offers=False)
    )
    _reconciler(world, True)
    _import(world, tmp_path, CATALOG)
    world.run(step=20)
    _select(world, "winter")
    world.run(step=20)
    assert _on_marketplace(world) == set(CATALOG)  # nothing deleted
    with world.engine.connect() as conn:
        rows = {r["sku"]: r for r in list_offers(conn, world.tenant_id)}
    assert rows["SKU-0"]["status"] == "blocked" and rows["SKU-0"]["selection_state"] == "delisting"
    assert "cannot delete offers: left on the marketplace" in rows["SKU-0"]["last_error"]
