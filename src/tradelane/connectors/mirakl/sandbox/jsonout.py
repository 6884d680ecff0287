"""JSON rendering that writes ``Decimal`` amounts as exact JSON numbers (never through float)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal

from starlette.responses import Response


def dumps(value: object) -> str:
    """Serialise ``value``; Decimals become plain JSON numbers (``12.50``), floats are refused."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: object, out: list[str]) -> None:
    if value is None or isinstance(value, bool | int | str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot render non-finite decimal {value}")
        out.append(format(value, "f"))
    elif isinstance(value, float):
        raise TypeError("floats are not rendered: use Decimal for amounts")
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, Sequence):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot render {type(value).__name__} as JSON")


class MiraklJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return dumps(content).encode("utf-8")
