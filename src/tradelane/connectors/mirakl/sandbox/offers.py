"""Offer imports (OF01 CSV files, OF24 JSON) and their error reports (OF03): parsing and rules.

No I/O and no clock: callers pass the file bytes, the current offers and ``now``. One validator serves
both entry points — an OF24 offer is turned into the same column/value row an OF01 line gives.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from tradelane.connectors.mirakl.sandbox.models import (
    ImportMode,
    ImportRow,
    ImportStatus,
    Offer,
    OfferImport,
    Product,
    Shop,
)
from tradelane.connectors.mirakl.sandbox.money import minor_units

#: Columns an OF01 file must have in NORMAL / REPLACE mode (PARTIAL_UPDATE only needs ``sku``).
MANDATORY_COLUMNS: tuple[str, ...] = ("sku", "product-id", "product-id-type", "price", "quantity", "state")

#: OF24 JSON field -> OF01 column, so both imports share one set of rules and one report format.
JSON_TO_COLUMN: dict[str, str] = {
    "shop_sku": "sku",
    "product_id": "product-id",
    "product_id_type": "product-id-type",
    "description": "description",
    "internal_description": "internal-description",
    "price": "price",
    "quantity": "quantity",
    "min_quantity_alert": "min-quantity-alert",
    "state_code": "state",
    "logistic_class": "logistic-class",
    "leadtime_to_ship": "leadtime-to-ship",
    "update_delete": "update-delete",
}
JSON_REPORT_COLUMNS: list[str] = list(JSON_TO_COLUMN.values())
ERROR_LINE_COLUMN = "error-line"
ERROR_COLUMN = "error-message"


class OfferFileError(ValueError):
    """The file as a whole cannot be imported (the import ends FAILED with this reason)."""


@dataclass(frozen=True)
class OfferRules:
    """Platform configuration offers are checked against (OF61 states, SH31 logistic classes...)."""

    offer_states: Mapping[str, str]
    logistic_classes: Mapping[str, str]
    default_logistic_class: str
    reference_types: frozenset[str]
    #: Offer custom field codes the operator defines (OF01 columns / OF24 ``offer_additional_fields``).
    offer_fields: frozenset[str] = frozenset()


ProductLookup = Callable[[str, str], Product | None]
"""(reference type, reference value) -> the catalog product, if any."""


def parse_offer_file(content: bytes) -> tuple[list[str], list[ImportRow]]:
    """Split a semicolon-separated UTF-8 CSV with a header row into columns and data rows.

    Blank lines are skipped; a line whose field count differs from the header's becomes a row in
    error. Raises :class:`OfferFileError` for an undecodable or empty file or a malformed header.
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OfferFileError("The file is not encoded in UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    try:
        header = next(reader)
    except StopIteration:
        raise OfferFileError("The file is empty") from None
    except csv.Error as exc:
        raise OfferFileError(f"The header line cannot be read: {exc}") from None
    columns = [name.strip() for name in header]
    if not any(columns):
        raise OfferFileError("The header line is empty")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise OfferFileError(f"Duplicate column(s) in header: {', '.join(duplicates)}")
    rows: list[ImportRow] = []
    line_number = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise OfferFileError(f"Line {reader.line_num} cannot be read: {exc}") from None
        line_number += 1
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(columns):
            padded = (fields + [""] * len(columns))[: len(columns)]
            rows.append(
                ImportRow(
                    line_number,
                    dict(zip(columns, padded, strict=True)),
                    error=f"The line has {len(fields)} fields but the header has {len(columns)}",
                )
            )
            continue
        rows.append(ImportRow(line_number, dict(zip(columns, fields, strict=True))))
    return columns, rows


def missing_columns(columns: list[str], mode: ImportMode) -> list[str]:
    required = ("sku",) if mode is ImportMode.PARTIAL_UPDATE else MANDATORY_COLUMNS
    return [c for c in required if c not in columns]


def json_offer_row(index: int, offer: Mapping[str, object]) -> ImportRow:
    """An OF24 offer as an import row (values as text, absent fields empty); ``index`` is its 1-based
    position in the call, reported as ``error-line``."""
    values: dict[str, str] = {}
    for key, column in JSON_TO_COLUMN.items():
        raw = offer.get(key)
        if raw is None:
            values[column] = ""
        elif isinstance(raw, Decimal):
            values[column] = format(raw, "f")
        else:
            values[column] = str(raw)
    custom = offer.get("offer_additional_fields")
    for item in custom if isinstance(custom, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("code"), str):
            values.setdefault(item["code"], "" if item.get("value") is None else str(item["value"]))
    return ImportRow(index, values)


@dataclass
class _Draft:
    """A validated line: what an upsert will write."""

    sku: str
    product: Product | None
    product_id: str
    product_id_type: str
    fields: dict[str, object]
    additional: dict[str, str] | None = None


def process_import(
    imp: OfferImport,
    offers: dict[str, Offer],
    *,
    shop: Shop,
    rules: OfferRules,
    lookup: ProductLookup,
    now: datetime,
    new_offer_id: Callable[[], int],
) -> None:
    """Apply a due import to the shop's ``offers`` (by shop SKU), recording per-line errors.

    NORMAL: every line creates or fully updates its offer (fields not given are reset). REPLACE: the
    same, and offers absent from the file are deleted. PARTIAL_UPDATE: only the columns present are
    written. ``update-delete`` = ``delete`` removes an offer. A line in error changes nothing.
    """
    imp.status = ImportStatus.COMPLETE
    imp.completed_at = now
    seen: set[str] = set()
    for row in imp.rows:
        if row.error is not None:
            continue
        sku = row.values.get("sku", "").strip()
        if sku and sku in seen:
            row.error = f"The sku '{sku}' appears more than once in the import"
            continue
        if sku:
            seen.add(sku)
        row.error = _apply_row(
            row, imp, offers, shop=shop, rules=rules, lookup=lookup, now=now, new_id=new_offer_id
        )
    if imp.mode is ImportMode.REPLACE:
        for sku in [s for s in offers if s not in seen]:
            del offers[sku]
            imp.deleted += 1


def _apply_row(
    row: ImportRow,
    imp: OfferImport,
    offers: dict[str, Offer],
    *,
    shop: Shop,
    rules: OfferRules,
    lookup: ProductLookup,
    now: datetime,
    new_id: Callable[[], int],
) -> str | None:
    values = row.values
    sku = values.get("sku", "").strip()
    if not sku:
        return "The sku is mandatory"
    action = values.get("update-delete", "").strip().lower()
    if action not in ("", "update", "delete"):
        return (
            f"The update-delete value '{values.get('update-delete')}' is invalid (expected update or delete)"
        )
    existing = offers.get(sku)
    if action == "delete":
        if existing is None:
            return f"The offer with sku '{sku}' does not exist and cannot be deleted"
        del offers[sku]
        imp.deleted += 1
        return None
    partial = imp.mode is ImportMode.PARTIAL_UPDATE and existing is not None
    draft = _validate(sku, values, existing, partial=partial, shop=shop, rules=rules, lookup=lookup)
    if isinstance(draft, str):
        return draft
    if existing is None:
        assert draft.product is not None
        offers[sku] = Offer(
            offer_id=new_id(),
            shop_id=shop.shop_id,
            shop_sku=sku,
            product=draft.product,
            product_id=draft.product_id,
            product_id_type=draft.product_id_type,
            price=_dec(draft.fields["price"]),
            quantity=_int(draft.fields.get("quantity", 0)),
            state_code=str(draft.fields["state"]),
            logistic_class=str(draft.fields.get("logistic-class", rules.default_logistic_class)),
            leadtime_to_ship=_int(draft.fields.get("leadtime-to-ship", shop.leadtime_to_ship)),
            description=str(draft.fields.get("description", "")),
            internal_description=str(draft.fields.get("internal-description", "")),
            min_quantity_alert=_opt_int(draft.fields.get("min-quantity-alert")),
            additional_fields=dict(draft.additional or {}),
            date_created=now,
            last_updated=now,
        )
        imp.inserted += 1
        return None
    _update(existing, draft, now)
    imp.updated += 1
    return None


def _validate(
    sku: str,
    values: Mapping[str, str],
    existing: Offer | None,
    *,
    partial: bool,
    shop: Shop,
    rules: OfferRules,
    lookup: ProductLookup,
) -> _Draft | str:
    def given(column: str) -> str | None:
        if column not in values:
            return None
        text = values[column].strip()
        return text if text or not partial else None

    fields: dict[str, object] = {}
    product_id = (given("product-id") or "").strip()
    product_id_type = (given("product-id-type") or "").strip()
    product: Product | None = existing.product if existing is not None else None
    if product_id or product_id_type or existing is None:
        if not product_id or not product_id_type:
            return "The product-id and product-id-type are mandatory to create an offer"
        if product_id_type not in rules.reference_types:
            return f"The product-id-type '{product_id_type}' is unknown"
        found = lookup(product_id_type, product_id)
        if found is None:
            return f"The product '{product_id}' ({product_id_type}) does not exist in the catalog"
        if existing is not None and found.sku != existing.product.sku:
            return f"The offer '{sku}' is already attached to another product"
        product = found
    elif existing is not None:
        product_id, product_id_type = existing.product_id, existing.product_id_type

    price_text = given("price")
    if price_text is not None or not partial:
        price = _parse_price(price_text or "", shop.currency)
        if isinstance(price, str):
            return price
        fields["price"] = price
    quantity_text = given("quantity")
    if quantity_text is not None or not partial:
        quantity = _parse_count(quantity_text or "0", "quantity")
        if isinstance(quantity, str):
            return quantity
        fields["quantity"] = quantity
    state_text = given("state")
    if state_text is not None or not partial:
        if not state_text:
            return "The offer state is mandatory"
        if state_text not in rules.offer_states:
            return f"The offer state '{state_text}' is unknown"
        fields["state"] = state_text
    logistic = given("logistic-class")
    if logistic is not None or not partial:
        code = logistic or rules.default_logistic_class
        if code not in rules.logistic_classes:
            return f"The logistic class '{code}' is unknown"
        fields["logistic-class"] = code
    leadtime = given("leadtime-to-ship")
    if leadtime:
        parsed = _parse_count(leadtime, "leadtime-to-ship")
        if isinstance(parsed, str):
            return parsed
        fields["leadtime-to-ship"] = parsed
    elif not partial:
        fields["leadtime-to-ship"] = shop.leadtime_to_ship
    alert = given("min-quantity-alert")
    if alert:
        parsed_alert = _parse_count(alert, "min-quantity-alert")
        if isinstance(parsed_alert, str):
            return parsed_alert
        fields["min-quantity-alert"] = parsed_alert
    elif not partial:
        fields["min-quantity-alert"] = None
    for column in ("description", "internal-description"):
        text = given(column)
        if text is not None or not partial:
            fields[column] = text or ""
    custom = {code: values[code].strip() for code in rules.offer_fields if code in values}
    additional: dict[str, str] | None = None  # None: unchanged (a partial update not naming any)
    if not partial:
        additional = {code: value for code, value in custom.items() if value}
    elif custom:
        kept = existing.additional_fields if existing is not None else {}
        additional = {code: value for code, value in {**kept, **custom}.items() if value}
    return _Draft(sku, product, product_id, product_id_type, fields, additional)


def _update(offer: Offer, draft: _Draft, now: datetime) -> None:
    f = draft.fields
    if "price" in f:
        offer.price = _dec(f["price"])
    if "quantity" in f:
        offer.quantity = _int(f["quantity"])
    if "state" in f:
        offer.state_code = str(f["state"])
    if "logistic-class" in f:
        offer.logistic_class = str(f["logistic-class"])
    if "leadtime-to-ship" in f:
        offer.leadtime_to_ship = _int(f["leadtime-to-ship"])
    if "min-quantity-alert" in f:
        offer.min_quantity_alert = _opt_int(f["min-quantity-alert"])
    if "description" in f:
        offer.description = str(f["description"])
    if "internal-description" in f:
        offer.internal_description = str(f["internal-description"])
    if draft.additional is not None:
        offer.additional_fields = dict(draft.additional)
    offer.product_id, offer.product_id_type = draft.product_id, draft.product_id_type
    offer.last_updated = now


def _parse_price(text: str, currency: str) -> Decimal | str:
    if not text:
        return "The price is mandatory"
    try:
        value = Decimal(text)
    except InvalidOperation:
        return f"The price '{text}' is not a valid number"
    if not value.is_finite() or value <= 0:
        return f"The price '{text}' must be greater than zero"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > minor_units(currency):
        return f"The price '{text}' has more decimals than {currency} allows"
    return value


def _parse_count(text: str, column: str) -> int | str:
    try:
        value = int(text)
    except ValueError:
        return f"The {column} '{text}' is not a whole number"
    if value < 0:
        return f"The {column} '{text}' must not be negative"
    return value


def _dec(value: object) -> Decimal:
    assert isinstance(value, Decimal)
    return value


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _opt_int(value: object) -> int | None:
    return None if value is None else _int(value)


def error_report_csv(imp: OfferImport) -> bytes | None:
    """OF03: the lines in error, each with its original values plus ``error-line`` (its line number in
    the file, header = 1) and ``error-message``.

    ``None`` when the import has no error report (not finished, or no line in error).
    """
    if imp.status is not ImportStatus.COMPLETE or imp.lines_in_error == 0:
        return None
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow([*imp.columns, ERROR_LINE_COLUMN, ERROR_COLUMN])
    for row in imp.rows:
        if row.error is not None:
            writer.writerow([*(row.values.get(c, "") for c in imp.columns), row.line_number, row.error])
    return out.getvalue().encode("utf-8")
