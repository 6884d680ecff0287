#!/usr/bin/env python3
"""Regenerate the marketplace contract subsets committed under ``contracts/`` (``make contracts``).

The upstream contracts are large (the Mirakl seller OpenAPI file is 2.6 MB, 122 operations) and are not
part of this repository. The tests and sandboxes validate against a few operations only, so this script
keeps exactly those: each listed operation (its path item reduced to the listed methods, path-level
parameters kept) plus every component it reaches through ``$ref``, transitively. Top-level ``openapi``,
``info``, ``servers`` and ``components.securitySchemes`` are kept as they are. Output is deterministic
(sorted keys, two-space indent, trailing newline), so regenerating from the same upstream file changes
nothing.

Upstream folder, first match wins:

1. ``--specs-dir DIR``;
2. the ``TRADELANE_SPECS_DIR`` environment variable;
3. ``../shared/specs`` beside the repository root (the read-only reference folder of the development
   machine; see its ``MANIFEST.md`` for source repository, commit and licence).

If none exists the script stops with an error naming the places it looked. Standard library only.

Swagger 2.0 files (the Amazon SP-API models) are reduced the same way, their ``$ref`` targets being
``#/definitions/<name>``; top-level ``swagger``, ``info``, ``host``, ``schemes``, ``consumes`` and
``produces`` are kept. Some upstream files are copied whole, byte for byte (the JSON schemas of the
listings feed and its processing report, their examples, Amazon's LICENSE).

Written files: ``contracts/mirakl/mirakl-seller-openapi.subset.json``, ``contracts/amazon/*`` and
``contracts/SOURCES.md`` (upstream path, source repository @ commit, licence, SHA-256 of the upstream
file, operations kept).
``--check`` regenerates in memory and exits 1 if the committed files differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = REPO / "contracts"
DEFAULT_SPECS_DIR = REPO.parent / "shared" / "specs"
ENV_VAR = "TRADELANE_SPECS_DIR"


@dataclass(frozen=True)
class Contract:
    """One upstream file and the subset kept of it."""

    name: str
    upstream: str  # path relative to the specs folder
    output: str  # path relative to ``contracts/``
    source: str  # repository @ commit it was published in
    licence: str
    operations: tuple[str, ...]  # operationIds kept; empty with ``whole``
    whole: bool = False  # copy the upstream file byte for byte instead of extracting a subset


# The Mirakl seller-API operations the client (connectors/mirakl/client.py) calls and the sandbox
# (connectors/mirakl/sandbox/operations.py) serves. tests/contract/test_contracts_subset.py fails when the
# sandbox serves an operation missing here.
MIRAKL = Contract(
    name="Mirakl Marketplace Platform, seller (shop) API, OpenAPI 3.1",
    upstream="mirakl/mirakl-mmp-seller-openapi.json",
    output="mirakl/mirakl-seller-openapi.subset.json",
    source="api-evangelist/mirakl @ 17e47e7c, `openapi/_original/`",
    licence="none stated upstream; kept as reference data only (interface description, not code)",
    operations=(
        "A01",
        "A02",
        "M01",
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
        "RE01",
        "RT11",
        "SH21",
        "ST01",
    ),
)

_AMAZON_SOURCE = "amzn/selling-partner-api-models @ 34dc93fe"
_AMAZON_LICENCE = "Apache-2.0 (copied beside the files as contracts/amazon/LICENSE)"


def _amazon(name: str, upstream: str, output: str, operations: tuple[str, ...] = ()) -> Contract:
    return Contract(
        name=name,
        upstream=f"amazon/{upstream}",
        output=f"amazon/{output}",
        source=_AMAZON_SOURCE,
        licence=_AMAZON_LICENCE,
        operations=operations,
        whole=not operations,
    )


# The SP-API operations the Amazon sandbox (connectors/amazon/sandbox/operations.py) serves and the
# client calls; tests/contract/test_contracts_subset.py fails when the sandbox serves one missing here.
AMAZON: tuple[Contract, ...] = (
    _amazon(
        "Amazon SP-API Orders API 2026-01-01 (Swagger 2.0)",
        "orders_2026-01-01.json",
        "orders_2026-01-01.subset.json",
        ("searchOrders", "getOrder"),
    ),
    _amazon(
        "Amazon SP-API Orders API v0 (Swagger 2.0; only confirmShipment is current)",
        "ordersV0.json",
        "ordersV0.subset.json",
        ("confirmShipment",),
    ),
    _amazon(
        "Amazon SP-API Feeds API 2021-06-30 (Swagger 2.0)",
        "feeds_2021-06-30.json",
        "feeds_2021-06-30.subset.json",
        ("createFeedDocument", "getFeedDocument", "createFeed", "getFeed", "cancelFeed"),
    ),
    _amazon(
        "Amazon SP-API Listings Items API 2021-08-01 (Swagger 2.0)",
        "listingsItems_2021-08-01.json",
        "listingsItems_2021-08-01.subset.json",
        (
            "searchListingsItems",
            "getListingsItem",
            "putListingsItem",
            "patchListingsItem",
            "deleteListingsItem",
        ),
    ),
    _amazon(
        "JSON_LISTINGS_FEED document schema v2",
        "listings-feed-schema-v2.json",
        "listings-feed-schema-v2.json",
    ),
    _amazon(
        "JSON_LISTINGS_FEED document example v2",
        "listings-feed-schema-v2.example.json",
        "listings-feed-schema-v2.example.json",
    ),
    _amazon(
        "JSON listings feed processing report schema v2",
        "listings-feed-processing-report-schema-v2.json",
        "listings-feed-processing-report-schema-v2.json",
    ),
    _amazon(
        "JSON listings feed processing report example v2",
        "listings-feed-processing-report-schema-v2.example.json",
        "listings-feed-processing-report-schema-v2.example.json",
    ),
    _amazon("Apache License 2.0 of the SP-API models", "LICENSE", "LICENSE"),
)

CONTRACTS_KEPT: tuple[Contract, ...] = (MIRAKL, *AMAZON)

_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


class ContractError(Exception):
    """The upstream folder or file is missing or does not contain what the subset needs."""


def specs_dir(explicit: str | None) -> Path:
    """The upstream folder: ``explicit``, else ``$TRADELANE_SPECS_DIR``, else ``../shared/specs``."""
    if explicit:
        origin, path = "--specs-dir", Path(explicit)
    elif os.environ.get(ENV_VAR):
        origin, path = ENV_VAR, Path(os.environ[ENV_VAR])
    else:
        origin, path = "default", DEFAULT_SPECS_DIR
    if path.is_dir():
        return path
    raise ContractError(
        f"no upstream specs folder at {path} ({origin}). Set {ENV_VAR} to the folder holding "
        "mirakl/mirakl-mmp-seller-openapi.json, or pass --specs-dir."
    )


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            yield ref
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def resolve_pointer(doc: Any, ref: str) -> Any:
    """The node ``ref`` (an in-document ``#/...`` JSON pointer) designates; ``KeyError`` if absent."""
    if not ref.startswith("#/"):
        raise KeyError(f"not an in-document reference: {ref}")
    node = doc
    for token in ref[2:].split("/"):
        token = _unescape(token)
        if isinstance(node, list):
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            raise KeyError(ref)
    return node


def subset(spec: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    """The part of ``spec`` that ``operations`` need: their path items and every component (OpenAPI 3)
    or definition (Swagger 2.0) reached.

    Raises :class:`ContractError` when an operation is missing or a ``$ref`` points nowhere.
    """
    if "swagger" in spec:
        return _swagger_subset(spec, operations)
    paths = _kept_paths(spec, operations)

    components: dict[str, dict[str, Any]] = {}
    pending = list(_refs(paths))
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = ref.split("/")
        if len(parts) < 4 or parts[:2] != ["#", "components"]:
            raise ContractError(f"unsupported $ref {ref!r}: only #/components/<kind>/<name>[/...]")
        kind, name = _unescape(parts[2]), _unescape(parts[3])
        try:
            target = spec["components"][kind][name]
            resolve_pointer(spec, ref)
        except (KeyError, IndexError, ValueError) as exc:
            raise ContractError(f"$ref {ref!r} points nowhere in the upstream file") from exc
        components.setdefault(kind, {})[name] = target
        pending.extend(_refs(target))

    security = spec.get("components", {}).get("securitySchemes")
    if security is not None:
        components["securitySchemes"] = security
    out: dict[str, Any] = {k: spec[k] for k in ("openapi", "info", "servers") if k in spec}
    out["paths"] = paths
    out["components"] = components
    return out


def _kept_paths(spec: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    wanted = set(operations)
    paths: dict[str, Any] = {}
    found: set[str] = set()
    for path, item in spec.get("paths", {}).items():
        kept = {
            method: op
            for method, op in item.items()
            if method in _HTTP_METHODS and isinstance(op, dict) and op.get("operationId") in wanted
        }
        if not kept:
            continue
        found.update(op["operationId"] for op in kept.values())
        paths[path] = {**{k: v for k, v in item.items() if k not in _HTTP_METHODS}, **kept}
    missing = wanted - found
    if missing:
        raise ContractError(f"operations not in the upstream file: {', '.join(sorted(missing))}")
    return paths


def _swagger_subset(spec: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    paths = _kept_paths(spec, operations)
    definitions: dict[str, Any] = {}
    pending = list(_refs(paths))
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = ref.split("/")
        if len(parts) < 3 or parts[:2] != ["#", "definitions"]:
            raise ContractError(f"unsupported $ref {ref!r}: only #/definitions/<name>[/...]")
        name = _unescape(parts[2])
        try:
            target = spec["definitions"][name]
            resolve_pointer(spec, ref)
        except (KeyError, IndexError, ValueError) as exc:
            raise ContractError(f"$ref {ref!r} points nowhere in the upstream file") from exc
        definitions[name] = target
        pending.extend(_refs(target))
    out: dict[str, Any] = {
        k: spec[k] for k in ("swagger", "info", "host", "schemes", "consumes", "produces") if k in spec
    }
    out["paths"] = paths
    out["definitions"] = definitions
    return out


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def sources_md(entries: list[tuple[Contract, str, int]]) -> str:
    lines = [
        "# Contracts: where the committed subsets come from",
        "",
        "Generated by `scripts/contracts.py` (`make contracts`); do not edit by hand. Each file under",
        "`contracts/` is the subset of an upstream machine-readable contract that the sandboxes and tests",
        "validate against: the operations listed below plus every component they reach through `$ref`.",
        "The upstream files are not part of this repository.",
        "",
    ]
    for contract, digest, size in entries:
        lines += [
            f"## {contract.output}",
            "",
            f"- contract: {contract.name}",
            f"- upstream file: `{contract.upstream}` (in the specs folder; {size} bytes)",
            f"- source: {contract.source}",
            f"- licence: {contract.licence}",
            f"- upstream sha256: `{digest}`",
            (
                "- copied whole, byte for byte"
                if contract.whole
                else f"- operations kept ({len(contract.operations)}): {', '.join(contract.operations)}"
            ),
            "",
        ]
    return "\n".join(lines)


def generate(source_dir: Path) -> dict[Path, str]:
    """Every output file (absolute path) and its content, built from ``source_dir``."""
    files: dict[Path, str] = {}
    entries: list[tuple[Contract, str, int]] = []
    for contract in CONTRACTS_KEPT:
        upstream = source_dir / contract.upstream
        if not upstream.is_file():
            raise ContractError(f"upstream contract missing: {upstream}")
        raw = upstream.read_bytes()
        if contract.whole:
            files[CONTRACTS / contract.output] = raw.decode("utf-8")
            entries.append((contract, hashlib.sha256(raw).hexdigest(), len(raw)))
            continue
        try:
            spec = json.loads(raw)
        except ValueError as exc:
            raise ContractError(f"{upstream} is not valid JSON: {exc}") from exc
        files[CONTRACTS / contract.output] = render(subset(spec, contract.operations))
        entries.append((contract, hashlib.sha256(raw).hexdigest(), len(raw)))
    files[CONTRACTS / "SOURCES.md"] = sources_md(entries)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Extract the contract subsets the tests need into contracts/. Upstream folder: --specs-dir, "
            f"else ${ENV_VAR}, else ../shared/specs beside the repository (the development machine's "
            "read-only reference folder)."
        )
    )
    parser.add_argument("--specs-dir", help="folder holding the upstream contracts (mirakl/...)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files are stale")
    args = parser.parse_args(argv)
    try:
        files = generate(specs_dir(args.specs_dir))
    except ContractError as exc:
        print(f"contracts: {exc}", file=sys.stderr)
        return 2
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text("utf-8") != text]
    if args.check:
        for path in stale:
            print(f"contracts: stale {path.relative_to(REPO)} (run `make contracts`)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"{'wrote' if path in stale else 'unchanged'} {path.relative_to(REPO)} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
