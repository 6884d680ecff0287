"""The CSV fast path computes the content hash itself, from the stripped cells: ``parser.row(cells)`` must
be exactly ``catalog_row(parse_row(...))``, hash included, and it must have taken the fast path for plain
rows (else the import would silently run at the slow path's speed)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tradelane.domain.catalog import Product, catalog_row, row_product
from tradelane.domain.catalog_rows import FIELDS, CsvRowParser, RowError, gtin_check_digit, parse_row

HEADER = (*FIELDS, "attr:size", "attr:Color", "attr:b")


def expected(columns: tuple[str, ...], cells: list[str]) -> object:
    """The row and its price's exact text (Decimal equality ignores the exponent), or the error."""
    try:
        row = catalog_row(parse_row(dict(zip(columns, cells, strict=False))))
    except RowError as exc:
        return exc.reason
    return row, str(row[6])


def fast(columns: tuple[str, ...], cells: list[str]) -> object:
    try:
        row = CsvRowParser(columns).row(cells)
    except RowError as exc:
        return exc.reason
    return row, str(row[6])


def cells_of(**values: str) -> list[str]:
    return [values.get(name.replace("attr:", "attr_"), "") for name in HEADER]


PLAIN = cells_of(
    sku=" SKU-1 ",
    parent_sku="MODEL-1",
    title="Shirt",
    description="Cotton, 100 %",
    brand="Acme",
    gtin="4006381333931",
    price="19.900",
    currency="eur",
    quantity="012",
    labels=" b ;a;b;; ",
    attr_size=" M ",
    attr_Color="red",
    attr_b="",
)


def test_a_plain_row_takes_the_fast_path_with_the_product_hash():
    parser = CsvRowParser(HEADER)
    row = parser.plain_row(PLAIN)
    assert row is not None
    assert (row, str(row[6])) == expected(HEADER, PLAIN)
    assert (
        row[11]
        == row_product(row).content_hash()
        == parse_row(dict(zip(HEADER, PLAIN, strict=True))).content_hash()
    )
    assert row[6] is not None and str(row[6]) == "19.900"  # the exact text, not the normal form
    assert row[8] == 12 and row[9] == ("b", "a") and row[10] == {"size": "M", "Color": "red"}


def test_prices_the_fast_path_leaves_to_parse_row_give_the_same_row():
    for price in ("0", "0.0", "0.000001", "100", "100.00", "1.", "007.50", "99999999999999.999999", ".5"):
        cells = list(PLAIN)
        cells[HEADER.index("price")] = price
        assert fast(HEADER, cells) == expected(HEADER, cells), price


def test_a_header_whose_attribute_name_holds_a_nul_uses_the_general_digest():
    columns = ("sku", "attr:a\x00b")
    parser = CsvRowParser(columns)
    assert parser.plain_row(["A", "x"]) is None
    assert fast(columns, ["A", "x"]) == expected(columns, ["A", "x"])


def test_labels_cached_per_cell_text_stay_exact_across_rows():
    parser = CsvRowParser(HEADER)
    for labels in ("a;b", "b;a", "a;b", " a ; b ", "a;b;a", ""):
        cells = list(PLAIN)
        cells[HEADER.index("labels")] = labels
        assert (parser.row(cells), str(parser.row(cells)[6])) == expected(HEADER, cells), labels


CHARS = ["", " ", "0", "1", "5", "9", ".", ";", "a", "Z", "é", "\x00", "\t", "-", "\ud800"]
text = st.lists(st.sampled_from(CHARS), max_size=6).map("".join)
digits = st.text(alphabet="0123456789", min_size=7, max_size=13).map(lambda b: b + str(gtin_check_digit(b)))
cell = st.one_of(text, digits, st.sampled_from(["EUR", "usd", "12", "3.50", "0", "4006381333931"]))


@settings(max_examples=300, deadline=None)
@given(
    columns=st.permutations(HEADER).flatmap(
        lambda order: st.integers(1, len(order)).map(lambda n: order[:n])
    ),
    data=st.data(),
)
def test_random_rows_give_the_row_and_hash_parse_row_gives(columns, data):
    cells = data.draw(st.lists(cell, min_size=len(columns), max_size=len(columns)))
    columns = tuple(columns)
    assert fast(columns, cells) == expected(columns, cells)


def test_row_product_inverts_catalog_row():
    product = Product("A", "P", "t", None, "b", None, None, None, 3, ("x",), {"k": "v"})
    assert row_product(catalog_row(product)) == product
