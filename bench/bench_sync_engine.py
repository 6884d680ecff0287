"""Sync-engine throughput: jobs/s of 2 `tradelane worker` processes on PostgreSQL versus a raw
``FOR UPDATE SKIP LOCKED`` claim-and-delete loop (2 processes, one job per transaction) on the same
server in the same run.

    python bench/bench_sync_engine.py [--jobs N] [--pg-url URL]

Prints one JSON object. The target is ``ratio >= 0.5``. Each process reports the wall-clock instants
of its first claim and its exit, so interpreter start-up is excluded from both sides alike.
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

ENGINE_WORKER = r"""
import sys, time
from tradelane.bootstrap import build
from tradelane.config import Settings
from tradelane.sync.worker import Worker, WorkerConfig
settings = Settings(database_url=sys.argv[1], secret_keys=sys.argv[2], log_level="ERROR")
app = build(settings, configure_logs=True)
worker = Worker(app.engine, app.registry, app.now, WorkerConfig(batch_size=int(sys.argv[3]), schedule=False))
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


def run(jobs: int = 20_000, pg_url: str | None = None, batch_size: int = 50) -> dict[str, object]:
    from tradelane.persistence import migrate
    from tradelane.persistence.db import make_engine
    from tradelane.persistence.tables import jobs as jobs_table
    from tradelane.security.crypto import generate_key
    from tradelane.services.tenants import create_tenant

    admin_url = pg_url or DEFAULT_PG
    name, url = _database(admin_url)
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        now = datetime.now(UTC)
        payload = {"order": "X" * 40}
        with engine.begin() as conn:
            tenant, _ = create_tenant(conn, "bench", now=now)
            conn.exec_driver_sql("CREATE TABLE raw_jobs (id BIGSERIAL PRIMARY KEY, payload JSONB NOT NULL)")
            conn.execute(
                sa.text(
                    "INSERT INTO raw_jobs (payload) SELECT CAST(:p AS JSONB) FROM generate_series(1, :n)"
                ),
                {"p": json.dumps(payload), "n": jobs},
            )
            rows = [
                {
                    "tenant_id": tenant.id,
                    "kind": "system.noop",
                    "payload": payload,
                    "state": "queued",
                    "attempts": 0,
                    "max_attempts": 8,
                    "run_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for _ in range(jobs)
            ]
            conn.execute(sa.insert(jobs_table), rows)
            conn.exec_driver_sql("ANALYZE")
        engine.dispose()
        psycopg_url = url.replace("postgresql+psycopg://", "postgresql://")
        raw_seconds, raw_done = _run_pair(RAW_WORKER, [psycopg_url])
        eng_seconds, eng_done = _run_pair(ENGINE_WORKER, [url, generate_key(), str(batch_size)])
        if raw_done != jobs or eng_done != jobs:
            raise RuntimeError(f"lost work: raw {raw_done}, engine {eng_done}, expected {jobs}")
        raw_rate = jobs / raw_seconds
        eng_rate = jobs / eng_seconds
        return {
            "benchmark": "sync_engine_postgres_2_workers",
            "jobs": jobs,
            "baseline_raw_skip_locked": {"seconds": round(raw_seconds, 3), "jobs_per_s": round(raw_rate, 1)},
            "tradelane_worker": {"seconds": round(eng_seconds, 3), "jobs_per_s": round(eng_rate, 1)},
            "ratio": round(eng_rate / raw_rate, 3),
            "target_ratio": 0.5,
        }
    finally:
        _drop(admin_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(run(args.jobs, args.pg_url, args.batch_size)))


if __name__ == "__main__":
    main()
