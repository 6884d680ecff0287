"""The committed contract subsets are complete: every ``$ref`` resolves inside the file, every operation
the Mirakl sandbox serves (and the client calls) is there, and the file is exactly what
``scripts/contracts.py`` produces — so forgetting to regenerate after widening the sandbox fails here."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from functools import cache
from types import ModuleType
from typing import Any

import pytest

from specs import CONTRACTS_DIR, MIRAKL_SPEC, REPO
from tradelane.connectors.mirakl.sandbox.operations import OPERATIONS


@cache
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "tradelane_contracts_script", REPO / "scripts" / "contracts.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


@cache
def mirakl() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MIRAKL_SPEC.read_text(encoding="utf-8"))
    return data


def _operations(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        op["operationId"]: (method.upper(), path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _all_refs(node: Any) -> list[str]:
    return list(script()._refs(node))


def test_every_ref_resolves_inside_the_subset() -> None:
    refs = set(_all_refs(mirakl()))
    assert refs, "the subset should reference its components"
    unresolved = []
    for ref in sorted(refs):
        try:
            script().resolve_pointer(mirakl(), ref)
        except (KeyError, IndexError, ValueError):
            unresolved.append(ref)
    assert not unresolved, f"$refs pointing nowhere: {unresolved[:10]}"


def test_subset_covers_every_operation_the_sandbox_serves() -> None:
    kept = _operations(mirakl())
    missing = [op.op_id for op in OPERATIONS if op.op_id not in kept]
    assert not missing, (
        f"sandbox operations missing from {MIRAKL_SPEC.name}: {missing} (run `make contracts`)"
    )
    for op in OPERATIONS:
        method, path = kept[op.op_id]
        assert (method, _template(path)) == (op.method, _template(op.path)), op.op_id
    script_ops = set(script().MIRAKL.operations)
    assert {op.op_id for op in OPERATIONS} <= script_ops, "scripts/contracts.py must keep every sandbox op"
    assert set(kept) == script_ops


def test_committed_subset_is_the_scripts_output() -> None:
    """Extracting the subset's own operations from the subset gives it back byte for byte: nothing was
    hand-edited in, nothing is unreachable, and the output is the script's deterministic rendering."""
    text = MIRAKL_SPEC.read_text(encoding="utf-8")
    assert script().render(script().subset(mirakl(), script().MIRAKL.operations)) == text


def test_sources_record_provenance() -> None:
    sources = (CONTRACTS_DIR / "SOURCES.md").read_text(encoding="utf-8")
    contract = script().MIRAKL
    assert f"## {contract.output}" in sources
    assert contract.source in sources and contract.upstream in sources
    assert re.search(r"upstream sha256: `[0-9a-f]{64}`", sources)
    assert ", ".join(contract.operations) in sources


def test_subset_detects_a_dangling_ref() -> None:
    broken = json.loads(json.dumps(mirakl()))
    victim = next(iter(broken["components"]["schemas"]))
    del broken["components"]["schemas"][victim]
    with pytest.raises(script().ContractError, match=victim):
        script().subset(broken, script().MIRAKL.operations)


def test_missing_upstream_folder_is_a_clear_error(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADELANE_SPECS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(script().ContractError, match="TRADELANE_SPECS_DIR"):
        script().specs_dir(None)


# -- Amazon SP-API models (Swagger 2.0) -----------------------------------------------------------


def _amazon_subsets() -> list[Any]:
    return [c for c in script().AMAZON if not c.whole]


@cache
def _amazon_doc(output: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONTRACTS_DIR / output).read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize("output", [c.output for c in _amazon_subsets()])
def test_amazon_subset_refs_resolve_and_regenerate(output: str) -> None:
    doc = _amazon_doc(output)
    refs = set(_all_refs(doc))
    assert refs and all(ref.startswith("#/definitions/") for ref in refs)
    for ref in sorted(refs):
        script().resolve_pointer(doc, ref)
    contract = next(c for c in script().AMAZON if c.output == output)
    text = (CONTRACTS_DIR / output).read_text(encoding="utf-8")
    assert script().render(script().subset(doc, contract.operations)) == text
    assert set(_operations(doc)) == set(contract.operations)


def test_amazon_subsets_cover_every_operation_the_sandbox_serves() -> None:
    from tradelane.connectors.amazon.sandbox.operations import OPERATIONS as AMAZON_OPERATIONS

    for op in AMAZON_OPERATIONS:
        doc = _amazon_doc(f"amazon/{op.model}.subset.json")
        kept = _operations(doc)
        assert op.op_id in kept, (
            f"{op.op_id} missing from amazon/{op.model}.subset.json (run `make contracts`)"
        )
        assert kept[op.op_id] == (op.method, op.path), op.op_id


def test_amazon_whole_files_are_committed_with_provenance() -> None:
    sources = (CONTRACTS_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for contract in script().AMAZON:
        assert (CONTRACTS_DIR / contract.output).is_file(), contract.output
        assert f"## {contract.output}" in sources
    assert "amzn/selling-partner-api-models @ 34dc93fe" in sources and "Apache-2.0" in sources
    assert "Apache License" in (CONTRACTS_DIR / "amazon" / "LICENSE").read_text(encoding="utf-8")
    for name in ("listings-feed-schema-v2.json", "listings-feed-processing-report-schema-v2.json"):
        schema = json.loads((CONTRACTS_DIR / "amazon" / name).read_text(encoding="utf-8"))
        assert schema["$schema"].startswith("http://json-schema.org/draft-07/schema")


def test_swagger_subset_detects_a_dangling_ref() -> None:
    contract = next(c for c in script().AMAZON if c.output.endswith("ordersV0.subset.json"))
    broken = json.loads(json.dumps(_amazon_doc(contract.output)))
    del broken["definitions"]["PackageDetail"]
    with pytest.raises(script().ContractError, match="PackageDetail"):
        script().subset(broken, contract.operations)
