"""Parsing and validation of one catalog import row (pure: no I/O).

A row is a mapping from *canonical column names* to raw values. Canonical names are the known fields
(:data:`FIELDS`) and ``attr:<name>`` for attributes. CSV cells are strings; JSON Lines values may also be
numbers (``Decimal`` when parsed with ``parse_float=Decimal``), lists (``labels``) or ``null``.

Contract of :func:`parse_row`:

* An empty string, a whitespace-only string or ``None`` means *no value*. A row fully describes its
  product: a field without a value is stored empty (``quantity`` 0, no labels, no such attribute), it does
  not keep a previously imported value.
* Every problem raises :class:`RowError` whose ``reason`` names the field and the offending value.
* Rules: ``sku`` required, printable, at most 200 characters; ``parent_sku`` likewise, optional and not the
  row's own sku; ``brand`` at most 200 characters; ``gtin`` ASCII digits, 8/12/13/14 of them, valid GS1 check
  digit; ``price`` a plain decimal (dot separator), not negative, at most 6 decimal places and below 10^14;
  ``currency`` ISO 4217 (case-insensitive), required with a price and refused without one; ``quantity`` an
  integer, ``0 <= quantity <= 2**31-1``; ``labels`` semicolon-separated (or a JSON list of strings),
  trimmed, empty ones dropped, duplicates dropped keeping the first; ``attr:<name>`` values are strings
  (JSON numbers are kept in their exact decimal text). No text may contain a NUL character or a lone
  surrogate (neither can be stored).

Cross-row rules (duplicate skus, a parent that is itself a variant) need the whole file and live in the
import service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from hashlib import sha256
from operator import itemgetter

from tradelane.domain.catalog import CatalogRow, Product, catalog_row, row_product
from tradelane.domain.currencies import ISO_4217

FIELDS: tuple[str, ...] = (
    "sku",
    "parent_sku",
    "title",
    "description",
    "brand",
    "gtin",
    "price",
    "currency",
    "quantity",
    "labels",
)
ATTR_PREFIX = "attr:"

MAX_SKU_LENGTH = 200
MAX_BRAND_LENGTH = 200
MAX_ATTRIBUTE_NAME_LENGTH = 100
MAX_QUANTITY = 2**31 - 1
MAX_PRICE_DECIMALS = 6
PRICE_LIMIT = Decimal(10) ** 14
GTIN_LENGTHS = (8, 12, 13, 14)

_FIELD_SET = frozenset(FIELDS)
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_COMMA_DECIMAL_RE = re.compile(r"[+-]?\d+,\d+")
_INTEGER_RE = re.compile(r"[+-]?\d+")
# The common price, valid and canonical as it stands: ASCII digits, at most 14 before the dot (no leading
# zero) and 1 to 6 after it.
_CANONICAL_PRICE_RE = re.compile(r"(?:0|[1-9][0-9]{0,13})(?:\.[0-9]{1,6})?")
#: Per GTIN length, 48 (ASCII "0") times the sum of the check's weights (1, 3, 1, ... from the right).
_GTIN_OFFSETS = {n: 48 * ((n + 1) // 2 + 3 * (n // 2)) for n in GTIN_LENGTHS}
_LABEL_CACHE = 1024


class RowError(ValueError):
    """One row cannot be imported; ``reason`` says precisely why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def canonical_column(name: str) -> str:
    """The canonical name of a CSV header cell: known fields are trimmed and case-insensitive, and
    ``attr:<name>`` keeps the attribute name's case (trimmed). Raises ``ValueError`` for anything else."""
    cleaned = name.strip()
    lowered = cleaned.lower()
    if lowered in _FIELD_SET:
        return lowered
    if lowered.startswith(ATTR_PREFIX):
        return ATTR_PREFIX + _attribute_name(cleaned[len(ATTR_PREFIX) :])
    if not cleaned:
        raise ValueError("a column has no name")
    raise ValueError(f"unknown column {cleaned!r} (expected {', '.join(FIELDS)} or attr:<name>)")


def check_columns(names: Sequence[str]) -> tuple[str, ...]:
    """Canonical names of a CSV header, in order. Raises ``ValueError`` when there is no ``sku`` column
    (checked first: it is what a file with another delimiter looks like), or for an unknown, unnamed or
    repeated column."""
    if not any(name.strip().lower() == "sku" for name in names):
        found = ",".join(names)
        if len(found) > 80:
            found = found[:80] + "..."
        raise ValueError(f"no 'sku' column in the header (found {found!r}); is the file comma-separated?")
    result: list[str] = []
    for position, name in enumerate(names, start=1):
        try:
            column = canonical_column(name)
        except ValueError as exc:
            raise ValueError(f"column {position}: {exc}") from None
        if column in result:
            raise ValueError(f"column {position}: {column!r} appears twice in the header")
        result.append(column)
    return tuple(result)


def check_json_keys(record: Mapping[str, object]) -> None:
    """JSON Lines keys are exact: a known field name or ``attr:<name>``. Raises :class:`RowError`."""
    for key in record:
        if key in _FIELD_SET:
            continue
        if key.startswith(ATTR_PREFIX):
            try:
                if _attribute_name(key[len(ATTR_PREFIX) :]) == key[len(ATTR_PREFIX) :]:
                    continue
            except ValueError as exc:
                raise RowError(str(exc)) from None
        raise RowError(f"unknown field {key!r} (expected {', '.join(FIELDS)} or attr:<name>)")


def _attribute_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise ValueError("attribute column 'attr:' has no name")
    if len(name) > MAX_ATTRIBUTE_NAME_LENGTH:
        raise ValueError(
            f"attribute name longer than {MAX_ATTRIBUTE_NAME_LENGTH} characters: {name[:40]!r}..."
        )
    return name


def parse_row(row: Mapping[str, object]) -> Product:
    """Validate one row (canonical keys, see the module docstring) into a :class:`Product`."""
    sku = _identifier(row.get("sku"), "sku")
    if sku is None:
        raise RowError("sku is missing")
    parent_sku = _identifier(row.get("parent_sku"), "parent_sku")
    if parent_sku == sku:
        raise RowError("parent_sku is the row's own sku")
    brand = _text(row.get("brand"), "brand")
    if brand is not None and len(brand) > MAX_BRAND_LENGTH:
        raise RowError(f"brand longer than {MAX_BRAND_LENGTH} characters")
    price = parse_price(row.get("price"))
    currency = parse_currency(row.get("currency"))
    if price is not None and currency is None:
        raise RowError("price without currency")
    if currency is not None and price is None:
        raise RowError(f"currency {currency} without price")
    attributes: dict[str, str] = {}
    for key, value in row.items():
        if key.startswith(ATTR_PREFIX):
            name = key[len(ATTR_PREFIX) :]
            text = _attribute_value(value, name)
            if text is not None:
                attributes[name] = text
    return Product(
        sku=sku,
        parent_sku=parent_sku,
        title=_text(row.get("title"), "title"),
        description=_text(row.get("description"), "description"),
        brand=brand,
        gtin=parse_gtin(row.get("gtin")),
        price=price,
        currency=currency,
        quantity=parse_quantity(row.get("quantity")),
        labels=parse_labels(row.get("labels")),
        attributes=attributes,
    )


class CsvRowParser:
    """Parses the cells of CSV rows under one header (canonical column names, as returned by
    :func:`check_columns`) into products.

    ``parser(cells)`` returns or raises exactly what ``parse_row(dict(zip(columns, cells)))`` would, and
    ``parser.row(cells)`` exactly ``catalog_row(parser(cells))`` (the import's hot path: no
    :class:`Product` is built, and the content hash comes from the validated texts at hand). A row made of
    plain values (printable skus, ASCII digits, a canonical price, a known currency...) is validated
    inline, at a fraction of the cost; anything else, and every error, goes through :func:`parse_row`
    itself.
    """

    __slots__ = (
        "_attributes",
        "_complete",
        "_digest_attributes",
        "_fast",
        "_fields",
        "_labels",
        "_width",
        "columns",
    )

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._width = len(self.columns)
        absent = self._width  # index of the "" cell appended to each row for absent columns
        position = {name: index for index, name in enumerate(self.columns)}
        self._complete = all(name in position for name in FIELDS)
        self._fields = itemgetter(*(position.get(name, absent) for name in FIELDS))
        self._attributes = tuple(
            (name[len(ATTR_PREFIX) :], index)
            for index, name in enumerate(self.columns)
            if name.startswith(ATTR_PREFIX)
        )
        # The digest takes the attributes sorted by name (names are unique in a checked header).
        self._digest_attributes = tuple(sorted(name for name, _index in self._attributes))
        # An attribute name holding a NUL or a lone surrogate changes the digest's encoding: such a header
        # takes the general path (the names are in every row's digest, the fast path assumes plain text).
        self._fast = all(_plain_text(name) for name, _index in self._attributes)
        # Labels cell text -> labels (catalogs repeat a few label sets); at most _LABEL_CACHE entries.
        self._labels: dict[str, tuple[str, ...]] = {}

    def __call__(self, cells: Sequence[str]) -> Product:
        row = self.plain_row(cells)
        if row is None:
            return parse_row(dict(zip(self.columns, cells, strict=False)))
        return row_product(row)

    def row(self, cells: Sequence[str]) -> CatalogRow:
        """``catalog_row(self(cells))``, without building a :class:`Product` for a plain row. Raises
        :class:`RowError` exactly when ``self(cells)`` does."""
        row = self.plain_row(cells)
        if row is None:
            return catalog_row(parse_row(dict(zip(self.columns, cells, strict=False))))
        return row

    def _plain(self, cells: Sequence[str]) -> Product | None:
        """The product when every cell is a plain value (see the class docstring), else None."""
        row = self.plain_row(cells)
        return None if row is None else row_product(row)

    def plain_row(self, cells: Sequence[str]) -> CatalogRow | None:
        """``self.row(cells)`` when every cell is a plain value (see the class docstring), else None (then
        call :meth:`row`, which also raises the row's :class:`RowError`). Each test below
        mirrors a rule of :func:`parse_row` on stripped strings ("" meaning no value), and the digest
        mirrors :meth:`Product.content_hash` (its NUL-joined form: no text here holds a NUL)."""
        if len(cells) != self._width or not self._fast:
            return None
        joined = "".join(cells)
        if "\x00" in joined or not (joined.isascii() or _plain_text(joined)):
            return None  # a NUL or a lone surrogate somewhere: every text cell is plain past this test
        sku, parent, title, description, brand, gtin, price_text, currency, quantity_text, labels_text = (
            self._fields(cells if self._complete else [*cells, ""])
        )
        sku = sku.strip()
        if not sku or len(sku) > MAX_SKU_LENGTH or not sku.isprintable():
            return None
        parent = parent.strip()
        if parent and (len(parent) > MAX_SKU_LENGTH or not parent.isprintable() or parent == sku):
            return None
        brand = brand.strip()
        if len(brand) > MAX_BRAND_LENGTH:
            return None
        gtin = gtin.strip()
        if gtin:
            # The GS1 check inlined: weights 1, 3, 1... from the right, check digit included, sum % 10 == 0
            # (on ASCII codes, less 48 per weight unit: _GTIN_OFFSETS).
            offset = _GTIN_OFFSETS.get(len(gtin))
            if offset is None or not (gtin.isascii() and gtin.isdigit()):
                return None
            raw = gtin.encode()
            if (sum(raw[::-2]) + 3 * sum(raw[-2::-2]) - offset) % 10:
                return None
        price_text = price_text.strip()
        currency = currency.strip().upper()
        if price_text:
            # Canonical text only (no leading zero, no trailing dot): it is then the price's exact text
            # as stored, and its normal form is the text without trailing fractional zeros.
            if not currency or currency not in ISO_4217 or not _CANONICAL_PRICE_RE.fullmatch(price_text):
                return None
            price: Decimal | None = Decimal(price_text)
            normal = price_text.rstrip("0").rstrip(".") if "." in price_text else price_text
        elif currency:
            return None
        else:
            price = None
            normal = ""
        quantity_text = quantity_text.strip()
        if not quantity_text:
            quantity = 0
        elif quantity_text.isascii() and quantity_text.isdigit():
            quantity = int(quantity_text)
            if quantity > MAX_QUANTITY:
                return None
            if quantity_text[0] == "0":
                quantity_text = str(quantity)  # the digest takes the number's own text
        else:
            return None
        title = title.strip()
        description = description.strip()
        labels: tuple[str, ...] = ()
        if labels_text:
            found = self._labels.get(labels_text)
            if found is None:
                if len(self._labels) >= _LABEL_CACHE:
                    self._labels.clear()
                found = self._labels[labels_text] = tuple(
                    dict.fromkeys(filter(None, map(str.strip, labels_text.split(";"))))
                )
            labels = found
        attributes: dict[str, str] = {}
        for name, index in self._attributes:
            value = cells[index].strip()
            if value:
                attributes[name] = value
        parts = [
            sku,
            parent,
            title,
            description,
            brand,
            gtin,
            normal,
            currency,
            quantity_text or "0",
            str(len(labels)),
            *labels,
        ]
        if attributes:
            for name in self._digest_attributes:
                text = attributes.get(name)
                if text is not None:
                    parts += (name, text)
        digest = sha256("\x00".join(parts).encode()).hexdigest()
        return (
            sku,
            parent or None,
            title or None,
            description or None,
            brand or None,
            gtin or None,
            price,
            currency or None,
            quantity,
            labels,
            attributes,
            digest,
        )


def _plain_text(text: str) -> bool:
    """Whether a string passes the text rules as it is: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: object, field: str) -> str | None:
    """A trimmed string, or None when empty. Refuses non-strings, NUL and lone surrogates."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowError(f"{field} must be a string, not {_json_type(value)}")
    text = value.strip()
    if not text:
        return None
    if "\x00" in text:
        raise RowError(f"{field} contains a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise RowError(f"{field} contains an invalid Unicode character (lone surrogate)") from None
    return text


def _identifier(value: object, field: str) -> str | None:
    text = _text(value, field)
    if text is None:
        return None
    if len(text) > MAX_SKU_LENGTH:
        raise RowError(f"{field} longer than {MAX_SKU_LENGTH} characters")
    if not text.isprintable():
        raise RowError(f"{field} {text!r} contains a control or non-printable character")
    return text


def parse_price(value: object) -> Decimal | None:
    """A non-negative decimal with at most 6 decimal places, below 10^14; None when empty."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RowError("price must be a decimal number, not a boolean")
    if isinstance(value, int):
        price = Decimal(value)
    elif isinstance(value, Decimal):
        price = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if not _DECIMAL_RE.fullmatch(text):
            if _COMMA_DECIMAL_RE.fullmatch(text):
                raise RowError(
                    f"price is not a decimal number: {text!r} (use a dot as the decimal separator)"
                )
            raise RowError(f"price is not a decimal number: {text!r}")
        price = Decimal(text)
    else:
        raise RowError(f"price must be a decimal number, not {_json_type(value)}")
    if not price.is_finite():
        raise RowError(f"price is not a finite number: {value!r}")
    if price < 0:
        raise RowError(f"price must not be negative: {format(price, 'f')}")
    if price >= PRICE_LIMIT:
        raise RowError(f"price too large: {format(price, 'f')}")
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_PRICE_DECIMALS:
        exponent = price.normalize().as_tuple().exponent  # 1.50000000 has 1 decimal place
    if isinstance(exponent, int) and exponent < -MAX_PRICE_DECIMALS:
        raise RowError(f"price has more than {MAX_PRICE_DECIMALS} decimal places: {format(price, 'f')}")
    return price


def parse_currency(value: object) -> str | None:
    """An ISO 4217 code (input is trimmed and upper-cased); None when empty."""
    text = _text(value, "currency")
    if text is None:
        return None
    code = text.upper()
    if code not in ISO_4217:
        raise RowError(f"unknown currency {text!r} (not ISO 4217)")
    return code


def parse_quantity(value: object) -> int:
    """An integer in ``0..2**31-1``; 0 when empty."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise RowError("quantity must be an integer, not a boolean")
    if isinstance(value, int):
        quantity = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            return 0
        if not _INTEGER_RE.fullmatch(text):
            raise RowError(f"quantity is not an integer: {text!r}")
        quantity = int(text)
    elif isinstance(value, Decimal):
        raise RowError(f"quantity is not an integer: {value}")
    else:
        raise RowError(f"quantity must be an integer, not {_json_type(value)}")
    if quantity < 0:
        raise RowError(f"quantity must not be negative: {quantity}")
    if quantity > MAX_QUANTITY:
        raise RowError(f"quantity too large: {quantity}")
    return quantity


def parse_gtin(value: object) -> str | None:
    """A GTIN-8/12/13/14 with a valid GS1 check digit; None when empty."""
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        raise RowError("gtin must be a string (a number loses its leading zeros)")
    text = _text(value, "gtin")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()):
        raise RowError(f"gtin must contain only digits: {text!r}")
    if len(text) not in GTIN_LENGTHS:
        hint = " (leading zeros lost?)" if len(text) < 14 else ""
        raise RowError(f"gtin must have 8, 12, 13 or 14 digits, not {len(text)}{hint}: {text!r}")
    expected = gtin_check_digit(text[:-1])
    if int(text[-1]) != expected:
        raise RowError(f"gtin check digit is wrong: {text!r} (expected {expected} as last digit)")
    return text


def gtin_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit of ``body`` (the GTIN without its last digit, ASCII digits): digits are
    weighted 3, 1, 3, ... from the right."""
    raw = body.encode("ascii")
    odd, even = raw[::-2], raw[-2::-2]  # bytes: summing them sums the ASCII codes (digit + 48)
    total = 3 * (sum(odd) - 48 * len(odd)) + sum(even) - 48 * len(even)
    return (10 - total % 10) % 10


def parse_labels(value: object) -> tuple[str, ...]:
    """Labels from ``"a;b;c"`` or a JSON list of strings: trimmed, empties and repeats dropped."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: list[object] = list(value.split(";"))
    elif isinstance(value, list):
        items = value
    else:
        raise RowError(f"labels must be a string or a list of strings, not {_json_type(value)}")
    labels: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise RowError(f"labels must be strings, not {_json_type(item)}")
        label = _text(item, "labels")
        if label is not None and label not in labels:
            labels.append(label)
    return tuple(labels)


def _attribute_value(value: object, name: str) -> str | None:
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and "\x00" not in text:
            return text or None  # the common case, without building a field name
        return _text(value, f"attribute {name!r}")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise RowError(f"attribute {name!r} must be a string or a number, not {_json_type(value)}")
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, Decimal)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
