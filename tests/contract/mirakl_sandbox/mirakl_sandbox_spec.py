"""Validate bodies against the Mirakl seller OpenAPI spec (Draft 2020-12, ``$ref`` resolved in-file).

Two deliberate adjustments to the spec, both applied to an in-memory copy:

* Documented nullability. Many properties are described as null in some situations ("Null before
  shipping" on ``customer.billing_address`` / ``shipping_address``, which are also *required*) while
  their schema types do not allow ``null``; A02's ``closed_from`` / ``closed_to`` say "Nullable.".
  A property whose description mentions ``null`` (or ``nullable``) accepts ``null`` here; every other
  property must have its declared type (the spec's OR11 *example* breaks this, e.g.
  ``"quote_id": null`` — MANIFEST.md: trust the schema, not the example).
* Strict mode (default): objects may not carry properties the schema does not declare, so a typo
  in a sandbox field name fails. Objects with a ``discriminator`` (custom fields) are left open.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from specs import MIRAKL_SPEC

_URI = "urn:mirakl-seller-spec"
_NULL_WORD = re.compile(r"\bnull(?:able)?\b", re.IGNORECASE)


def spec_path() -> Path:
    path = MIRAKL_SPEC
    if not path.is_file():
        raise FileNotFoundError(f"Mirakl contract not found at {path} (run `make contracts`)")
    return path


@cache
def raw_spec() -> dict[str, Any]:
    return json.loads(spec_path().read_text(encoding="utf-8"))


def _patched(spec: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    doc = copy.deepcopy(spec)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                for name, prop in list(props.items()):
                    if isinstance(prop, dict) and _NULL_WORD.search(prop.get("description", "")):
                        inner = {k: v for k, v in prop.items() if k != "description"}
                        props[name] = {"anyOf": [inner, {"type": "null"}], "description": prop["description"]}
                if strict and "additionalProperties" not in node and "discriminator" not in node:
                    node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc.get("components", {}))
    walk(doc.get("paths", {}))
    return doc


@cache
def _registry(strict: bool) -> Registry:
    resource = Resource.from_contents(_patched(raw_spec(), strict=strict), default_specification=DRAFT202012)
    return Registry().with_resource(_URI, resource)


def _operation(op_id: str) -> tuple[str, str, dict[str, Any]]:
    for path, item in raw_spec()["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") == op_id:
                return method, path, op
    raise KeyError(f"no operation {op_id} in the spec")


def _pointer(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def response_errors(op_id: str, status: int, body: Any, *, strict: bool = True) -> list[str]:
    """Schema violations of ``body`` as operation ``op_id``'s JSON response for ``status``."""
    method, path, op = _operation(op_id)
    response = op["responses"].get(str(status))
    if response is None:
        raise KeyError(f"{op_id} documents no {status} response")
    if "application/json" not in response.get("content", {}):
        raise KeyError(f"{op_id} {status} has no JSON body in the spec")
    ref = f"{_URI}#/paths/{_pointer(path)}/{method}/responses/{status}/content/application~1json/schema"
    return _errors(ref, body, strict)


def request_errors(op_id: str, body: Any, *, strict: bool = True) -> list[str]:
    """Schema violations of ``body`` as operation ``op_id``'s JSON request body."""
    method, path, _ = _operation(op_id)
    ref = f"{_URI}#/paths/{_pointer(path)}/{method}/requestBody/content/application~1json/schema"
    return _errors(ref, body, strict)


def _errors(ref: str, body: Any, strict: bool) -> list[str]:
    validator = Draft202012Validator(
        {"$ref": ref}, registry=_registry(strict), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    ]


def assert_response(op_id: str, status: int, body: Any, *, strict: bool = True) -> None:
    errors = response_errors(op_id, status, body, strict=strict)
    assert not errors, f"{op_id} {status} body violates the spec:\n" + "\n".join(errors[:20])


def assert_request(op_id: str, body: Any) -> None:
    errors = request_errors(op_id, body)
    assert not errors, f"{op_id} request body violates the spec:\n" + "\n".join(errors[:20])
