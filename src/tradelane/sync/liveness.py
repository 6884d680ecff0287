"""Worker liveness: one heartbeat row per worker process, and the queue's health as seen from it.

Contracts:

* :func:`beat` upserts the worker's row (by ``name``); a worker that stops cleanly :func:`retire` s it;
  rows not seen for :data:`PRUNE_AFTER` are deleted by any worker's beat (:func:`prune`).
* A worker is *live* when it was seen within ``LIVE_BEATS`` of its own heartbeat intervals
  (``last_seen_at >= now - LIVE_BEATS * heartbeat_seconds``): one or two missed beats (a slow database)
  do not make it look dead, a killed or hung process does within three.
* A job is *due* when a worker would claim it now (:func:`tradelane.sync.jobs.ready_condition`: queued and
  ``run_at`` passed, or running with an expired lease; paused flows excluded). Its *wait* is measured from
  ``run_at`` (queued) or ``lease_expires_at`` (lease lost).
* "No live worker while jobs are due" is an alert (kind :data:`ALERT_KIND`) raised for every tenant with
  due jobs by :func:`watch`, and resolved by :func:`watch` or by any worker's beat once a worker is live.
  The API's readiness does **not** depend on it (an API server is ready to serve without workers); it is
  reported in ``/readyz``'s JSON, in ``/metrics`` and on the dashboard.

Everything takes ``now``; nothing here sleeps or spawns threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from tradelane.persistence.db import is_postgres
from tradelane.persistence.tables import alerts, jobs, workers
from tradelane.sync.jobs import JobState, ready_condition

#: A worker is live when seen within this many of its heartbeat intervals.
LIVE_BEATS = 3
#: Rows of workers not seen for this long are deleted.
PRUNE_AFTER = timedelta(hours=1)
ALERT_KIND = "no_live_worker"
ALERT_KEY = "workers:none-live"


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """What a worker reports on each heartbeat."""

    name: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_seconds: float
    current_job_id: int | None = None
    held_jobs: int = 0
    stats: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class WorkerRow:
    name: str
    host: str
    pid: int
    started_at: datetime
    last_seen_at: datetime
    current_job_id: int | None
    held_jobs: int
    stats: dict[str, Any]
    seen_seconds_ago: float


@dataclass(frozen=True, slots=True)
class QueueHealth:
    """Live workers and due jobs at ``now`` (all tenants, or one when asked for one)."""

    now: datetime
    live_workers: list[WorkerRow]
    jobs_due: int
    oldest_due_since: datetime | None

    @property
    def workers_live(self) -> int:
        return len(self.live_workers)

    @property
    def oldest_due_job_age_seconds(self) -> float:
        """How long the longest-waiting due job has waited (0 when nothing is due)."""
        if self.oldest_due_since is None:
            return 0.0
        return max(0.0, (self.now - self.oldest_due_since).total_seconds())

    @property
    def stalled(self) -> bool:
        """Jobs are due and no worker is live to run them."""
        return self.jobs_due > 0 and not self.live_workers


def beat(conn: Connection, worker: WorkerBeat, *, now: datetime) -> None:
    """Upsert ``worker``'s row with ``last_seen_at = now``."""
    values = {
        "name": worker.name,
        "host": worker.host,
        "pid": worker.pid,
        "started_at": worker.started_at,
        "last_seen_at": now,
        "heartbeat_seconds": worker.heartbeat_seconds,
        "current_job_id": worker.current_job_id,
        "held_jobs": worker.held_jobs,
        "stats": dict(worker.stats or {}),
    }
    insert: Any = (postgresql_insert if is_postgres(conn) else sqlite_insert)(workers)
    stmt = insert.values(**values)
    update = {k: stmt.excluded[k] for k in values if k != "name"}
    conn.execute(stmt.on_conflict_do_update(index_elements=[workers.c.name], set_=update))


def retire(conn: Connection, name: str) -> None:
    """Remove a cleanly stopped worker's row."""
    conn.execute(sa.delete(workers).where(workers.c.name == name))


def prune(conn: Connection, *, now: datetime, older_than: timedelta = PRUNE_AFTER) -> int:
    """Delete rows of workers not seen since ``now - older_than``; returns how many."""
    return int(conn.execute(sa.delete(workers).where(workers.c.last_seen_at < now - older_than)).rowcount)


def live_workers(conn: Connection, *, now: datetime) -> list[WorkerRow]:
    """Workers seen within ``LIVE_BEATS`` of their heartbeat intervals, by name."""
    # Rows older than PRUNE_AFTER are on their way out; the per-row interval is compared in Python
    # (no portable interval arithmetic between SQLite and PostgreSQL).
    rows = conn.execute(
        sa.select(workers).where(workers.c.last_seen_at >= now - PRUNE_AFTER).order_by(workers.c.name)
    ).all()
    result: list[WorkerRow] = []
    for r in rows:
        ago = (now - r.last_seen_at).total_seconds()
        if ago <= LIVE_BEATS * float(r.heartbeat_seconds):
            result.append(
                WorkerRow(
                    r.name,
                    r.host,
                    int(r.pid),
                    r.started_at,
                    r.last_seen_at,
                    r.current_job_id,
                    int(r.held_jobs),
                    dict(r.stats or {}),
                    max(0.0, ago),
                )
            )
    return result


def queue_health(conn: Connection, *, now: datetime, tenant_id: int | None = None) -> QueueHealth:
    """Live workers (always all of them) and the due jobs (of ``tenant_id`` when given)."""
    waiting_since = sa.case(
        (jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at), else_=jobs.c.run_at
    )
    stmt = sa.select(sa.func.count(), sa.func.min(waiting_since)).where(ready_condition(now))
    if tenant_id is not None:
        stmt = stmt.where(jobs.c.tenant_id == tenant_id)
    count, oldest = conn.execute(stmt).one()
    return QueueHealth(now, live_workers(conn, now=now), int(count or 0), oldest)


def _tenants_with_due_jobs(conn: Connection, now: datetime) -> dict[int, int]:
    rows = conn.execute(
        sa.select(jobs.c.tenant_id, sa.func.count()).where(ready_condition(now)).group_by(jobs.c.tenant_id)
    )
    return {int(r[0]): int(r[1]) for r in rows}


def resolve_alerts(conn: Connection, *, now: datetime) -> int:
    """Resolve every open "no live worker" alert; returns how many."""
    done = conn.execute(
        sa.update(alerts)
        .where(alerts.c.key == ALERT_KEY, alerts.c.resolved_at.is_(None))
        .values(resolved_at=now)
    )
    return int(done.rowcount)


def watch(conn: Connection, *, now: datetime) -> QueueHealth:
    """Raise (or re-open) the "no live worker" alert of each tenant with due jobs when no worker is live;
    resolve the open ones once a worker is live or nothing is due. Returns the health it judged."""
    health = queue_health(conn, now=now)
    if not health.stalled:
        resolve_alerts(conn, now=now)
        return health
    age = int(health.oldest_due_job_age_seconds)
    for tenant_id, due in _tenants_with_due_jobs(conn, now).items():
        message = (
            f"no live worker while {due} job(s) are due (the oldest has waited {age} s): "
            "start `tradelane worker`"
        )
        # An open alert keeps its time (and gets the current figures); a resolved one is re-opened now.
        reopened = conn.execute(
            sa.update(alerts)
            .where(alerts.c.tenant_id == tenant_id, alerts.c.key == ALERT_KEY)
            .values(
                message=message,
                created_at=sa.case(
                    (alerts.c.resolved_at.is_(None), alerts.c.created_at),
                    else_=sa.literal(now, type_=alerts.c.created_at.type),
                ),
                resolved_at=None,
            )
        )
        if reopened.rowcount:
            continue
        conn.execute(
            (postgresql_insert if is_postgres(conn) else sqlite_insert)(alerts)
            .values(
                tenant_id=tenant_id,
                kind=ALERT_KIND,
                key=ALERT_KEY,
                severity="error",
                message=message,
                created_at=now,
            )
            .on_conflict_do_nothing()
        )
    return health
