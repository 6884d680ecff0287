"""Worker liveness seen from the API: /readyz reports it (without failing on it), /metrics exports it,
and the watchdog of `tradelane serve` raises the "no live worker" alert."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from helpers import make_tenant
from tradelane.persistence.tables import alerts
from tradelane.sync import jobs as jobstore
from tradelane.sync import liveness
from tradelane.sync.registry import JobRegistry
from tradelane.sync.watchdog import WorkerWatchdog
from tradelane.sync.worker import Worker, WorkerConfig


def _gauges(text: str) -> dict[str, float]:
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }


def _stall(container, now) -> int:
    tenant, _ = make_tenant(container.engine, "acme", now)
    with container.engine.begin() as conn:
        jobstore.enqueue(
            conn,
            jobstore.JobSpec(tenant.id, "system.noop", {}, run_at=now - timedelta(seconds=120)),
            now=now - timedelta(minutes=5),
        )
    return tenant.id


def test_readyz_and_metrics_report_a_stalled_queue_without_failing_readiness(
    client: TestClient, container, now
):
    _stall(container, now)
    response = client.get("/readyz")
    assert response.status_code == 200  # the API stays ready: its readiness does not depend on workers
    assert response.json()["workers"] == {
        "live": 0,
        "names": [],
        "jobs_due": 1,
        "oldest_due_job_age_seconds": 120.0,
        "stalled": True,
    }
    gauges = _gauges(client.get("/metrics").text)
    assert gauges["tradelane_workers_live"] == 0
    assert gauges["tradelane_jobs_due"] == 1
    assert gauges["tradelane_oldest_due_job_age_seconds"] == 120

    worker = Worker(
        container.engine, JobRegistry(), container.now, WorkerConfig(lease_seconds=30), name="w-9"
    )
    worker.beat()
    workers = client.get("/readyz").json()["workers"]
    assert workers["live"] == 1 and workers["names"] == ["w-9"] and not workers["stalled"]
    assert _gauges(client.get("/metrics").text)["tradelane_workers_live"] == 1


def test_watchdog_raises_and_resolves_the_no_live_worker_alert(container, now):
    tenant_id = _stall(container, now)
    clock = {"now": now}
    watchdog = WorkerWatchdog(container.engine, lambda: clock["now"], interval=0.05)
    health = watchdog.check()
    assert health is not None and health.stalled
    with container.engine.connect() as conn:
        [alert] = conn.execute(sa.select(alerts)).all()
    assert (alert.tenant_id, alert.kind, alert.resolved_at) == (tenant_id, liveness.ALERT_KIND, None)
    assert "no live worker while 1 job(s) are due" in alert.message

    with container.engine.begin() as conn:  # a worker comes up (its row only: its beat would resolve too)
        liveness.beat(conn, liveness.WorkerBeat("w", "host", 1, now, heartbeat_seconds=10), now=now)
    watchdog.start()  # the thread runs a check at once, then every interval
    try:
        for _ in range(200):
            with container.engine.connect() as conn:
                resolved = conn.execute(sa.select(alerts.c.resolved_at)).scalar_one()
            if resolved is not None:
                break
            time.sleep(0.02)
        assert resolved == now
    finally:
        watchdog.stop()


def test_watchdog_check_survives_an_unreachable_database(tmp_path, now):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    try:
        assert WorkerWatchdog(engine, lambda: now, interval=1).check() is None
    finally:
        engine.dispose()
