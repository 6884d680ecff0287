"""Operational endpoints (no authentication, outside ``/api/v1``): liveness, readiness, metrics.

* ``GET /healthz`` — the process answers; touches nothing else.
* ``GET /readyz`` — the database answers and its schema revision is the code's Alembic head; 503
  problem otherwise (load balancers keep traffic away until migrations ran). The JSON also reports the
  workers (``workers``: live workers, due jobs, the oldest due job's wait, ``stalled`` when jobs are due
  and no worker is live). Readiness deliberately does **not** depend on workers: the API serves (and
  accepts webhooks into the outbox) without them, and a probe failing on them would only take the API
  down too. A stalled queue is an alert instead (raised by the watchdog of ``tradelane serve``, see
  :mod:`tradelane.sync.watchdog`) and the ``tradelane_workers_live`` /
  ``tradelane_oldest_due_job_age_seconds`` metrics.
* ``GET /metrics`` — Prometheus text exposition (see :mod:`tradelane.web.metrics`).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from tradelane.logging import get_logger
from tradelane.persistence.db import read_only
from tradelane.persistence.migrate import MIGRATIONS
from tradelane.sync import liveness
from tradelane.web.auth import ContainerDep
from tradelane.web.metrics import METRICS_CONTENT_TYPE, ApiMetrics
from tradelane.web.problems import ApiProblem, problem_responses

router = APIRouter(tags=["operations"])
log = get_logger(__name__)


class Health(BaseModel):
    status: str


class WorkersReport(BaseModel):
    live: int
    names: list[str]
    jobs_due: int
    oldest_due_job_age_seconds: float
    #: Jobs are due and no worker is live (an alert, not a readiness failure).
    stalled: bool


class Readiness(BaseModel):
    status: str
    schema_revision: str
    #: None only when the workers could not be read (readiness does not depend on them).
    workers: WorkersReport | None = None


def head_revisions() -> frozenset[str]:
    """The Alembic head revision(s) shipped with this code (reads the migration scripts)."""
    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


@router.get("/healthz", summary="Liveness")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz", summary="Readiness: database reachable, schema at head", responses=problem_responses(503)
)
def readyz(request: Request, container: ContainerDep) -> Readiness:
    heads: frozenset[str] = request.app.state.schema_heads
    workers: WorkersReport | None = None
    try:
        # A read-only connection (like ``migrate.current``) so SQLite's write lock is never taken.
        with read_only(container.engine) as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            if current in heads:
                workers = _workers_report(conn, container.now())
    except Exception as exc:  # any driver failure means "not ready", never a 500
        log.warning("readyz_database_unreachable", error=type(exc).__name__)
        raise ApiProblem(503, "the database is unreachable", slug="not-ready") from None
    if current not in heads:
        expected = ", ".join(sorted(heads))
        raise ApiProblem(
            503,
            f"database schema at {current or 'nothing'}, code expects {expected}: run `tradelane db upgrade`",
            slug="not-ready",
        )
    return Readiness(status="ready", schema_revision=current, workers=workers)


def _workers_report(conn: Connection, now: datetime) -> WorkersReport | None:
    try:
        health = liveness.queue_health(conn, now=now)
    except sa.exc.SQLAlchemyError as exc:
        log.warning("readyz_workers_unreadable", error=type(exc).__name__)
        return None
    return WorkersReport(
        live=health.workers_live,
        names=[w.name for w in health.live_workers],
        jobs_due=health.jobs_due,
        oldest_due_job_age_seconds=round(health.oldest_due_job_age_seconds, 3),
        stalled=health.stalled,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics(request: Request) -> Response:
    api_metrics: ApiMetrics = request.app.state.metrics
    return Response(api_metrics.render(), media_type=METRICS_CONTENT_TYPE)
