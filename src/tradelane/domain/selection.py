"""Which products a channel offers: its selection (pure; no I/O).

A selection is either **every product** (:data:`ALL`, the state of every channel until an operator
chooses otherwise) or a rule made of labels and attribute conditions:

* a product is selected when it carries **any** of the rule's labels (labels are compared exactly,
  case included, as the catalog stores them) **and** satisfies **every** condition;
* a condition ``name=value`` holds when the product's attribute ``name`` equals ``value`` exactly (an
  attribute holding a list holds the condition when one of its items equals ``value``; numbers and
  booleans are compared by their JSON text: ``42``, ``true``);
* a rule without labels selects on its conditions alone; a rule needs at least one label or condition
  (no labels and no conditions is :data:`ALL`, spelled as such).

The stored form (:meth:`Selection.as_json`) is ``{"labels": [...], "where": [[name, value], ...]}``;
:data:`ALL` is stored as no row at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tradelane.domain.errors import ValidationError

#: Longest label or attribute name / value a rule may hold (the catalog's own limits are looser).
MAX_TEXT = 200
#: Most labels and conditions a rule may hold.
MAX_TERMS = 100


@dataclass(frozen=True, slots=True)
class Selection:
    """A channel's selection: ``labels`` (any of) and ``where`` conditions (all of); both empty means
    every product (:data:`ALL`). Build one with :func:`selection` to get validation and normalisation."""

    labels: tuple[str, ...] = ()
    where: tuple[tuple[str, str], ...] = ()

    @property
    def is_all(self) -> bool:
        return not self.labels and not self.where

    def matches(self, labels: Iterable[str] | None, attributes: Mapping[str, Any] | None) -> bool:
        """True when a product with these ``labels`` and ``attributes`` is selected (see the module)."""
        if self.is_all:
            return True
        if self.labels:
            wanted = self.labels
            if not any(label in wanted for label in labels or ()):
                return False
        attrs = attributes or {}
        return all(_holds(attrs.get(name), value) for name, value in self.where)

    def describe(self) -> str:
        """One line for people: ``all products``, ``label A or B and colour=red``..."""
        if self.is_all:
            return "all products"
        parts: list[str] = []
        if self.labels:
            noun = "label" if len(self.labels) == 1 else "labels"
            parts.append(f"{noun} " + " or ".join(self.labels))
        parts.extend(f"{name}={value}" for name, value in self.where)
        return " and ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "where": [[name, value] for name, value in self.where]}


#: Every product of the tenant: today's behaviour, and that of every channel without a selection.
ALL = Selection()


def _holds(actual: Any, value: str) -> bool:
    if isinstance(actual, list | tuple):
        return any(_text(item) == value for item in actual)
    return actual is not None and _text(actual) == value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _clean(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be text, not {type(text).__name__}")
    cleaned = text.strip()
    if not cleaned:
        raise ValidationError(f"{what} must not be empty")
    if len(cleaned) > MAX_TEXT:
        raise ValidationError(f"{what} is longer than {MAX_TEXT} characters: {cleaned[:40]!r}...")
    return cleaned


def parse_where(text: str) -> tuple[str, str]:
    """``"name=value"`` → ``(name, value)``, both stripped (the value may itself contain ``=``)."""
    name, sep, value = text.partition("=")
    if not sep:
        raise ValidationError(f"condition {text!r} must be written attribute=value")
    return _clean(name, f"attribute name in {text!r}"), _clean(value, f"value in {text!r}")


def selection(
    labels: Iterable[str] = (),
    where: Iterable[str | Sequence[str]] = (),
) -> Selection:
    """A validated selection: labels stripped and de-duplicated (order kept), conditions as ``name=value``
    text or ``(name, value)`` pairs; the same attribute may not be given two values (no product could
    match). No labels and no conditions gives :data:`ALL`."""
    clean_labels = tuple(dict.fromkeys(_clean(label, "label") for label in labels))
    pairs: list[tuple[str, str]] = []
    for item in where:
        if isinstance(item, str):
            pairs.append(parse_where(item))
        elif len(item) == 2:
            pairs.append((_clean(item[0], "attribute name"), _clean(item[1], "attribute value")))
        else:
            raise ValidationError(f"condition {item!r} must be an [attribute, value] pair")
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name in seen and seen[name] != value:
            raise ValidationError(
                f"attribute {name!r} cannot equal both {seen[name]!r} and {value!r}: no product would match"
            )
        seen[name] = value
    unique = tuple(dict.fromkeys(pairs))
    if len(clean_labels) + len(unique) > MAX_TERMS:
        raise ValidationError(f"a selection holds at most {MAX_TERMS} labels and conditions")
    return Selection(clean_labels, unique)


def from_json(doc: Mapping[str, Any] | None) -> Selection:
    """The selection stored as :meth:`Selection.as_json` (None: :data:`ALL`)."""
    if not doc:
        return ALL
    return selection(doc.get("labels") or (), doc.get("where") or ())
