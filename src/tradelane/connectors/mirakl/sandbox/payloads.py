"""Strict readers for request payloads: JSON bodies and query parameters.

Each reader raises :class:`SandboxApiError` (400) naming the offending field, the way Mirakl rejects a
malformed call. JSON numbers arrive as ``int`` or ``Decimal`` (bodies are parsed with
``parse_float=Decimal``); Mirakl's JSON binding also accepts numbers sent as strings (the spec's own
OF24 example sends ``"quantity": "5000"``), so the numeric readers do too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from tradelane.connectors.mirakl.sandbox.errors import SandboxApiError, bad_request

#: Offset pagination bounds (Mirakl: ``max`` defaults to 10 and may not exceed 100).
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


def parse_json_body(raw: bytes) -> object:
    if not raw.strip():
        raise bad_request("The request body is empty")
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None


def as_object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise bad_request(f"{where} must be a JSON object")
    return value


def as_list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise bad_request(f"{where} must be a JSON array")
    return value


def get_str(obj: Mapping[str, object], key: str, where: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise bad_request(f"{where}.{key} is required")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{where}.{key} must be a string")
    if required and not value.strip():
        raise bad_request(f"{where}.{key} must not be blank")
    return value


def get_bool(obj: Mapping[str, object], key: str, where: str, *, required: bool = False) -> bool | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise bad_request(f"{where}.{key} is required")
        return None
    if not isinstance(value, bool):
        raise bad_request(f"{where}.{key} must be a boolean")
    return value


def get_int(obj: Mapping[str, object], key: str, where: str, *, required: bool = False) -> int | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise bad_request(f"{where}.{key} is required")
        return None
    if isinstance(value, bool):
        raise bad_request(f"{where}.{key} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise bad_request(f"{where}.{key} must be an integer")


def get_decimal(obj: Mapping[str, object], key: str, where: str, *, required: bool = False) -> Decimal | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise bad_request(f"{where}.{key} is required")
        return None
    if isinstance(value, bool):
        raise bad_request(f"{where}.{key} must be a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            parsed = None
        if parsed is not None and parsed.is_finite():
            return parsed
    raise bad_request(f"{where}.{key} must be a number")


def query_int(
    params: Mapping[str, str], name: str, *, default: int, minimum: int, maximum: int | None = None
) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"The parameter {name} must be an integer, got '{raw}'") from None
    if value < minimum:
        raise bad_request(f"The parameter {name} must be greater than or equal to {minimum}")
    if maximum is not None and value > maximum:
        raise bad_request(f"The parameter {name} must be less than or equal to {maximum}")
    return value


def query_bool(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise bad_request(f"The parameter {name} must be true or false, got '{raw}'")
    return lowered == "true"


def query_datetime(params: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 date-time with an offset (``Z`` or ``+02:00``); a naive one is refused."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("z", "Z"))
    except ValueError:
        raise bad_request(f"The parameter {name} is not an ISO 8601 date-time: '{raw}'") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise bad_request(f"The parameter {name} must carry a time zone (e.g. 2025-01-06T09:00:00Z)")
    return value.astimezone(UTC)


def query_list(params: Mapping[str, str], name: str, *, limit: int = 100) -> list[str] | None:
    """A comma-separated list parameter; more than ``limit`` values is refused as Mirakl does."""
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    values = [v.strip() for v in raw.split(",") if v.strip()]
    if len(values) > limit:
        raise bad_request(f"The limit of {limit} is exceeded for the parameter : {name}")
    return values


def page_window(params: Mapping[str, str]) -> tuple[int, int | None]:
    """``(offset, max)`` of Mirakl offset pagination; ``max`` is ``None`` when ``paginate=false``.

    ``max`` above 100 is refused with a 400 rather than silently capped (the spec only says
    "offset pagination"; refusing surfaces a client bug instead of hiding missing results).
    """
    offset = query_int(params, "offset", default=0, minimum=0)
    paginate = query_bool(params, "paginate")
    size = query_int(params, "max", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
    return offset, (None if paginate is False else size)


def sort_direction(params: Mapping[str, str], *, default: str) -> bool:
    """True when the ``order`` parameter asks for descending order (``asc`` / ``desc``)."""
    raw = (params.get("order") or default).lower()
    if raw not in ("asc", "desc"):
        raise SandboxApiError(400, f"The parameter order must be asc or desc, got '{params.get('order')}'")
    return raw == "desc"
