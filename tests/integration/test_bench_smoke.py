"""The Mirakl offers benchmark at a tiny size, so it cannot rot: it must run end to end, verify the
sandbox against the catalog, and report figures that respect the rate-limit floor."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_mirakl_offers.py"


def _load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_mirakl_offers", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_mirakl_offers_bench_runs_and_respects_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _load(monkeypatch)
    result = bench.run(300, None, delta_batch_size=2)
    json.dumps(result)  # one JSON object, as printed

    full, delta = result["initial_sync"], result["delta"]
    assert full["verified"]["sandbox_offers_equal_catalog"] == 300
    assert delta["verified"]["sandbox_offers_equal_catalog"] == 300
    assert full["bindings"] == {"published": 300} and delta["bindings"] == {"published": 300}
    assert result["jobs_not_succeeded"] == {}

    assert delta["changed_products"] == 3 and delta["change_events"] > delta["changed_products"]
    assert delta["offers_sent"] == delta["changed_products"]  # coalesced: each product sent once
    assert delta["calls"]["OF24"]["calls"] == math.ceil(3 / 2)
    for phase in (full, delta):
        for op, seen in phase["calls"].items():
            assert seen["429"] == 0, op
            if op in ("OF01", "OF24") and seen["min_gap_seconds"] is not None:
                assert seen["min_gap_seconds"] >= 60, op
        held, floor = phase["simulated_seconds"]["held"], phase["floor_seconds"]["held"]
        assert floor > 0 and held >= floor  # nothing beats the budget
        assert 0 < phase["ratio"] <= 1
        assert phase["tradelane_seconds"] >= 0 and phase["wall_seconds"] > 0
