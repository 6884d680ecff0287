"""Stock files: each line sets one existing product's quantity.

Contracts:

* A stock file is CSV with exactly the columns ``sku`` and ``quantity`` (a header row, any order, names
  case-insensitive), or JSON Lines whose every line is an object with exactly the keys ``sku`` and
  ``quantity``. UTF-8 (a BOM is allowed). ``quantity`` is an integer from 0 to :data:`MAX_QUANTITY`
  (``"12"`` in CSV; ``12`` or ``"12"`` in JSON). Blank lines are skipped.
* The file as a whole is refused (:class:`StockFileError`, nothing applied) when it is not UTF-8, has a
  CSV syntax error, a wrong header, or no stock line at all. :func:`scan_stock_file` checks that before
  anything is written.
* A bad line (bad quantity, missing sku, wrong keys, a sku repeated in the file — the first occurrence
  wins —, or a sku with no product) is rejected with its physical line number and reason; the other
  lines are applied.
* Reading a file touches no table: applying its lines is the scan service's
  (:func:`tradelane.services.files_scan.apply_stock`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = ("sku", "quantity")
MAX_QUANTITY = 2_147_483_647
MAX_SKU_LENGTH = 200


class StockFileError(Exception):
    """The stock file as a whole is unusable; nothing of it was applied."""


@dataclass(frozen=True, slots=True)
class StockLine:
    line: int
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class LineRejection:
    line: int
    sku: str | None
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "sku": self.sku, "error": self.error}


@dataclass(slots=True)
class StockResult:
    """Counts of one batch (or, summed, of a file)."""

    updated: int = 0
    unchanged: int = 0
    rejections: list[LineRejection] = field(default_factory=list)


def is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in {".jsonl", ".ndjson"}


#: Quoted values in a rejection are cut to this many characters.
MAX_SHOWN = 40


def _shown(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 3]}..."


def parse_quantity(value: object) -> int | str:
    """The quantity (an int, or a string of ASCII digits, surrounding blanks allowed), or the reason it
    is refused (a short message quoting at most :data:`MAX_SHOWN` characters of the value). Any value
    gives one or the other."""
    if isinstance(value, bool):
        return f"quantity must be an integer, got {value!r}"
    if isinstance(value, int):
        if value < 0:
            return f"quantity must be 0 or more, got {_shown(str(value)) if value > -(10**40) else 'less'}"
        if value > MAX_QUANTITY:
            shown = _shown(str(value)) if value < 10**40 else "more"
            return f"quantity must be at most {MAX_QUANTITY}, got {shown}"
        return value
    if not isinstance(value, str):
        return f"quantity must be an integer, got {_shown(repr(value))}"
    text = value.strip()
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()):
        return f"quantity must be an integer, got {_shown(repr(value))}"
    if text.startswith("-"):
        return f"quantity must be 0 or more, got {_shown(text)}"
    if len(digits.lstrip("0")) > len(str(MAX_QUANTITY)):  # int() of 4,301+ digits raises
        return f"quantity must be at most {MAX_QUANTITY}, got {_shown(text)}"
    return parse_quantity(int(digits))


def _line(line: int, sku: object, quantity: object) -> StockLine | LineRejection:
    text = sku.strip() if isinstance(sku, str) else None
    if not text:
        return LineRejection(line, None, "missing sku")
    if len(text) > MAX_SKU_LENGTH:
        return LineRejection(line, text[:MAX_SKU_LENGTH], f"sku longer than {MAX_SKU_LENGTH} characters")
    parsed = parse_quantity(quantity)
    if isinstance(parsed, str):
        return LineRejection(line, text, parsed)
    return StockLine(line, text, parsed)


def read_stock_file(path: Path) -> Iterator[StockLine | LineRejection]:
    """Each stock line of the file in order, parsed or rejected; raises :class:`StockFileError`."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            if is_jsonl(path):
                yield from _jsonl_lines(handle)
            else:
                yield from _csv_lines(handle)
    except UnicodeDecodeError:
        raise StockFileError("the file is not valid UTF-8; save it as UTF-8") from None


def _csv_lines(handle: Any) -> Iterator[StockLine | LineRejection]:
    reader = csv.reader(handle)
    try:
        header = next(reader, None)
        if header is None:
            raise StockFileError("the file is empty (no header row)")
        names = [name.strip().lower() for name in header]
        if sorted(names) != sorted(COLUMNS):
            shown = repr(header) if len(repr(header)) <= 200 else f"{repr(header)[:197]}..."
            raise StockFileError(f"the header must be exactly the columns sku and quantity, got {shown}")
        sku_at, quantity_at = names.index("sku"), names.index("quantity")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(COLUMNS):
                yield LineRejection(reader.line_num, None, f"expected 2 fields, got {len(row)}")
                continue
            yield _line(reader.line_num, row[sku_at], row[quantity_at])
    except csv.Error as exc:
        raise StockFileError(f"line {reader.line_num}: CSV syntax error: {exc}") from None


def _jsonl_lines(handle: Any) -> Iterator[StockLine | LineRejection]:
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            yield LineRejection(number, None, f"invalid JSON: {exc}")
            continue
        except RecursionError:
            yield LineRejection(number, None, "invalid JSON: nested too deep")
            continue
        if not isinstance(record, dict):
            yield LineRejection(number, None, "a line must be a JSON object")
            continue
        if set(record) != set(COLUMNS):
            sku = record.get("sku") if isinstance(record.get("sku"), str) else None
            yield LineRejection(number, sku, f"keys must be exactly sku and quantity, got {sorted(record)}")
            continue
        yield _line(number, record["sku"], record["quantity"])


def scan_stock_file(path: Path) -> dict[str, int]:
    """Read the whole file once, before anything is applied: raises :class:`StockFileError` for a
    refused file; returns each sku's first line (later lines of the same sku are duplicates)."""
    first: dict[str, int] = {}
    lines = 0
    for item in read_stock_file(path):
        lines += 1
        if isinstance(item, StockLine):
            first.setdefault(item.sku, item.line)
    if lines == 0:
        raise StockFileError("the file contains no stock lines")
    return first
