"""The tenant's job queue: list and filter, detail with payload and attempt history, dead letters,
replay of one or all dead jobs."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from tradelane.domain.errors import ConflictError
from tradelane.persistence.db import read_only, transaction
from tradelane.services import job_queries
from tradelane.services.job_queries import JobView
from tradelane.sync.jobs import JobState, replay
from tradelane.web.api.common import (
    API_PREFIX,
    DEFAULT_PAGE_SIZE,
    MAX_DB_ID,
    PRINTABLE,
    Limit,
    Offset,
    Page,
    next_offset,
)
from tradelane.web.auth import ContainerDep, TenantDep
from tradelane.web.problems import problem_responses

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"])

JobId = Annotated[int, Path(ge=1, le=MAX_DB_ID, description="Job id.")]


class JobOut(BaseModel):
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


class AttemptOut(BaseModel):
    attempt: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    error: str | None


class CurrentAttemptOut(BaseModel):
    """The attempt the job row itself describes (no history row records it): the running attempt
    (its worker), or the one that ended the job (a success: finished at the job's `finished_at`; the
    worker is not kept once a job succeeds)."""

    attempt: int
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None
    error: str | None


class JobDetailOut(JobOut):
    payload: dict[str, Any]
    result: dict[str, Any] | None
    history: list[AttemptOut] = Field(
        description="The recorded attempts, oldest first: failures, retries and lost attempts, including "
        "those before a replay. A success writes no history row: see `current_attempt`."
    )
    current_attempt: CurrentAttemptOut | None = Field(
        default=None,
        description="The latest attempt when `history` does not record it: the succeeded or running "
        "one, as the job row tells it. null when `history` holds the latest attempt or nothing was "
        "attempted. A job that succeeded at once has `attempts` 1, an empty `history` and its attempt here.",
    )
    replayed_attempts: int = Field(
        default=0, description="Attempts made before the last replay (`attempts` counts those since)."
    )
    last_attempt_at: datetime | None = Field(
        default=None,
        description="When the latest attempt since creation or the last replay finished (or started); "
        "null when `attempts` is 0 (not yet attempted) or the running attempt is not dated.",
    )


class ReplayOut(BaseModel):
    """Ids of the jobs moved from dead letters back to the queue (fresh attempt budget)."""

    replayed: list[int]


def _out(view: JobView) -> JobOut:
    return JobOut(**asdict(view))


def _page(views: list[JobView], limit: int, offset: int) -> Page[JobOut]:
    return Page[JobOut](
        items=[_out(v) for v in views],
        limit=limit,
        offset=offset,
        next_offset=next_offset(len(views), limit, offset),
    )


@router.get("", summary="List jobs, newest first")
def list_jobs(
    tenant: TenantDep,
    container: ContainerDep,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    kind: Annotated[str | None, Query(min_length=1, max_length=100, pattern=PRINTABLE)] = None,
    channel: Annotated[str | None, Query(min_length=1, max_length=100, pattern=PRINTABLE)] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
) -> Page[JobOut]:
    with read_only(container.engine) as conn:
        views = job_queries.list_jobs(
            conn,
            tenant.id,
            state=state.value if state else None,
            kind=kind,
            channel=channel,
            limit=limit,
            offset=offset,
        )
    return _page(views, limit, offset)


@router.get("/dead", summary="Dead letters, newest first")
def list_dead_jobs(
    tenant: TenantDep, container: ContainerDep, limit: Limit = DEFAULT_PAGE_SIZE, offset: Offset = 0
) -> Page[JobOut]:
    with read_only(container.engine) as conn:
        views = job_queries.list_jobs(conn, tenant.id, state=JobState.DEAD.value, limit=limit, offset=offset)
    return _page(views, limit, offset)


@router.post("/replay", summary="Replay every dead letter of the tenant")
def replay_all(tenant: TenantDep, container: ContainerDep) -> ReplayOut:
    with transaction(container.engine) as conn:
        ids = replay(conn, tenant.id, None, now=container.now())
    return ReplayOut(replayed=ids)


@router.get(
    "/{job_id}", summary="One job with payload, result and attempt history", responses=problem_responses(404)
)
def get_job(job_id: JobId, tenant: TenantDep, container: ContainerDep) -> JobDetailOut:
    with read_only(container.engine) as conn:
        detail = job_queries.get_job(conn, tenant.id, job_id)
    return JobDetailOut(**detail.as_dict())


@router.post(
    "/{job_id}/replay",
    summary="Replay one dead job (409 when the job is not dead)",
    responses=problem_responses(404, 409),
)
def replay_one(job_id: JobId, tenant: TenantDep, container: ContainerDep) -> ReplayOut:
    with transaction(container.engine) as conn:
        job_queries.get_job(conn, tenant.id, job_id)  # 404 for unknown and other tenants' jobs
        ids = replay(conn, tenant.id, [job_id], now=container.now())
        detail = job_queries.get_job(conn, tenant.id, job_id)
    if not ids:
        # A dead job superseded by one doing the same work in flight was cancelled: say why.
        why = (
            f" ({detail.job.last_error})" if detail.job.state == "cancelled" and detail.job.last_error else ""
        )
        raise ConflictError(f"job {job_id} is {detail.job.state}{why}, only dead jobs can be replayed")
    return ReplayOut(replayed=ids)
