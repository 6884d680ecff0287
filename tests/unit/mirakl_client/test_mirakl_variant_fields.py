"""Variants and grouping keys are carried to Mirakl offers through configurable custom fields."""

from __future__ import annotations

from decimal import Decimal

from tradelane.connectors.mirakl.mapping import (
    MiraklOfferSettings,
    OfferImportMode,
    custom_field_value,
    offer_csv,
    offer_update_json,
)
from tradelane.domain.catalog import Product

VARIANT = Product(
    sku="SHIRT-RED-M",
    parent_sku="SHIRT",
    title="Shirt red M",
    brand="Acme",
    gtin="4006381333931",
    price=Decimal("19.90"),
    currency="EUR",
    quantity=3,
    attributes={"color": "red", "size": "M"},
)
SETTINGS = MiraklOfferSettings(
    custom_fields={"variant-group": ":parent_sku", "colour": "color", "maker": ":brand"}
)


def test_product_fields_and_attributes_as_custom_field_sources():
    assert custom_field_value(VARIANT, ":parent_sku") == "SHIRT"
    assert custom_field_value(VARIANT, "color") == "red"
    assert custom_field_value(VARIANT, ":nonsense") == ""  # not a product field: read as an attribute
    assert custom_field_value(Product(sku="LONE"), ":parent_sku") == ""


def test_grouping_key_in_of01_file_and_of24_json():
    csv_text = offer_csv([VARIANT], mode=OfferImportMode.NORMAL, settings=SETTINGS).decode()
    header, row = csv_text.strip().splitlines()
    values = dict(zip(header.split(";"), row.split(";"), strict=True))
    assert values["variant-group"] == "SHIRT" and values["colour"] == "red" and values["maker"] == "Acme"
    [offer] = offer_update_json([VARIANT], SETTINGS)
    fields = {f["code"]: f["value"] for f in offer["offer_additional_fields"]}
    assert fields == {"variant-group": "SHIRT", "colour": "red", "maker": "Acme"}
