"""Validate sandbox requests and responses against the committed SP-API models (contracts/amazon).

The models are Swagger 2.0: a body schema lives at ``paths/<path>/<method>/responses/<status>/schema``
(or in the ``in: body`` parameter), with ``$ref`` into ``#/definitions``; they are validated as JSON
Schema draft 4, the dialect Swagger 2.0 schemas are written in. Strict mode (default): objects that do
not say otherwise may not carry undeclared properties, so a misspelt field fails. The listings feed
and its processing report have their own draft-07 schemas, validated as they are.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from jsonschema import Draft4Validator, Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from specs import CONTRACTS_DIR

AMAZON_DIR = CONTRACTS_DIR / "amazon"
FEED_SCHEMA = AMAZON_DIR / "listings-feed-schema-v2.json"
REPORT_SCHEMA = AMAZON_DIR / "listings-feed-processing-report-schema-v2.json"


@cache
def model(name: str) -> dict[str, Any]:
    path = AMAZON_DIR / f"{name}.subset.json"
    if not path.is_file():
        raise FileNotFoundError(f"Amazon contract not found at {path} (run `make contracts`)")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _strict(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(out)
    return out


@cache
def _registry(name: str, strict: bool) -> Registry:
    doc = _strict(model(name)) if strict else model(name)
    return Registry().with_resource(f"urn:{name}", Resource.from_contents(doc, default_specification=DRAFT4))


def _operation(name: str, op_id: str) -> tuple[str, str, dict[str, Any]]:
    for path, item in model(name)["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("operationId") == op_id:
                return method, path, op
    raise KeyError(f"no operation {op_id} in {name}")


def _pointer(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def _errors(name: str, ref: str, body: Any, strict: bool) -> list[str]:
    validator = Draft4Validator(
        {"$ref": f"urn:{name}#{ref}"},
        registry=_registry(name, strict),
        format_checker=Draft4Validator.FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))
    ]


def response_errors(name: str, op_id: str, status: int, body: Any, *, strict: bool = True) -> list[str]:
    method, path, op = _operation(name, op_id)
    response = op["responses"].get(str(status))
    if response is None:
        raise KeyError(f"{op_id} documents no {status} response")
    if "schema" not in response:
        raise KeyError(f"{op_id} {status} has no body schema")
    return _errors(name, f"/paths/{_pointer(path)}/{method}/responses/{status}/schema", body, strict)


def request_errors(name: str, op_id: str, body: Any, *, strict: bool = True) -> list[str]:
    method, path, op = _operation(name, op_id)
    index = next(i for i, p in enumerate(op["parameters"]) if p.get("in") == "body")
    return _errors(name, f"/paths/{_pointer(path)}/{method}/parameters/{index}/schema", body, strict)


def assert_response(name: str, op_id: str, status: int, body: Any) -> None:
    errors = response_errors(name, op_id, status, body)
    assert not errors, f"{op_id} {status} body violates {name}:\n" + "\n".join(errors[:20])


def assert_request(name: str, op_id: str, body: Any) -> None:
    errors = request_errors(name, op_id, body)
    assert not errors, f"{op_id} request body violates {name}:\n" + "\n".join(errors[:20])


@cache
def _schema(path: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((AMAZON_DIR / path).read_text(encoding="utf-8"))
    return data


def document_errors(schema_file: str, doc: Any) -> list[str]:
    validator = Draft7Validator(_schema(schema_file))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(doc)
    ]
