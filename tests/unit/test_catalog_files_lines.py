"""The catalog reader reads the file in blocks; what it yields, and every refusal, must be what a plain
line-by-line read gives (checked against such a reference, with tiny blocks and line limits so that the
block edges fall everywhere)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradelane.services import catalog_files
from tradelane.services.catalog_files import CatalogFileError, CatalogFormat, CatalogReader, prescan

BOM = b"\xef\xbb\xbf"


def reference_lines(path: Path, limit: int) -> Iterator[str]:
    """The contract, one physical line at a time: split at b"\\n" only, BOM dropped from line 1, a line
    (with its line break) longer than ``limit`` bytes or not UTF-8 refuses the file at that line."""
    with path.open("rb") as fh:
        for number, raw in enumerate(iter(lambda: fh.readline(limit + 1), b""), start=1):
            if len(raw) > limit:
                raise CatalogFileError(f"line {number} is longer than {limit:,} bytes")
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CatalogFileError(
                    f"line {number}: not valid UTF-8 (byte {exc.start + 1} of the line); "
                    "save the file as UTF-8"
                ) from None


def collect(lines: Iterator[str]) -> tuple[list[str], str | None]:
    seen: list[str] = []
    try:
        for line in lines:
            seen.append(line)
    except CatalogFileError as exc:
        return seen, str(exc)
    return seen, None


def read_both(path: Path, limit: int, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_files, "MAX_LINE_BYTES", limit)
    monkeypatch.setattr(catalog_files, "_BLOCK_BYTES", block)
    reader = CatalogReader(path, CatalogFormat.CSV)
    got_lines, got_error = collect(reader._lines())
    want_lines, want_error = collect(reference_lines(path, limit))
    if want_lines == [""]:  # a file that is just a BOM: no line at all, as good as one empty line
        want_lines = []
    assert got_error == want_error
    if want_error is None:
        assert got_lines == want_lines
        assert reader.bytes_read == path.stat().st_size
    else:  # lines before the refused one may or may not have been yielded, but never others
        assert got_lines == want_lines[: len(got_lines)]


PIECES = [
    b"a",
    b"bc",
    b",",
    b'"',
    b"\n",
    b"\r",
    b"\r\n",
    "é".encode(),
    "€".encode(),
    BOM,
    b"\xff",
    b"\xe2\x82",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    limit=st.integers(3, 24),
    block=st.integers(1, 16),
)
def test_block_reading_matches_line_by_line_reading(tmp_path, monkeypatch, content, limit, block):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    read_both(path, limit, block, monkeypatch)


@pytest.mark.parametrize("block", [1, 2, 5, 64, 2**18])
@pytest.mark.parametrize(
    "content",
    [
        BOM + b"sku\nA\n",
        b"sku\nA\nB",
        b"sku\r\nA\r\nB\r\n",
        b"sku\n" + b"x" * 63 + b"\n",  # exactly the limit with its line break
        b"sku\n" + b"x" * 64 + b"\n",  # one byte over
        b"sku\n" + b"x" * 65,  # over, without a line break
        b"sku\nA\n\xe9t\xe9\n",
        BOM + b"\xff\n",
        b"sku,title\nA,\xe2\x82\xac\nB,\xe2\x82\n",
    ],
)
def test_edges_match_line_by_line_reading(tmp_path, monkeypatch, block, content):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    read_both(path, 64, block, monkeypatch)


def test_a_lone_carriage_return_is_left_to_the_csv_parser(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"sku,title\nA,one\rtwo\n")
    with pytest.raises(CatalogFileError, match="line 2: CSV syntax error"):
        prescan(path, CatalogFormat.CSV)


def test_progress_counts_every_byte_including_the_bom(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(BOM + b"sku\nA\nB\n")
    scan = prescan(path, CatalogFormat.CSV)
    assert scan.total_bytes == path.stat().st_size and scan.rows == 2
