"""Reading a merchant system's answer body as strict JSON (pure).

A body is stored with the delivery it answered (a JSON column), so what is accepted as JSON here is what
such a column can hold: ``NaN``, ``Infinity`` and numbers beyond float range are not JSON, nor is nesting
deeper than the parser goes. The adapters classify a body that is not JSON by its status and text.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range")
    return number


def strict_json(text: str) -> Any:
    """The body as strict JSON (see the module docstring), or None when it is not."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return None
