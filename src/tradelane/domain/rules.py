"""Order rules as data (pure: no I/O): validation of stored definitions and their evaluation.

Two kinds of rules exist:

* **attribute rules** (per channel) add or overwrite one order attribute, with a constant ``value`` or a
  value mapped ``from`` an order field. Mode ``set`` replaces the attribute; mode ``append`` treats it as a
  comma-separated list and adds the new items that are not there yet (case-insensitively). List-like
  attributes (:data:`LIST_ATTRIBUTES`, e.g. ``tags``) default to ``append``, every other to ``set``.
  A rule whose source field is missing or empty is skipped; it never fails.
* **publishing rules** (per merchant system, optionally per target channel) hold one :class:`Condition`
  and the decisions ``then`` (condition true) and ``otherwise`` (condition false); a ``None`` decision
  means "no decision: ask the next rule". The first rule (by position) that decides wins; when none
  does, the update is published (updates are offered to every channel and rules narrow them).

Field paths (``attributes.tags``, ``shipping_address.country``...) are described in
:mod:`tradelane.domain.rule_fields`. Text comparisons are case-insensitive and ignore surrounding
whitespace. Definitions are validated strictly (unknown keys, operators or fields raise
:class:`ValidationError` saying which and where) and normalised by ``to_definition`` before being stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from tradelane.domain.errors import ValidationError
from tradelane.domain.rule_fields import (
    CONTROL_CHARS,
    as_text,
    field_texts,
    split_list,
    validate_attribute_name,
    validate_field_path,
)


class RuleKind(StrEnum):
    ATTRIBUTE = "attribute"
    PUBLISH = "publish"


class AttributeMode(StrEnum):
    SET = "set"  # replace the attribute's value
    APPEND = "append"  # add items to a comma-separated list, without duplicates


class Operator(StrEnum):
    """Condition operators of publishing rules (text comparisons are case-insensitive)."""

    CONTAINS_TEXT = "contains_text"  # substring of the value (or of any item of a list)
    NOT_CONTAINS_TEXT = "not_contains_text"  # negation of contains_text (true for a missing field)
    HAS_ITEM = "has_item"  # one comma-separated item equals the value
    EQUALS = "equals"  # the whole value equals
    NOT_EQUALS = "not_equals"  # negation of equals (true for a missing field)
    EXISTS = "exists"  # the field is present and not empty
    NOT_EXISTS = "not_exists"


#: Operators that take no ``value``.
VALUELESS_OPERATORS: Final = frozenset({Operator.EXISTS, Operator.NOT_EXISTS})

#: Attributes holding comma-separated lists: their rules default to mode ``append``.
LIST_ATTRIBUTES: Final = frozenset({"tags"})

MAX_TEXT = 500


# --- definitions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeRule:
    """Set or append ``attribute`` to ``value`` (a constant) or to the value of order field ``source``.

    Exactly one of ``value`` and ``source`` is set. ``rule_id`` is the stored rule's id, if any."""

    attribute: str
    mode: AttributeMode
    value: str | None = None
    source: str | None = None
    rule_id: int | None = None

    def to_definition(self) -> dict[str, Any]:
        result: dict[str, Any] = {"attribute": self.attribute, "mode": self.mode.value}
        if self.source is not None:
            result["from"] = self.source
        else:
            result["value"] = self.value
        return result

    def describe(self) -> str:
        what = f"field {self.source}" if self.source is not None else repr(self.value)
        if self.mode is AttributeMode.APPEND:
            return f"append {what} to {self.attribute}"
        return f"set {self.attribute} to {what}"


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: Operator
    value: str | None = None

    def describe(self) -> str:
        if self.op in VALUELESS_OPERATORS:
            return f"{self.field} {self.op.value}"
        return f"{self.field} {self.op.value} {self.value!r}"


@dataclass(frozen=True, slots=True)
class PublishRule:
    """When ``condition`` holds, publish = ``then``, else ``otherwise``; ``None`` = ask the next rule."""

    condition: Condition
    then: bool | None = True
    otherwise: bool | None = False
    rule_id: int | None = None

    def to_definition(self) -> dict[str, Any]:
        condition: dict[str, Any] = {"field": self.condition.field, "op": self.condition.op.value}
        if self.condition.value is not None:
            condition["value"] = self.condition.value
        return {"condition": condition, "then": self.then, "otherwise": self.otherwise}

    def describe(self) -> str:
        return (
            f"if {self.condition.describe()} then {_decision_text(self.then)} "
            f"otherwise {_decision_text(self.otherwise)}"
        )


def _decision_text(decision: bool | None) -> str:
    if decision is None:
        return "ask the next rule"
    return "publish" if decision else "do not publish"


# --- validation -------------------------------------------------------------------------------


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a JSON object")
    return value


def _check_keys(definition: Mapping[str, Any], allowed: set[str], what: str) -> None:
    for key in definition:
        if key not in allowed:
            raise ValidationError(f"unknown key {key!r} in {what} (allowed: {', '.join(sorted(allowed))})")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{where} must be a string")
    cleaned = value.strip()
    if not cleaned:
        raise ValidationError(f"{where} must not be empty")
    if len(cleaned) > MAX_TEXT:
        raise ValidationError(f"{where} is longer than {MAX_TEXT} characters")
    if CONTROL_CHARS.search(cleaned):
        raise ValidationError(f"{where} must not contain control characters")
    return cleaned


def _decision(value: Any, where: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ValidationError(f"{where} must be true, false or null (ask the next rule)")
    return value


def parse_attribute_rule(definition: Any, *, rule_id: int | None = None) -> AttributeRule:
    """Validate an attribute rule definition (``attribute``, ``value`` or ``from``, optional ``mode``)."""
    what = "an attribute rule"
    definition = _object(definition, f"{what} definition")
    _check_keys(definition, {"attribute", "value", "from", "mode"}, what)
    attribute = validate_attribute_name(definition.get("attribute"))
    has_value, has_source = definition.get("value") is not None, definition.get("from") is not None
    if has_value == has_source:
        raise ValidationError(
            f"{what} needs exactly one of 'value' (a constant) or 'from' (an order field path)"
        )
    value = _text(definition["value"], "'value'") if has_value else None
    source = validate_field_path(definition["from"]) if has_source else None
    raw_mode = definition.get("mode")
    if raw_mode is None:
        mode = AttributeMode.APPEND if attribute in LIST_ATTRIBUTES else AttributeMode.SET
    else:
        try:
            mode = AttributeMode(raw_mode)
        except ValueError:
            allowed = ", ".join(m.value for m in AttributeMode)
            raise ValidationError(f"unknown mode {raw_mode!r} (expected one of: {allowed})") from None
    return AttributeRule(attribute, mode, value, source, rule_id)


def parse_condition(definition: Any) -> Condition:
    definition = _object(definition, "'condition'")
    _check_keys(definition, {"field", "op", "value"}, "a condition")
    field = validate_field_path(definition.get("field"))
    raw_op = definition.get("op")
    try:
        op = Operator(raw_op)
    except ValueError:
        allowed = ", ".join(o.value for o in Operator)
        raise ValidationError(f"unknown operator {raw_op!r} (expected one of: {allowed})") from None
    raw_value = definition.get("value")
    if op in VALUELESS_OPERATORS:
        if raw_value is not None:
            raise ValidationError(f"operator {op.value} takes no 'value'")
        return Condition(field, op)
    if raw_value is None:
        raise ValidationError(f"operator {op.value} needs a 'value'")
    return Condition(field, op, _text(raw_value, "the condition's 'value'"))


def parse_publish_rule(definition: Any, *, rule_id: int | None = None) -> PublishRule:
    """Validate a publishing rule definition (``condition``, optional ``then``/``otherwise``).

    ``then`` defaults to true and ``otherwise`` to false; an explicit null means "ask the next rule"."""
    what = "a publishing rule"
    definition = _object(definition, f"{what} definition")
    _check_keys(definition, {"condition", "then", "otherwise"}, what)
    if "condition" not in definition:
        raise ValidationError(f"{what} needs a 'condition'")
    condition = parse_condition(definition["condition"])
    then = _decision(definition.get("then", True), "'then'")
    otherwise = _decision(definition.get("otherwise", False), "'otherwise'")
    if then is None and otherwise is None:
        raise ValidationError(f"{what} must decide something: 'then' and 'otherwise' are both null")
    return PublishRule(condition, then, otherwise, rule_id)


def parse_rule(
    kind: RuleKind | str, definition: Any, *, rule_id: int | None = None
) -> AttributeRule | PublishRule:
    try:
        kind = RuleKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in RuleKind)
        raise ValidationError(f"unknown rule kind {kind!r} (expected one of: {allowed})") from None
    if kind is RuleKind.ATTRIBUTE:
        return parse_attribute_rule(definition, rule_id=rule_id)
    return parse_publish_rule(definition, rule_id=rule_id)


# --- attribute rules --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeStep:
    """What one attribute rule did: ``applied`` with the attribute's new value, or skipped and why."""

    rule_id: int | None
    attribute: str
    applied: bool
    value: str | None
    note: str


@dataclass(frozen=True, slots=True)
class AttributeOutcome:
    attributes: dict[str, str]
    steps: tuple[AttributeStep, ...]


def base_attributes(order: Mapping[str, Any]) -> dict[str, str]:
    """The order's own attributes as text; a list of scalars becomes a comma list, other non-scalar and
    empty values are left out."""
    raw = order.get("attributes")
    if not isinstance(raw, Mapping):
        return {}
    result: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, list | tuple):  # a sample order may hold a list: read it as a comma list
            text: str | None = ", ".join(t for t in (as_text(item) for item in value) if t is not None)
        else:
            text = as_text(value)
        if text:
            result[str(key)] = text
    return result


def _append(existing: str | None, addition: Sequence[str]) -> str:
    items = split_list(existing)
    seen = {item.casefold() for item in items}
    for item in addition:
        if item.casefold() not in seen:
            seen.add(item.casefold())
            items.append(item)
    return ", ".join(items)


def apply_attribute_rules(rules: Iterable[AttributeRule], order: Mapping[str, Any]) -> AttributeOutcome:
    """The order's attributes after ``rules`` (in the given order), with a trace of each rule.

    Each rule reads the order as left by the previous ones (``from: attributes.x`` sees earlier
    results). Missing or empty sources skip the rule. Appending is idempotent."""
    attributes = base_attributes(order)
    steps: list[AttributeStep] = []
    for rule in rules:
        if rule.source is not None:
            current = {**order, "attributes": attributes}
            texts = field_texts(current, rule.source)
            if not texts:
                steps.append(
                    AttributeStep(
                        rule.rule_id, rule.attribute, False, None, f"skipped: {rule.source} is missing"
                    )
                )
                continue
        else:
            texts = [rule.value or ""]
        if rule.mode is AttributeMode.APPEND:
            additions = [item for text in texts for item in split_list(text)]
            new_value = _append(attributes.get(rule.attribute), additions)
        else:
            new_value = ", ".join(texts)
        if not new_value:
            steps.append(AttributeStep(rule.rule_id, rule.attribute, False, None, "skipped: empty value"))
            continue
        attributes[rule.attribute] = new_value
        steps.append(AttributeStep(rule.rule_id, rule.attribute, True, new_value, rule.describe()))
    return AttributeOutcome(attributes, tuple(steps))


# --- publishing rules -------------------------------------------------------------------------


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _contains(texts: Sequence[str], needle: str) -> bool:
    wanted = _fold(needle)
    # In the raw text, or in the text as a normalised comma list ("a ,b" -> "a, b").
    return any(wanted in _fold(text) or wanted in _fold(", ".join(split_list(text))) for text in texts)


def _has_item(texts: Sequence[str], needle: str) -> bool:
    wanted = _fold(needle)
    return any(_fold(item) == wanted for text in texts for item in split_list(text))


def evaluate_condition(condition: Condition, order: Mapping[str, Any]) -> bool:
    """Whether ``condition`` holds for ``order``. Missing fields never raise: they are simply absent
    (``contains_text``/``equals``/``has_item``/``exists`` are false, their negations true)."""
    texts = field_texts(order, condition.field)
    needle = condition.value or ""
    op = condition.op
    if op is Operator.EXISTS:
        return bool(texts)
    if op is Operator.NOT_EXISTS:
        return not texts
    if op is Operator.CONTAINS_TEXT:
        return _contains(texts, needle)
    if op is Operator.NOT_CONTAINS_TEXT:
        return not _contains(texts, needle)
    if op is Operator.HAS_ITEM:
        return _has_item(texts, needle)
    equal = any(_fold(text) == _fold(needle) for text in texts)
    return equal if op is Operator.EQUALS else not equal


@dataclass(frozen=True, slots=True)
class PublishDecision:
    publish: bool
    reason: str
    rule_id: int | None = None


DEFAULT_REASON: Final = "no publishing rule decided: publish by default"


def decide_publish(rules: Iterable[PublishRule], order: Mapping[str, Any]) -> PublishDecision:
    """The first rule (in the given order) whose outcome is not ``None`` decides; default publish.

    ``order`` should already carry the attributes after the origin channel's attribute rules."""
    for rule in rules:
        matched = evaluate_condition(rule.condition, order)
        outcome = rule.then if matched else rule.otherwise
        if outcome is None:
            continue
        label = f"rule #{rule.rule_id}" if rule.rule_id is not None else "rule"
        verdict = "matched" if matched else "did not match"
        return PublishDecision(
            outcome,
            f"{label} ({rule.condition.describe()}) {verdict}: {_decision_text(outcome)}",
            rule.rule_id,
        )
    return PublishDecision(True, DEFAULT_REASON)
