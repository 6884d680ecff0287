"""Sync-engine throughput: jobs/s of 2 `tradelane worker` processes on PostgreSQL versus two raw
``FOR UPDATE SKIP LOCKED`` claim-and-delete loops on the same server in the same run:

* ``raw_batch`` (the limit at the engine's starting claim size): 2 processes claim+ack batches of
  ``--batch-size`` (50) with
  ``DELETE ... WHERE id IN (SELECT ... LIMIT 50 FOR UPDATE SKIP LOCKED) RETURNING``;
* ``raw_batch_max`` (the limit at the engine's largest claim size): the same loop with batches of the
  engine's ``max_batch_size`` (400 by default), so a claim-size advantage is not counted as the
  engine's;
* ``raw_single`` (the old baseline): 2 processes, one job per transaction.

    python bench/bench_sync_engine.py [--jobs N] [--rounds R] [--pg-url URL] [--max-batch-size M]

The engine is given ``batch_size`` 50 like the raw loops; while its claims come back full and their
jobs are fast it grows its claims up to ``WorkerConfig.max_batch_size`` (``--max-batch-size 50``
measures it without that growth).

Prints one JSON object with three ratios (engine versus raw batch of 50, raw batch of the engine's
largest claim size, raw single). The sides are interleaved round by round (raw batch, raw batch at
the largest size, raw single, engine) so they see the same background load, and each rate is the
median over the rounds. The target is ``ratio_vs_raw_batch >= 0.25``; ``ratio_vs_raw_batch_max`` is
the like-for-like comparison when the engine grows its claims. Each process reports the wall-clock
instants of its first claim and its exit, so interpreter start-up is excluded from every side alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG = os.environ.get("TRADELANE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

PAYLOAD = {"order": "X" * 40}

RAW_WORKER = r"""
import sys, time, psycopg
url = sys.argv[1]
conn = psycopg.connect(url, autocommit=False)
first = None
done = 0
while True:
    with conn.transaction():
        row = conn.execute(
            "DELETE FROM raw_jobs WHERE id = (SELECT id FROM raw_jobs ORDER BY id LIMIT 1 "
            "FOR UPDATE SKIP LOCKED) RETURNING id, payload"
        ).fetchone()
    if first is None:
        first = time.time()
    if row is None:
        break
    done += 1
print(first, time.time(), done)
"""

RAW_BATCH_WORKER = r"""
import sys, time, psycopg
url = sys.argv[1]
limit = int(sys.argv[2])
conn = psycopg.connect(url, autocommit=False)
first = None
done = 0
while True:
    with conn.transaction():
        rows = conn.execute(
            "DELETE FROM raw_jobs WHERE id IN (SELECT id FROM raw_jobs ORDER BY id LIMIT %s "
            "FOR UPDATE SKIP LOCKED) RETURNING id, payload",
            (limit,),
        ).fetchall()
    if first is None:
        first = time.time()
    if not rows:
        break
    done += len(rows)
print(first, time.time(), done)
"""

ENGINE_WORKER = r"""
import sys, time
from tradelane.bootstrap import build
from tradelane.config import Settings
from tradelane.sync.worker import Worker, WorkerConfig
settings = Settings(database_url=sys.argv[1], secret_keys=sys.argv[2], log_level="ERROR")
app = build(settings, configure_logs=True)
config = WorkerConfig(batch_size=int(sys.argv[3]), schedule=False)
if len(sys.argv) > 4:
    config.max_batch_size = int(sys.argv[4])
worker = Worker(app.engine, app.registry, app.now, config)
first = time.time()
stats = worker.run(burst=True)
print(first, time.time(), stats.succeeded)
"""


def _database(admin_url: str) -> tuple[str, str]:
    from tradelane.persistence.db import normalize_url

    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"tradelane_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = sa.engine.make_url(normalize_url(admin_url)).set(database=name)
    return name, url.render_as_string(hide_password=False)


def _drop(admin_url: str, name: str) -> None:
    from tradelane.persistence.db import normalize_url

    admin = sa.create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _run_pair(script: str, args: list[str]) -> tuple[float, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        if p.returncode != 0:
            raise RuntimeError(err.decode()[-3000:])
        first, last, done = out.decode().split()[-3:]
        results.append((float(first), float(last), int(done)))
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    return elapsed, sum(r[2] for r in results)


def _fill_raw(engine: sa.Engine, jobs: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO raw_jobs (payload) SELECT CAST(:p AS JSONB) FROM generate_series(1, :n)"),
            {"p": json.dumps(PAYLOAD), "n": jobs},
        )
    _analyze(engine, "raw_jobs")


def _fill_engine(engine: sa.Engine, jobs: int, tenant_id: int, now: datetime) -> None:
    """Queue ``jobs`` ``system.noop`` jobs for the engine side."""
    from tradelane.persistence.tables import jobs as jobs_table

    row = {
        "tenant_id": tenant_id,
        "kind": "system.noop",
        "payload": PAYLOAD,
        "state": "queued",
        "attempts": 0,
        "max_attempts": 8,
        "run_at": now,
        "created_at": now,
        "updated_at": now,
    }
    with engine.begin() as conn:
        conn.execute(sa.insert(jobs_table), [row] * jobs)
    _analyze(engine, "jobs")


def _analyze(engine: sa.Engine, table: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM ANALYZE {table}")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def run(
    jobs: int = 20_000,
    pg_url: str | None = None,
    batch_size: int = 50,
    rounds: int = 3,
    max_batch_size: int | None = None,
) -> dict[str, object]:
    """``max_batch_size``: the engine's cap on its claim size while full batches of fast jobs keep
    coming (``WorkerConfig.max_batch_size``; None: the engine's default; ``batch_size``: no growth)."""
    from tradelane.persistence import migrate
    from tradelane.persistence.db import make_engine
    from tradelane.security.crypto import generate_key
    from tradelane.services.tenants import create_tenant

    admin_url = pg_url or DEFAULT_PG
    name, url = _database(admin_url)
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            tenant, _ = create_tenant(conn, "bench", now=now)
            conn.exec_driver_sql("CREATE TABLE raw_jobs (id BIGSERIAL PRIMARY KEY, payload JSONB NOT NULL)")
        psycopg_url = url.replace("postgresql+psycopg://", "postgresql://")
        key = generate_key()
        largest = max_batch_size or _default_max_batch()
        sides = ("raw_batch", "raw_batch_max", "raw_single", "engine")
        rates: dict[str, list[float]] = {side: [] for side in sides}
        for _ in range(rounds):
            for side in sides:
                if side == "engine":
                    _fill_engine(engine, jobs, tenant.id, now)
                else:
                    _fill_raw(engine, jobs)
                if side == "raw_batch":
                    seconds, done = _run_pair(RAW_BATCH_WORKER, [psycopg_url, str(batch_size)])
                elif side == "raw_batch_max":
                    seconds, done = _run_pair(RAW_BATCH_WORKER, [psycopg_url, str(largest)])
                elif side == "raw_single":
                    seconds, done = _run_pair(RAW_WORKER, [psycopg_url])
                else:
                    extra = [] if max_batch_size is None else [str(max_batch_size)]
                    seconds, done = _run_pair(ENGINE_WORKER, [url, key, str(batch_size), *extra])
                if done != jobs:
                    raise RuntimeError(f"lost work: {side} did {done}, expected {jobs}")
                rates[side].append(jobs / seconds)
        engine.dispose()
        median = {side: _median(values) for side, values in rates.items()}
        return {
            "benchmark": "sync_engine_postgres_2_workers",
            "jobs": jobs,
            "rounds": rounds,
            "batch_size": batch_size,
            "engine_max_batch_size": largest,
            "baseline_raw_batch_skip_locked": _side(rates["raw_batch"], median["raw_batch"]),
            "baseline_raw_batch_max_skip_locked": _side(rates["raw_batch_max"], median["raw_batch_max"]),
            "baseline_raw_single_skip_locked": _side(rates["raw_single"], median["raw_single"]),
            "tradelane_worker": _side(rates["engine"], median["engine"]),
            "ratio_vs_raw_batch": round(median["engine"] / median["raw_batch"], 3),
            "ratio_vs_raw_batch_max": round(median["engine"] / median["raw_batch_max"], 3),
            "ratio_vs_raw_single": round(median["engine"] / median["raw_single"], 3),
            "target_ratio_vs_raw_batch": 0.25,
        }
    finally:
        _drop(admin_url, name)


def _default_max_batch() -> int:
    from tradelane.sync.worker import WorkerConfig

    return WorkerConfig().max_batch_size


def _side(rates: list[float], median: float) -> dict[str, object]:
    return {"jobs_per_s": round(median, 1), "runs_jobs_per_s": [round(r, 1) for r in rates]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="the engine's claim-size cap under a backlog of fast jobs (default: the engine's own)",
    )
    args = parser.parse_args()
    print(json.dumps(run(args.jobs, args.pg_url, args.batch_size, args.rounds, args.max_batch_size)))


if __name__ == "__main__":
    main()
