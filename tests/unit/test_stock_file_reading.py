"""Stock files (``tradelane.merchant.files.stock``): what a line gives, what a file refuses, and the odd
inputs the fuzzing of issue 12 found crashing the reader (a 5,000-digit quantity, a JSON line nested too
deep) or flooding its messages (a megabyte header quoted whole)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradelane.merchant.files.stock import (
    MAX_QUANTITY,
    LineRejection,
    StockFileError,
    StockLine,
    parse_quantity,
    read_stock_file,
    scan_stock_file,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        ("12", 12),
        (" 0012 ", 12),
        (0, 0),
        (MAX_QUANTITY, MAX_QUANTITY),
        (str(MAX_QUANTITY), MAX_QUANTITY),
        ("0" * 30 + "7", 7),
        (True, "quantity must be an integer, got True"),
        (1.5, "quantity must be an integer, got 1.5"),
        ("1.5", "quantity must be an integer, got '1.5'"),
        ("²", "quantity must be an integer, got '²'"),
        ("-3", "quantity must be 0 or more, got -3"),
        (-3, "quantity must be 0 or more, got -3"),
        (MAX_QUANTITY + 1, f"quantity must be at most {MAX_QUANTITY}, got {MAX_QUANTITY + 1}"),
        (str(MAX_QUANTITY + 1), f"quantity must be at most {MAX_QUANTITY}, got {MAX_QUANTITY + 1}"),
        (None, "quantity must be an integer, got None"),
    ],
)
def test_quantities(value: object, expected: int | str) -> None:
    assert parse_quantity(value) == expected


def test_a_quantity_of_thousands_of_digits_is_refused_not_a_crash() -> None:
    # int() refuses strings of over 4,300 digits (ValueError), str() such ints: both crashed the reader.
    assert parse_quantity("9" * 5000).startswith(f"quantity must be at most {MAX_QUANTITY}, got 9999")
    assert parse_quantity(10**5000) == f"quantity must be at most {MAX_QUANTITY}, got more"
    assert parse_quantity(-(10**5000)) == "quantity must be 0 or more, got less"
    assert len(parse_quantity("x" * 5000)) < 100  # type: ignore[arg-type]


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_csv_lines_applied_or_rejected(tmp_path: Path) -> None:
    path = _file(tmp_path, "s.csv", b"\xef\xbb\xbfQuantity, SKU \n3,A\n\n,B\nx,C\n" + b"9" * 5000 + b",D\n")
    assert list(read_stock_file(path)) == [
        StockLine(2, "A", 3),
        LineRejection(4, "B", "quantity must be an integer, got ''"),
        LineRejection(5, "C", "quantity must be an integer, got 'x'"),
        LineRejection(6, "D", f"quantity must be at most {MAX_QUANTITY}, got {'9' * 37}..."),
    ]


def test_a_wrong_header_is_quoted_shortly(tmp_path: Path) -> None:
    path = _file(tmp_path, "s.csv", b"[" * 100_000 + b"\n1,A\n")
    with pytest.raises(StockFileError) as caught:
        scan_stock_file(path)
    message = str(caught.value)
    assert message.startswith("the header must be exactly the columns sku and quantity, got ['[[[")
    assert message.endswith("...") and len(message) < 300  # was the whole 100 kB header


def test_jsonl_lines_nested_too_deep_are_rejected_lines(tmp_path: Path) -> None:
    content = b'{"sku": "A", "quantity": 2}\n' + b"[" * 5000 + b'\n{"sku": "B", "quantity": "4"}\n'
    path = _file(tmp_path, "s.jsonl", content)
    assert list(read_stock_file(path)) == [  # the deep line raised RecursionError
        StockLine(1, "A", 2),
        LineRejection(2, None, "invalid JSON: nested too deep"),
        StockLine(3, "B", 4),
    ]
    assert scan_stock_file(path) == {"A": 1, "B": 3}


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, "s.csv", b"sku,quantity\nA,\xff\n")
    with pytest.raises(StockFileError, match="not valid UTF-8"):
        list(read_stock_file(path))
