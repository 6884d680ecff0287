"""The pure parts of the reconciler (``compare``, the oversell warning) and of the unique-ID match
(``match``: SKU first, else a product id equal to exactly one GTIN; grouping conflicts)."""

from __future__ import annotations

from decimal import Decimal

from tradelane.connectors.base import ListedOffer
from tradelane.services.id_match import match
from tradelane.services.listings import CatalogItem, CatalogSide
from tradelane.services.reconciler import compare, oversell_warning


def test_compare_groups_and_removal() -> None:
    result = compare(["A", "B", "X"], ["A", "B", "C"], ["A", "C"], can_delete=True, include_unmanaged=False)
    assert (result.not_listed, result.not_selected, result.unmanaged, result.to_remove) == (
        ("C",),
        ("B",),
        ("X",),
        ("B",),
    )
    assert (result.listed_count, result.selected_count) == (3, 2)
    included = compare(["A", "B", "X"], ["A", "B"], ["A"], can_delete=True, include_unmanaged=True)
    assert included.to_remove == ("B", "X")
    cannot = compare(["A", "B", "X"], ["A", "B"], ["A"], can_delete=False, include_unmanaged=True)
    assert cannot.to_remove == () and cannot.not_selected == ("B",)
    delisting = compare(
        ["A", "B", "D"],
        ["A", "B", "D"],
        ["A"],
        can_delete=True,
        include_unmanaged=False,
        delisting_skus=["D"],
    )
    assert delisting.not_selected == ("B", "D") and delisting.to_remove == ("B",)


def test_oversell_warning() -> None:
    assert oversell_warning(0) is None
    assert oversell_warning(3) == (
        "3 listings exist that tradelane does not manage: their stock is not kept in sync — "
        "risk of overselling"
    )


def _offer(sku: str, product_id: str | None = None, group: str | None = None) -> ListedOffer:
    return ListedOffer(sku, Decimal("1"), "EUR", 1, product_id=product_id, group_key=group)


def test_match_by_sku_then_by_unique_gtin() -> None:
    side = CatalogSide(
        items={
            "S-1": CatalogItem("S-1", "111", "P"),
            "S-2": CatalogItem("S-2", "222", None),
            "S-3": CatalogItem("S-3", "333", None),
            "S-4": CatalogItem("S-4", "333", None),  # a GTIN shared by two products matches neither
        },
        selected=frozenset({"S-1", "S-2", "S-3"}),
    )
    rows = match(
        [
            _offer("S-1", "999", "Q"),
            _offer("THEIRS-2", "222"),
            _offer("THEIRS-3", "333"),
            _offer("Z", None, "G"),
        ],
        side,
    )
    assert [(r.category, r.sku, r.their_sku, r.matched_by) for r in rows] == [
        ("conflict", "S-1", "S-1", "sku"),
        ("only_theirs", None, "THEIRS-3", None),
        ("only_theirs", None, "Z", None),
        ("only_ours", "S-3", None, None),
        ("matched", "S-2", "THEIRS-2", "product_id"),
    ]


def test_a_listing_without_grouping_never_conflicts_and_a_missing_parent_does() -> None:
    side = CatalogSide(
        items={"A": CatalogItem("A", None, None), "B": CatalogItem("B", None, "P")}, selected=frozenset()
    )
    rows = match([_offer("A", group="G"), _offer("B")], side)
    assert [(r.category, r.sku) for r in rows] == [("conflict", "A"), ("matched", "B")]
