"""Selection rules (pure): any of the labels, all of the conditions; validation and the stored form."""

from __future__ import annotations

import pytest

from tradelane.domain.errors import ValidationError
from tradelane.domain.selection import ALL, Selection, from_json, parse_where, selection


def test_all_selects_everything_and_says_so() -> None:
    assert ALL.is_all and selection() == ALL
    assert ALL.matches([], {}) and ALL.matches(None, None)
    assert ALL.describe() == "all products"
    assert from_json(None) == ALL and from_json({"labels": [], "where": []}) == ALL


def test_any_label_selects() -> None:
    rule = selection(["summer", "sale"])
    assert rule.matches(["sale"], {})
    assert rule.matches(["x", "summer"], {})
    assert not rule.matches(["winter"], {})
    assert not rule.matches([], {})
    assert not rule.matches(["Summer"], {})  # exact, case included


def test_every_condition_must_hold() -> None:
    rule = selection(["summer"], ["color=red", "size=M"])
    assert rule.matches(["summer"], {"color": "red", "size": "M"})
    assert not rule.matches(["summer"], {"color": "red"})
    assert not rule.matches(["summer"], {"color": "blue", "size": "M"})
    assert not rule.matches(["winter"], {"color": "red", "size": "M"})


def test_conditions_alone_and_value_types() -> None:
    rule = selection(where=["color=red"])
    assert rule.matches([], {"color": "red"})
    assert not rule.matches(["anything"], {})
    assert selection(where=["tags=a"]).matches([], {"tags": ["b", "a"]})
    assert selection(where=["n=42"]).matches([], {"n": 42})
    assert selection(where=["ok=true"]).matches([], {"ok": True})
    assert not selection(where=["n=42"]).matches([], {"n": None})


def test_parse_where_keeps_equals_in_the_value_and_strips() -> None:
    assert parse_where(" formula = a=b ") == ("formula", "a=b")
    for bad in ("color", "=red", "color=", "  =  "):
        with pytest.raises(ValidationError):
            parse_where(bad)


def test_normalisation_and_refusals() -> None:
    rule = selection([" summer ", "summer", "sale"], ["color=red", ("color", "red")])
    assert rule == Selection(("summer", "sale"), (("color", "red"),))
    with pytest.raises(ValidationError, match="cannot equal both"):
        selection(where=["color=red", "color=blue"])
    with pytest.raises(ValidationError, match="empty"):
        selection(["  "])
    with pytest.raises(ValidationError, match="longer"):
        selection(["x" * 201])
    with pytest.raises(ValidationError, match="at most"):
        selection([f"l{i}" for i in range(101)])


def test_stored_form_round_trips_and_describes() -> None:
    rule = selection(["summer", "sale"], ["color=red"])
    assert from_json(rule.as_json()) == rule
    assert rule.as_json() == {"labels": ["summer", "sale"], "where": [["color", "red"]]}
    assert rule.describe() == "labels summer or sale and color=red"
    assert selection(["a"]).describe() == "label a"
