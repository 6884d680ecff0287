"""The catalog import benchmark at a tiny size, so it cannot rot: it must run end to end on the test
database, import every row and report both raw baselines and their ratios."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa

from tradelane.persistence.db import make_engine
from tradelane.persistence.tables import products, tenants

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_catalog_import.py"


def _load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_catalog_import", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_catalog_import_bench_runs_with_both_baselines(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    bench = _load(monkeypatch)
    result = bench.run(250, db_url, batch_size=100)
    json.dumps(result)  # one JSON object, as printed

    assert result["import"]["created"] == 250 and result["import"]["rejected"] == 0
    for side in ("raw_driver_executemany", "raw_core_executemany"):
        assert result[side]["rows_per_s"] > 0 and result[side]["seconds"] > 0, side
    import_rate = result["import"]["rows_per_s"]
    assert result["ratio"] == pytest.approx(
        import_rate / result["raw_driver_executemany"]["rows_per_s"], rel=0.02
    )
    assert result["ratio_vs_core"] == pytest.approx(
        import_rate / result["raw_core_executemany"]["rows_per_s"], rel=0.02
    )
    assert result["peak_rss_mb_import"] > 0
    # The everyday case: the same file again with 1 % of its rows changed (rows 0, 100 and 200).
    again = result["reimport_1pct_changed"]
    assert (again["created"], again["updated"], again["unchanged"], again["rejected"]) == (0, 3, 247, 0)
    assert again["rows_per_s"] > 0 and result["reimport_ratio"] > 0
    if result["database"] == "postgresql":  # the COPY floors, batched like the import and in one go
        for side in ("raw_copy", "raw_copy_one_transaction"):
            assert result[side]["rows_per_s"] > 0, side
        assert result["ratio_vs_copy"] == pytest.approx(
            import_rate / result["raw_copy"]["rows_per_s"], rel=0.02
        )
        assert result["ratio_vs_copy_one_transaction"] > 0 and result["reimport_ratio_vs_copy"] > 0
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:  # the bench's tenants (and their products) are gone
            assert conn.execute(sa.select(sa.func.count()).select_from(tenants)).scalar_one() == 0
            assert conn.execute(sa.select(sa.func.count()).select_from(products)).scalar_one() == 0
            if result["database"] == "postgresql":  # it ran in a database of its own, dropped since
                assert result["pg_database"].startswith("tradelane_bench_cat_")
                dropped = sa.text("SELECT count(*) FROM pg_database WHERE datname = :name")
                assert conn.execute(dropped, {"name": result["pg_database"]}).scalar_one() == 0
    finally:
        engine.dispose()


def test_the_driver_baseline_stores_what_the_import_stores(monkeypatch: pytest.MonkeyPatch, engine) -> None:
    """The baseline is only a fair floor if it writes the same rows: compare the stored raw values."""
    bench = _load(monkeypatch)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    baselines = {}
    kinds = [bench._DriverInserter, bench._CoreInserter]
    if engine.dialect.name == "postgresql":
        kinds.append(bench._CopyInserter)
    for kind in kinds:
        baselines[kind] = kind(engine, bench._new_tenant(engine, now), 10, now)
        baselines[kind].insert_up_to(25)
    columns = ", ".join(c.name for c in products.columns if c.name not in ("id", "tenant_id"))
    with engine.connect() as conn:
        stored = [
            conn.execute(
                sa.text(f"SELECT {columns} FROM products WHERE tenant_id = :t ORDER BY sku"),
                {"t": baseline.tenant_id},
            ).all()
            for baseline in baselines.values()
        ]
    assert len(stored[0]) == 25 and all(rows == stored[0] for rows in stored[1:])
