"""Prometheus metrics of one API app, in a registry of its own (several apps may share a process).

* ``tradelane_http_requests_total{method,route,status}`` and
  ``tradelane_http_request_duration_seconds{method,route}``: ``route`` is the route *template*
  (``/api/v1/jobs/{job_id}``), or ``<unmatched>`` for paths no route matched, so label cardinality
  stays bounded whatever clients request.
* ``tradelane_jobs{state}``: jobs per state over all tenants, counted from the database at scrape time
  by :class:`JobQueueCollector` (every state is reported, zeros included).
* ``tradelane_database_up``: 1 when that count query succeeded, else 0 (the scrape itself never fails
  because the database is down).
* ``tradelane_workers_live``: workers seen within three of their heartbeats; ``tradelane_jobs_due``: jobs
  a worker would claim now; ``tradelane_oldest_due_job_age_seconds``: how long the longest-waiting due
  job has waited (0 when none). ``tradelane_workers_live == 0 and tradelane_jobs_due > 0`` is the
  "no live worker" condition (see :mod:`tradelane.sync.liveness`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from tradelane.logging import get_logger
from tradelane.persistence.db import read_only
from tradelane.persistence.tables import jobs
from tradelane.sync import liveness
from tradelane.sync.jobs import JobState
from tradelane.timeutil import utcnow

UNMATCHED_ROUTE = "<unmatched>"
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

log = get_logger(__name__)


class JobQueueCollector(Collector):
    """Job counts per state, queried when Prometheus scrapes (never cached)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        # Lets the registry learn the names without touching the database at registration time.
        yield GaugeMetricFamily("tradelane_jobs", "Jobs per state, all tenants.", labels=["state"])
        yield GaugeMetricFamily("tradelane_database_up", "1 if the job-queue query succeeded.")
        yield from self._worker_families(None)

    @staticmethod
    def _worker_families(health: liveness.QueueHealth | None) -> Iterator[Metric]:
        figures = (
            ("tradelane_workers_live", "Workers seen within three heartbeats.", "workers_live"),
            ("tradelane_jobs_due", "Jobs a worker would claim now, all tenants.", "jobs_due"),
            (
                "tradelane_oldest_due_job_age_seconds",
                "How long the longest-waiting due job has waited (0 when none is due).",
                "oldest_due_job_age_seconds",
            ),
        )
        for name, doc, attribute in figures:
            family = GaugeMetricFamily(name, doc)
            if health is not None:
                family.add_metric([], float(getattr(health, attribute)))
            yield family

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tradelane_database_up", "1 if the job-queue query succeeded.")
        try:
            with read_only(self._engine) as conn:
                counts = {
                    str(state): int(count)
                    for state, count in conn.execute(
                        sa.select(jobs.c.state, sa.func.count()).group_by(jobs.c.state)
                    )
                }
                health = liveness.queue_health(conn, now=self._clock())
        except sa.exc.SQLAlchemyError as exc:
            log.warning("metrics_job_query_failed", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        family = GaugeMetricFamily("tradelane_jobs", "Jobs per state, all tenants.", labels=["state"])
        for state in JobState:
            family.add_metric([state.value], counts.pop(state.value, 0))
        for state_name, count in sorted(counts.items()):  # states written by newer code
            family.add_metric([state_name], count)
        yield family
        yield from self._worker_families(health)


class ApiMetrics:
    """The metrics of one app. ``observe`` is called once per HTTP request by the middleware."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "tradelane_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tradelane_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(JobQueueCollector(engine, clock))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The exposition text (collectors run now)."""
        return generate_latest(self.registry)
