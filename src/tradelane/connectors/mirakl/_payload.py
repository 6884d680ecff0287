"""Typed readers for Mirakl JSON payloads and an exact JSON encoder (pure, no I/O).

Readers take the object, the key and the *path* of the object (``orders[2].customer``) and either return
a value of the announced type or raise :class:`~.errors.MiraklSchemaError` naming the full field path.
Numbers: the client parses JSON with ``parse_float=Decimal``; readers also accept ``float`` (payloads
re-read from storage by a plain JSON parser) and convert it through its shortest ``repr`` — exact for
any number that was written with up to 15 significant digits, which covers money.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tradelane.connectors.mirakl.errors import MiraklSchemaError


def child(path: str, key: str | int) -> str:
    """``child("orders[0]", "customer") == "orders[0].customer"``; ints index lists."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def as_object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MiraklSchemaError(path or "$", f"expected an object, got {_kind(value)}")
    return value


def req(obj: Mapping[str, Any], key: str, path: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise MiraklSchemaError(child(path, key), "required field is missing")
    return value


def req_str(obj: Mapping[str, Any], key: str, path: str, *, allow_empty: bool = False) -> str:
    value = req(obj, key, path)
    if not isinstance(value, str):
        raise MiraklSchemaError(child(path, key), f"expected a string, got {_kind(value)}")
    if not allow_empty and not value.strip():
        raise MiraklSchemaError(child(path, key), "required field is empty")
    return value


def opt_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MiraklSchemaError(child(path, key), f"expected a string, got {_kind(value)}")
    return value


def req_int(obj: Mapping[str, Any], key: str, path: str) -> int:
    return _to_int(req(obj, key, path), child(path, key))


def opt_int(obj: Mapping[str, Any], key: str, path: str) -> int | None:
    value = obj.get(key)
    return None if value is None else _to_int(value, child(path, key))


def req_bool(obj: Mapping[str, Any], key: str, path: str) -> bool:
    value = req(obj, key, path)
    if not isinstance(value, bool):
        raise MiraklSchemaError(child(path, key), f"expected a boolean, got {_kind(value)}")
    return value


def opt_bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise MiraklSchemaError(child(path, key), f"expected a boolean, got {_kind(value)}")
    return value


def req_decimal(obj: Mapping[str, Any], key: str, path: str) -> Decimal:
    return to_decimal(req(obj, key, path), child(path, key))


def opt_decimal(obj: Mapping[str, Any], key: str, path: str) -> Decimal | None:
    value = obj.get(key)
    return None if value is None else to_decimal(value, child(path, key))


def req_datetime(obj: Mapping[str, Any], key: str, path: str) -> datetime:
    return to_datetime(req(obj, key, path), child(path, key))


def opt_datetime(obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    value = obj.get(key)
    return None if value is None else to_datetime(value, child(path, key))


def req_list(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = req(obj, key, path)
    if not isinstance(value, list):
        raise MiraklSchemaError(child(path, key), f"expected an array, got {_kind(value)}")
    return value


def opt_list(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    """Absent or null arrays read as empty."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MiraklSchemaError(child(path, key), f"expected an array, got {_kind(value)}")
    return value


def to_decimal(value: object, path: str) -> Decimal:
    if isinstance(value, bool):
        raise MiraklSchemaError(path, "expected a number, got a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise MiraklSchemaError(path, f"not a decimal number: {value!r}") from None
    else:
        raise MiraklSchemaError(path, f"expected a number, got {_kind(value)}")
    if not result.is_finite():
        raise MiraklSchemaError(path, f"not a finite number: {value!r}")
    return result


def to_datetime(value: object, path: str) -> datetime:
    """ISO 8601 date-time → aware UTC datetime. Mirakl sends UTC (``...Z``); a naive value is read as UTC."""
    if not isinstance(value, str):
        raise MiraklSchemaError(path, f"expected a date-time string, got {_kind(value)}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MiraklSchemaError(path, f"not an ISO 8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """Aware datetime → ``2024-05-01T10:00:00.000Z`` (what Mirakl's date-time query filters take)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_decimal(value: Decimal) -> str:
    """Plain positional notation (``12.50``, never ``1.25E+1``); raises ``ValueError`` if not finite."""
    if not value.is_finite():
        raise ValueError(f"not a finite decimal: {value}")
    return format(value, "f")


def dumps_json(value: object) -> str:
    """JSON text with ``Decimal`` written as exact JSON numbers (the stdlib encoder rejects Decimal, and
    going through float would round). Supports dict/list/tuple/str/int/bool/None/Decimal/float."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: object, out: list[str]) -> None:
    if value is None or isinstance(value, bool | str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Decimal):
        out.append(format_decimal(value))
    elif isinstance(value, int | float):
        out.append(json.dumps(value, allow_nan=False))
    elif isinstance(value, Mapping):
        out.append("{")
        for index, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _to_int(value: object, path: str) -> int:
    if isinstance(value, bool):
        raise MiraklSchemaError(path, "expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise MiraklSchemaError(path, f"expected an integer, got {_kind(value)} {value!r}")


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
