"""The Mirakl offers benchmark at a tiny size, so it cannot rot: it must run end to end, verify the
sandbox against the catalog, and print one JSON object whose figures are consistent (ratios are the
floor over the achieved time, the wall split adds up) and respect the rate-limit floor."""

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


PHASE_KEYS = {
    "imports",
    "simulated_seconds",
    "floor_seconds",
    "ratio",
    "ratio_confirmed",
    "processing_before_last_send_seconds",
    "projected_held_seconds",
    "ratio_projected",
    "wall_seconds",
    "sandbox_seconds",
    "bench_check_seconds",
    "tradelane_seconds",
    "tradelane_cpu_seconds",
    "calls",
    "floor_explained",
    "verified",
    "bindings",
}


def _printed(bench: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict:
    """What ``python bench/bench_mirakl_offers.py`` prints, at a tiny size: exactly one JSON object."""
    monkeypatch.setattr(sys, "argv", ["bench", "--products", "300", "--delta-batch-size", "2"])
    bench.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert isinstance(result, dict) and out.strip().endswith("}")
    return result


def _check_phase(phase: dict) -> None:
    assert set(phase) >= PHASE_KEYS, PHASE_KEYS - set(phase)
    simulated, floor = phase["simulated_seconds"], phase["floor_seconds"]
    held, confirmed = simulated["held"], simulated["confirmed"]
    # Nothing beats the budget, and the offers are held by the sandbox before tradelane confirms them.
    assert 0 < floor["held"] <= held <= confirmed
    assert 0 < floor["confirmed"] <= confirmed
    # Ratios are the floor over what was achieved, within (0, 1].
    assert phase["ratio"] == pytest.approx(floor["held"] / held, abs=0.001)
    assert phase["ratio_confirmed"] == pytest.approx(floor["confirmed"] / confirmed, abs=0.001)
    assert 0 < phase["ratio"] <= 1 and 0 < phase["ratio_confirmed"] <= 1
    # The projection adds the wall processing before the last send: never better than simulated alone.
    before = phase["processing_before_last_send_seconds"]
    assert before >= 0
    assert phase["projected_held_seconds"] == pytest.approx(held + before, abs=0.002)
    assert 0 < phase["ratio_projected"] <= phase["ratio"]
    # The wall split adds up: tradelane's share is the wall time less the sandbox and the bench checks.
    wall = phase["wall_seconds"]
    sandbox, checks = phase["sandbox_seconds"], phase["bench_check_seconds"]
    assert wall > 0 and sandbox >= 0 and checks >= 0
    assert phase["tradelane_seconds"] == pytest.approx(max(0.0, wall - sandbox - checks), abs=0.002)
    assert phase["tradelane_seconds"] <= wall and phase["tradelane_cpu_seconds"] >= 0
    # Every import was sent within the phase, completed, and completed no later than "held".
    for item in phase["imports"]:
        assert item["lines_in_error"] == 0, item
        assert 0 <= item["sent_at_s"] <= item["completed_at_s"] <= held, item
    assert max(i["completed_at_s"] for i in phase["imports"]) == pytest.approx(held)


def test_mirakl_offers_bench_prints_sane_figures_and_respects_the_floor(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _load(monkeypatch)
    result = _printed(bench, monkeypatch, capsys)
    assert result["benchmark"] == "mirakl_offers_sandbox" and result["database"] == "sqlite"
    assert result["products"] == 300
    assert result["setup_wall_seconds"] > 0 and result["peak_rss_mb"] >= result["peak_rss_mb_after_setup"] > 0
    limits = result["rate_limits"]
    assert set(limits["channel"]) == {"OF01", "OF02", "OF03", "OF24"}
    for op, (calls, per_seconds) in limits["channel"].items():
        assert calls >= 1 and per_seconds > 0, op

    full, delta = result["initial_sync"], result["delta"]
    assert full["verified"]["sandbox_offers_equal_catalog"] == 300
    assert delta["verified"]["sandbox_offers_equal_catalog"] == 300
    assert full["bindings"] == {"published": 300} and delta["bindings"] == {"published": 300}
    assert result["jobs_not_succeeded"] == {}
    _check_phase(full)
    _check_phase(delta)

    # The initial sync sends every offer in one OF01 import.
    assert full["offers"] == 300 and [i["lines"] for i in full["imports"]] == [300]
    assert full["calls"]["OF01"]["calls"] == 1
    seconds = full["tradelane_seconds"]
    assert full["tradelane_offers_per_s"] == (pytest.approx(300 / seconds, rel=0.01) if seconds > 0 else None)

    # The delta: 1 % of 300 products changed (some several times), coalesced, 2 offers per OF24 call.
    assert delta["changed_products"] == 3 and delta["change_events"] > delta["changed_products"]
    assert delta["offers_sent"] == delta["changed_products"] and delta["coalesced"] is True
    assert sum(i["lines"] for i in delta["imports"]) == 3
    assert delta["calls"]["OF24"]["calls"] == math.ceil(3 / 2) == len(delta["imports"])
    for phase in (full, delta):
        for op, seen in phase["calls"].items():
            assert seen["429"] == 0, op
            if op in ("OF01", "OF24") and seen["min_gap_seconds"] is not None:
                assert seen["min_gap_seconds"] >= 60, op
    # Two OF24 calls at one a minute: the second is a minute after the first, and the floor says so.
    sent = sorted(i["sent_at_s"] for i in delta["imports"])
    assert sent[1] - sent[0] >= 60
    assert delta["floor_seconds"]["held"] >= 60
