"""A channel's reconciler (``/dashboard/channels/{name}/reconcile``): the latest dry run — what the
marketplace lists against what tradelane manages, with counts, the first SKUs of each group, the
oversell warning and, where the connector cannot delete offers, why nothing would be removed — a
button queuing a fresh dry run (optionally including unmanaged listings in the removal), and "Enable
reconciler" confirming the report shown (``services.reconciler.enable_reconciler``, audited as
``dashboard:<tenant>``, as ``POST /api/v1/channels/{name}/reconcile/enable`` and ``tradelane channel
reconcile NAME --enable ID``). The latest run's removals are shown below."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from sqlalchemy.engine import Connection
from starlette.responses import Response

from tradelane.domain.channels import Flow
from tradelane.domain.errors import NotFoundError, ValidationError
from tradelane.persistence.db import read_only, transaction
from tradelane.persistence.tables import channel_flows, jobs
from tradelane.services import channels as channel_service
from tradelane.services import reconciler
from tradelane.web.dashboard.rendering import PREFIX, redirect, render
from tradelane.web.dashboard.session import ActionDep, SessionDep, container_of

router = APIRouter(prefix=f"{PREFIX}/channels", include_in_schema=False)
#: SKUs shown per group.
SAMPLE = 20


def _url(name: str) -> str:
    return f"{PREFIX}/channels/{quote(name, safe='')}/reconcile"


def pending_jobs(conn: Connection, channel_id: int, kind: str) -> list[int]:
    """Ids of the channel's queued or running jobs of ``kind`` (a dry run / ID match in progress)."""
    return list(
        conn.execute(
            sa.select(jobs.c.id)
            .where(
                jobs.c.channel_id == channel_id, jobs.c.kind == kind, jobs.c.state.in_(["queued", "running"])
            )
            .order_by(jobs.c.id)
        ).scalars()
    )


@router.get("/{name}/reconcile")
def reconcile_page(request: Request, session: SessionDep, name: str) -> Response:
    container = container_of(request)
    try:
        with read_only(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            dry = reconciler.latest_report(conn, channel.id, kind="dry_run")
            run = reconciler.latest_report(conn, channel.id, kind="run")
            confirmed = reconciler.confirmed_report(conn, channel.id)
            waiting = pending_jobs(conn, channel.id, reconciler.DRY_RUN)
            flow_on = bool(
                conn.execute(
                    sa.select(channel_flows.c.enabled).where(
                        channel_flows.c.channel_id == channel.id,
                        channel_flows.c.flow == Flow.RECONCILER.value,
                    )
                ).scalar()
            )
    except NotFoundError as exc:
        return redirect(request, f"{PREFIX}/channels", str(exc), level="error")
    return render(
        request,
        "dashboard/reconcile.html",
        {
            "page": "channels",
            "channel": channel,
            "dry": dry,
            "run": run,
            "confirmed": confirmed,
            "waiting": waiting,
            "flow_on": flow_on,
            "sample": SAMPLE,
            "page_url": _url(channel.name),
        },
        session=session,
    )


@router.post("/{name}/reconcile")
def queue_dry_run(
    request: Request,
    session: ActionDep,
    name: str,
    include_unmanaged: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """ "Run a dry run": queue it (a worker reads the marketplace); the page shows it once stored."""
    container = container_of(request)
    back = _url(name)
    try:
        with transaction(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            job_id = reconciler.queue_dry_run(
                conn,
                channel,
                actor=f"dashboard:{session.tenant.name}",
                now=container.now(),
                include_unmanaged=bool(include_unmanaged),
            )
    except NotFoundError as exc:
        return redirect(request, back, str(exc), level="error")
    return redirect(
        request, back, f"Dry run queued (job {job_id}): nothing is changed; reload to see the report."
    )


@router.post("/{name}/reconcile/enable")
def enable(
    request: Request,
    session: ActionDep,
    name: str,
    report_id: Annotated[int, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """ "Enable reconciler": switch the flow on, confirming the dry run shown."""
    container = container_of(request)
    back = _url(name)
    try:
        with transaction(container.engine) as conn:
            channel = channel_service.get_channel(conn, session.tenant.id, name)
            report = reconciler.enable_reconciler(
                conn,
                channel,
                report_id,
                actor=f"dashboard:{session.tenant.name}",
                now=container.now(),
                reason=reason.strip() or None,
            )
    except (ValidationError, NotFoundError) as exc:
        return redirect(request, back, str(exc), level="error")
    return redirect(
        request,
        back,
        f"Reconciler of {name} switched on, confirming dry run {report.id}: "
        f"{len(report.to_remove)} listing(s) to remove.",
    )
