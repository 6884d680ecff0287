"""Real worker processes: SIGKILL mid-batch, SIGTERM drain, concurrent idempotent enqueues."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sync_probe import PROBE_DDL

from helpers import make_tenant
from tradelane.persistence.tables import job_attempts, jobs
from tradelane.security.crypto import generate_key
from tradelane.sync import jobs as jobstore
from tradelane.timeutil import utcnow

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
#: Workers sharing one store share its key (PostgreSQL has no default key location).
SHARED_KEY = generate_key()


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TRADELANE_DATABASE_URL": db_url,
            "TRADELANE_SECRET_KEYS": SHARED_KEY,
            "TRADELANE_PLUGINS": "sync_probe:register",
            "TRADELANE_WORKER_LEASE_SECONDS": "2",
            "TRADELANE_WORKER_POLL_SECONDS": "0.1",
            "TRADELANE_JOB_BACKOFF_BASE_SECONDS": "0.2",
            "TRADELANE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(TESTS / "plugins"), str(SRC)]),
        }
    )
    env.update(extra)
    return env


def _worker(db_url: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tradelane", "worker", "--no-schedule", *args],
        env=_env(db_url, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _enqueue_probes(engine, tenant_id: int, count: int, sleep: float) -> list[int]:
    with engine.begin() as conn:
        # Not one of tradelane's tables (not truncated between tests): start it afresh.
        conn.exec_driver_sql("DROP TABLE IF EXISTS probe_effects")
        conn.exec_driver_sql(PROBE_DDL)
        return [
            jobstore.enqueue(
                conn, jobstore.JobSpec(tenant_id, "probe.effect", {"sleep": sleep, "n": i}), now=utcnow()
            ).job_id
            for i in range(count)
        ]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _count(engine, condition) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(jobs).where(condition)).scalar_one())


def _effects(engine) -> dict[int, int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT job_id, COUNT(*) FROM probe_effects GROUP BY job_id")).all()
    return {int(r[0]): int(r[1]) for r in rows}


def test_sigkill_mid_batch_loses_nothing_and_runs_nothing_twice(engine, db_url, now):
    tenant, _ = make_tenant(engine, "acme", now)
    ids = _enqueue_probes(engine, tenant.id, 30, sleep=0.15)
    victim = _worker(db_url, "--batch-size", "5")
    try:
        _wait(
            lambda: len(_effects(engine)) >= 3 or victim.poll() is not None,
            60,
            "the first worker to make progress",
        )
        assert victim.poll() is None, victim.stderr.read().decode()[-3000:] if victim.stderr else ""
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
    with engine.connect() as conn:
        orphaned = conn.execute(sa.select(sa.func.count()).where(jobs.c.state == "running")).scalar_one()
    assert orphaned >= 1, "the kill should have left claimed work behind"
    survivors = [_worker(db_url, "--burst", "--batch-size", "5") for _ in range(2)]
    try:
        _wait(
            lambda: all(p.poll() is not None for p in survivors) and len(_effects(engine)) == len(ids),
            90,
            "survivors to finish every job",
        )
    finally:
        for p in survivors:
            if p.poll() is None:
                p.kill()
    effects = _effects(engine)
    assert sorted(effects) == sorted(ids)
    assert set(effects.values()) == {1}, f"a job completed twice: {effects}"
    with engine.connect() as conn:
        states = dict(conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)).all())
        retried = conn.execute(sa.select(sa.func.count()).where(jobs.c.attempts >= 2)).scalar_one()
        lost = conn.execute(
            sa.select(sa.func.count())
            .select_from(job_attempts)
            .where(job_attempts.c.outcome == "lease_expired")
        ).scalar_one()
    assert states == {"succeeded": len(ids)}
    assert retried >= 1  # the killed worker's jobs were claimed again after the lease expired
    assert lost == retried  # and each lost attempt is in the job's history


def test_sigterm_finishes_running_job_and_releases_the_rest(engine, db_url, now):
    tenant, _ = make_tenant(engine, "acme", now)
    ids = _enqueue_probes(engine, tenant.id, 5, sleep=1.0)
    proc = _worker(db_url, "--batch-size", "5", TRADELANE_WORKER_LEASE_SECONDS="30")
    try:
        _wait(lambda: _count(engine, jobs.c.state == "running") == 5, 30, "the batch to be claimed")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    effects = _effects(engine)
    assert list(effects.values()) == [1]  # the job in progress finished
    with engine.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.id, jobs.c.state, jobs.c.attempts).order_by(jobs.c.id)).all()
    states = {r.id: (r.state, r.attempts) for r in rows}
    assert [states[i] for i in ids].count(("succeeded", 1)) == 1
    assert [states[i] for i in ids].count(("queued", 0)) == 4  # released, the attempt not counted


ENQUEUE_SCRIPT = """
import sys, time
from tradelane.persistence.db import make_engine
from tradelane.sync import jobs
from tradelane.timeutil import utcnow
url, tenant_id, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
engine = make_engine(url)
while time.time() < start:
    time.sleep(0.001)
created = 0
for i in range(150):
    with engine.begin() as conn:
        spec = jobs.JobSpec(tenant_id, "system.noop", {}, idempotency_key=f"order-{i}")
        r = jobs.enqueue(conn, spec, now=utcnow())
        created += r.created
print(created)
"""


def test_same_idempotency_keys_from_two_processes_make_one_job_each(engine, db_url, now):
    tenant, _ = make_tenant(engine, "acme", now)
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ENQUEUE_SCRIPT, db_url, str(tenant.id), str(start)],
            env=_env(db_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-2000:] for o in outputs]
    created = sum(int(o[0].decode().strip()) for o in outputs)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
    assert count == 150 and created == 150
