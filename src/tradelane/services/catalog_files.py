"""Reading catalog import files (CSV, JSON Lines) as a stream of rows, and the validating pre-pass.

File-level contract (a breach raises :class:`CatalogFileError` and the import changes nothing):

* UTF-8 (an initial BOM is accepted); a line that does not decode refuses the file.
* CSV: comma-separated, RFC 4180 quoting (fields may span lines), a header row whose cells are known
  columns (case-insensitive) or ``attr:<name>``, including ``sku``; a CSV syntax error refuses the file.
  Empty lines and rows whose cells are all empty are skipped.
* JSON Lines: one JSON object per line; blank lines are skipped. A line that is not a JSON object is a
  *rejected line*, not a refused file, unless no line at all carries a ``sku`` key.
* The file holds at least one row, and no physical line longer than :data:`MAX_LINE_BYTES`.

Line numbers are physical lines (1-based; the CSV header is line 1); a CSV record spanning several lines
is reported at the line where it starts.
"""

from __future__ import annotations

import csv
import io
import json
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from itertools import chain, pairwise
from operator import eq
from pathlib import Path
from typing import TYPE_CHECKING

from tradelane.domain.catalog import CatalogRow, catalog_row
from tradelane.domain.catalog_rows import CsvRowParser, RowError, check_columns, check_json_keys, parse_row
from tradelane.domain.errors import ValidationError

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

_BOM = b"\xef\xbb\xbf"
#: A longer physical line refuses the file (memory stays bounded even for a file without line breaks).
MAX_LINE_BYTES = 16 * 2**20

#: One row of a file: physical line, canonical row (None when the line could not be read as a row) and
#: a line-level problem (None when the line is well-formed).
Record = tuple[int, Mapping[str, object] | None, str | None]
#: One parsed row: ``(line, row, None, None)`` (``row`` the product as a
#: :data:`~tradelane.domain.catalog.CatalogRow`, with its content hash), or ``(line, None, sku, reason)``
#: for a rejected row (``sku`` trimmed as the row gives it, None when it has none; ``reason`` the
#: line-level problem or the :class:`~tradelane.domain.catalog_rows.RowError` reason).
ParsedRow = tuple[int, CatalogRow | None, str | None, str | None]


class CatalogFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


_EXTENSIONS = {".csv": CatalogFormat.CSV, ".jsonl": CatalogFormat.JSONL, ".ndjson": CatalogFormat.JSONL}


class CatalogFileError(ValidationError):
    """The file as a whole is unusable (encoding, header, syntax, empty); nothing was imported."""


def detect_format(path: Path, fmt: CatalogFormat | str | None = None) -> CatalogFormat:
    """``fmt`` when given, else the format named by the extension (.csv, .jsonl, .ndjson)."""
    if fmt is not None:
        try:
            return CatalogFormat(str(fmt).lower())
        except ValueError:
            raise CatalogFileError(f"unknown format {fmt!r} (expected csv or jsonl)") from None
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise CatalogFileError(
            f"cannot tell the format of {path.name!r} from its extension; give csv or jsonl"
        )
    return found


def row_sku(row: Mapping[str, object] | None) -> str | None:
    """The trimmed ``sku`` of a row when it is a non-empty string (for reports and cross-row rules)."""
    if row is None:
        return None
    value = row.get("sku")
    if isinstance(value, str):
        return value.strip() or None
    return None


def _row_parent(row: Mapping[str, object]) -> str | None:
    """The trimmed ``parent_sku`` of a row when it is a non-empty string."""
    value = row.get("parent_sku")
    if isinstance(value, str):
        return value.strip() or None
    return None


class CatalogReader:
    """Streams the rows of one file. ``bytes_read`` tells how far the stream got (for progress)."""

    def __init__(self, path: Path, fmt: CatalogFormat) -> None:
        self.path = path
        self.fmt = fmt
        self.bytes_read = 0

    def records(self) -> Iterator[Record]:
        self.bytes_read = 0
        if self.fmt is CatalogFormat.CSV:
            return self._csv_records()
        return self._jsonl_records()

    def rows(self) -> Iterator[ParsedRow]:
        """Every row, parsed (see :data:`ParsedRow`): the rows of :meth:`records`, with the row rules of
        :func:`~tradelane.domain.catalog_rows.parse_row` applied."""
        self.bytes_read = 0
        if self.fmt is CatalogFormat.CSV:
            return self._csv_parsed()
        return self._jsonl_parsed()

    def _lines(self) -> Iterator[str]:
        """The file's physical lines, decoded (each with its ``\\n``, the last one maybe without)."""
        return chain.from_iterable(self._blocks())

    def _blocks(self) -> Iterator[Iterable[str]]:
        """The lines in blocks of whole lines: one read, one decode and one split per block."""
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise CatalogFileError(f"cannot read {self.path.name!r}: {exc.strerror}") from None
        limit = MAX_LINE_BYTES
        size = min(_BLOCK_BYTES, limit)  # then only a block's first line can be longer than the limit
        lines_before = 0  # complete lines before ``pending``
        pending = b""  # the start of a line (no line break in it)
        with fh:
            while chunk := fh.read(size):
                self.bytes_read += len(chunk)
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:
                    pending += chunk
                    if len(pending) > limit:
                        raise _too_long(lines_before + 1, limit)
                    continue
                if len(pending) + chunk.find(b"\n") + 1 > limit:
                    raise _too_long(lines_before + 1, limit)
                block = pending + chunk[:cut] if pending else chunk[:cut]
                pending = chunk[cut:]
                yield _decode_lines(block, lines_before)
                lines_before += block.count(b"\n")
                if len(pending) > limit:
                    raise _too_long(lines_before + 1, limit)
        if pending:
            yield _decode_lines(pending, lines_before)

    def identities(self) -> Iterator[tuple[int, str | None, str | None]]:
        """``(line, sku, parent_sku)`` of every row (trimmed, None when empty or not a string): the same
        rows as :meth:`records`, read more cheaply."""
        self.bytes_read = 0
        if self.fmt is CatalogFormat.JSONL:
            for line, row, _problem in self._jsonl_records():
                yield line, row_sku(row), _row_parent(row) if row is not None else None
            return
        reader, header, start = self._csv_open()
        sku_at = header.index("sku")
        parent_at = header.index("parent_sku") if "parent_sku" in header else len(header)
        with _csv_syntax(reader):
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(cells):
                    continue
                sku = cells[sku_at].strip() if sku_at < len(cells) else ""
                parent = cells[parent_at].strip() if parent_at < len(cells) else ""
                yield line, sku or None, parent or None

    def _csv_records(self) -> Iterator[Record]:
        reader, header, start = self._csv_open()
        with _csv_syntax(reader):
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(cells):
                    continue
                row = dict(zip(header, cells, strict=False))
                if len(cells) != len(header):
                    yield line, row, _field_count_problem(cells, header)
                else:
                    yield line, row, None

    def _csv_parsed(self) -> Iterator[ParsedRow]:
        reader, header, start = self._csv_open()
        parser = CsvRowParser(header)
        plain, parse = parser.plain_row, parser.row
        width = len(header)
        sku_at = header.index("sku")
        with _csv_syntax(reader):
            for cells in reader:
                line, start = start, reader.line_num + 1
                product = plain(cells)  # None for an all-empty row too (no sku)
                if product is not None:
                    yield line, product, None, None
                    continue
                if not any(cells):
                    continue
                if len(cells) == width:
                    try:
                        product = parse(cells)
                    except RowError as exc:
                        problem = exc.reason
                    else:
                        yield line, product, None, None
                        continue
                else:
                    problem = _field_count_problem(cells, header)
                sku = cells[sku_at].strip() if sku_at < len(cells) else ""
                yield line, None, sku or None, problem

    def _csv_open(self) -> tuple[_CsvReader, tuple[str, ...], int]:
        """A CSV reader past the header row, the canonical header and the line the next row starts on."""
        reader = csv.reader(self._lines(), strict=True)
        start = 1
        with _csv_syntax(reader):
            for cells in reader:
                line, start = start, reader.line_num + 1
                if not any(cells):
                    continue
                try:
                    return reader, check_columns(cells), start
                except ValueError as exc:
                    raise CatalogFileError(f"line {line}: {exc}") from None
        raise CatalogFileError("the file is empty (no header row)")

    def _jsonl_parsed(self) -> Iterator[ParsedRow]:
        for line, row, problem in self._jsonl_records():
            if problem is None and row is not None:
                try:
                    product = catalog_row(parse_row(row))
                except RowError as exc:
                    problem = exc.reason
                else:
                    yield line, product, None, None
                    continue
            yield line, None, row_sku(row), problem or "unreadable line"

    def _jsonl_records(self) -> Iterator[Record]:
        for number, text in enumerate(self._lines(), start=1):
            if not text.strip():
                continue
            try:
                value = _JSON.decode(text)
            except ValueError as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                yield number, None, f"malformed JSON: {reason}"
                continue
            except RecursionError:
                yield number, None, "malformed JSON: nested too deeply"
                continue
            if not isinstance(value, dict):
                yield number, None, "line is not a JSON object"
                continue
            try:
                check_json_keys(value)
            except RowError as exc:
                yield number, value, exc.reason
                continue
            yield number, value, None


_BLOCK_BYTES = 2**18


def _decode_lines(block: bytes, lines_before: int) -> Iterable[str]:
    """The lines of ``block`` (whole lines, the first being line ``lines_before + 1``), split at
    ``\\n`` only (a lone ``\\r`` is for the CSV parser to judge)."""
    if lines_before == 0 and block.startswith(_BOM):
        block = block[len(_BOM) :]  # the first line's length counted it, as the file holds it
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = block.rfind(b"\n", 0, exc.start) + 1
        number = lines_before + block.count(b"\n", 0, line_start) + 1
        raise CatalogFileError(
            f"line {number}: not valid UTF-8 (byte {exc.start - line_start + 1} of the line); "
            "save the file as UTF-8"
        ) from None
    return io.StringIO(text, newline="\n")


def _too_long(number: int, limit: int) -> CatalogFileError:
    return CatalogFileError(f"line {number} is longer than {limit:,} bytes")


def _field_count_problem(cells: list[str], header: tuple[str, ...]) -> str:
    return f"line has {len(cells)} fields, the header has {len(header)}"


@contextmanager
def _csv_syntax(reader: _CsvReader) -> Iterator[None]:
    """Turns a CSV syntax error into a refused file."""
    try:
        yield
    except csv.Error as exc:
        raise CatalogFileError(f"line {reader.line_num}: CSV syntax error: {exc}") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a valid number")


# Exact decimals (never float) and no NaN/Infinity; one decoder for every line.
_JSON = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


@dataclass(slots=True)
class FileScan:
    """What the pre-pass learned about a well-formed file.

    * ``duplicates``: sku -> line of its first occurrence, for every sku that occurs more than once;
    * ``variant_parents``: sku -> its own parent, for every variant row whose sku other rows use as
      their parent (those rows are rejected);
    * :meth:`in_file` tells whether a sku has a row in the file. It compares 64-bit hashes, so a sku not
      in the file is reported present with a probability of about rows / 2**64.
    """

    fmt: CatalogFormat
    total_bytes: int
    rows: int
    duplicates: dict[str, int] = field(default_factory=dict)
    variant_parents: dict[str, str] = field(default_factory=dict)
    sku_hashes: array[int] = field(default_factory=lambda: array("q"))

    def in_file(self, sku: str) -> bool:
        key = hash(sku)
        index = bisect_left(self.sku_hashes, key)
        return index < len(self.sku_hashes) and self.sku_hashes[index] == key


def prescan(path: Path, fmt: CatalogFormat) -> FileScan:
    """Read the whole file once, cheaply: refuse a malformed file (see the module docstring) and collect
    what the cross-row rules need. It keeps 64-bit hashes (8 bytes per row, 8 more per variant row, a set
    entry per distinct parent) and the exact offending skus, which a second read collects only when the
    hashes show duplicates or variant-of-variant candidates."""
    reader = CatalogReader(path, fmt)
    # Sku hashes bucketed by their top byte: sorting bucket by bucket needs a transient list of one
    # bucket's ints, not of the whole file's.
    buckets: list[array[int]] = [array("q") for _ in range(256)]
    parents: set[int] = set()
    variants: array[int] = array("q")
    rows = 0
    sku_keys = 0
    if fmt is CatalogFormat.CSV:
        rows, sku_keys = _scan_csv(reader, buckets, parents, variants)
    else:
        for _line, sku, parent in reader.identities():
            rows += 1
            if sku is None:
                continue
            sku_keys += 1
            key = hash(sku)
            buckets[(key >> 56) + 128].append(key)
            if parent is not None:
                parents.add(hash(parent))
                variants.append(key)
    if rows == 0:
        empty = reader.bytes_read <= len(_BOM)
        raise CatalogFileError("the file is empty" if empty else "the file contains no product rows")
    if sku_keys == 0:
        raise CatalogFileError('no row has a sku (JSON Lines need a "sku" key on each line)')
    ordered: array[int] = array("q")
    while buckets:
        ordered.extend(sorted(buckets.pop(0)))
    # Adjacent equal hashes are repeated skus: tested at C speed first, listed only when there are some.
    repeated = {a for a, b in pairwise(ordered) if a == b} if any(map(eq, ordered, ordered[1:])) else set()
    conflicts = parents.intersection(variants)
    del variants, parents
    scan = FileScan(fmt=fmt, total_bytes=reader.bytes_read, rows=rows, sku_hashes=ordered)
    if repeated or conflicts:
        _resolve_exactly(scan, path, fmt, repeated, conflicts)
    return scan


def _scan_csv(
    reader: CatalogReader, buckets: list[array[int]], parents: set[int], variants: array[int]
) -> tuple[int, int]:
    """The pre-pass loop over a CSV file: what :meth:`CatalogReader.identities` gives, inlined (it is a
    sixth of an import's time). Adds each sku's hash to its bucket (by top byte), each parent's hash to
    ``parents`` and each variant's sku hash to ``variants``; returns the number of rows and of rows with
    a sku."""
    csv_reader, header, _start = reader._csv_open()
    sku_at = header.index("sku")
    parent_at = header.index("parent_sku") if "parent_sku" in header else len(header)
    rows = 0
    add_parent = parents.add
    add_variant = variants.append
    with _csv_syntax(csv_reader):
        for cells in csv_reader:
            width = len(cells)
            sku = cells[sku_at].strip() if sku_at < width else ""
            if not sku:
                if any(cells):
                    rows += 1  # a row without a sku (rejected later); all-empty rows are skipped
                continue
            rows += 1
            key = hash(sku)
            buckets[(key >> 56) + 128].append(key)
            if parent_at < width:
                parent = cells[parent_at].strip()
                if parent:
                    add_parent(hash(parent))
                    add_variant(key)
    return rows, sum(map(len, buckets))  # one hash per row with a sku


def _resolve_exactly(
    scan: FileScan, path: Path, fmt: CatalogFormat, repeated: set[int], conflicts: set[int]
) -> None:
    """Second read: turn hash candidates into exact duplicates and variant-of-variant parents."""
    first_line: dict[str, int] = {}
    candidates: dict[str, str] = {}
    used_as_parent: set[str] = set()
    for line, sku, parent in CatalogReader(path, fmt).identities():
        if sku is None:
            continue
        key = hash(sku)
        if key in repeated:
            first = first_line.setdefault(sku, line)
            if first != line:
                scan.duplicates[sku] = first
                continue
        if parent is None:
            continue
        if key in conflicts:
            candidates[sku] = parent
        if hash(parent) in conflicts:
            used_as_parent.add(parent)
    scan.variant_parents = {sku: parent for sku, parent in candidates.items() if sku in used_as_parent}
