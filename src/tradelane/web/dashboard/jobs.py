"""Jobs & dead letters: counts by state, the queue filtered by state/kind/channel, one job with its
payload, result, error and attempt history; replay one dead job or all of them
(``tradelane.sync.jobs.replay``, as ``POST /api/v1/jobs/{id}/replay``, ``/api/v1/jobs/replay`` and
``tradelane jobs replay``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from tradelane.domain.errors import NotFoundError
from tradelane.persistence.db import read_only, transaction
from tradelane.services import job_queries
from tradelane.sync.jobs import JobState, replay
from tradelane.web.dashboard.rendering import PREFIX, clean_filter, page_url, redirect, render, safe_back
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/jobs", include_in_schema=False)
PAGE = f"{PREFIX}/jobs"
PAGE_SIZE = 50
MAX_FILTER_LENGTH = 100


@router.get("")
def jobs_page(
    request: Request,
    session: SessionDep,
    state: str | None = None,
    kind: str | None = None,
    channel: str | None = None,
    offset: str | None = None,
) -> Response:
    container = container_of(request)
    filters = {
        "state": state if state in {s.value for s in JobState} else None,
        "kind": clean_filter(kind, MAX_FILTER_LENGTH),
        "channel": clean_filter(channel, MAX_FILTER_LENGTH),
    }
    start = int(offset) if offset and offset.isdigit() and len(offset) < 10 else 0
    with read_only(container.engine) as conn:
        counts = job_queries.count_by_state(conn, session.tenant.id)
        rows = job_queries.list_jobs(conn, session.tenant.id, limit=PAGE_SIZE + 1, offset=start, **filters)
    more = len(rows) > PAGE_SIZE
    return render(
        request,
        "dashboard/jobs.html",
        {
            "page": "jobs",
            "jobs": rows[:PAGE_SIZE],
            "counts": counts,
            "states": [s.value for s in JobState],
            "filters": filters,
            "prev_url": page_url(PAGE, {**filters, "offset": max(0, start - PAGE_SIZE)}) if start else None,
            "next_url": page_url(PAGE, {**filters, "offset": start + PAGE_SIZE}) if more else None,
            "here": page_url(PAGE, {**filters, "offset": start or None}),
        },
        session=session,
    )


@router.get("/{job_id:int}")
def job_page(request: Request, session: SessionDep, job_id: int) -> Response:
    container = container_of(request)
    try:
        with read_only(container.engine) as conn:
            detail = job_queries.get_job(conn, session.tenant.id, job_id)
    except NotFoundError as exc:
        return render(
            request,
            "dashboard/error.html",
            {"title": "Not found", "message": str(exc)},
            session=session,
            status_code=404,
        )
    return render(request, "dashboard/job.html", {"page": "jobs", "detail": detail}, session=session)


@router.post("/{job_id:int}/replay")
def replay_one(
    request: Request, session: ActionDep, job_id: int, back: Annotated[str, Form()] = ""
) -> Response:
    container = container_of(request)
    target = safe_back(back, f"{PAGE}/{job_id}")
    try:
        with transaction(container.engine) as conn:
            job_queries.get_job(conn, session.tenant.id, job_id)
            replayed = replay(conn, session.tenant.id, [job_id], now=container.now())
            detail = job_queries.get_job(conn, session.tenant.id, job_id)
    except NotFoundError as exc:
        return redirect(request, PAGE, str(exc), level="error")
    if not replayed:
        why = (
            f" ({detail.job.last_error})" if detail.job.state == "cancelled" and detail.job.last_error else ""
        )
        return redirect(
            request, target, f"Job {job_id} is {detail.job.state}{why}; only dead jobs replay.", level="error"
        )
    return redirect(request, target, f"Job {job_id} ({detail.job.kind}) queued again.")


@router.post("/replay-dead")
def replay_all(request: Request, session: ActionDep, back: Annotated[str, Form()] = "") -> Response:
    container = container_of(request)
    with transaction(container.engine) as conn:
        replayed = replay(conn, session.tenant.id, None, now=container.now())
    return redirect(request, safe_back(back, PAGE), f"{len(replayed)} dead job(s) queued again.")
