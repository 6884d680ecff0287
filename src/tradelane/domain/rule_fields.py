"""Field paths into the order read model (pure): their grammar, validation and resolution.

Rules read orders (the dict of :func:`tradelane.services.orders.get_order`, or a sample order of the
same shape) through dotted paths::

    marketplace_order_id | channel | customer_message | ...        a top-level field
    attributes.<name>                                               an order attribute
    shipping_address.<field> | billing_address.<field>              an address field (country, city, ...)
    lines.<n>.<field> | lines.*.<field>                             one line's field / every line's field

A path that does not resolve in a given order is :data:`MISSING`, never an error; values are read as
text by :func:`as_text` (Decimal without exponent, datetimes in ISO 8601, booleans as true/false).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from tradelane.domain.errors import ValidationError
from tradelane.domain.orders import Address

#: Top-level scalar fields of the order read model that rules may read.
ORDER_FIELDS: Final = frozenset(
    {
        "id",
        "channel",
        "marketplace_order_id",
        "state",  # the hub's neutral state (to_ship, cancelled...)
        "marketplace_state",  # the marketplace's own name for it (SHIPPING, UNSHIPPED...)
        "merchant_status",
        "currency",
        "customer_message",
        "third_party_managed",
        "acceptance_deadline",
        "accepted_at",
        "created_at",
        "updated_at",
    }
)
ADDRESS_ROOTS: Final = frozenset({"shipping_address", "billing_address"})
ADDRESS_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(Address))
LINE_FIELDS: Final = frozenset(
    {"line_id", "sku", "offer_sku", "title", "quantity", "unit_price", "currency", "type", "state"}
)

MAX_PATH = 200
ATTRIBUTE_NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")
CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]")


def validate_attribute_name(name: Any) -> str:
    if not isinstance(name, str) or not ATTRIBUTE_NAME.match(name):
        raise ValidationError(
            f"attribute name {name!r} is invalid: use 1-100 letters, digits, '_' or '-' (no dots)"
        )
    return name


def _suggest(segment: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(segment, sorted(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def validate_field_path(path: Any) -> str:
    """``path`` if it names a readable order field (see the module docstring), else ValidationError."""
    if not isinstance(path, str) or not path.strip():
        raise ValidationError("a field path must be a non-empty string such as 'attributes.tags'")
    path = path.strip()
    if len(path) > MAX_PATH or CONTROL_CHARS.search(path) or " " in path:
        raise ValidationError(f"field path {path!r} is malformed (no spaces, at most {MAX_PATH} characters)")
    segments = path.split(".")
    if any(not s for s in segments):
        raise ValidationError(f"field path {path!r} has an empty segment")
    root, rest = segments[0], segments[1:]
    if root in ORDER_FIELDS:
        if rest:
            raise ValidationError(f"field {root!r} has no sub-fields (in {path!r})")
        return path
    if root == "attributes":
        if len(rest) != 1:
            raise ValidationError(f"field path {path!r} must be 'attributes.<name>'")
        validate_attribute_name(rest[0])
        return path
    if root in ADDRESS_ROOTS:
        if len(rest) != 1 or rest[0] not in ADDRESS_FIELDS:
            name = rest[0] if rest else ""
            allowed = ", ".join(sorted(ADDRESS_FIELDS))
            raise ValidationError(
                f"field path {path!r} must be '{root}.<field>' with one of: {allowed}"
                + _suggest(name, ADDRESS_FIELDS)
            )
        return path
    if root == "lines":
        if len(rest) != 2 or not (rest[0] == "*" or rest[0].isdigit()) or rest[1] not in LINE_FIELDS:
            raise ValidationError(
                f"field path {path!r} must be 'lines.<n>.<field>' or 'lines.*.<field>' with one of: "
                + ", ".join(sorted(LINE_FIELDS))
            )
        return path
    roots = ORDER_FIELDS | ADDRESS_ROOTS | {"attributes", "lines"}
    hint = _suggest(root, roots)
    if not hint and not rest and ATTRIBUTE_NAME.match(root):
        hint = f" (did you mean 'attributes.{root}'?)"
    raise ValidationError(f"unknown order field {root!r} in {path!r}{hint}")


# --- reading order fields ---------------------------------------------------------------------


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def resolve_field(order: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` in ``order`` (a list for ``lines.*.x``), or :data:`MISSING`."""
    return _walk(order, path.split("."))


def _walk(current: Any, segments: list[str]) -> Any:
    for index, segment in enumerate(segments):
        if segment == "*" and isinstance(current, list | tuple):
            found = [_walk(item, segments[index + 1 :]) for item in current]
            return [v for v in found if v is not MISSING]
        if isinstance(current, Mapping):
            if segment not in current:
                return MISSING
            current = current[segment]
        elif isinstance(current, list | tuple) and segment.isdigit():
            position = int(segment)
            if position >= len(current):
                return MISSING
            current = current[position]
        else:
            return MISSING
    return current


def as_text(value: Any) -> str | None:
    """A scalar as text (None for missing, empty or non-scalar values)."""
    if value is None or value is MISSING:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, datetime | date):
        text = value.isoformat()
    else:
        return None
    text = text.strip()
    return text or None


def field_texts(order: Mapping[str, Any], path: str) -> list[str]:
    """The non-empty texts at ``path``: one for a scalar, one per scalar item for a list, else none."""
    value = resolve_field(order, path)
    items = value if isinstance(value, list | tuple) else [value]
    return [text for text in (as_text(item) for item in items) if text is not None]


def split_list(text: str | None) -> list[str]:
    """Items of a comma-separated list, trimmed, empties dropped."""
    if not text:
        return []
    return [item.strip() for item in text.split(",") if item.strip()]
