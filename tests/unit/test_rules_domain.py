"""Order rules, pure: validation of definitions, attribute rules, publishing conditions and decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from tradelane.domain.errors import ValidationError
from tradelane.domain.rule_fields import MISSING, resolve_field, validate_field_path
from tradelane.domain.rules import (
    DEFAULT_REASON,
    AttributeMode,
    AttributeRule,
    Condition,
    Operator,
    PublishRule,
    apply_attribute_rules,
    decide_publish,
    evaluate_condition,
    parse_attribute_rule,
    parse_publish_rule,
    parse_rule,
)


def _order(**overrides: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": 7,
        "channel": "shop-fr",
        "marketplace_order_id": "MO-1",
        "state": "SHIPPING",
        "currency": "EUR",
        "customer_message": "Leave at the door",
        "attributes": {"tags": "gift"},
        "shipping_address": {"country": "FR", "city": "Lyon"},
        "billing_address": None,
        "third_party_managed": False,
        "created_at": datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        "lines": [
            {"line_id": "1", "sku": "A-1", "quantity": 2, "unit_price": Decimal("19.90")},
            {"line_id": "2", "sku": "B-2", "quantity": 1, "unit_price": Decimal("5")},
        ],
    }
    order.update(overrides)
    return order


def _attr(**definition: Any) -> AttributeRule:
    return parse_attribute_rule(definition)


def _publish(field: str, op: str, value: str | None = None, **decisions: Any) -> PublishRule:
    condition: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        condition["value"] = value
    return parse_publish_rule({"condition": condition, **decisions})


# --- attribute rules ----------------------------------------------------------------------------


def test_constant_tag_is_appended_to_existing_tags_without_duplicates():
    rules = [_attr(attribute="tags", value="shop-fr"), _attr(attribute="tags", value="GIFT, vip")]
    outcome = apply_attribute_rules(rules, _order())
    assert outcome.attributes == {"tags": "gift, shop-fr, vip"}
    assert [s.applied for s in outcome.steps] == [True, True]
    # Feeding the result back in changes nothing: appending is idempotent.
    again = apply_attribute_rules(rules, _order(attributes=outcome.attributes))
    assert again.attributes == outcome.attributes


def test_tags_default_to_append_and_other_attributes_to_set():
    assert _attr(attribute="tags", value="x").mode is AttributeMode.APPEND
    assert _attr(attribute="warehouse", value="x").mode is AttributeMode.SET
    rules = [_attr(attribute="tags", value="only", mode="set"), _attr(attribute="warehouse", value="W1")]
    outcome = apply_attribute_rules(rules, _order(attributes={"tags": "a, b", "warehouse": "W0"}))
    assert outcome.attributes == {"tags": "only", "warehouse": "W1"}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("shipping_address.country", "FR"),
        ("customer_message", "Leave at the door"),
        ("marketplace_order_id", "MO-1"),
        ("channel", "shop-fr"),
        ("lines.0.unit_price", "19.90"),
        ("lines.*.sku", "A-1, B-2"),
        ("created_at", "2026-11-25T12:00:00+00:00"),
        ("third_party_managed", "false"),
    ],
)
def test_attribute_mapped_from_an_order_field(source: str, expected: str):
    outcome = apply_attribute_rules([_attr(attribute="origin", **{"from": source})], _order())
    assert outcome.attributes["origin"] == expected


@pytest.mark.parametrize(
    "order",
    [
        _order(shipping_address=None),
        _order(shipping_address={}),
        _order(shipping_address={"country": "  "}),
        {k: v for k, v in _order().items() if k != "shipping_address"},
        _order(shipping_address="not an object"),
    ],
)
def test_missing_source_field_skips_the_rule(order: dict[str, Any]):
    rules = [
        _attr(attribute="country", **{"from": "shipping_address.country"}),
        _attr(attribute="x", value="1"),
    ]
    outcome = apply_attribute_rules(rules, order)
    assert "country" not in outcome.attributes
    assert outcome.attributes["x"] == "1"
    assert outcome.steps[0].applied is False
    assert outcome.steps[0].note == "skipped: shipping_address.country is missing"


def test_rules_see_the_attributes_of_earlier_rules():
    rules = [
        _attr(attribute="country", **{"from": "shipping_address.country"}),
        _attr(attribute="tags", **{"from": "attributes.country"}),
    ]
    assert apply_attribute_rules(rules, _order(attributes={})).attributes == {"country": "FR", "tags": "FR"}


def test_attributes_of_the_order_are_read_as_text():
    order = _order(attributes={"a": 1, "b": None, "c": {"x": 1}, "d": " ", "tags": ["x", " ", "Y", {}]})
    assert apply_attribute_rules([], order).attributes == {"a": "1", "tags": "x, Y"}


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"attribute": "tags"}, "exactly one of 'value'"),
        ({"attribute": "tags", "value": "x", "from": "channel"}, "exactly one of 'value'"),
        ({"attribute": "tags", "value": "x", "colour": 1}, "unknown key 'colour'"),
        ({"attribute": "a.b", "value": "x"}, "attribute name 'a.b' is invalid"),
        ({"attribute": "tags", "value": "x", "mode": "merge"}, "unknown mode 'merge'"),
        ({"attribute": "tags", "value": "  "}, "'value' must not be empty"),
        ({"attribute": "tags", "value": "a\x00b"}, "control characters"),
        ({"attribute": "tags", "value": 3}, "'value' must be a string"),
        ({"attribute": "tags", "from": "tags"}, "did you mean 'attributes.tags'"),
        ({"attribute": "tags", "from": "shipping_address.contry"}, "did you mean 'country'"),
        ({"attribute": "tags", "from": "shiping_address.country"}, "did you mean 'shipping_address'"),
        ("tags=x", "must be a JSON object"),
    ],
)
def test_attribute_rule_validation(definition: Any, message: str):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_attribute_rule(definition)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"condition": {"field": "attributes.tags", "op": "like", "value": "x"}}, "unknown operator 'like'"),
        ({"condition": {"field": "attributes tags", "op": "exists"}}, "malformed"),
        ({"condition": {"field": "attributes..tags", "op": "exists"}}, "empty segment"),
        ({"condition": {"field": "lines.x.sku", "op": "exists"}}, "lines.<n>.<field>"),
        ({"condition": {"field": "id.x", "op": "exists"}}, "has no sub-fields"),
        ({"condition": {"field": "attributes.tags", "op": "exists", "value": "x"}}, "takes no 'value'"),
        ({"condition": {"field": "attributes.tags", "op": "contains_text"}}, "needs a 'value'"),
        (
            {"condition": {"field": "attributes.tags", "op": "exists"}, "then": None, "otherwise": None},
            "decide",
        ),
        ({"condition": {"field": "attributes.tags", "op": "exists"}, "then": "yes"}, "'then' must be"),
        ({"then": True}, "needs a 'condition'"),
        ({"condition": {"field": "attributes.tags", "op": "exists"}, "else": False}, "unknown key 'else'"),
    ],
)
def test_publish_rule_validation(definition: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_publish_rule(definition)


def test_unknown_kind_is_refused():
    with pytest.raises(ValidationError, match="unknown rule kind 'route'"):
        parse_rule("route", {})


def test_definitions_round_trip_normalised():
    attribute = parse_attribute_rule({"attribute": "tags", "value": "  x  "})
    assert attribute.to_definition() == {"attribute": "tags", "mode": "append", "value": "x"}
    assert parse_attribute_rule(attribute.to_definition()) == attribute
    publish = _publish("attributes.tags", "contains_text", "X", otherwise=None)
    assert publish.to_definition() == {
        "condition": {"field": "attributes.tags", "op": "contains_text", "value": "X"},
        "then": True,
        "otherwise": None,
    }
    assert parse_publish_rule(publish.to_definition()) == publish


@pytest.mark.parametrize(
    "path",
    [
        "customer_message",
        "attributes.tags",
        "shipping_address.country",
        "billing_address.zip_code",
        "lines.*.sku",
    ],
)
def test_valid_paths(path: str):
    assert validate_field_path(path) == path


def test_resolve_field_never_raises_on_odd_shapes():
    assert resolve_field({"lines": "x"}, "lines.0.sku") is MISSING
    assert resolve_field({"lines": [{"sku": "A"}]}, "lines.3.sku") is MISSING
    assert resolve_field({"lines": [{"sku": "A"}, {}]}, "lines.*.sku") == ["A"]


# --- conditions ---------------------------------------------------------------------------------


def _holds(op: str, value: str | None, attributes: dict[str, Any], field: str = "attributes.tags") -> bool:
    condition = Condition(field, Operator(op), value)
    return evaluate_condition(condition, _order(attributes=attributes))


def test_contains_text_is_a_case_insensitive_substring_also_across_list_spacing():
    assert _holds("contains_text", "FNAC", {"tags": "gift, fnac-es"})
    assert _holds("contains_text", "a, b", {"tags": "a ,b"})
    assert not _holds("contains_text", "amazon", {"tags": "gift, fnac"})
    assert _holds("contains_text", "vip", {"tags": ["gift", "VIP"]})  # a sample may hold a JSON list
    assert not _holds("contains_text", "x", {})


def test_has_item_matches_whole_items_only():
    assert _holds("has_item", "fnac", {"tags": "gift , FNAC"})
    assert not _holds("has_item", "fnac", {"tags": "fnac-es"})


def test_negations_and_missing_fields():
    assert _holds("not_contains_text", "fnac", {})
    assert _holds("not_contains_text", "fnac", {"tags": "amazon"})
    assert not _holds("not_contains_text", "fnac", {"tags": "FNAC"})
    assert _holds("not_equals", "x", {})
    assert _holds("not_exists", None, {"tags": ""})
    assert not _holds("exists", None, {"tags": "  "})
    assert _holds("exists", None, {"tags": "a"})


def test_equals_compares_the_whole_value():
    assert _holds("equals", "fr", {}, field="shipping_address.country")
    assert not _holds("equals", "F", {}, field="shipping_address.country")
    assert _holds("equals", "2", {}, field="lines.0.quantity")


# --- publishing decisions -----------------------------------------------------------------------


def test_first_deciding_rule_wins_and_the_reason_names_it():
    rules = [
        _publish("attributes.tags", "contains_text", "vip", otherwise=None),
        _publish("attributes.tags", "contains_text", "shop-fr"),
    ]
    rules = [PublishRule(r.condition, r.then, r.otherwise, rule_id=i) for i, r in enumerate(rules, start=11)]
    yes = decide_publish(rules, _order(attributes={"tags": "SHOP-FR"}))
    assert (yes.publish, yes.rule_id) == (True, 12)
    assert yes.reason == "rule #12 (attributes.tags contains_text 'shop-fr') matched: publish"
    no = decide_publish(rules, _order(attributes={"tags": "shop-de"}))
    assert (no.publish, no.rule_id) == (False, 12)
    assert no.reason == "rule #12 (attributes.tags contains_text 'shop-fr') did not match: do not publish"
    vip = decide_publish(rules, _order(attributes={"tags": "vip"}))
    assert (vip.publish, vip.rule_id) == (True, 11)


def test_default_is_to_publish():
    assert decide_publish([], _order()).publish is True
    undecided = [_publish("attributes.tags", "exists", then=None, otherwise=True)]
    decision = decide_publish(undecided, _order(attributes={"tags": "x"}))
    assert (decision.publish, decision.reason, decision.rule_id) == (True, DEFAULT_REASON, None)


# --- robustness ---------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
_orders = st.dictionaries(
    st.sampled_from(["attributes", "shipping_address", "lines", "channel", "customer_message"]), _json
)
_paths = st.sampled_from(
    ["attributes.tags", "shipping_address.country", "lines.*.sku", "lines.0.quantity", "customer_message"]
)


@settings(max_examples=200, deadline=None)
@given(order=_orders, path=_paths, op=st.sampled_from(list(Operator)))
def test_rules_never_fail_on_arbitrary_orders(order: dict[str, Any], path: str, op: Operator):
    value = None if op in (Operator.EXISTS, Operator.NOT_EXISTS) else "x"
    evaluate_condition(Condition(path, op, value), order)
    outcome = apply_attribute_rules([_attr(attribute="tags", **{"from": path})], order)
    assert all(isinstance(v, str) and v for v in outcome.attributes.values())
