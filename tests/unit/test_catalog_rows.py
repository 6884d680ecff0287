"""Row rules of the catalog import (pure parsing and validation of one row)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradelane.domain.catalog import Product
from tradelane.domain.catalog_rows import (
    RowError,
    canonical_column,
    check_columns,
    check_json_keys,
    gtin_check_digit,
    parse_row,
)

VALID_GTIN13 = "4006381333931"


def reason(row: dict[str, object]) -> str:
    with pytest.raises(RowError) as info:
        parse_row(row)
    return info.value.reason


# --- a whole row ------------------------------------------------------------------------------------


def test_full_csv_row_parses_every_field():
    product = parse_row(
        {
            "sku": "  TS-RED-M ",
            "parent_sku": "TS",
            "title": " T-shirt red M ",
            "description": "Cotton.\nMachine washable.",
            "brand": "Acme",
            "gtin": VALID_GTIN13,
            "price": "19.90",
            "currency": "eur",
            "quantity": "12",
            "labels": "summer; sale",
            "attr:color": "red",
            "attr:size": "M",
        }
    )
    assert product == Product(
        sku="TS-RED-M",
        parent_sku="TS",
        title="T-shirt red M",
        description="Cotton.\nMachine washable.",
        brand="Acme",
        gtin=VALID_GTIN13,
        price=Decimal("19.90"),
        currency="EUR",
        quantity=12,
        labels=("summer", "sale"),
        attributes={"color": "red", "size": "M"},
    )


def test_row_fully_describes_the_product_absent_and_empty_mean_empty():
    product = parse_row({"sku": "A", "title": "", "price": " ", "currency": "", "quantity": "", "attr:x": ""})
    assert product == Product(sku="A")
    assert parse_row({"sku": "A"}).content_hash() == product.content_hash()


def test_json_values_are_accepted_with_their_types():
    product = parse_row(
        {
            "sku": "J1",
            "price": Decimal("5.5"),
            "currency": "USD",
            "quantity": 3,
            "labels": ["b", " a ", "", "b"],
            "attr:weight": Decimal("0.25"),
            "attr:pieces": 4,
            "title": None,
        }
    )
    assert product.price == Decimal("5.5") and product.quantity == 3
    assert product.labels == ("b", "a")
    assert product.attributes == {"weight": "0.25", "pieces": "4"}
    assert product.title is None


# --- sku / parent -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_sku(value):
    assert reason({"sku": value}) == "sku is missing"


def test_sku_length_and_printability():
    assert parse_row({"sku": "x" * 200}).sku == "x" * 200
    assert "longer than 200" in reason({"sku": "x" * 201})
    assert "non-printable" in reason({"sku": "A\x07B"})
    assert "non-printable" in reason({"sku": "line\nbreak"})
    assert "must be a string" in reason({"sku": 123})


def test_parent_rules():
    assert parse_row({"sku": "A", "parent_sku": " "}).parent_sku is None
    assert reason({"sku": "A", "parent_sku": "A"}) == "parent_sku is the row's own sku"
    assert "parent_sku longer than 200" in reason({"sku": "A", "parent_sku": "p" * 201})


def test_brand_length():
    assert "brand longer than 200" in reason({"sku": "A", "brand": "b" * 201})


# --- price / currency -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12.50", Decimal("12.50")),
        ("0", Decimal(0)),
        (".5", Decimal("0.5")),
        ("7.", Decimal(7)),
        ("+3.25", Decimal("3.25")),
        ("1.5000000000", Decimal("1.5")),
        ("99999999999999.999999", None),
    ],
)
def test_price_accepted(text, expected):
    price = parse_row({"sku": "A", "price": text, "currency": "EUR"}).price
    assert price == (expected if expected is not None else Decimal(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc", "price is not a decimal number: 'abc'"),
        ("12,50", "price is not a decimal number: '12,50' (use a dot as the decimal separator)"),
        ("1e3", "price is not a decimal number: '1e3'"),
        ("NaN", "price is not a decimal number: 'NaN'"),
        ("12.50 EUR", "price is not a decimal number: '12.50 EUR'"),
        ("-1.00", "price must not be negative: -1.00"),
        ("1.0000001", "price has more than 6 decimal places: 1.0000001"),
        ("100000000000000", "price too large: 100000000000000"),
    ],
)
def test_price_rejected(text, expected):
    assert reason({"sku": "A", "price": text, "currency": "EUR"}) == expected


def test_price_json_types():
    assert parse_row({"sku": "A", "price": 7, "currency": "EUR"}).price == Decimal(7)
    assert "not a boolean" in reason({"sku": "A", "price": True, "currency": "EUR"})
    assert "not a finite number" in reason({"sku": "A", "price": Decimal("Infinity"), "currency": "EUR"})
    assert "not a list" in reason({"sku": "A", "price": [1], "currency": "EUR"})


def test_currency_rules():
    assert parse_row({"sku": "A", "price": "1", "currency": " gbp "}).currency == "GBP"
    assert (
        reason({"sku": "A", "price": "1", "currency": "EUROS"}) == "unknown currency 'EUROS' (not ISO 4217)"
    )
    assert reason({"sku": "A", "price": "1", "currency": "XYZ"}) == "unknown currency 'XYZ' (not ISO 4217)"
    assert reason({"sku": "A", "price": "1"}) == "price without currency"
    assert reason({"sku": "A", "currency": "EUR"}) == "currency EUR without price"


# --- quantity ---------------------------------------------------------------------------------------


def test_quantity_accepted():
    assert parse_row({"sku": "A", "quantity": " 42 "}).quantity == 42
    assert parse_row({"sku": "A", "quantity": "0"}).quantity == 0
    assert parse_row({"sku": "A", "quantity": str(2**31 - 1)}).quantity == 2**31 - 1
    assert parse_row({"sku": "A", "quantity": 5}).quantity == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-3", "quantity must not be negative: -3"),
        (-1, "quantity must not be negative: -1"),
        ("1.5", "quantity is not an integer: '1.5'"),
        ("ten", "quantity is not an integer: 'ten'"),
        (Decimal("2.0"), "quantity is not an integer: 2.0"),
        (str(2**31), f"quantity too large: {2**31}"),
        (True, "quantity must be an integer, not a boolean"),
        ([1], "quantity must be an integer, not a list"),
    ],
)
def test_quantity_rejected(value, expected):
    assert reason({"sku": "A", "quantity": value}) == expected


# --- GTIN -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gtin", ["96385074", "036000291452", VALID_GTIN13, "10012345678902", "00000000"])
def test_valid_gtins(gtin):
    assert parse_row({"sku": "A", "gtin": gtin}).gtin == gtin


@pytest.mark.parametrize(
    ("gtin", "expected"),
    [
        ("400638133393X", "gtin must contain only digits: '400638133393X'"),
        ("4.00638E+12", "gtin must contain only digits: '4.00638E+12'"),
        ("４００６３８１３３３９３１", "gtin must contain only digits"),
        ("36000291452", "gtin must have 8, 12, 13 or 14 digits, not 11 (leading zeros lost?): '36000291452'"),
        ("123456789012345", "gtin must have 8, 12, 13 or 14 digits, not 15: '123456789012345'"),
        ("4006381333932", "gtin check digit is wrong: '4006381333932' (expected 1 as last digit)"),
    ],
)
def test_invalid_gtins(gtin, expected):
    assert reason({"sku": "A", "gtin": gtin}).startswith(expected)


def test_gtin_as_json_number_is_refused():
    assert "leading zeros" in reason({"sku": "A", "gtin": 4006381333931})


@given(st.text(alphabet="0123456789", min_size=7, max_size=13).filter(lambda s: len(s) in (7, 11, 12, 13)))
def test_check_digit_makes_a_valid_gtin_and_any_other_last_digit_is_refused(body):
    good = body + str(gtin_check_digit(body))
    assert parse_row({"sku": "A", "gtin": good}).gtin == good
    bad = body + str((gtin_check_digit(body) + 1) % 10)
    with pytest.raises(RowError):
        parse_row({"sku": "A", "gtin": bad})


# --- labels and attributes --------------------------------------------------------------------------


def test_labels():
    assert parse_row({"sku": "A", "labels": " a ;b;; a;c "}).labels == ("a", "b", "c")
    assert parse_row({"sku": "A", "labels": ";;"}).labels == ()
    assert "labels must be strings, not a number" in reason({"sku": "A", "labels": ["a", 1]})
    assert "labels must be a string or a list of strings, not an object" in reason({"sku": "A", "labels": {}})


def test_attributes():
    product = parse_row({"sku": "A", "attr:Color": " Red ", "attr:empty": "  "})
    assert product.attributes == {"Color": "Red"}
    assert "must be a string or a number, not a list" in reason({"sku": "A", "attr:x": ["a"]})
    assert "must be a string or a number, not a boolean" in reason({"sku": "A", "attr:x": False})


# --- text that cannot be stored ---------------------------------------------------------------------


def test_nul_and_lone_surrogates_are_refused():
    assert reason({"sku": "A", "title": "bad\x00title"}) == "title contains a NUL character"
    assert "lone surrogate" in reason({"sku": "A", "description": "half \ud83d emoji"})
    assert "lone surrogate" in reason({"sku": "A", "attr:x": "\udc80"})
    assert parse_row({"sku": "A", "title": "Café ☕"}).title == "Café ☕"


# --- columns and JSON keys --------------------------------------------------------------------------


def test_canonical_column():
    assert canonical_column(" SKU ") == "sku"
    assert canonical_column("Parent_Sku") == "parent_sku"
    assert canonical_column("ATTR: Color ") == "attr:Color"
    with pytest.raises(ValueError, match="unknown column 'pric'"):
        canonical_column("pric")
    with pytest.raises(ValueError, match="has no name"):
        canonical_column("attr:  ")
    with pytest.raises(ValueError, match="a column has no name"):
        canonical_column("  ")


def test_check_columns():
    assert check_columns(["sku", "Price", "attr:size"]) == ("sku", "price", "attr:size")
    with pytest.raises(ValueError, match="column 3: 'price' appears twice"):
        check_columns(["sku", "price", "PRICE"])
    with pytest.raises(ValueError, match="column 2: unknown column 'colour'"):
        check_columns(["sku", "colour"])
    with pytest.raises(ValueError, match=r"no 'sku' column .*comma-separated"):
        check_columns(["sku;title;price"])


def test_check_json_keys():
    check_json_keys({"sku": "A", "attr:color": "red", "labels": []})
    with pytest.raises(RowError, match="unknown field 'SKU'"):
        check_json_keys({"SKU": "A"})
    with pytest.raises(RowError, match="unknown field 'attr: x'"):
        check_json_keys({"sku": "A", "attr: x": "1"})
    with pytest.raises(RowError, match="has no name"):
        check_json_keys({"sku": "A", "attr:": "1"})
