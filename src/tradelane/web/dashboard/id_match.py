"""A channel's unique-ID match (``/dashboard/channels/{name}/id-match``): the latest run's counts
(matched, conflicts, only theirs, only ours), its rows (filtered by category), a CSV export of every
row, and a button queuing a fresh run (read-only: a worker reads the marketplace's listings). An
unresolved conflict holds its SKU's offer back and blocks go-live (the channel page's Promote says so):
"Accept ours" (per conflict, or all, with a reason; audited ``dashboard:<tenant>``) lets the offer go."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.db import read_only, transaction
from tradelane.services import channels as channel_service
from tradelane.services import id_match, id_match_conflicts
from tradelane.web.dashboard.reconcile import pending_jobs
from tradelane.web.dashboard.rendering import PREFIX, redirect, render, with_security_headers
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/channels", include_in_schema=False)
#: Rows shown on the page (the CSV has them all).
MAX_ROWS = 500


def _url(name: str) -> str:
    return f"{PREFIX}/channels/{quote(name, safe='')}/id-match"


@router.get("/{name}/id-match")
def id_match_page(
    request: Request,
    session: SessionDep,
    name: str,
    category: Annotated[str, Query(pattern="^(|matched|conflict|only_theirs|only_ours)$")] = "",
) -> Response:
    container = container_of(request)
    try:
        with read_only(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            run = id_match.latest_run(conn, channel.id)
            rows = id_match.run_rows(conn, run.id, category=category or None) if run is not None else []
            waiting = pending_jobs(conn, channel.id, id_match.RUN)
            found = id_match_conflicts.conflicts(conn, channel.id) if run is not None else []
    except NotFoundError as exc:
        return redirect(request, f"{PREFIX}/channels", str(exc), level="error")
    return render(
        request,
        "dashboard/id_match.html",
        {
            "page": "channels",
            "channel": channel,
            "run": run,
            "rows": rows[:MAX_ROWS],
            "total_rows": len(rows),
            "category": category,
            "categories": id_match.CATEGORIES,
            "waiting": waiting,
            "accepted": {c.sku: c for c in found if c.accepted},
            "unresolved": [c for c in found if not c.accepted],
            "page_url": _url(channel.name),
        },
        session=session,
    )


@router.get("/{name}/id-match.csv")
def id_match_csv(request: Request, session: SessionDep, name: str) -> Response:
    """Every row of the latest run as CSV."""
    container = container_of(request)
    try:
        with read_only(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            run = id_match.latest_run(conn, channel.id)
            if run is None:
                raise NotFoundError(f"{channel.name} has no unique-ID match yet")
            rows = id_match.run_rows(conn, run.id)
    except NotFoundError as exc:
        return redirect(request, _url(name), str(exc), level="error")
    response = Response(
        id_match.to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{channel.name}-id-match-{run.id}.csv"'},
    )
    return with_security_headers(response)


@router.post("/{name}/id-match")
def queue_run(request: Request, session: ActionDep, name: str) -> Response:
    """ "Run the ID match": queue it; the page shows it once stored."""
    container = container_of(request)
    back = _url(name)
    try:
        with transaction(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            job_id = id_match.queue_run(
                conn, channel, actor=f"dashboard:{session.tenant.name}", now=container.now()
            )
    except NotFoundError as exc:
        return redirect(request, back, str(exc), level="error")
    return redirect(request, back, f"ID match queued (job {job_id}): reload to see it.")


@router.post("/{name}/id-match/accept")
def accept(
    request: Request,
    session: ActionDep,
    name: str,
    reason: Annotated[str, Form(max_length=2000)] = "",
    sku: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """ "Accept ours": for the conflict of ``sku``, or (no ``sku``) every unresolved one, with a reason;
    the offers are sent by the next sync and may overwrite the marketplace's listings."""
    container = container_of(request)
    back = _url(name)
    try:
        with transaction(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            accepted = id_match_conflicts.accept(
                conn,
                channel,
                skus=[sku] if sku else None,
                actor=f"dashboard:{session.tenant.name}",
                now=container.now(),
                reason=reason,
            )
    except (ValidationError, NotFoundError) as exc:
        return redirect(request, back, str(exc), level="error")
    return redirect(
        request,
        back,
        f"Accepted ours for {', '.join(c.sku for c in accepted)}: sent by the next sync, may overwrite the "
        "marketplace's listing.",
    )
