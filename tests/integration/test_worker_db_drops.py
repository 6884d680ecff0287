"""Workers survive the database: real `tradelane worker` processes keep running when PostgreSQL
terminates their connections (idle and mid-run, several times), and every job completes exactly once."""

from __future__ import annotations

import signal
import time

import pytest
import sqlalchemy as sa
from test_worker_processes import _effects, _enqueue_probes, _wait, _worker

from helpers import make_tenant
from tradelane.persistence.tables import jobs
from tradelane.security.crypto import generate_key
from tradelane.sync import jobs as jobstore
from tradelane.sync import liveness
from tradelane.timeutil import utcnow

pytestmark = pytest.mark.pg_only

TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _terminate_backends(engine) -> int:
    """Drop every other connection to this test's database (the workers', the pool's), like a restart."""
    with engine.connect() as conn:
        killed = int(conn.exec_driver_sql(TERMINATE).scalar_one())
        conn.commit()
    return killed


def _live_workers(engine) -> int:
    with engine.connect() as conn:
        return len(liveness.live_workers(conn, now=utcnow()))


def _alive(procs) -> bool:
    return all(p.poll() is None for p in procs)


def _stderr(procs) -> str:
    out = []
    for p in procs:
        if p.poll() is not None and p.stderr:
            out.append(f"worker exited {p.returncode}: {p.stderr.read().decode()[-3000:]}")
    return "\n".join(out)


def test_workers_survive_terminated_connections_and_run_every_job_once(engine, db_url, now):
    tenant, _ = make_tenant(engine, "acme", now)
    with engine.begin() as conn:  # the probe table exists before the workers start
        conn.exec_driver_sql("DROP TABLE IF EXISTS probe_effects")
    _enqueue_probes(engine, tenant.id, 0, sleep=0)
    key = generate_key()
    procs = [
        _worker(
            db_url,
            "--batch-size",
            "5",
            TRADELANE_WORKER_LEASE_SECONDS="3",
            TRADELANE_LOG_LEVEL="ERROR",
            TRADELANE_SECRET_KEYS=key,
        )
        for _ in range(3)
    ]
    try:
        _wait(lambda: _live_workers(engine) == 3 or not _alive(procs), 60, "three live workers")
        assert _alive(procs), _stderr(procs)

        # While idle: every worker's connections are terminated, twice.
        for _ in range(2):
            assert _terminate_backends(engine) >= 1  # the workers hold connections while idle
            time.sleep(1.0)
        assert _alive(procs), _stderr(procs)

        with engine.begin() as conn:
            ids = [
                jobstore.enqueue(
                    conn, jobstore.JobSpec(tenant.id, "probe.effect", {"sleep": 0.05, "n": i}), now=utcnow()
                ).job_id
                for i in range(60)
            ]
        # Mid-run: terminated again at three points of progress.
        for progress in (10, 25, 40):
            _wait(
                lambda p=progress: len(_effects(engine)) >= p or not _alive(procs),
                60,
                f"{progress} jobs done",
            )
            assert _alive(procs), _stderr(procs)
            _terminate_backends(engine)
        _wait(lambda: len(_effects(engine)) == len(ids) or not _alive(procs), 120, "every job to be done")
        assert _alive(procs), _stderr(procs)
        _wait(lambda: _count_succeeded(engine) == len(ids) or not _alive(procs), 60, "every job to succeed")
        _wait(lambda: _live_workers(engine) == 3, 30, "the workers to report liveness again")
        assert _alive(procs), _stderr(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in procs:
            try:
                codes.append(p.wait(30))
            except Exception:
                p.kill()
                codes.append(None)
    assert codes == [0, 0, 0]
    effects = _effects(engine)
    assert sorted(effects) == sorted(ids)
    assert set(effects.values()) == {1}, f"a job ran twice: {effects}"
    with engine.connect() as conn:
        states = dict(conn.execute(sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)).all())
    assert states == {"succeeded": len(ids)}


def _count_succeeded(engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(jobs.c.state == "succeeded")
            ).scalar_one()
        )
