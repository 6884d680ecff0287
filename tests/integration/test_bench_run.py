"""``bench/run.py`` (``make bench``), so that it keeps printing every issue-12 figure.

* At tiny sizes, for real, in its own process like ``make bench``: the catalog import (SQLite and
  PostgreSQL), the re-import run (SQLite) and the order intake (SQLite and PostgreSQL) must print one
  JSON object with the ratio keys docs/benchmarks.md names and a summary judged from them; the
  PostgreSQL benchmarks work in databases of their own on the server and never write into the database
  the URL names. Run once, in the SQLite half (its PostgreSQL parts create their own databases anyway).
* The argument wiring of every benchmark, with fake benchmark modules (the sync engine, the webhooks
  and the two offer syncs cannot be made small enough to run here; each has its own smoke test, or none
  for the sync engine): each is called with the sizes and the server of the command line, in a way the
  real module's ``run`` accepts, and the summary judges their figures against the goals.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa

from tradelane.persistence.db import normalize_url

BENCH = Path(__file__).resolve().parents[2] / "bench"
BACKEND = os.environ.get("TRADELANE_TEST_DB", "sqlite")
PG_SERVER_URL = os.environ.get("TRADELANE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SERVER = "postgresql://bench@db.invalid:5432/server"


def _load(monkeypatch: pytest.MonkeyPatch, name: str, filename: str) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))  # the offer benches import their siblings
    spec = importlib.util.spec_from_file_location(name, BENCH / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class _Recorder:
    """Fake benchmark modules (``load``) and a fake re-import run (``reimport``): each records its calls
    and returns the given figures."""

    def __init__(self, figures: dict[str, Any]) -> None:
        self.figures = figures
        self.calls: dict[str, list[tuple[tuple[Any, ...], dict[str, Any]]]] = {}

    def load(self, kind: str) -> ModuleType:
        module = ModuleType(f"bench_{kind}")

        def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
            self.calls.setdefault(kind, []).append((args, kwargs))
            figures: dict[str, Any] = self.figures[kind]
            return figures

        module.run = run  # type: ignore[attr-defined]
        return module

    def reimport(self, rows: int, url: str | None) -> dict[str, Any]:
        self.calls.setdefault("catalog_reimport", []).append(((rows, url), {}))
        figures: dict[str, Any] = self.figures["catalog_reimport_postgresql" if url else "catalog_reimport"]
        return figures


FIGURES: dict[str, Any] = {
    "catalog_import": {"rows": 7, "ratio": 0.31, "ratio_vs_copy": 0.5},
    "catalog_reimport": {"rows": 11, "reimport_ratio": 0.4, "reimport_ratio_cpu": 0.35, "peak_rss_mb": 120.0},
    "catalog_reimport_postgresql": {
        "rows": 11,
        "reimport_ratio": 0.6,
        "reimport_ratio_vs_copy": 0.45,
        "peak_rss_mb": 501.0,
    },
    "sync_engine": {"ratio_vs_raw_batch": 0.58, "ratio_vs_raw_batch_max": 0.2, "ratio_vs_raw_single": 17.4},
    "mirakl_offers": {"benchmark": "mirakl"},
    "amazon_offers": {"benchmark": "amazon"},
    "order_intake": {"ratio": 0.24},
    "webhooks": {
        "merchant_200_rps": {"tradelane": {"p99_ms": 8.0}},
        "generic_200_rps": {"tradelane": {"p99_ms": 9.0}},
        "merchant_500_rps": {"tradelane": {"p99_ms": 19.5}, "p99_ratio": 3.0},
        "generic_500_rps": {"tradelane": {"p99_ms": 20.5}, "p99_ratio": 4.0},
        "durability": {"every_acknowledged_event_stored": True},
    },
}


def test_every_benchmark_gets_the_sizes_and_the_server_of_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = _load(monkeypatch, "bench_run", "run.py")
    fake = _Recorder(FIGURES)
    argv = ["--rows", "7", "--reimport-rows", "11", "--jobs", "13", "--products", "17", "--orders", "19"]
    args = bench.parse_args([*argv, "--webhook-seconds", "0.5", "--pg-url", SERVER])
    results = bench.measure(args, load=fake.load, reimport=fake.reimport)

    assert fake.calls == {
        # The --rows run leaves the re-import to the --reimport-rows run.
        "catalog_import": [((7, None), {"reimport": False}), ((7, SERVER), {"reimport": False})],
        "catalog_reimport": [((11, None), {}), ((11, SERVER), {})],
        "sync_engine": [((13, SERVER), {})],
        "mirakl_offers": [((17, None), {})],
        "amazon_offers": [((17, None), {})],
        "order_intake": [((19, None), {}), ((19, SERVER), {})],
        "webhooks": [(((200, 500), 0.5, SERVER), {})],
    }
    # ... in a way each real benchmark accepts.
    for kind, calls in fake.calls.items():
        if kind == "catalog_reimport":
            continue  # bench_catalog_import.py's command line: run for real below
        real = _load(monkeypatch, f"bench_{kind}", f"bench_{kind}.py")
        for call_args, call_kwargs in calls:
            inspect.signature(real.run).bind(*call_args, **call_kwargs)

    keys = list(results)
    assert keys[-2:] == ["bench_seconds", "summary"]
    assert (
        set(results["bench_seconds"])
        == set(keys[:-2])
        == {
            "catalog_import",
            "catalog_import_postgresql",
            "catalog_reimport",
            "catalog_reimport_postgresql",
            "sync_engine",
            "mirakl_offers",
            "amazon_offers",
            "order_intake",
            "order_intake_postgresql",
            "webhooks",
        }
    )
    summary = results["summary"]
    judged = {name: (entry["value"], entry["met"]) for name, entry in summary["goals"].items()}
    assert judged == {
        "sync_engine_vs_raw_batch_50": (0.58, True),
        "catalog_import_postgresql_vs_copy": (0.5, True),
        "catalog_import_sqlite_vs_executemany": (0.31, True),
        "order_intake_postgresql_vs_raw": (0.24, False),
        "order_intake_sqlite_vs_raw": (0.24, False),
        "webhook_merchant_p99_ms_at_500_rps": (19.5, True),
        "webhook_generic_p99_ms_at_500_rps": (20.5, False),
    }
    assert summary["goals_met"] == "4 of 7 measured (0 not measured)"
    extra = summary["extra"]
    assert {name: entry["value"] for name, entry in extra.items()} == {
        "sync_engine_vs_raw_batch_400": 0.2,
        "sync_engine_vs_raw_single": 17.4,
        "catalog_reimport_sqlite_vs_executemany": 0.4,
        "catalog_reimport_sqlite_cpu": 0.35,
        "catalog_reimport_postgresql_vs_copy": 0.45,
        "catalog_reimport_postgresql_vs_executemany": 0.6,
        "catalog_peak_rss_mb_sqlite": 120.0,
        "catalog_peak_rss_mb_postgresql": 501.0,
        "webhook_merchant_p99_ms_at_200_rps": 8.0,
        "webhook_generic_p99_ms_at_200_rps": 9.0,
        "webhook_merchant_p99_ratio_at_500_rps": 3.0,
        "webhook_generic_p99_ratio_at_500_rps": 4.0,
        "webhooks_every_acknowledged_event_stored": True,
    }
    assert extra["catalog_peak_rss_mb_sqlite"]["met"] is True
    assert extra["catalog_peak_rss_mb_postgresql"]["met"] is False  # the goal is <= 500 MB
    assert extra["catalog_peak_rss_mb_postgresql"]["rows"] == 11
    assert extra["webhooks_every_acknowledged_event_stored"]["met"] is True
    assert "met" not in extra["sync_engine_vs_raw_single"]  # a figure without a goal


def test_a_partial_run_leaves_the_other_goals_unjudged(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _load(monkeypatch, "bench_run", "run.py")
    fake = _Recorder(FIGURES)
    args = bench.parse_args(["--only", "catalog_import", "--rows", "5", "--reimport-backends", "postgresql"])
    results = bench.measure(args, load=fake.load, reimport=fake.reimport)

    # Without the re-import run, the --rows run re-imports its own file; the server is the default one.
    assert fake.calls == {
        "catalog_import": [((5, None), {"reimport": True}), ((5, bench.DEFAULT_PG), {"reimport": True})]
    }
    goals = results["summary"]["goals"]
    assert goals["catalog_import_sqlite_vs_executemany"]["met"] is True
    unjudged = {name for name, entry in goals.items() if entry["met"] is None}
    assert unjudged == set(goals) - {
        "catalog_import_sqlite_vs_executemany",
        "catalog_import_postgresql_vs_copy",
    }
    assert all(goals[name]["note"] == "not measured in this run" for name in unjudged)
    assert results["summary"]["goals_met"] == "2 of 2 measured (5 not measured)"


@pytest.mark.parametrize(
    "argv",
    [["--reimport-backends", "mysql"], ["--reimport-backends", ","], ["--only", "nothing"], ["--rows", "0"]],
)
def test_bad_command_lines_are_refused(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    bench = _load(monkeypatch, "bench_run", "run.py")
    with pytest.raises(SystemExit) as refused:
        bench.parse_args(argv)
    assert refused.value.code == 2


@pytest.fixture
def empty_pg_database() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards: the URL ``make bench`` is given."""
    admin = sa.create_engine(normalize_url(PG_SERVER_URL), isolation_level="AUTOCOMMIT")
    name = f"tradelane_test_bench_run_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(normalize_url(PG_SERVER_URL)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _databases(url: str) -> set[str]:
    engine = sa.create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()


def _tables(url: str) -> list[str]:
    engine = sa.create_engine(normalize_url(url))
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.skipif(
    BACKEND == "postgres",
    reason="runs once, in the SQLite half: its PostgreSQL parts use their own databases",
)
def test_make_bench_prints_the_ratio_keys_and_the_summary_at_tiny_sizes(empty_pg_database: str) -> None:
    sizes = ["--rows", "120", "--reimport-rows", "150", "--reimport-backends", "sqlite", "--orders", "20"]
    kinds = ["--only", "catalog_import", "--only", "catalog_reimport", "--only", "order_intake"]
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), *kinds, *sizes, "--pg-url", empty_pg_database],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)  # stdout is the JSON object and nothing else

    # The keys docs/benchmarks.md quotes.
    sqlite, postgres = results["catalog_import"], results["catalog_import_postgresql"]
    assert (sqlite["database"], postgres["database"]) == ("sqlite", "postgresql")
    for figures in (sqlite, postgres):
        assert figures["import"]["created"] == 120 and figures["import"]["rejected"] == 0
        for key in ("ratio", "ratio_cpu", "ratio_vs_core", "ratio_cpu_vs_core", "peak_rss_mb"):
            assert figures[key] > 0, key
        assert "reimport_ratio" not in figures  # the re-import is the --reimport-rows run's
    for key in ("ratio_vs_copy", "ratio_cpu_vs_copy", "ratio_vs_copy_one_transaction"):
        assert postgres[key] > 0, key
    again = results["catalog_reimport"]
    assert again["rows"] == 150 and again["database"] == "sqlite"
    assert (again["reimport_1pct_changed"]["updated"], again["reimport_1pct_changed"]["unchanged"]) == (
        2,
        148,
    )
    for key in ("ratio", "reimport_ratio", "reimport_ratio_cpu", "peak_rss_mb"):
        assert again[key] > 0, key
    assert "ratio_vs_core" not in again  # the floors only
    for key in ("order_intake", "order_intake_postgresql"):
        assert results[key]["orders"] == 20
        for ratio in ("ratio", "ratio_vs_batched", "ratio_per_order"):
            assert results[key][ratio] > 0, (key, ratio)
    assert results["order_intake_postgresql"]["backend"] == "postgresql"

    summary = results["summary"]
    goals = summary["goals"]
    for name, source in [
        ("catalog_import_sqlite_vs_executemany", sqlite["ratio"]),
        ("catalog_import_postgresql_vs_copy", postgres["ratio_vs_copy"]),
        ("order_intake_sqlite_vs_raw", results["order_intake"]["ratio"]),
        ("order_intake_postgresql_vs_raw", results["order_intake_postgresql"]["ratio"]),
    ]:
        assert goals[name]["value"] == source and isinstance(goals[name]["met"], bool), name
    assert summary["extra"]["catalog_reimport_sqlite_vs_executemany"]["value"] == again["reimport_ratio"]
    assert summary["extra"]["catalog_peak_rss_mb_sqlite"]["met"] is True
    assert list(results)[-1] == "summary"

    # Every PostgreSQL benchmark used a database of its own, gone now; the URL's database is untouched.
    assert _tables(empty_pg_database) == []
    assert postgres["pg_database"].startswith("tradelane_bench_cat_")
    assert postgres["pg_database"] not in _databases(empty_pg_database)
