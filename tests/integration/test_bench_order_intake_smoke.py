"""The order intake benchmark at a tiny size, so it cannot rot: every side must store every order
(the bench checks the rows itself) and the ratios must be what the figures say."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa

from tradelane.persistence.db import make_engine

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_order_intake.py"


def _load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_order_intake", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_order_intake_bench_runs_every_side(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    bench = _load(monkeypatch)
    postgres = db_url.startswith("postgres")
    result = bench.run(60, db_url if postgres else None, page_size=25)
    json.dumps(result)  # one JSON object, as printed
    [figures] = result["runs"]
    for side in ("intake", "raw", "raw_batched", "per_order"):
        assert figures[side]["orders_per_s"] > 0 and figures[side]["seconds"] > 0, side
    rates = {side: figures[side]["orders_per_s"] for side in ("intake", "raw")}
    assert result["ratio"] == pytest.approx(rates["intake"] / rates["raw"], rel=0.05)
    assert result["ratio_vs_batched"] > 0 and result["ratio_per_order"] > 0
    if postgres:  # the run's own database is gone
        engine = make_engine(db_url)
        try:
            with engine.connect() as conn:
                left = conn.execute(
                    sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE 'tradelane_bench_intake_%'")
                ).scalar_one()
        finally:
            engine.dispose()
        assert left == 0
