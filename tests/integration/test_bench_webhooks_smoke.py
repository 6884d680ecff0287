"""The webhooks benchmark at a tiny rate, so it cannot rot: both servers start, every request is
answered 202 by both, every acknowledged event is stored (with its apply job for the merchant webhook),
and the report carries the figures docs/benchmarks.md quotes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_webhooks.py"


@pytest.mark.pg_only
def test_the_webhook_bench_runs_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_webhooks", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    report = module.run((20,), 0.5, None, 10.0)  # the test server (TRADELANE_TEST_PG_URL), own database
    for endpoint in ("merchant", "generic"):
        run = report[f"{endpoint}_20_rps"]
        for side in ("baseline_raw_asgi", "tradelane"):
            assert run[side]["sent"] == 10 and run[side]["accepted"] == 10, run
            assert run[side]["p99_ms"] >= run[side]["p50_ms"] > 0
        assert run["p99_ratio"] > 0
    durability = report["durability"]
    assert durability["acknowledged"] == durability["stored"] == {"merchant": 10, "generic": 10}
    assert durability["merchant_apply_jobs"] == 10 and durability["every_acknowledged_event_stored"]
