"""The Amazon offers benchmark at a tiny size, so it cannot rot: it must run end to end, verify the
sandbox's listings against the catalog, and print one JSON object whose figures are consistent (ratios
are the floor over the achieved time and back, the wall split adds up) and never beat the floor the
usage plans allow — with a delta small enough for patches and one large enough for a feed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_amazon_offers.py"


def _load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH.parent))  # its sibling bench_mirakl_offers
    spec = importlib.util.spec_from_file_location("bench_amazon_offers", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _check_phase(phase: dict) -> None:
    simulated, floor = phase["simulated_seconds"], phase["floor_seconds"]
    held, confirmed = simulated["held"], simulated["confirmed"]
    assert 0 < floor["held"] <= held <= confirmed  # nothing beats the usage plans
    assert phase["ratio"] == pytest.approx(floor["held"] / held, abs=0.001)
    assert phase["over_floor"] == pytest.approx(held / floor["held"], abs=0.001)
    assert 0 < phase["ratio"] <= 1 <= phase["over_floor"]
    before = phase["processing_before_last_send_seconds"]
    assert before >= 0 and phase["projected_held_seconds"] == pytest.approx(held + before, abs=0.002)
    assert phase["over_floor_projected"] >= phase["over_floor"]
    wall, sandbox, checks = phase["wall_seconds"], phase["sandbox_seconds"], phase["bench_check_seconds"]
    assert phase["tradelane_seconds"] == pytest.approx(max(0.0, wall - sandbox - checks), abs=0.002)
    for feed in phase["feeds"]:
        assert feed["errors"] == 0 and 0 <= feed["sent_at_s"] <= feed["done_at_s"] <= held, feed
    assert all(op["429"] == 0 for op in phase["calls"].values()), phase["calls"]  # budgets honoured
    assert phase["bindings"] == {"published": phase["verified"]["sandbox_listings_equal_catalog"]}


@pytest.mark.parametrize(("fraction", "route"), [(0.05, "patch"), (0.5, "feed")])
def test_amazon_offers_bench_prints_sane_figures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fraction: float, route: str
) -> None:
    bench = _load(monkeypatch)
    argv = ["bench", "--products", "800", "--changed-fraction", str(fraction), "--feed-seconds", "90"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    assert result["benchmark"] == "amazon_offers_sandbox" and result["products"] == 800
    assert result["jobs_not_succeeded"] == {}
    full, delta = result["initial_sync"], result["delta"]
    _check_phase(full)
    _check_phase(delta)
    assert full["offers"] == 800 and sum(f["messages"] for f in full["feeds"]) == 800
    assert full["floor_seconds"]["held"] == 90  # one feed's processing: everything within the bursts
    assert (
        delta["route"] == route and delta["coalesced"] and delta["change_events"] > delta["changed_products"]
    )
    if route == "patch":
        assert delta["patches"] == delta["offers_sent"] == delta["changed_products"] and not delta["feeds"]
        assert delta["floor_seconds"]["held"] == pytest.approx((delta["changed_products"] - 5) / 5)
        assert delta["calls"]["patchListingsItem"]["min_gap_seconds"] >= 0
    else:
        assert delta["patches"] == 0 and [f["messages"] for f in delta["feeds"]] == [
            delta["changed_products"]
        ]
