"""Listings Items 2021-08-01 semantics, pure: validating a submission's attributes against the
requirements set, applying JSON patches, and rendering a listings ``Item``.

Issue codes: ``90220`` (required attribute missing) and ``99022`` (not enough values) are the codes of
Amazon's published processing-report example; the others are the sandbox's own (documented in
docs/amazon-sandbox.md), with Amazon's messages and categories.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from tradelane.connectors.amazon.sandbox.marketplaces import MARKETPLACES
from tradelane.connectors.amazon.sandbox.models import Catalog, Listing

REQUIREMENTS = ("LISTING", "LISTING_PRODUCT_ONLY", "LISTING_OFFER_ONLY")
CONDITION_TYPES = frozenset(
    {
        "new_new",
        "new_open_box",
        "new_oem",
        "refurbished_refurbished",
        "used_like_new",
        "used_very_good",
        "used_good",
        "used_acceptable",
        "collectible_like_new",
        "collectible_very_good",
        "collectible_good",
        "collectible_acceptable",
        "club_club",
    }
)
#: Attributes each requirements set cannot do without (identity is checked apart: an ASIN through
#: ``merchant_suggested_asin`` or a GTIN through ``externally_assigned_product_identifier``).
REQUIRED: dict[str, tuple[str, ...]] = {
    "LISTING_OFFER_ONLY": ("condition_type", "purchasable_offer", "fulfillment_availability"),
    "LISTING": ("item_name", "brand", "condition_type", "purchasable_offer", "fulfillment_availability"),
    "LISTING_PRODUCT_ONLY": ("item_name", "brand"),
}
#: Generic product type accepted for offer-only submissions on any ASIN.
GENERIC_PRODUCT_TYPE = "PRODUCT"
PATCH_OPS = ("add", "replace", "merge", "delete")

Issue = dict[str, Any]


def issue(
    code: str, message: str, *, severity: str = "ERROR", attribute: str | None = None, category: str
) -> Issue:
    out: Issue = {"code": code, "message": message, "severity": severity, "categories": [category]}
    if attribute is not None:
        out["attributeNames"] = [attribute]
    return out


def has_errors(issues: Iterable[Issue]) -> bool:
    return any(i["severity"] == "ERROR" for i in issues)


def _values(attributes: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    raw = attributes.get(name)
    return [v for v in raw if isinstance(v, dict)] if isinstance(raw, list) else []


def _first_value(attributes: Mapping[str, Any], name: str) -> Any:
    values = _values(attributes, name)
    return values[0].get("value") if values else None


def resolve_asin(attributes: Mapping[str, Any], catalog: Catalog) -> tuple[str | None, list[Issue]]:
    """The ASIN the attributes designate (``merchant_suggested_asin``, else the GTIN of
    ``externally_assigned_product_identifier``) and the issues of that identification."""
    asin = _first_value(attributes, "merchant_suggested_asin")
    if asin is not None:
        if not isinstance(asin, str) or asin not in catalog:
            return None, [
                issue(
                    "8541",
                    f"The ASIN '{asin}' does not exist in the Amazon catalog for this marketplace.",
                    attribute="merchant_suggested_asin",
                    category="INVALID_ATTRIBUTE",
                )
            ]
        return asin, []
    identifiers = _values(attributes, "externally_assigned_product_identifier")
    if identifiers:
        gtin = str(identifiers[0].get("value", ""))
        if gtin in catalog.gtins:
            return catalog.gtins[gtin], []
        return None, [
            issue(
                "8566",
                f"No catalog item matches the product identifier '{gtin}'.",
                attribute="externally_assigned_product_identifier",
                category="INVALID_ATTRIBUTE",
            )
        ]
    return None, [
        issue(
            "90220",
            "'[merchant_suggested_asin]' is required but not supplied.",
            attribute="merchant_suggested_asin",
            category="MISSING_ATTRIBUTE",
        )
    ]


def validate(
    product_type: str,
    requirements: str,
    attributes: Mapping[str, Any],
    marketplace_ids: tuple[str, ...],
    catalog: Catalog,
) -> list[Issue]:
    """Every issue of a submission (empty: it would be ACCEPTED)."""
    issues: list[Issue] = []
    for name, raw in attributes.items():
        if not isinstance(raw, list) or not all(isinstance(v, dict) for v in raw):
            issues.append(
                issue(
                    "4000001",
                    f"The attribute '{name}' must be an array of objects.",
                    attribute=name,
                    category="INVALID_ATTRIBUTE",
                )
            )
            continue
        for value in raw:
            mp = value.get("marketplace_id")
            if mp is not None and mp not in marketplace_ids:
                issues.append(
                    issue(
                        "4000002",
                        f"The attribute '{name}' names marketplace '{mp}', which is not part of the request.",
                        attribute=name,
                        category="INVALID_ATTRIBUTE",
                    )
                )
    if issues:
        return issues
    for name in REQUIRED[requirements]:
        if not _values(attributes, name):
            issues.append(
                issue(
                    "90220",
                    f"'[{name}]' is required but not supplied.",
                    attribute=name,
                    category="MISSING_ATTRIBUTE",
                )
            )
    asin, identity = resolve_asin(attributes, catalog)
    issues += identity
    if asin is not None:
        item = catalog[asin]
        if product_type not in (item.product_type, GENERIC_PRODUCT_TYPE):
            issues.append(
                issue(
                    "8105",
                    f"The product type '{product_type}' does not match the product type "
                    f"'{item.product_type}' of ASIN '{asin}'.",
                    category="INVALID_ATTRIBUTE",
                )
            )
        for mp in marketplace_ids:
            if mp not in item.marketplace_ids:
                issues.append(
                    issue(
                        "8541",
                        f"The ASIN '{asin}' does not exist in the Amazon catalog for marketplace '{mp}'.",
                        attribute="merchant_suggested_asin",
                        category="INVALID_ATTRIBUTE",
                    )
                )
    condition = _first_value(attributes, "condition_type")
    if _values(attributes, "condition_type") and (
        not isinstance(condition, str) or condition not in CONDITION_TYPES
    ):
        issues.append(
            issue(
                "4000003",
                f"The value '{condition}' is not valid for the attribute 'condition_type'.",
                attribute="condition_type",
                category="INVALID_ATTRIBUTE",
            )
        )
    issues += _price_issues(attributes, marketplace_ids)
    issues += _quantity_issues(attributes)
    return issues


def _price_issues(attributes: Mapping[str, Any], marketplace_ids: tuple[str, ...]) -> list[Issue]:
    issues: list[Issue] = []
    for offer in _values(attributes, "purchasable_offer"):
        mp = offer.get("marketplace_id") or (marketplace_ids[0] if marketplace_ids else None)
        currency = offer.get("currency")
        expected = MARKETPLACES[mp].currency if mp in MARKETPLACES else None
        if currency != expected:
            issues.append(
                issue(
                    "4000004",
                    f"The currency '{currency}' of 'purchasable_offer' is not the currency '{expected}' of "
                    f"marketplace '{mp}'.",
                    attribute="purchasable_offer.currency",
                    category="INVALID_PRICE",
                )
            )
        raw_prices = offer.get("our_price")
        if raw_prices is not None and not _all_dicts(raw_prices, "schedule"):
            issues.append(
                issue(
                    "4000001",
                    "The attribute 'purchasable_offer.our_price' must be an array of objects, each with a "
                    "'schedule' array of objects.",
                    attribute="purchasable_offer.our_price",
                    category="INVALID_ATTRIBUTE",
                )
            )
            continue
        schedules = [entry for price in _dicts(raw_prices) for entry in _dicts(price.get("schedule"))]
        if not schedules:
            issues.append(
                issue(
                    "99022",
                    "The field '\"prices\"' for the attribute 'purchasable_offer.our_price' does not have "
                    "enough values. The required minimum is '1' value(s).",
                    attribute="purchasable_offer.our_price",
                    category="MISSING_PRICE",
                )
            )
            continue
        for entry in schedules:
            amount = price_of(entry.get("value_with_tax"))
            if amount is None or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
                issues.append(
                    issue(
                        "8026",
                        f"The price '{entry.get('value_with_tax')}' of 'purchasable_offer.our_price' is "
                        "not a positive amount with at most two decimals.",
                        attribute="purchasable_offer.our_price",
                        category="INVALID_PRICE",
                    )
                )
    return issues


def _all_dicts(raw: Any, inner: str) -> bool:
    """``raw`` is a list of objects whose ``inner`` key, when present, is a list of objects."""
    if not isinstance(raw, list) or not all(isinstance(v, dict) for v in raw):
        return False
    return all(v.get(inner) is None or _all_dicts(v[inner], "") for v in raw)


def _dicts(raw: Any) -> list[dict[str, Any]]:
    return [v for v in raw if isinstance(v, dict)] if isinstance(raw, list) else []


def price_of(raw: Any) -> Decimal | None:
    """A JSON number or numeric string as a Decimal (``None`` when it is neither)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _quantity_issues(attributes: Mapping[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    for entry in _values(attributes, "fulfillment_availability"):
        if entry.get("fulfillment_channel_code") != "DEFAULT":
            issues.append(
                issue(
                    "4000005",
                    "A merchant-fulfilled offer needs 'fulfillment_channel_code' DEFAULT, got "
                    f"'{entry.get('fulfillment_channel_code')}'.",
                    attribute="fulfillment_availability",
                    category="INVALID_ATTRIBUTE",
                )
            )
        quantity = entry.get("quantity")
        if quantity is None:
            issues.append(
                issue(
                    "90220",
                    "'[fulfillment_availability.quantity]' is required but not supplied.",
                    attribute="fulfillment_availability.quantity",
                    category="MISSING_ATTRIBUTE",
                )
            )
        elif isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            issues.append(
                issue(
                    "4000006",
                    f"The quantity '{quantity}' of 'fulfillment_availability' is not a whole number >= 0.",
                    attribute="fulfillment_availability.quantity",
                    category="INVALID_ATTRIBUTE",
                )
            )
    return issues


def apply_patches(attributes: Mapping[str, Any], patches: list[Any]) -> tuple[dict[str, Any], list[Issue]]:
    """``attributes`` after the JSON patches (``op`` add/replace/merge/delete on ``/attributes/<name>``);
    malformed patches come back as issues and change nothing."""
    result: dict[str, Any] = copy.deepcopy(dict(attributes))
    issues: list[Issue] = []
    for patch in patches:
        if (
            not isinstance(patch, dict)
            or patch.get("op") not in PATCH_OPS
            or not isinstance(patch.get("path"), str)
        ):
            issues.append(
                issue("4000007", f"Invalid patch operation: {patch!r}.", category="INVALID_ATTRIBUTE")
            )
            continue
        path: str = patch["path"]
        parts = path.split("/")
        if len(parts) != 3 or parts[:2] != ["", "attributes"] or not parts[2]:
            issues.append(
                issue(
                    "4000008",
                    f"The patch path '{path}' is not '/attributes/<name>'.",
                    category="INVALID_ATTRIBUTE",
                )
            )
            continue
        name, value = parts[2], patch.get("value")
        if patch["op"] == "delete":
            if value is None:
                result.pop(name, None)
            elif isinstance(value, list):
                result[name] = [v for v in result.get(name, []) if v not in value]
            continue
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            issues.append(
                issue(
                    "4000001",
                    f"The attribute '{name}' must be an array of objects.",
                    attribute=name,
                    category="INVALID_ATTRIBUTE",
                )
            )
            continue
        if patch["op"] == "merge" and name in result:
            merged = list(result[name])
            for new in value:
                key = _merge_key(new)
                merged = [old for old in merged if _merge_key(old) != key] + [new]
            result[name] = merged
        else:
            result[name] = copy.deepcopy(value)
    return result, issues


def _merge_key(value: Mapping[str, Any]) -> tuple[Any, Any]:
    return value.get("marketplace_id"), value.get("fulfillment_channel_code")


def offer_price(listing: Listing, marketplace_id: str) -> tuple[Decimal, str] | None:
    """The listing's ``our_price`` (and currency) in ``marketplace_id``."""
    for offer in _values(listing.attributes, "purchasable_offer"):
        if offer.get("marketplace_id") not in (None, marketplace_id):
            continue
        for price in _dicts(offer.get("our_price")):
            for entry in _dicts(price.get("schedule")):
                amount = price_of(entry.get("value_with_tax"))
                if amount is not None:
                    return amount, str(offer.get("currency"))
    return None


def quantity(listing: Listing) -> int | None:
    for entry in _values(listing.attributes, "fulfillment_availability"):
        value = entry.get("quantity")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def listing_asin(listing: Listing, catalog: Catalog) -> str | None:
    asin, _ = resolve_asin(listing.attributes, catalog)
    return asin


def variation_relationships(listing: Listing, marketplace_id: str) -> list[dict[str, Any]]:
    """The listing's ``VARIATION`` relationships in ``marketplace_id``: a child names its parent SKU
    (attribute ``child_parent_sku_relationship``, as the product type schemas define it)."""
    parents = [
        str(v["parent_sku"])
        for v in _values(listing.attributes, "child_parent_sku_relationship")
        if v.get("marketplace_id") in (None, marketplace_id)
        and v.get("child_relationship_type") == "variation"
        and isinstance(v.get("parent_sku"), str)
    ]
    return [{"type": "VARIATION", "parentSkus": parents}] if parents else []


def item_json(
    listing: Listing,
    marketplace_ids: tuple[str, ...],
    included: tuple[str, ...],
    catalog: Catalog,
    iso: Any,
) -> dict[str, Any]:
    """The listings ``Item`` for ``getListingsItem`` (and the processing report's ``items``)."""
    out: dict[str, Any] = {"sku": listing.sku}
    asin = listing_asin(listing, catalog)
    if "summaries" in included:
        summaries = []
        for mp in marketplace_ids:
            price = offer_price(listing, mp)
            qty = quantity(listing)
            status = ["DISCOVERABLE"]
            if price is not None and qty:
                status.insert(0, "BUYABLE")
            summary: dict[str, Any] = {
                "marketplaceId": mp,
                "productType": listing.product_type,
                "status": status,
                "createdDate": iso(listing.created),
                "lastUpdatedDate": iso(listing.updated),
            }
            if asin is not None:
                summary["asin"] = asin
                summary["itemName"] = catalog[asin].title
            condition = _first_value(listing.attributes, "condition_type")
            if isinstance(condition, str) and condition in CONDITION_TYPES:
                summary["conditionType"] = condition
            summaries.append(summary)
        out["summaries"] = summaries
    if "attributes" in included:
        out["attributes"] = copy.deepcopy(listing.attributes)
    if "issues" in included:
        out["issues"] = copy.deepcopy(listing.issues)
    if "offers" in included:
        offers = []
        for mp in marketplace_ids:
            price = offer_price(listing, mp)
            if price is not None:
                offers.append(
                    {
                        "marketplaceId": mp,
                        "offerType": "B2C",
                        "price": {"currencyCode": price[1], "amount": format(price[0], "f")},
                    }
                )
        out["offers"] = offers
    if "fulfillmentAvailability" in included:
        out["fulfillmentAvailability"] = [
            {"fulfillmentChannelCode": str(e.get("fulfillment_channel_code")), "quantity": e["quantity"]}
            for e in _values(listing.attributes, "fulfillment_availability")
            if isinstance(e.get("quantity"), int)
            and not isinstance(e.get("quantity"), bool)
            and e["quantity"] >= 0
        ]
    if "relationships" in included:
        out["relationships"] = [
            {"marketplaceId": mp, "relationships": variation_relationships(listing, mp)}
            for mp in marketplace_ids
        ]
    if "productTypes" in included:
        out["productTypes"] = [
            {"marketplaceId": mp, "productType": listing.product_type} for mp in marketplace_ids
        ]
    return out
