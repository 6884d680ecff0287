"""Offers: OF01 CSV, OF24 JSON, settings, blockers and the error-report mapping."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from mirakl_client_fixtures import decoded, validate

from tradelane.connectors.mirakl.mapping import (
    OFFER_CSV_COLUMNS,
    MiraklOfferSettings,
    OfferImportMode,
    error_report_rows_to_offer_errors,
    offer_blockers,
    offer_csv,
    offer_update_json,
)
from tradelane.domain.catalog import Product

SHOE = Product(
    sku="SHOE-42",
    title="Trail Runner",
    gtin="4006381333931",
    price=Decimal("59.90"),
    currency="EUR",
    quantity=12,
    attributes={"color": "red", "material": "mesh; leather"},
)
SOCK = Product(sku="SOCK-1", price=Decimal("4.5"), currency="EUR", quantity=0)


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8")), delimiter=";"))


def test_csv_header_and_rows_with_defaults() -> None:
    data = offer_csv([SHOE, SOCK], mode=OfferImportMode.NORMAL, settings=MiraklOfferSettings())
    header = data.decode("utf-8").splitlines()[0]
    assert header == ";".join(OFFER_CSV_COLUMNS)
    assert header.startswith(
        "sku;product-id;product-id-type;price;quantity;state;logistic-class;leadtime-to-ship"
    )
    shoe, sock = rows(data)
    assert shoe == {
        "sku": "SHOE-42",
        "product-id": "4006381333931",
        "product-id-type": "EAN",
        "price": "59.90",
        "quantity": "12",
        "state": "11",
        "logistic-class": "",
        "leadtime-to-ship": "",
        "update-delete": "update",
    }
    assert (sock["product-id"], sock["product-id-type"], sock["price"]) == ("SOCK-1", "SHOP_SKU", "4.5")


def test_csv_applies_channel_settings_and_custom_fields() -> None:
    settings = MiraklOfferSettings(
        sku_template="ACME-{sku}",
        gtin_id_type="GTIN",
        state_code="1",
        logistic_class="M",
        leadtime_to_ship=3,
        custom_fields={"color-code": "color", "material": "material", "size": "size"},
    )
    data = offer_csv([SHOE], mode="NORMAL", settings=settings)
    (row,) = rows(data)
    assert row["sku"] == "ACME-SHOE-42"
    assert (row["product-id-type"], row["state"], row["logistic-class"], row["leadtime-to-ship"]) == (
        "GTIN",
        "1",
        "M",
        "3",
    )
    assert (row["color-code"], row["material"], row["size"]) == ("red", "mesh; leather", "")
    assert '"mesh; leather"' in data.decode("utf-8")  # the separator inside a value is quoted


def test_csv_prices_are_exact_decimal_text() -> None:
    products = [
        Product(sku="A", price=Decimal("1E+2"), currency="EUR"),
        Product(sku="B", price=Decimal("0.10"), currency="EUR"),
        Product(sku="C", price=Decimal("1234567890.123456789"), currency="EUR"),
    ]
    prices = [r["price"] for r in rows(offer_csv(products, mode="NORMAL", settings=MiraklOfferSettings()))]
    assert prices == ["100", "0.10", "1234567890.123456789"]


def test_replace_mode_leaves_update_delete_blank_and_refuses_deletions() -> None:
    (row,) = rows(offer_csv([SHOE], mode=OfferImportMode.REPLACE, settings=MiraklOfferSettings()))
    assert row["update-delete"] == ""
    with pytest.raises(ValueError, match="REPLACE"):
        offer_csv([SHOE], mode="REPLACE", settings=MiraklOfferSettings(), deleted=[SOCK])


def test_deletions_need_no_price() -> None:
    gone = Product(sku="OLD-1", gtin="4006381333948")
    data = offer_csv([SHOE], mode="NORMAL", settings=MiraklOfferSettings(), deleted=[gone])
    shoe, old = rows(data)
    assert shoe["update-delete"] == "update"
    assert (old["sku"], old["update-delete"], old["price"]) == ("OLD-1", "delete", "")


def test_blocked_products_raise_with_their_skus() -> None:
    settings = MiraklOfferSettings(fallback_id_type=None, currency="EUR")
    no_price = Product(sku="NP", gtin="1")
    no_gtin = Product(sku="NG", price=Decimal("1"), currency="EUR")
    in_usd = Product(sku="USD", gtin="2", price=Decimal("1"), currency="USD")
    negative = Product(sku="NEG", gtin="3", price=Decimal("-1"), currency="EUR")
    assert offer_blockers(no_price, settings) == ["no price"]
    assert offer_blockers(no_gtin, settings) == ["no GTIN and no fallback product id type configured"]
    assert offer_blockers(in_usd, settings) == ["price currency USD differs from the shop currency EUR"]
    assert offer_blockers(negative, settings) == ["invalid price -1"]
    assert offer_blockers(SHOE, settings) == []
    with pytest.raises(ValueError) as info:
        offer_csv([SHOE, no_price, no_gtin, in_usd], mode="NORMAL", settings=settings)
    message = str(info.value)
    assert message.startswith("3 product(s) cannot become Mirakl offers")
    assert "NP: no price" in message and "NG: no GTIN" in message and "USD: price currency" in message


def test_duplicate_offer_skus_are_rejected() -> None:
    with pytest.raises(ValueError, match="SHOE-42"):
        offer_csv([SHOE, SHOE], mode="NORMAL", settings=MiraklOfferSettings())


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError):
        offer_csv([SHOE], mode="MERGE", settings=MiraklOfferSettings())


def test_offer_update_json_matches_the_of24_schema() -> None:
    settings = MiraklOfferSettings(
        sku_template="{sku}-MP", logistic_class="S", leadtime_to_ship=2, custom_fields={"color-code": "color"}
    )
    offers = offer_update_json([SHOE, SOCK], settings)
    validate("OF24", "request", decoded({"offers": offers}))
    assert offers[0] == {
        "shop_sku": "SHOE-42-MP",
        "product_id": "4006381333931",
        "product_id_type": "EAN",
        "price": Decimal("59.90"),
        "quantity": 12,
        "state_code": "11",
        "update_delete": "update",
        "logistic_class": "S",
        "leadtime_to_ship": 2,
        "offer_additional_fields": [{"code": "color-code", "value": "red"}],
    }
    assert "offer_additional_fields" not in offers[1]  # SOCK has no color
    assert (
        offer_update_json([SOCK], MiraklOfferSettings(), update_delete="delete")[0]["update_delete"]
        == "delete"
    )


def test_offer_update_json_rejects_blocked_products() -> None:
    with pytest.raises(ValueError, match="no price"):
        offer_update_json([Product(sku="X", gtin="1")], MiraklOfferSettings())


@pytest.mark.parametrize(
    ("template", "offer_sku", "product_sku"),
    [
        ("{sku}", "SHOE-42", "SHOE-42"),
        ("ACME-{sku}", "ACME-SHOE-42", "SHOE-42"),
        ("ACME-{sku}", "OTHER-SHOE-42", None),
        ("ACME-{sku}", "ACME-", None),
        ("{sku}-DE", "SHOE-42-DE", "SHOE-42"),
        ("MP-{sku}-DE", "MP-A-DE", "A"),
    ],
)
def test_sku_template_round_trip(template: str, offer_sku: str, product_sku: str | None) -> None:
    settings = MiraklOfferSettings(sku_template=template)
    assert settings.product_sku(offer_sku) == product_sku
    if product_sku is not None:
        assert settings.offer_sku(product_sku) == offer_sku


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sku_template": "ACME"},
        {"sku_template": "{sku}-{sku}"},
        {"sku_template": "{sku}-{variant}"},
        {"state_code": " "},
        {"leadtime_to_ship": -1},
        {"currency": "EURO"},
        {"custom_fields": {"price": "x"}},
        {"custom_fields": {"a;b": "x"}},
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MiraklOfferSettings(**kwargs)  # type: ignore[arg-type]


def test_settings_custom_fields_cannot_be_mutated_afterwards() -> None:
    fields = {"color-code": "color"}
    settings = MiraklOfferSettings(custom_fields=fields)
    fields["size"] = "size"
    assert dict(settings.custom_fields) == {"color-code": "color"}
    with pytest.raises(TypeError):
        settings.custom_fields["x"] = "y"  # type: ignore[index]


def test_error_report_rows_to_offer_errors() -> None:
    report = [
        {"sku": "A", "error-line": "2", "error-message": "The product does not exist"},
        {"sku": " A ", "error-line": "", "error-message": "Price is required"},
        {"sku": "B", "error-message": ""},
        {"error-message": "Header line malformed"},
    ]
    assert error_report_rows_to_offer_errors(report) == {
        "A": ["line 2: The product does not exist", "Price is required"],
        "B": ["rejected by Mirakl without an error message"],
        "": ["Header line malformed"],
    }
