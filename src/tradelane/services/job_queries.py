"""Read models of the job queue for operators: lists, details with attempt history, dead letters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tradelane.domain.errors import NotFoundError
from tradelane.persistence.tables import channels, job_attempts, jobs

#: Job states a tenant has few jobs in (each read from a partial index: ``ix_jobs_tenant_ready``,
#: ``ix_jobs_dead``, ``ix_jobs_cancelled``), as opposed to its ``succeeded`` history.
FEW_STATES = frozenset({"queued", "running", "dead", "cancelled"})


@dataclass(frozen=True, slots=True)
class JobView:
    id: int
    kind: str
    state: str
    channel: str | None
    flow: str | None
    attempts: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None
    error_kind: str | None
    idempotency_key: str | None
    dedupe_key: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AttemptView:
    """One attempt. Recorded ones (``job_attempts``) have a worker and a start; the attempt the job row
    itself describes (running, or succeeded: a success writes no history row) may lack them."""

    attempt: int
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class JobDetail:
    """A job with its attempts, consistent by construction: ``job.attempts`` counts the attempts since
    the last replay (``replayed_attempts`` made before it); ``attempts`` is the recorded history, and
    ``current`` the latest attempt as the job row tells it when no history row records it (running,
    succeeded, or lost without a row). So ``timeline`` is empty exactly when nothing was ever
    attempted, and :attr:`last_attempt` is None exactly when ``job.attempts == 0``."""

    job: JobView
    payload: dict[str, Any]
    result: dict[str, Any] | None
    attempts: list[AttemptView]
    current: AttemptView | None = None
    replayed_attempts: int = 0

    @property
    def timeline(self) -> list[AttemptView]:
        """Every attempt, oldest first: the recorded history, then ``current``."""
        return [*self.attempts, self.current] if self.current is not None else list(self.attempts)

    @property
    def last_attempt(self) -> AttemptView | None:
        """The latest attempt of the current budget (None: not yet attempted since creation/replay)."""
        if self.job.attempts == 0:
            return None
        number = self.replayed_attempts + self.job.attempts
        return next((a for a in reversed(self.timeline) if a.attempt == number), self.timeline[-1])

    @property
    def last_attempt_at(self) -> datetime | None:
        """When the latest attempt finished, else when it started (None: not yet attempted, or an
        attempt still running that the job row does not date)."""
        last = self.last_attempt
        return None if last is None else (last.finished_at or last.started_at)

    def as_dict(self) -> dict[str, Any]:
        """The job row's fields, then ``history`` (the recorded attempts: failures, retries and lost
        attempts; a success writes no row), ``current_attempt`` (the attempt the job row itself
        describes when no history row records it — the succeeded or running one — else None),
        ``replayed_attempts`` (attempts made before the last replay, which ``attempts`` does not
        count) and ``last_attempt_at``. So a job that succeeded at once reads ``attempts: 1``,
        ``history: []`` and its succeeded attempt in ``current_attempt``."""
        return {
            **self.job.as_dict(),
            "payload": self.payload,
            "result": self.result,
            "history": [asdict(a) for a in self.attempts],
            "current_attempt": None if self.current is None else asdict(self.current),
            "replayed_attempts": self.replayed_attempts,
            "last_attempt_at": self.last_attempt_at,
        }


def _current_attempt(row: Any, recorded: list[AttemptView], replayed: int) -> AttemptView | None:
    """The job row's latest attempt when the history has no row for it (see :class:`JobDetail`)."""
    number = replayed + row.attempts
    if row.attempts == 0 or any(a.attempt == number for a in recorded):
        return None
    if row.state == "running":
        return AttemptView(number, row.lease_owner, None, None, "running", None)
    finished = row.finished_at if row.state in {"succeeded", "dead", "cancelled"} else None
    error = None if row.state == "succeeded" else row.last_error
    return AttemptView(number, None, None, finished, row.state, error)


def _select() -> sa.Select[Any]:
    return sa.select(
        jobs.c.id,
        jobs.c.kind,
        jobs.c.state,
        channels.c.name.label("channel"),
        jobs.c.flow,
        jobs.c.attempts,
        jobs.c.max_attempts,
        jobs.c.run_at,
        jobs.c.created_at,
        jobs.c.finished_at,
        jobs.c.last_error,
        jobs.c.error_kind,
        jobs.c.idempotency_key,
        jobs.c.dedupe_key,
    ).select_from(jobs.outerjoin(channels, channels.c.id == jobs.c.channel_id))


def _view(row: Any) -> JobView:
    return JobView(**{name: getattr(row, name) for name in JobView.__slots__})


def list_jobs(
    conn: Connection,
    tenant_id: int,
    *,
    state: str | None = None,
    kind: str | None = None,
    channel: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[JobView]:
    """Newest first; every filter optional. Scoped to one tenant.

    Without a state, or of ``succeeded`` jobs (nearly every row), the page is read newest first along
    the primary key. Of a state whose jobs are few (:data:`FEW_STATES`: the backlog, dead letters,
    cancelled jobs) the tenant's jobs in that state are read first from their partial index and then
    sorted: walking every job newest first until the page is full would read the whole history when
    such jobs are old or absent (the planner takes that walk when it expects them spread evenly)."""
    stmt = _select().where(jobs.c.tenant_id == tenant_id)
    if state:
        stmt = stmt.where(jobs.c.state == state)
    if kind:
        stmt = stmt.where(jobs.c.kind == kind)
    if channel:
        stmt = stmt.where(channels.c.name == channel)
    if state in FEW_STATES:
        # MATERIALIZED keeps PostgreSQL (12+) from folding the ORDER BY ... LIMIT back into the read.
        few = stmt.cte("few_jobs").prefix_with("MATERIALIZED")
        page = sa.select(*few.c).order_by(few.c.id.desc()).limit(limit).offset(offset)
        return [_view(r) for r in conn.execute(page)]
    stmt = stmt.order_by(jobs.c.id.desc()).limit(limit).offset(offset)
    return [_view(r) for r in conn.execute(stmt)]


def get_job(conn: Connection, tenant_id: int, job_id: int) -> JobDetail:
    row = conn.execute(
        _select()
        .add_columns(jobs.c.payload, jobs.c.result, jobs.c.lease_owner, jobs.c.replayed_attempts)
        .where(jobs.c.tenant_id == tenant_id, jobs.c.id == job_id)
    ).first()
    if row is None:
        raise NotFoundError(f"no job {job_id}")
    attempts = [
        AttemptView(a.attempt, a.worker, a.started_at, a.finished_at, a.outcome, a.error)
        for a in conn.execute(
            sa.select(job_attempts).where(job_attempts.c.job_id == job_id).order_by(job_attempts.c.id)
        )
    ]
    replayed = int(row.replayed_attempts)
    current = _current_attempt(row, attempts, replayed)
    return JobDetail(_view(row), dict(row.payload), row.result, attempts, current, replayed)


def count_by_state(conn: Connection, tenant_id: int) -> dict[str, int]:
    rows = conn.execute(
        sa.select(jobs.c.state, sa.func.count()).where(jobs.c.tenant_id == tenant_id).group_by(jobs.c.state)
    )
    return {r[0]: int(r[1]) for r in rows}
