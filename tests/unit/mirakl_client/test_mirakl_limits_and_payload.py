"""Rate-limit declarations and the low-level payload helpers (exact JSON, readers, dates)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tradelane.connectors.mirakl import _payload as p
from tradelane.connectors.mirakl.errors import MiraklSchemaError
from tradelane.connectors.mirakl.limits import (
    DEFAULT_LIMITS,
    FALLBACK_LIMIT,
    RateLimit,
    limit_for,
    merge_limits,
)


def test_published_mirakl_guidance_is_declared() -> None:
    assert DEFAULT_LIMITS["OR11"] == RateLimit(1, 60.0, DEFAULT_LIMITS["OR11"].note)
    assert (DEFAULT_LIMITS["OF01"].calls, DEFAULT_LIMITS["OF01"].per_seconds) == (1, 60.0)
    assert (DEFAULT_LIMITS["OF24"].calls, DEFAULT_LIMITS["OF24"].per_seconds) == (1, 60.0)
    assert (DEFAULT_LIMITS["OR21"].calls, DEFAULT_LIMITS["OR21"].per_seconds) == (100, 60.0)
    assert DEFAULT_LIMITS["RT11"].min_interval == 300.0


def test_every_client_op_has_a_limit() -> None:
    for op in (
        "A01",
        "OF01",
        "OF02",
        "OF03",
        "OF21",
        "OF24",
        "OR11",
        "OR21",
        "OR23",
        "OR24",
        "OR28",
        "OR29",
        "OR72",
        "OR73",
        "OR74",
        "SH21",
        "ST01",
        "RT11",
        "M01",
    ):
        assert op in DEFAULT_LIMITS, op
        assert DEFAULT_LIMITS[op].note


def test_merge_overrides_without_touching_defaults() -> None:
    merged = merge_limits({"or11": RateLimit(1, 300.0), "OR99": RateLimit(5, 1.0)})
    assert merged["OR11"] == RateLimit(1, 300.0)
    assert merged["OR99"] == RateLimit(5, 1.0)
    assert merged["OF01"] == DEFAULT_LIMITS["OF01"]
    assert DEFAULT_LIMITS["OR11"].per_seconds == 60.0
    with pytest.raises(TypeError):
        DEFAULT_LIMITS["OR11"] = RateLimit(9, 1.0)  # type: ignore[index]
    with pytest.raises(TypeError):
        merge_limits({"OR11": (1, 60)})  # type: ignore[dict-item]


def test_limit_for_falls_back() -> None:
    assert limit_for("or11") == DEFAULT_LIMITS["OR11"]
    assert limit_for("XX01") == FALLBACK_LIMIT


@pytest.mark.parametrize(("calls", "per"), [(0, 60.0), (1, 0.0), (1, -1.0)])
def test_rate_limit_validates(calls: int, per: float) -> None:
    with pytest.raises(ValueError):
        RateLimit(calls, per)


# ---------------------------------------------------------------------------------------------- payload


def test_dumps_json_writes_decimals_exactly() -> None:
    text = p.dumps_json({"a": Decimal("0.10"), "b": [Decimal("1E+3"), 2, 2.5, True, None, 'é"x'], "c": ()})
    assert text == '{"a":0.10,"b":[1000,2,2.5,true,null,"é\\"x"],"c":[]}'
    assert json.loads(text, parse_float=Decimal)["a"] == Decimal("0.10")


@pytest.mark.parametrize("value", [Decimal("NaN"), float("inf"), {1: "x"}, object()])
def test_dumps_json_refuses_what_json_cannot_hold(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        p.dumps_json(value)


def test_format_datetime_requires_aware_and_converts_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert p.format_datetime(datetime(2024, 5, 1, 12, 0, tzinfo=plus_two)) == "2024-05-01T10:00:00.000Z"
    with pytest.raises(ValueError):
        p.format_datetime(datetime(2024, 5, 1, 12, 0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00.5+02:00", datetime(2024, 5, 1, 8, 0, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
    ],
)
def test_to_datetime(text: str, expected: datetime) -> None:
    assert p.to_datetime(text, "x") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.10"), Decimal("1.10")),
        (3, Decimal(3)),
        (19.99, Decimal("19.99")),
        (" 2.5 ", Decimal("2.5")),
    ],
)
def test_to_decimal(value: object, expected: Decimal) -> None:
    assert p.to_decimal(value, "x") == expected


@pytest.mark.parametrize("value", [True, "abc", None, [1], Decimal("Infinity")])
def test_to_decimal_rejects(value: object) -> None:
    with pytest.raises(MiraklSchemaError) as info:
        p.to_decimal(value, "orders[0].price")
    assert info.value.field_path == "orders[0].price"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (3, True),
        (Decimal("3"), True),
        (3.0, True),
        (3.5, False),
        (True, False),
        ("3", False),
        (float("nan"), False),
        (Decimal("NaN"), False),
    ],
)
def test_req_int(value: object, ok: bool) -> None:
    if ok:
        assert p.req_int({"n": value}, "n", "x") == 3
    else:
        with pytest.raises(MiraklSchemaError):
            p.req_int({"n": value}, "n", "x")


def test_child_paths() -> None:
    assert p.child("", "orders") == "orders"
    assert p.child("orders", 3) == "orders[3]"
    assert p.child("orders[3]", "customer") == "orders[3].customer"
